"""Everything InternVL2 fine-tuning reads besides the code, built offline into WORK:

    python build_data.py WORK MINDSPEED_MM

- ``WORK/hf/``: a tokenizer folder as ``tokenizer_config.from_pretrained`` expects (``AutoTokenizer``,
  ``local_files_only``): a byte-level BPE trained on the conversations below, with InternLM2's special
  tokens at InternVL2-2B's own ids (``<unk> <s> </s>`` = 0, 1, 2; ``<|im_end|>`` 92542, ``<|im_start|>``
  92543, ``<img>`` 92544, ``</img>`` 92545, ``<IMG_CONTEXT>`` 92546 (upstream's model json hard-codes
  ``img_context_token_id`` 92546, the data json ``pad_id`` 2) ... ``</box>`` 92552; 92553 tokens, the
  ``--vocab-size`` of upstream's script) and a ``<s>`` in front of every encoding, as InternLM2's
  tokenizer adds (MindSpeed-MM's ``preprocess_internlm`` subtracts one ``<s>`` per tokenized piece).
  InternVL2-2B's own tokenizer is InternLM2's sentencepiece model with remote code
  (``trust_remote_code``); neither can be downloaded here.
- ``WORK/data/images/*.png`` and ``WORK/data/internvl_tiny.jsonl``: generated pictures (a shape of
  one colour on another: ``examples/qwen25vl_tiny``'s, imported) with a question and an answer each,
  in InternVL's chat format (``image`` relative to ``data_folder``, ``conversations`` of
  ``human``/``gpt`` turns), the format of upstream's ``ai2d_train_12k.jsonl``.
- ``WORK/data.json``, ``WORK/model.json``: upstream's ``examples/internvl2/data_2B.json`` and
  ``model_2B.json`` with the paths pointed at WORK and the sizes cut down (``IMAGE_SIZE``,
  ``TINY_MODEL``); every other field is upstream's.

Re-running rewrites the same files (the images and tokenizer are deterministic).
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path


def _qwen25vl_build_data():
    """examples/qwen25vl_tiny/build_data.py under its own module name (this file has the same name)."""
    path = Path(__file__).resolve().parent.parent / "qwen25vl_tiny" / "build_data.py"
    spec = importlib.util.spec_from_file_location("qwen25vl_tiny_build_data", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_qwen = _qwen25vl_build_data()
caption, draw, samples, set_path = _qwen.caption, _qwen.draw, _qwen.samples, _qwen.set_path

# InternLM2's special tokens at InternVL2-2B's ids (its tokenizer_config.json's added tokens)
BASE_SPECIAL = ["<unk>", "<s>", "</s>"]
ADDED_SPECIAL = {92538: "<|plugin|>", 92539: "<|interpreter|>", 92540: "<|action_end|>", 92541: "<|action_start|>",
                 92542: "<|im_end|>", 92543: "<|im_start|>", 92544: "<img>", 92545: "</img>", 92546: "<IMG_CONTEXT>",
                 92547: "<quad>", 92548: "</quad>", 92549: "<ref>", 92550: "</ref>", 92551: "<box>", 92552: "</box>"}
VOCAB_SIZE = 92553
IMG_CONTEXT_ID = 92546
PAD_ID = 2
# the internlm2-chat template's system message (mindspeed_mm/data/data_utils/conversation.py): every
# sample carries it, so the BPE learns its merges instead of spending 3 tokens per character
SYSTEM_MESSAGE = "你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，英文名叫InternVL, 是一个有用无害的人工智能助手。"

IMAGE_SIZE = 56          # tile side: 4 x 4 patches of 14, 4 image tokens per tile after the 0.5 pixel shuffle
SEQ_LENGTH = 256

# upstream model_2B.json -> tiny: a 2-layer InternViT (hidden 64, 4 heads) and a 2-layer InternLM2-like
# decoder (hidden 128, 4 heads of 32, 2 KV groups); the projector maps the pixel-shuffled 4 x 64 to 128
TINY_MODEL = {
    "text_decoder": dict(num_layers=2, hidden_size=128, num_attention_heads=4, num_query_groups=2,
                         ffn_hidden_size=256, kv_channels=32, max_position_embeddings=SEQ_LENGTH,
                         bf16=False, params_dtype="fp32"),
    "image_encoder.vision_encoder": dict(num_layers=2, hidden_size=64, ffn_hidden_size=128, num_attention_heads=4,
                                         image_size=IMAGE_SIZE, bf16=False, params_dtype="fp32"),
    "image_encoder.vision_projector": dict(vit_hidden_size=64, llm_hidden_size=128, params_dtype="fp32"),
}


def build_tokenizer(texts: list[str], hf: Path) -> None:
    """Byte-level BPE with ``<unk> <s> </s>`` at 0-2, placeholders no merge produces up to 92537,
    InternLM2's added tokens at 92538-92552 and a ``<s>`` prepended to every encoding.

    Byte-level without a prefix space keeps the tokenization of a conversation equal to the sum of its
    pieces', which ``preprocess_internlm`` checks sample by sample ("tokenization mismatch")."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=1000, special_tokens=BASE_SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", 1)])
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    if [vocab[t] for t in BASE_SPECIAL] != [0, 1, 2]:
        raise RuntimeError(f"tokenizers put {BASE_SPECIAL} at {[vocab[t] for t in BASE_SPECIAL]}, not 0-2")
    for i in range(len(vocab), min(ADDED_SPECIAL)):
        vocab[f"<|unused_{i}|>"] = i
    spec["added_tokens"] = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                             "normalized": False, "special": True}
                            for i, t in [*enumerate(BASE_SPECIAL), *sorted(ADDED_SPECIAL.items())]]
    (hf / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False))
    (hf / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": SEQ_LENGTH, "padding_side": "right",
        "bos_token": "<s>", "eos_token": "</s>", "pad_token": "</s>", "unk_token": "<unk>",
        "clean_up_tokenization_spaces": False, "additional_special_tokens": list(ADDED_SPECIAL.values()),
    }, indent=1))


