"""Everything Qwen2.5-VL fine-tuning reads besides the code, built offline into WORK:

    python build_data.py WORK MINDSPEED_MM

- ``WORK/hf/``: a Hugging Face folder as ``model_name_or_path`` expects (AutoConfig, AutoTokenizer,
  AutoProcessor): a byte-level BPE trained on the captions below with the Qwen2 special tokens at
  Qwen2's own ids (151643-151656: MindSpeed-MM hard-codes <|image_pad|> = 151655 and <|video_pad|> =
  151656 in its M-RoPE position ids, vlm_attentionmask_for_llm.py), Qwen2-VL's image processor.
  Qwen2.5-VL's own tokenizer (151,665 tokens of merges) cannot be downloaded here.
- ``WORK/data/images/*.png`` and ``WORK/data/mllm_format_tiny.json``: generated pictures (a shape
  of one colour on another) with a question and a caption each, in the format of upstream's
  ``examples/qwen2vl/llava_instruct_2_mllm_demo_format.py`` (``images`` + ``messages``).
- ``WORK/data.json``, ``WORK/model.json``: upstream's ``examples/mindspore/qwen2.5vl/data_7b.json``
  and ``model_7b.json`` with the paths pointed at WORK and the sizes cut down (``TINY_MODEL``); every
  other field is upstream's.

Re-running rewrites the same files (the images and tokenizer are deterministic).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
           "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
           "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]
FIRST_SPECIAL_ID = 151643      # Qwen2's <|endoftext|>
VOCAB_SIZE = 151680            # Qwen2.5-VL text configs pad 151,665 tokens up; here the first multiple of 64 above 151,657
IMAGE = 112                    # pixels per side: 8 x 8 patches of 14, 16 image tokens after the 2 x 2 merge

COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 70, 220), "yellow": (230, 210, 40),
           "white": (245, 245, 245), "black": (15, 15, 15)}
SHAPES = ["circle", "square", "triangle"]
QUESTIONS = ["<image>What is in the picture?", "<image>Describe the image.", "<image>What shape do you see?"]

# upstream model_7b.json -> tiny: 2 vision blocks (window attention, then full), a 2-layer LLM with heads of
# 32 (M-RoPE sections 4/6/6: upstream's 16/24/24 for heads of 128, scaled)
TINY_MODEL = {
    "image_encoder.vision_encoder": dict(num_layers=2, hidden_size=64, ffn_hidden_size=128, intermediate_size=128,
                                         llm_hidden_size=128, num_attention_heads=4, pipeline_num_layers=[2],
                                         fullatt_block_indexes=[1], fp16=False, bf16=False, params_dtype="fp32"),
    "image_encoder.vision_projector": dict(input_size=64, hidden_size=128, ffn_hidden_size=128, bf16=False,
                                           params_dtype="fp32"),
    "text_decoder": dict(num_layers=2, pipeline_num_layers=[2], hidden_size=128, ffn_hidden_size=256,
                         num_attention_heads=4, num_query_groups=2, seq_length=256, max_position_embeddings=1024,
                         vocab_size=VOCAB_SIZE, mrope_section=[4, 6, 6], params_dtype="fp32"),
}


def samples() -> list[tuple[str, str, str, str]]:
    """(shape, colour, background, question) for 12 pictures, every shape and colour used."""
    names = list(COLOURS)
    out = []
    for i in range(12):
        fg, bg = names[i % len(names)], names[(i * 5 + 3) % len(names)]
        if bg == fg:
            bg = names[(names.index(fg) + 1) % len(names)]
        out.append((SHAPES[i % 3], fg, bg, QUESTIONS[i % 3]))
    return out


def draw(shape: str, fg: str, bg: str, i: int) -> Image.Image:
    image = Image.new("RGB", (IMAGE, IMAGE), COLOURS[bg])
    pen = ImageDraw.Draw(image)
    lo, hi = 20 + 2 * i, IMAGE - 24 + i
    if shape == "circle":
        pen.ellipse([lo, lo, hi, hi], fill=COLOURS[fg])
    elif shape == "square":
        pen.rectangle([lo, lo, hi, hi], fill=COLOURS[fg])
    else:
        pen.polygon([(IMAGE // 2, lo), (lo, hi), (hi, hi)], fill=COLOURS[fg])
    return image


def caption(shape: str, fg: str, bg: str) -> str:
    return f"A {fg} {shape} on a {bg} background."


def build_tokenizer(texts: list[str], hf: Path) -> None:
    """Byte-level BPE (Qwen2's pre-tokenizer family) with the special tokens at Qwen2's ids: the
    ids between the learned vocabulary and 151643 are unused placeholders no merge produces."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                       show_progress=False))
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    for i in range(len(vocab), FIRST_SPECIAL_ID):
        vocab[f"<|unused_{i}|>"] = i
    spec["added_tokens"] = [{"id": FIRST_SPECIAL_ID + i, "content": t, "single_word": False, "lstrip": False,
                             "rstrip": False, "normalized": False, "special": True} for i, t in enumerate(SPECIAL)]
    (hf / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False))
    (hf / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "Qwen2TokenizerFast", "model_max_length": 32768, "padding_side": "right",
        "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "bos_token": None, "unk_token": None,
        "errors": "replace", "clean_up_tokenization_spaces": False, "split_special_tokens": False,
        "additional_special_tokens": SPECIAL[1:],
    }, indent=1))


