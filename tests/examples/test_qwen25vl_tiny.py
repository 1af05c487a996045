"""examples/qwen25vl_tiny: the parts that run without the mm workspace: the offline data, tokenizer and
configs the example builds from upstream's Qwen2.5-VL example files, and the launcher's refusal to run
outside a workspace. The vision tower's parity and the workspace build are in tests/e2e/test_mm_workspace.py.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.examples.launchers import assert_refused_outside_a_workspace

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "qwen25vl_tiny"

pytest.importorskip("tokenizers")
pytest.importorskip("PIL")


@pytest.fixture()
def upstream(tmp_path) -> Path:
    """A MindSpeed-MM folder holding upstream's two example configs, as v2.2.0 has them (the fields
    build_data.py edits, with upstream's values)."""
    folder = tmp_path / "MindSpeed-MM" / "examples" / "mindspore" / "qwen2.5vl"
    folder.mkdir(parents=True)
    folder.joinpath("data_7b.json").write_text(json.dumps({
        "dataset_param": {"dataset_type": "huggingface",
                          "preprocess_parameters": {"model_name_or_path": "./ckpt/hf_path/Qwen2.5-VL-7B-Instruct",
                                                    "image_max_pixels": 262144},
                          "basic_parameters": {"template": "qwen2vl", "dataset_dir": "./data",
                                               "dataset": "./data/mllm_format_llava_instruct_data.json",
                                               "cache_dir": "./data/cache_dir", "preprocessing_num_workers": 16},
                          "attr": {"images": "images", "messages": "messages"}},
        "dataloader_param": {"dataloader_mode": "sampler", "pin_memory": True}}))
    vision = {k: None for k in ("num_layers", "hidden_size", "ffn_hidden_size", "llm_hidden_size",
                                "num_attention_heads", "pipeline_num_layers", "fullatt_block_indexes", "fp16",
                                "bf16", "params_dtype", "intermediate_size")}
    projector = {k: None for k in ("input_size", "hidden_size", "ffn_hidden_size", "bf16", "params_dtype")}
    text = {k: None for k in ("num_layers", "pipeline_num_layers", "hidden_size", "ffn_hidden_size",
                              "num_attention_heads", "num_query_groups", "seq_length", "max_position_embeddings",
                              "vocab_size", "mrope_section", "params_dtype", "bf16")}
    folder.joinpath("model_7b.json").write_text(json.dumps({
        "model_id": "qwen2_5vl", "img_context_token_id": 151655, "vision_start_token_id": 151652,
        "image_encoder": {"vision_encoder": vision, "vision_projector": projector}, "text_decoder": text}))
    return tmp_path / "MindSpeed-MM"


def _build(work: Path, mm: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(EXAMPLE / "build_data.py"), str(work), str(mm)], check=True,
                          capture_output=True, text=True)


def test_build_is_deterministic_and_the_tokenizer_has_qwen2s_special_ids(tmp_path, upstream):
    from tokenizers import Tokenizer

    _build(tmp_path / "a", upstream)
    _build(tmp_path / "b", upstream)
    for name in ("hf/tokenizer.json", "hf/config.json", "model.json", "data/images/00_red_circle.png"):  # data.json names WORK
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    tok = Tokenizer.from_file(str(tmp_path / "a/hf/tokenizer.json"))
    # MindSpeed-MM hard-codes these ids (vlm_attentionmask_for_llm.py) and model_7b.json names two of them
    assert tok.token_to_id("<|image_pad|>") == 151655
    assert tok.token_to_id("<|video_pad|>") == 151656
    assert tok.token_to_id("<|vision_start|>") == 151652
    assert tok.token_to_id("<|im_end|>") == 151645
    text = "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>A red circle on a blue background.<|im_end|>"
    ids = tok.encode(text).ids
    assert ids[:6] == [151644, tok.token_to_id("user"), tok.token_to_id("Ċ"), 151652, 151655, 151653]
    assert tok.decode(ids, skip_special_tokens=False) == text
    assert max(ids[6:-1]) < 400   # the caption in learned merges, none of the placeholders


def test_configs_are_upstreams_with_the_paths_and_sizes_changed(tmp_path, upstream):
    work = tmp_path / "w"
    _build(work, upstream)
    data, model = json.loads((work / "data.json").read_text()), json.loads((work / "model.json").read_text())
    basic = data["dataset_param"]["basic_parameters"]
    assert basic["template"] == "qwen2vl" and basic["dataset"] == str(work / "data" / "mllm_format_tiny.json")
    assert data["dataset_param"]["preprocess_parameters"]["model_name_or_path"] == str(work / "hf")
    assert model["image_encoder"]["vision_encoder"]["num_layers"] == 2
    assert model["text_decoder"]["num_layers"] == 2
    assert model["text_decoder"]["vocab_size"] == 151680
    records = json.loads((work / "data" / "mllm_format_tiny.json").read_text())
    assert len(records) == 12
    for record in records:
        assert Path(record["images"][0]).is_file()
        assert [m["role"] for m in record["messages"]] == ["user", "assistant"]
        assert record["messages"][0]["content"].startswith("<image>")


def test_a_renamed_upstream_field_is_refused_by_name(tmp_path, upstream):
    path = upstream / "examples" / "mindspore" / "qwen2.5vl" / "model_7b.json"
    model = json.loads(path.read_text())
    del model["text_decoder"]["num_query_groups"]
    path.write_text(json.dumps(model))
    proc = subprocess.run([sys.executable, str(EXAMPLE / "build_data.py"), str(tmp_path / "w"), str(upstream)],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "model_7b.json: text_decoder has no ['num_query_groups']" in proc.stderr


def test_launcher_outside_a_workspace_says_what_to_do(tmp_path):
    assert_refused_outside_a_workspace(EXAMPLE / "finetune_qwen25vl_tiny.sh", "source auto_convert_mm.sh", "qwen25vl_tiny_run", tmp_path)
