"""examples/internvl2_tiny: the parts that run without the mm workspace: the offline images,
conversations, tokenizer and configs the example builds from upstream's InternVL2-2B example files, the
launcher's refusal to run outside a workspace, and mindtorch patch 0025 (torch.full with a 0-dim tensor
fill value) against PyTorch. The fine-tuning run itself needs the mm workspace (tests/e2e).
"""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.examples.launchers import assert_refused_outside_a_workspace

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "internvl2_tiny"
RUNTIME = REPO / "tests" / "runtime"
if str(RUNTIME) not in sys.path:
    sys.path.append(str(RUNTIME))   # as tests/e2e/test_mm_workspace.py does: testbed.reference_python
import testbed  # noqa: E402

pytest.importorskip("tokenizers")
pytest.importorskip("PIL")


def _build_data_module():
    spec = importlib.util.spec_from_file_location("internvl2_tiny_build_data", EXAMPLE / "build_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def upstream(tmp_path) -> Path:
    """A MindSpeed-MM folder holding upstream's two InternVL2-2B configs as v2.2.0 has them (the fields
    build_data.py reads or edits, with upstream's values, and a few it keeps)."""
    folder = tmp_path / "MindSpeed-MM" / "examples" / "internvl2"
    folder.mkdir(parents=True)
    folder.joinpath("data_2B.json").write_text(json.dumps({
        "dataset_param": {
            "dataset_type": "multimodal",
            "basic_parameters": {"data_path": "/path/json_path", "data_folder": "/path/root_path", "repeat_time": 1},
            "preprocess_parameters": {"image_reader_type": "torchvision", "train_pipeline": {"image": [
                {"trans_type": "Pad2Square", "param": {"mean": [0.485, 0.456, 0.406]}},
                {"trans_type": "Resize", "param": {"size": [448, 448], "interpolation": "BICUBIC", "antialias": None}},
                {"trans_type": "ToTensor"},
                {"trans_type": "norm_fun", "param": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}}]}},
            "tokenizer_config": {"hub_backend": "hf", "autotokenizer_name": "AutoTokenizer",
                                 "from_pretrained": "OpenGVLab/InternVL2-2B", "add_eos_token": False, "use_fast": False},
            "template_name": "internlm2-chat", "patch_size": 14, "image_size": 448, "down_sample_ratio": 0.5,
            "dynamic_image_size": True, "use_thumbnail": True, "min_dynamic_patch": 1, "max_dynamic_patch": 6},
        "dataloader_param": {"dataloader_mode": "sampler", "shuffle": True, "pin_memory": True,
                             "sampler_type": "BaseRandomBatchSampler",
                             "collate_param": {"model_name": "internvl", "pad_id": 2}}}))
    text = {"model_id": "internllm", "num_layers": 24, "hidden_size": 2048, "num_attention_heads": 16,
            "num_query_groups": 8, "ffn_hidden_size": 8192, "kv_channels": 128, "max_position_embeddings": 4096,
            "fp16": False, "bf16": True, "params_dtype": "bf16", "vocab_size": 92553, "rotary_base": 100000}
    vision = {"model_id": "InternViT", "num_layers": 24, "hidden_size": 1024, "ffn_hidden_size": 4096,
              "num_attention_heads": 16, "patch_size": 14, "image_size": 448, "params_dtype": "bf16", "fp16": False,
              "bf16": True, "recompute_granularity": "full", "freeze": True}
    projector = {"model_id": "InternVLMLP", "downsample_ratio": 0.5, "vit_hidden_size": 1024, "llm_hidden_size": 2048,
                 "params_dtype": "bf16", "num_layers": 1}
    folder.joinpath("model_2B.json").write_text(json.dumps({
        "model_id": "InternVL", "img_context_token_id": 92546, "downsample_ratio": 0.5, "text_decoder": text,
        "image_encoder": {"vision_encoder": vision, "vision_projector": projector}}))
    return tmp_path / "MindSpeed-MM"


def _build(work: Path, mm: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(EXAMPLE / "build_data.py"), str(work), str(mm)], check=True,
                          capture_output=True, text=True)