def write_hf(hf: Path, texts: list[str]) -> None:
    hf.mkdir(parents=True, exist_ok=True)
    build_tokenizer(texts, hf)
    vision, text = TINY_MODEL["image_encoder.vision_encoder"], TINY_MODEL["text_decoder"]
    (hf / "config.json").write_text(json.dumps({
        "architectures": ["Qwen2_5_VLForConditionalGeneration"], "model_type": "qwen2_5_vl",
        "vocab_size": VOCAB_SIZE, "hidden_size": text["hidden_size"], "intermediate_size": text["ffn_hidden_size"],
        "num_hidden_layers": text["num_layers"], "num_attention_heads": text["num_attention_heads"],
        "num_key_value_heads": text["num_query_groups"], "rope_theta": 1000000.0,
        "rope_scaling": {"type": "mrope", "mrope_section": text["mrope_section"]},
        "bos_token_id": 151643, "eos_token_id": 151645, "vision_start_token_id": 151652, "vision_end_token_id": 151653,
        "image_token_id": 151655, "video_token_id": 151656, "tie_word_embeddings": False, "torch_dtype": "float32",
        "vision_config": {"depth": vision["num_layers"], "hidden_size": vision["hidden_size"],
                          "intermediate_size": vision["intermediate_size"], "num_heads": vision["num_attention_heads"],
                          "out_hidden_size": text["hidden_size"], "fullatt_block_indexes": vision["fullatt_block_indexes"],
                          "window_size": 112, "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2,
                          "tokens_per_second": 2},
    }, indent=1))
    processor = {"image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2_5_VLProcessor",
                 "do_resize": True, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
                 "do_convert_rgb": True, "image_mean": [0.48145466, 0.4578275, 0.40821073],
                 "image_std": [0.26862954, 0.26130258, 0.27577711], "min_pixels": 28 * 28,
                 "max_pixels": IMAGE * IMAGE, "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2}
    (hf / "preprocessor_config.json").write_text(json.dumps(processor, indent=1))


def set_path(config: dict, dotted: str, values: dict) -> None:
    node = config
    for key in dotted.split("."):
        node = node[key]
    missing = sorted(set(values) - set(node) - {"intermediate_size"})
    if missing:   # upstream renamed a field: say so instead of adding one it ignores
        raise KeyError(f"model_7b.json: {dotted} has no {missing}")
    node.update(values)


def main(work: Path, mm: Path) -> None:
    upstream = mm / "examples" / "mindspore" / "qwen2.5vl"
    data_dir = work / "data"
    (data_dir / "images").mkdir(parents=True, exist_ok=True)
    records, texts = [], []
    for i, (shape, fg, bg, question) in enumerate(samples()):
        path = data_dir / "images" / f"{i:02d}_{fg}_{shape}.png"
        draw(shape, fg, bg, i).save(path)
        answer = caption(shape, fg, bg)
        records.append({"images": [str(path)], "messages": [{"role": "user", "content": question},
                                                            {"role": "assistant", "content": answer}]})
        texts += [question.replace("<image>", ""), answer]
    texts += ["You are a helpful assistant.", "system user assistant"]
    (data_dir / "mllm_format_tiny.json").write_text(json.dumps(records, indent=1))
    write_hf(work / "hf", texts)

    data = json.loads((upstream / "data_7b.json").read_text())
    pre, basic = data["dataset_param"]["preprocess_parameters"], data["dataset_param"]["basic_parameters"]
    pre.update(model_name_or_path=str(work / "hf"), image_max_pixels=IMAGE * IMAGE)
    basic.update(dataset_dir=str(data_dir), dataset=str(data_dir / "mllm_format_tiny.json"),
                 cache_dir=str(data_dir / "cache_dir"), preprocessing_num_workers=1)
    data["dataloader_param"]["pin_memory"] = False
    (work / "data.json").write_text(json.dumps(data, indent=1))

    model = json.loads((upstream / "model_7b.json").read_text())
    for dotted, values in TINY_MODEL.items():
        set_path(model, dotted, values)
    (work / "model.json").write_text(json.dumps(model, indent=1))
    print(f"build_data: {len(records)} image-text pairs, tokenizer and processor in {work / 'hf'}, "
          f"data.json and model.json in {work}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: build_data.py WORK MINDSPEED_MM (the workspace's MindSpeed-MM folder)")
    main(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve())
