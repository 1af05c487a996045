"""PyTorch's type promotion in mindtorch's binary arithmetic (patch 0023, docs/type_promotion.md).

type_promotion_cases.py runs the grid (ten dtypes for a 2x3 ``a``; ``b`` a 2x3 tensor, a 0-dim tensor of
each dtype or a Python bool/int/float; add/sub/mul/div in every rounding mode, true_divide, floor_divide,
remainder as functions, operators, reflected operators and in-place methods and operators; pow, maximum/minimum,
where, the comparisons; torch.result_type/promote_types/can_cast; the gradients of float mixes) on the
testbed workspace's mindtorch and on PyTorch, and every label must agree: the result's dtype and shape
exactly, its values within the dtype's precision, an error where PyTorch raises (``int_tensor *= 1.5``),
the in-place ops' input afterwards and whether they return it, each operand's gradient in its own dtype.

Run it by hand (the numbers docs/type_promotion.md shows), in tests/runtime:

    ../../.venv-torch/bin/python type_promotion_cases.py pytorch > /tmp/pt.txt
    (source <ws>/set_env.sh; python type_promotion_cases.py mindtorch) > /tmp/ms.txt
    ../../.venv/bin/python test_type_promotion.py /tmp/ms.txt /tmp/pt.txt
"""
from __future__ import annotations

import collections
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from op_cases_compare import read_report  # noqa: E402
from test_mindtorch_compat import _mismatches  # noqa: E402
from type_promotion_cases import GROUPS  # noqa: E402

TAG = "TYPEPROMO_REPORT"
# values within the precision of the result's dtype, relative to the largest reference magnitude (at least 1)
TOL = {"float64": 1e-6, "float32": 1e-5, "float16": 1e-3, "bfloat16": 1e-2}


def _tol(obs) -> float:
    dtypes = set()

    def walk(x):
        if isinstance(x, dict):
            if "dtype" in x:
                dtypes.add(x["dtype"])
            for v in x.values():
                walk(v)
    walk(obs)
    return max((TOL.get(d, 0.0) for d in dtypes), default=0.0)


def mismatches(ms: dict, pt: dict) -> dict[str, str]:
    """label -> how mindtorch's observation differs from PyTorch's (an error on both sides agrees)."""
    out = {}
    for label, want in pt["labels"].items():
        got = ms["labels"].get(label, {"error": "not recorded"})
        if "error" in want or "error" in got:
            if ("error" in want) != ("error" in got):
                out[label] = f"mindtorch: {got.get('error', 'no error')} | pytorch: {want.get('error', 'no error')}"
            continue
        problems = _mismatches(got, want, _tol(want))
        if problems:
            out[label] = "; ".join(p.replace("\n", " ") for p in problems)[:300]
    return out


@pytest.fixture(scope="module")
def reports(testbed) -> tuple[dict, dict]:
    ms = read_report(testbed.ms_run(f"python {HERE / 'type_promotion_cases.py'} mindtorch", timeout=900).stdout, TAG)
    pt = read_report(testbed.torch_run([str(HERE / "type_promotion_cases.py"), "pytorch"], timeout=600).stdout, TAG)
    return ms, pt


@pytest.mark.slow
@pytest.mark.pypi
@pytest.mark.mindspore
def test_both_sides_ran_the_whole_grid(reports):
    ms, pt = reports
    assert ms["side"] == "mindtorch" and pt["side"] == "pytorch"
    assert set(ms["labels"]) == set(pt["labels"])
    assert len(pt["labels"]) > 10000
    # the grid has cases PyTorch refuses (bool - bool, int *= 1.5): the comparison wants mindtorch to refuse them too
    assert 100 < sum("error" in obs for obs in pt["labels"].values()) < len(pt["labels"]) / 4


def _label_parts(label: str) -> tuple[str, str, str, str]:
    op, da, db, kind = label.rsplit(" ", 3)
    return op, da, db, kind


def _integer_pow(label: str, pt: dict) -> bool:
    if pt["groups"][label] != "pow" or label.endswith(" py"):
        return False
    _, da, db, _ = _label_parts(label)
    out = pt["labels"][label].get("out", {})
    return db.startswith("int") and out.get("dtype", "").startswith(("int", "uint"))


def _bf16_zero_dim_grad(label: str, pt: dict) -> bool:
    if pt["groups"][label] != "grad":
        return False
    op, da, _, kind = _label_parts(label)
    return da == "bfloat16" and kind == "0d" and op != "grad sub"


# differences that are not type promotion, measured on MindSpore 2.10 (docs/type_promotion.md): each is an
# xfail(strict) test below, so it errors the day they all match
KNOWN = {
    "integer pow": (_integer_pow,
                    "an integer to a negative integer power: MindSpore 2.10's integer Pow gives INT_MIN or 0 where "
                    "torch gives 0, 1 or -1 (and uint8 ** a negative 0-dim int, cast to uint8, wraps in torch)"),
    "bfloat16 0-dim gradient": (_bf16_zero_dim_grad,
                                "the gradient of a broadcast bfloat16 0-dim operand is summed in bfloat16: MindSpore "
                                "2.10's CPU has no bfloat16 ReduceSum ('Reduce does not support this kernel data type')"),
}


def _known(label: str, pt: dict) -> str | None:
    for name, (match, _) in KNOWN.items():
        if match(label, pt):
            return name
    return None


@pytest.mark.slow
@pytest.mark.pypi
@pytest.mark.mindspore
@pytest.mark.parametrize("group", GROUPS)
def test_matches_pytorch(reports, group):
    ms, pt = reports
    labels = [label for label in pt["labels"] if pt["groups"][label] == group and _known(label, pt) is None]
    assert labels
    bad = mismatches(ms, {"labels": {k: pt["labels"][k] for k in labels}})
    assert not bad, f"{len(bad)} of {len(labels)} cases differ from PyTorch:\n" + "\n".join(
        f"{label}: {why}" for label, why in list(bad.items())[:40])


@pytest.mark.slow
@pytest.mark.pypi
@pytest.mark.mindspore
@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=reason))
                                  for name, (_, reason) in KNOWN.items()])
def test_known_differences(reports, name):
    ms, pt = reports
    labels = [label for label in pt["labels"] if _known(label, pt) == name]
    assert labels
    bad = mismatches(ms, {"labels": {k: pt["labels"][k] for k in labels}})
    assert not bad, f"{len(bad)} of {len(labels)} cases differ from PyTorch:\n" + "\n".join(
        f"{label}: {why}" for label, why in list(bad.items())[:40])


if __name__ == "__main__":
    ms_report, pt_report = (read_report(Path(p).read_text(), TAG) for p in sys.argv[1:3])
    bad = mismatches(ms_report, pt_report)
    known = collections.Counter(_known(label, pt_report) for label in bad)
    print(f"{len(pt_report['labels'])} cases, {len(bad)} differ from PyTorch ({known[None]} not known: "
          + ", ".join(f"{n} {name}" for name, n in known.items() if name) + "; "
          f"mindtorch {ms_report['seconds']} s, PyTorch {pt_report['seconds']} s)")
    groups = collections.Counter(pt_report["groups"].values())
    bad_groups = collections.Counter(pt_report["groups"][label] for label in bad)
    for group in GROUPS:
        print(f"  {group}: {bad_groups[group]} of {groups[group]}")
    for label, why in bad.items():
        print(f"{label}: {why}")