def test_build_is_deterministic_and_the_tokenizer_has_internvl2s_special_ids(tmp_path, upstream):
    from tokenizers import Tokenizer

    _build(tmp_path / "a", upstream)
    _build(tmp_path / "b", upstream)
    for name in ("hf/tokenizer.json", "hf/tokenizer_config.json", "model.json", "data/internvl_tiny.jsonl",
                 "data/images/00_red_circle.png"):   # data.json names WORK
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    tok = Tokenizer.from_file(str(tmp_path / "a/hf/tokenizer.json"))
    assert tok.get_vocab_size(with_added_tokens=True) == 92553   # upstream's --vocab-size
    # model_2B.json's img_context_token_id, data_2B.json's pad_id (</s>) and the template's stop ids
    assert [tok.token_to_id(t) for t in ("<unk>", "<s>", "</s>")] == [0, 1, 2]
    assert tok.token_to_id("<IMG_CONTEXT>") == 92546
    assert [tok.token_to_id(t) for t in ("<|im_end|>", "<|im_start|>", "<img>", "</img>")] == [92542, 92543, 92544, 92545]
    text = "<|im_start|>user\n<img><IMG_CONTEXT><IMG_CONTEXT></img>\nWhat is in the picture?<|im_end|>"
    ids = tok.encode(text).ids
    assert ids[:7] == [1, 92543, tok.token_to_id("user"), tok.token_to_id("Ċ"), 92544, 92546, 92546]
    assert tok.decode(ids, skip_special_tokens=False) == "<s>" + text
    assert max(ids[8:-1]) < 1000   # the question in learned merges, none of the placeholders


def test_a_conversation_tokenizes_as_the_sum_of_its_pieces(tmp_path, upstream):
    """MindSpeed-MM's preprocess_internlm masks the prompt by tokenizing the conversation's pieces
    (split at the assistant role) one by one, each with its <s> taken off, and drops the sample's labels
    ("tokenization mismatch") unless they add up to the whole: with this tokenizer they do."""
    from tokenizers import Tokenizer

    _build(tmp_path / "w", upstream)
    tok = Tokenizer.from_file(str(tmp_path / "w/hf/tokenizer.json"))
    system = f"<|im_start|>system\n{_build_data_module().SYSTEM_MESSAGE}<|im_end|>"   # internlm2-chat, MPT style
    for line in (tmp_path / "w/data/internvl_tiny.jsonl").read_text().splitlines():
        human, gpt = json.loads(line)["conversations"]
        image = "<img>" + "<IMG_CONTEXT>" * 20 + "</img>"
        conversation = (f"{system}<|im_start|>user\n{human['value'].replace('<image>', image)}<|im_end|>"
                        f"<|im_start|>assistant\n{gpt['value']}<|im_end|>")
        head, answer = conversation.split("<|im_start|>assistant\n")
        pieces = 1 + len(tok.encode(head + "<|im_start|>assistant\n").ids) - 1 + len(tok.encode(answer).ids) - 1
        assert pieces == len(tok.encode(conversation).ids) < 256, conversation   # and within --seq-length
    assert len(tok.encode(system).ids) < 40   # the Chinese system message in learned merges, not 3 bytes a character


def test_configs_are_upstreams_with_the_paths_and_sizes_changed(tmp_path, upstream):
    work = tmp_path / "w"
    _build(work, upstream)
    data, model = json.loads((work / "data.json").read_text()), json.loads((work / "model.json").read_text())
    param = data["dataset_param"]
    assert param["basic_parameters"] == {"data_path": str(work / "data" / "internvl_tiny.jsonl"),
                                         "data_folder": str(work / "data"), "repeat_time": 1}
    assert param["tokenizer_config"]["from_pretrained"] == str(work / "hf")
    assert param["tokenizer_config"]["use_fast"] is False and param["template_name"] == "internlm2-chat"
    resize = param["preprocess_parameters"]["train_pipeline"]["image"][1]
    assert resize == {"trans_type": "Resize", "param": {"size": [56, 56], "interpolation": "BICUBIC", "antialias": None}}
    assert param["image_size"] == 56 and param["max_dynamic_patch"] == 6 and param["use_thumbnail"] is True
    assert data["dataloader_param"]["pin_memory"] is False
    assert data["dataloader_param"]["collate_param"] == {"model_name": "internvl", "pad_id": 2}
    vision, text = model["image_encoder"]["vision_encoder"], model["text_decoder"]
    assert (vision["num_layers"], vision["hidden_size"], vision["image_size"], vision["params_dtype"]) == (2, 64, 56, "fp32")
    assert vision["freeze"] is True and vision["recompute_granularity"] == "full"   # upstream's, kept
    assert (text["num_layers"], text["hidden_size"], text["kv_channels"], text["bf16"]) == (2, 128, 32, False)
    assert text["vocab_size"] == 92553 and model["img_context_token_id"] == 92546
    assert model["image_encoder"]["vision_projector"]["vit_hidden_size"] == 64
    records = [json.loads(line) for line in (work / "data" / "internvl_tiny.jsonl").read_text().splitlines()]
    assert len(records) == 12
    for record in records:
        assert (work / "data" / record["image"]).is_file()   # relative to data_folder, as upstream's jsonl
        assert [turn["from"] for turn in record["conversations"]] == ["human", "gpt"]
        assert record["conversations"][0]["value"].startswith("<image>\n")


