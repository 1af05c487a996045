"""Views, detach(), .data and in-place writes share storage on the workspace's mindtorch as on PyTorch
(mindtorch patch 0012): every view kind x write kind, both directions, and the Megatron-core patterns
that rely on it, run once against `torch` in two processes (views_semantics_cases.py: the workspace's
mindtorch on MindSpore CPU, and PyTorch 2.13 CPU) and compared case by case."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import views_semantics_cases as cases
from test_mindtorch_compat import VALUE_TOL, _case, _mismatches, _report
from testbed import Testbed

pytestmark = [pytest.mark.slow, pytest.mark.pypi, pytest.mark.mindspore]

HERE = Path(__file__).parent
SCRIPT = HERE / "views_semantics_cases.py"

# measured differences, each with its cause (docs/runtime_views.md): strict, so a fix makes them fail
KNOWN = {
    "in-place through a view of a non-leaf, gradients": (
        "a write through a view of a tensor in the autograd graph reaches the base's values but not its "
        "gradient: MindSpore 2.10's CopySlice (which rebases the base's graph) only runs through its "
        "InplaceCopy kernel, whose CPU version writes the wrong elements of a view with an offset or "
        "strides, so mindtorch writes the memory itself and the base keeps its old graph node"),
}


@pytest.fixture(scope="module")
def ms(testbed: Testbed) -> dict:
    return _report(testbed.ms_run(f"python {SCRIPT} --mindtorch"), "VIEWS_REPORT")


@pytest.fixture(scope="module")
def pt(testbed: Testbed) -> dict:
    return _report(testbed.torch_run([str(SCRIPT)]), "VIEWS_REPORT")


def test_every_case_ran(ms, pt):
    assert set(ms["cases"]) == set(pt["cases"]) == set(cases.CASES)
    broken = {name: r["error"].strip().splitlines()[-1] for name, r in pt["cases"].items() if "error" in r}
    assert not broken, f"the PyTorch reference failed: {broken}"


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=KNOWN[name])) if name in KNOWN else name
    for name in cases.CASES])
def test_matches_pytorch(ms, pt, name):
    problems = _mismatches(_case(ms, name), _case(pt, name), VALUE_TOL)
    assert not problems, "\n".join(problems)


def test_the_comparisons_are_not_trivial(pt):
    """On PyTorch every write reaches the other side (so a copy instead of a view cannot pass), clipping
    changes the gradients, zero_() of the grad buffer zeroes every main_grad, and the in-place writes on
    non-leaves change the gradients."""
    initial = (np.arange(12, dtype=np.float32).reshape(3, 4) + 1.0).tolist()
    for view in cases.VIEWS:
        for write in cases.WRITES:
            there = _case(pt, f"{view}|{write}|view->base")
            assert there["base"] != initial, (view, write)
            back = _case(pt, f"{view}|{write}|base->view")
            assert back["base"] != initial and back["returns itself"], (view, write)
    clipped = _case(pt, "clip_grads[param.grad.detach() scaled in place]")["mul_"]
    assert clipped[1] != [-2.0, -1.0, 0.0, 1.0]
    buffer = _case(pt, "_ParamAndGradBuffer main_grad views, grad_data.zero_()")
    assert any(buffer["grad_data after accumulate 0"]) and not np.any(buffer["main_grads after zero_ 1"][0])
    assert _case(pt, "loss.detach() then loss /= n [in the graph]")["backward"]["reported after"] != 35.0
    grad_w = np.asarray(_case(pt, "x[0] = 0.0 on a non-leaf, gradients")["backward"]["grads"][0])
    assert not grad_w[0].any() and not grad_w[2, 1:3].any() and np.abs(grad_w[1]).min() > 0
    original_self = _case(pt, "in-place ops whose gradient reads the original self, gradients")["backward"]
    assert np.abs(original_self["grads"][1]).min() > 0
