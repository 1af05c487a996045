"""examples/hf_roundtrip_tiny, the parts that need no workspace: the HF model the example makes
loads completely in unconverted transformers on PyTorch, and compare.py fails a run whose MindSpore
side differs from PyTorch's. The run itself: tests/e2e/test_hf_roundtrip.py, docs/hf_roundtrip.md.

Needs the reference Python (`MS_TORCH_REFERENCE_PYTHON`, else .venv-torch) with transformers and
safetensors; without them the first test fails saying so.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "hf_roundtrip_tiny"
TEXT = "The river carried the old boat past the mill."
PROMPT = "how are you?"

pytest.importorskip("tokenizers")
pytest.importorskip("safetensors")


def _reference() -> str:
    path = os.environ.get("MS_TORCH_REFERENCE_PYTHON", str(REPO / ".venv-torch" / "bin" / "python"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = subprocess.run([path, "-c", "import torch, transformers, safetensors"], capture_output=True, env=env)
    if probe.returncode != 0:
        pytest.fail(f"{path} cannot import torch, transformers and safetensors: the reference environment needs "
                    f"transformers==4.55.4 and safetensors (tools/setup_env.sh --reference)", pytrace=False)
    return path


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(list(args), capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hf_tiny")
    subprocess.run([sys.executable, str(REPO / "examples" / "deepseek3_tiny" / "build_tokenizer.py"), str(root)],
                   check=True, capture_output=True)
    for name in ("a", "b"):
        subprocess.run([sys.executable, str(EXAMPLE / "make_hf_model.py"), str(root / name), str(root / "tokenizer")],
                       check=True, capture_output=True)
    return root


def test_the_made_model_is_deterministic_and_transformers_loads_every_weight(made: Path):
    assert (made / "a" / "model.safetensors").read_bytes() == (made / "b" / "model.safetensors").read_bytes()
    proc = _run(_reference(), str(EXAMPLE / "hf_side.py"), str(made / "a"), "--out", str(made / "a_side"),
                "--text", TEXT, "--prompt", PROMPT)
    assert proc.returncode == 0, proc.stderr[-3000:]   # hf_side.py refuses missing or unexpected weights
    side = json.loads((made / "a_side.json").read_text())
    assert len(side["generated"]) == 16
    assert np.load(made / "a_side.npy").shape == (len(side["text_ids"]), 512)


def test_compare_fails_a_run_whose_mindspore_logits_or_tokens_differ(made: Path, tmp_path):
    """A WORK folder laid out as roundtrip.sh leaves it, both sides from PyTorch: passes; then the
    'MindSpore' logits moved by 1e-3 of their scale, and one generated token changed: fails, naming both."""
    reference = _reference()
    work = tmp_path / "work"
    (work / "out").mkdir(parents=True)
    shutil.copytree(made / "a", work / "hf")
    from safetensors.numpy import load_file, save_file
    for which, shift in (("before", 0.0), ("after", 0.01)):
        folder = work / f"hf_{which}" / "mg2hf"
        shutil.copytree(made / "a", folder)
        weights = {k: v + np.float32(shift) for k, v in load_file(str(folder / "model.safetensors")).items()}
        save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
        proc = _run(reference, str(EXAMPLE / "hf_side.py"), str(folder), "--out", str(work / "out" / f"hf_{which}"),
                    "--text", TEXT, "--prompt", PROMPT)
        assert proc.returncode == 0, proc.stderr[-3000:]
        for ext in ("json", "npy"):
            shutil.copyfile(work / "out" / f"hf_{which}.{ext}", work / "out" / f"mg_{which}.{ext}")
    good = _run(reference, str(EXAMPLE / "compare.py"), str(work))
    assert good.returncode == 0, good.stderr
    assert "| before training: greedy tokens, MindSpore (MindSpeed-LLM generate) |" in good.stdout

    logits = np.load(work / "out" / "mg_before.npy")
    logits[3, 7] += 1e-3 * np.abs(logits).max()
    np.save(work / "out" / "mg_before.npy", logits)
    side = json.loads((work / "out" / "mg_after.json").read_text())
    side["generated"][5] = (side["generated"][5] + 1) % 512
    (work / "out" / "mg_after.json").write_text(json.dumps(side))
    bad = _run(reference, str(EXAMPLE / "compare.py"), str(work))
    assert bad.returncode == 1
    problems = bad.stderr.strip().splitlines()
    assert any(p.startswith("compare.py: before: logits differ by") for p in problems), problems
    assert any(p.startswith("compare.py: after: greedy generation differs") for p in problems), problems
    assert len(problems) == 2, problems