def test_a_renamed_upstream_field_is_refused_by_name(tmp_path, upstream):
    path = upstream / "examples" / "internvl2" / "model_2B.json"
    model = json.loads(path.read_text())
    del model["text_decoder"]["kv_channels"]
    path.write_text(json.dumps(model))
    proc = subprocess.run([sys.executable, str(EXAMPLE / "build_data.py"), str(tmp_path / "w"), str(upstream)],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "model_2B.json: text_decoder has no ['kv_channels']" in proc.stderr


def test_launcher_outside_a_workspace_says_what_to_do(tmp_path):
    assert_refused_outside_a_workspace(EXAMPLE / "finetune_internvl2_tiny.sh", "source auto_convert_mm.sh",
                                       "internvl2_tiny_run", tmp_path)


# torch.full's fill value as PyTorch takes it: a Python number or a 0-dim tensor (the Number it holds,
# whatever its dtype), with and without dtype=, under the default dtype float32 and float64 (mindtorch
# does not raise where PyTorch refuses an overflowing fill, e.g. finfo(float32).min into float16: not here). Printed as
# one JSON line by both sides: dtype name and values per case.
_FULL_CASES = r'''
import json, sys
try:
    import torch
except ImportError:
    import mindtorch as torch
out = {}
def case(name, fill, **kw):
    try:
        t = torch.full((2, 3), fill, **kw)
        out[name] = [str(t.dtype).split(".")[-1], [complex(v) if t.is_complex() else v for v in t.flatten().tolist()][:2]]
    except Exception as e:   # noqa: BLE001
        out[name] = ["error", type(e).__name__]
    if out[name][0] != "error" and isinstance(out[name][1][0], complex):
        out[name][1] = [[v.real, v.imag] for v in out[name][1]]
for default in ("float32", "float64"):
    torch.set_default_dtype(getattr(torch, default))
    for label, fill in (("float", 1.5), ("int", 3), ("bool", True), ("complex", 1 + 2j),
                        ("0-dim float64", torch.tensor(1.5, dtype=torch.float64)),
                        ("0-dim float32 finfo.min", torch.tensor(torch.finfo(torch.float32).min)),
                        ("0-dim bfloat16", torch.tensor(2.5, dtype=torch.bfloat16)),
                        ("0-dim int8", torch.tensor(3, dtype=torch.int8)), ("0-dim bool", torch.tensor(True))):
        case(f"{default}: {label}", fill)
        if label != "complex":   # a complex into a real dtype, and finfo.min into float16, raise in PyTorch
            case(f"{default}: {label}, dtype=float64", fill, dtype=torch.float64)
    case(f"{default}: 0-dim float64, dtype=int32", torch.tensor(2.0, dtype=torch.float64), dtype=torch.int32)
torch.set_default_dtype(torch.float32)
# InternVLModel._make_causal_mask's own call
mask = torch.full((3, 3), torch.tensor(torch.finfo(torch.float32).min))
out["causal mask"] = [str(mask.dtype).split(".")[-1], mask.masked_fill(torch.tril(torch.ones(3, 3)).bool(), 0).tolist()]
print("FULL_CASES " + json.dumps(out, sort_keys=True))
'''


def _full_cases(python: str, script: Path) -> dict:
    proc = subprocess.run([python, str(script)], capture_output=True, text=True, timeout=300, env=testbed._clean_env({}))
    lines = [line for line in proc.stdout.splitlines() if line.startswith("FULL_CASES ")]
    assert proc.returncode == 0 and lines, (proc.stdout[-2000:], proc.stderr[-3000:])
    return json.loads(lines[-1][len("FULL_CASES "):])


@pytest.mark.mindspore
def test_patch_0025_full_behaves_as_pytorch(tmp_path):
    """mindtorch as tools/setup_env.sh installs it (the series, 0025 included) against PyTorch 2.13.
    Before 0025 every 0-dim-tensor case without dtype= stopped ("For 'Cast', the input 'dtype' should
    be mindspore dtype, but got None") and the float64-default ones gave float32."""
    pytest.importorskip("mindtorch")
    script = tmp_path / "full_cases.py"
    script.write_text(_FULL_CASES)
    want, got = _full_cases(str(testbed.reference_python()), script), _full_cases(sys.executable, script)
    assert want["float32: 0-dim bfloat16"] == ["float32", [2.5, 2.5]] and want["float64: int"][0] == "int64"
    assert want["causal mask"][0] == "float32"
    assert got == want
