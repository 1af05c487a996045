"""HF -> Megatron -> HF on MindSpore with MindSpeed-LLM's own converters (examples/hf_roundtrip_tiny),
checked against unconverted transformers on PyTorch CPU: the example's script run as a user runs it,
in the session's llm workspace, then its outputs read here.

The reference Python needs transformers and safetensors beside torch (`MS_TORCH_REFERENCE_PYTHON`, else
the checkout's .venv-torch); without them the script stops in one line saying so, and these tests fail
with that line. The full run with inference.py is recorded in docs/hf_roundtrip.md; here INFERENCE=0
leaves out that one process (the same generate API runs in megatron_side.py) to keep CI short.
"""
from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from tests.e2e.conftest import REPO_ROOT, LlmWorkspace, Result, bash, iteration_steps
from tests.runtime.testbed import reference_python

EXAMPLE = REPO_ROOT / "examples" / "hf_roundtrip_tiny"
sys.path.insert(0, str(REPO_ROOT / "examples" / "deepseek3_tiny"))
from losses import parse as parse_iterations  # noqa: E402

RTOL = 1e-4


@dataclass
class Run:
    work: Path
    result: Result
    seconds: float


@pytest.fixture(scope="module")
def roundtrip(llm_workspace: LlmWorkspace, tmp_path_factory) -> Run:
    work = tmp_path_factory.mktemp("hf_roundtrip") / "run"
    started = time.monotonic()
    result = bash(f"source {llm_workspace.path / 'set_env.sh'} && bash examples/hf_roundtrip_tiny/roundtrip.sh",
                  cwd=REPO_ROOT, timeout=1800, WORK=str(work), REFERENCE_PYTHON=str(reference_python()),
                  INFERENCE="0")
    seconds = time.monotonic() - started
    print(f"\nhf_roundtrip_tiny: {seconds:.0f}s", file=sys.stderr)
    return Run(work, result, seconds)


def _ok(run: Run) -> None:
    assert run.result.returncode == 0, "\n".join((run.result.stdout + run.result.stderr).splitlines()[-40:])


def _side(run: Run, name: str) -> tuple[dict, np.ndarray]:
    return json.loads((run.work / "out" / f"{name}.json").read_text()), np.load(run.work / "out" / f"{name}.npy")


def test_roundtrip_script_passes_its_own_checks(roundtrip: Run):
    _ok(roundtrip)
    assert "| round trip without training: weights equal to the original, bit for bit |" in roundtrip.result.stdout


def test_without_training_the_round_trip_gives_back_the_weights_bit_for_bit(roundtrip: Run):
    _ok(roundtrip)
    original = load_file(str(roundtrip.work / "hf" / "model.safetensors"))
    back = load_file(str(roundtrip.work / "hf_before" / "mg2hf" / "model.safetensors"))
    assert sorted(back) == sorted(original)
    for name, value in original.items():
        assert back[name].dtype == value.dtype and np.array_equal(back[name], value), name


def test_converted_back_config_names_a_dtype_pytorch_knows(roundtrip: Run):
    """patches/MindSpeed/0002: the mcore2hf saver wrote "torch_dtype": "mindspore" before it."""
    _ok(roundtrip)
    for which in ("hf_before", "hf_after"):
        config = json.loads((roundtrip.work / which / "mg2hf" / "config.json").read_text())
        assert config["torch_dtype"] == "float32", which


def test_training_from_the_converted_checkpoint_runs_10_steps_and_moves_every_weight(roundtrip: Run):
    _ok(roundtrip)
    log = roundtrip.work / "logs" / "train.log"
    assert iteration_steps(log) == list(range(1, 11))
    assert f"loading checkpoint from {roundtrip.work / 'mg'}" in log.read_text(errors="replace")
    losses = [r["lm"] for r in parse_iterations(log)]
    assert all(math.isfinite(x) for x in losses) and losses[-1] < losses[0], losses
    original = load_file(str(roundtrip.work / "hf" / "model.safetensors"))
    after = load_file(str(roundtrip.work / "hf_after" / "mg2hf" / "model.safetensors"))
    assert [k for k in original if np.array_equal(after[k], original[k])] == []


@pytest.mark.parametrize("when", ["before", "after"])
def test_pytorch_logits_of_the_converted_back_model_equal_megatron_logits_on_mindspore(roundtrip: Run, when: str):
    _ok(roundtrip)
    mg, mg_logits = _side(roundtrip, f"mg_{when}")
    hf, hf_logits = _side(roundtrip, f"hf_{when}")
    assert mg["text_ids"] == hf["text_ids"] and len(hf["text_ids"]) > 20
    assert mg_logits.shape == hf_logits.shape == (len(hf["text_ids"]), 512)
    assert np.abs(mg_logits - hf_logits).max() <= RTOL * np.abs(hf_logits).max()


@pytest.mark.parametrize("when", ["before", "after"])
def test_greedy_generation_on_mindspore_equals_transformers_on_pytorch(roundtrip: Run, when: str):
    _ok(roundtrip)
    mg, _ = _side(roundtrip, f"mg_{when}")
    hf, _ = _side(roundtrip, f"hf_{when}")
    assert mg["prompt_ids"] == hf["prompt_ids"]
    assert len(hf["generated"]) == 16
    assert mg["generated"] == hf["generated"]
