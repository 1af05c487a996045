"""Tensor.untyped_storage().resize_(0) (patch 0019): MindSpeed-LLM's MindSpore path frees each
pipeline stage's output this way once it is sent, then runs the backward from it. Before 0019 it
raised NotImplementedError, which stopped every pipeline-parallel run (DeepSeek-V3 tiny at NPROC=4,
docs/deepseek3_tiny.md). Compared with PyTorch 2.13 on the same script (storage_jobs/)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from testbed import Testbed, tagged_json

pytestmark = [pytest.mark.slow, pytest.mark.pypi, pytest.mark.mindspore]

JOBS = Path(__file__).parent / "storage_jobs"


def _result(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-4000:])
    return tagged_json(proc)


def test_released_output_keeps_its_shape_and_its_backward_as_in_pytorch(testbed: Testbed):
    jobs = testbed.convert(JOBS, "storage_jobs")
    ms = _result(testbed.ms_run(f"python {jobs / 'release_output.py'}"))
    pt = _result(testbed.torch_run([str(JOBS / "release_output.py")]))
    assert pt["released"]["bytes"] == [60, 0] and pt["kept"]["bytes"] == [60, 60]
    for case in ("kept", "released"):
        assert ms[case]["bytes"] == pt[case]["bytes"], case
        assert ms[case]["shape"] == pt[case]["shape"] == [5, 3], case
        for got, want in zip(ms[case]["grads"], pt[case]["grads"], strict=True):
            assert got == pytest.approx(want, rel=1e-5, abs=1e-6), case
    assert ms["released"]["grads"] == ms["kept"]["grads"]


def test_released_output_refilled_by_copy_as_in_pytorch(testbed: Testbed):
    """--recompute-norm's pattern: resize_(0), then resize_ back and copy_ of another storage; the
    values are the copied ones and the backward is the output's own (before the copy_ it raised
    NotImplementedError, at DeepSeek-V3 tiny's first backward with --recompute-norm)."""
    jobs = testbed.convert(JOBS, "storage_jobs")
    ms = _result(testbed.ms_run(f"python {jobs / 'release_output.py'}"))["refilled"]
    pt = _result(testbed.torch_run([str(JOBS / "release_output.py")]))["refilled"]
    assert ms["bytes"] == pt["bytes"] == 60
    assert ms["values"] == pytest.approx(pt["values"], rel=1e-6, abs=1e-6)
    for got, want in zip(ms["grads"], pt["grads"], strict=True):
        assert got == pytest.approx(want, rel=1e-5, abs=1e-6)
