"""Tensor == / != with None, a str, a list, a tuple or a torch.Size answer as in PyTorch (by identity:
False / True, patch 0020), numbers and tensors elementwise. MindSpeed-LLM's inference decodes what it
generated only if `tensor == torch.Size([])` is False (MegatronModuleForCausalLM._ids_check;
docs/hf_roundtrip.md)."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from testbed import Testbed

pytestmark = [pytest.mark.pypi, pytest.mark.mindspore]

JOBS = Path(__file__).parent / "eq_jobs"


def _answers(proc: subprocess.CompletedProcess) -> dict:
    lines = [line for line in proc.stdout.splitlines() if line.startswith("EQ_CASES ")]
    assert proc.returncode == 0 and lines, (proc.stdout[-2000:], proc.stderr[-3000:])
    return json.loads(lines[-1][len("EQ_CASES "):])


def test_eq_and_ne_with_non_tensors_answer_as_pytorch(testbed: Testbed):
    jobs = testbed.convert(JOBS, "eq_jobs")
    ms = _answers(testbed.ms_run(f"python {jobs / 'eq_cases.py'}"))
    pt = _answers(testbed.torch_run([str(JOBS / "eq_cases.py")]))
    assert pt["t == empty Size"] is False and pt["t != tuple"] is True and pt["t == int"] == [True, False, False]
    assert ms == pt