def set_dotted(config: dict, dotted: str, values: dict, source: str) -> None:
    """``set_path`` of examples/qwen25vl_tiny, naming this example's upstream file when a field is gone."""
    try:
        set_path(config, dotted, values)
    except KeyError as e:
        raise KeyError(f"{source}: {e.args[0].split(': ', 1)[1]}") from None


def main(work: Path, mm: Path) -> None:
    upstream = mm / "examples" / "internvl2"
    data_dir = work / "data"
    (data_dir / "images").mkdir(parents=True, exist_ok=True)
    records, texts = [], [SYSTEM_MESSAGE, "system user assistant"]
    for i, (shape, fg, bg, question) in enumerate(samples()):
        name = f"images/{i:02d}_{fg}_{shape}.png"
        draw(shape, fg, bg, i).save(data_dir / name)
        answer = caption(shape, fg, bg)
        question = question.replace("<image>", "<image>\n")
        records.append({"id": i, "image": name, "width": 112, "height": 112,
                        "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]})
        texts += [question.replace("<image>\n", ""), answer]
    (data_dir / "internvl_tiny.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    hf = work / "hf"
    hf.mkdir(parents=True, exist_ok=True)
    build_tokenizer(texts, hf)

    data = json.loads((upstream / "data_2B.json").read_text())
    param = data["dataset_param"]
    param["basic_parameters"].update(data_path=str(data_dir / "internvl_tiny.jsonl"), data_folder=str(data_dir))
    param["tokenizer_config"].update(from_pretrained=str(hf))
    resize = [t for t in param["preprocess_parameters"]["train_pipeline"]["image"] if t["trans_type"] == "Resize"]
    if len(resize) != 1:
        raise KeyError(f"data_2B.json: expected one Resize in train_pipeline.image, found {len(resize)}")
    resize[0]["param"]["size"] = [IMAGE_SIZE, IMAGE_SIZE]
    set_dotted(data, "dataset_param", dict(image_size=IMAGE_SIZE), "data_2B.json")
    set_dotted(data, "dataloader_param", dict(pin_memory=False), "data_2B.json")
    if data["dataloader_param"]["collate_param"]["pad_id"] != PAD_ID:
        raise KeyError(f"data_2B.json: collate_param.pad_id is no longer {PAD_ID} (</s>): rebuild the tokenizer")
    (work / "data.json").write_text(json.dumps(data, indent=1))

    model = json.loads((upstream / "model_2B.json").read_text())
    if model["img_context_token_id"] != IMG_CONTEXT_ID or model["text_decoder"]["vocab_size"] != VOCAB_SIZE:
        raise KeyError(f"model_2B.json: img_context_token_id/vocab_size are no longer {IMG_CONTEXT_ID}/{VOCAB_SIZE}")
    for dotted, values in TINY_MODEL.items():
        set_dotted(model, dotted, values, "model_2B.json")
    (work / "model.json").write_text(json.dumps(model, indent=1))
    print(f"build_data: {len(records)} image-conversation pairs, tokenizer in {hf}, data.json and model.json in {work}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: build_data.py WORK MINDSPEED_MM (the workspace's MindSpeed-MM folder)")
    main(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve())
