"""PyTorch's autograd semantics on mindtorch (patch 0011: MindSpore 2.10's C++ engine; 0004: custom
Functions), case by case against PyTorch 2.13 on the same inputs. The cases are written once against
`torch` in autograd_cases.py and run in two processes: in the converted workspace (``--mindtorch``, the
workspace's patched mindtorch) and in the reference environment. Numbers within float64 1e-6 /
float32 1e-5 of the largest reference magnitude (at least 1); flags, call orders and the names of
raised exceptions exactly."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from op_cases_compare import TOL
from test_mindtorch_compat import _mismatches
from testbed import Testbed

pytestmark = [pytest.mark.slow, pytest.mark.pypi, pytest.mark.mindspore]

HERE = Path(__file__).parent
CASES_SCRIPT = HERE / "autograd_cases.py"


def _report(proc) -> dict:
    lines = [line for line in proc.stdout.splitlines() if line.startswith("AUTOGRAD_REPORT ")]
    assert lines, f"no report:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return json.loads(lines[-1][len("AUTOGRAD_REPORT "):])


@pytest.fixture(scope="module")
def ms(testbed: Testbed) -> dict:
    return _report(testbed.ms_run(f"python {CASES_SCRIPT} --mindtorch"))


@pytest.fixture(scope="module")
def pt(testbed: Testbed) -> dict:
    return _report(testbed.torch_run([str(CASES_SCRIPT)]))


def _names() -> list[str]:
    """The case names as autograd_cases.py registers them ("name[dtype]" per @case(dtypes...), both
    dtypes when none are given), read from its source: importing it would import torch here."""
    tree = ast.parse(CASES_SCRIPT.read_text())
    default = next(ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                   and any(getattr(t, "id", None) == "DTYPES" for t in node.targets))
    names = []
    for node in tree.body:
        for deco in getattr(node, "decorator_list", []):
            if isinstance(deco, ast.Call) and getattr(deco.func, "id", None) == "case":
                names += [f"{node.name}[{d}]" for d in ([ast.literal_eval(a) for a in deco.args] or default)]
    return sorted(names)


def test_both_sides_ran_every_case(ms, pt):
    assert ms["on_mindtorch"] and not pt["on_mindtorch"]
    assert set(ms["cases"]) == set(pt["cases"]) == set(_names())
    broken = {name: r["error"].strip().splitlines()[-1] for name, r in pt["cases"].items() if "error" in r}
    assert not broken, f"the PyTorch reference failed: {broken}"


@pytest.mark.parametrize("name", _names())
def test_matches_pytorch(ms, pt, name):
    got, want = ms["cases"][name], pt["cases"][name]
    assert "error" not in got, f"{name}:\n{got['error']}"
    problems = _mismatches(got["observed"], want["observed"], TOL[want["dtype"]])
    assert not problems, "\n".join(problems)


def test_the_cases_are_not_trivial(pt):
    """What the comparisons rest on, on PyTorch: the second backward doubles the first (so a wrong
    accumulation shows), hooks change the gradient, the Function's input is modified by its forward,
    post-accumulate hooks run per leaf during the pass (w2's before w1 has a gradient)."""
    obs = {name: r["observed"] for name, r in pt["cases"].items()}
    two = obs["two_backwards_accumulate[float64]"]
    assert two["after two"][1] != two["after one"][1]
    order = obs["hooks_order[float32]"]["calls"]
    assert [c[0] for c in order] == ["b", "a1", "a2", "post"]
    assert obs["custom_function_modifying_its_input[float64]"]["the input after forward"] != \
        obs["custom_function_modifying_its_input[float64]"]["out"]
    per_leaf = obs["post_accumulate_per_leaf[float32]"]
    assert [(c[0], c[2]) for c in per_leaf["after backward"]] == [("w2", False), ("w1", True)]
    assert per_leaf["after autograd.grad"] == []
