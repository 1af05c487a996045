"""The differential op test: the torch functions and Tensor methods the converted Megatron-LM, MindSpeed
and MindSpeed-LLM call (op_inventory.json, from op_inventory.py), run on the workspace's mindtorch and on
PyTorch with the same inputs and the call sites' argument patterns (op_cases_ops.py), compared value by
value, dtype, shape, gradient, in-place and aliasing effect (op_cases_compare.py).

It fails when an inventory entry is neither covered by a case nor excluded with a reason
(op_cases_excluded.py), when mindtorch differs from PyTorch anywhere op_known_differences.json does not
explain, and when a known difference no longer differs (the table must stay true: remove the entry).
docs/op_differential.md has the numbers and the table of differences."""
from __future__ import annotations

from pathlib import Path

import pytest

from op_cases_compare import (TOL, _mismatches, coverage, differences, explained, keywords_not_exercised,
                              load_known, markdown_table, read_report, stale)
from op_cases_excluded import EXCLUDED, KEYWORDS_NOT_EXERCISED
from testbed import Testbed

# the comparison needs the testbed workspace (PyPI, MindSpore); the inventory test only the reference PyTorch
WORKSPACE_MARKS = (pytest.mark.slow, pytest.mark.pypi, pytest.mark.mindspore)


def needs_workspace(fn):
    for mark in WORKSPACE_MARKS:
        fn = mark(fn)
    return fn


HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def ms(testbed: Testbed) -> dict:
    proc = testbed.ms_run(f"python {HERE / 'op_cases_run.py'} mindtorch", timeout=600)
    return read_report(proc.stdout + "\n" + proc.stderr[-3000:])


@pytest.fixture(scope="module")
def pt(testbed: Testbed) -> dict:
    proc = testbed.torch_run([str(HERE / "op_cases_run.py"), "pytorch"], timeout=600)
    return read_report(proc.stdout + "\n" + proc.stderr[-3000:])


@needs_workspace
def test_both_sides_ran_every_case(ms, pt):
    assert ms["side"] == "mindtorch" and pt["side"] == "pytorch"
    assert set(ms["cases"]) == set(pt["cases"])
    broken = {f"{case}/{label}": obs for case, c in pt["cases"].items() for label, obs in c["labels"].items()
              if _has_error(obs)}
    assert not broken, f"the PyTorch reference raised (a broken case, not a mindtorch difference): {broken}"


def _has_error(obs) -> bool:
    if isinstance(obs, dict):
        return "error" in obs or any(_has_error(v) for v in obs.values())
    if isinstance(obs, list):
        return any(_has_error(v) for v in obs)
    return False


@needs_workspace
def test_every_inventory_entry_is_covered_or_excluded(pt):
    cov = coverage(pt, EXCLUDED)
    assert not cov["neither"], ("inventory entries neither covered by a case (op_cases_ops.py) nor excluded with a "
                                f"reason (op_cases_excluded.py): {cov['neither']}")
    assert not cov["both"], f"covered and excluded at once: {cov['both']}"
    assert not cov["excluded_not_in_inventory"], f"excluded but no longer called: {cov['excluded_not_in_inventory']}"


@needs_workspace
def test_the_call_sites_keywords_are_exercised(pt):
    """Each keyword the converted code passes to a covered op appears in one of its call patterns, or is
    listed with a reason."""
    missing = [(name, kw, n) for name, kw, n in keywords_not_exercised(pt)
               if (name, kw) not in KEYWORDS_NOT_EXERCISED]
    assert not missing, f"(entry, keyword, call sites) no case passes: {missing}"
    used = {(name, kw) for name, kw, _ in keywords_not_exercised(pt)}
    stale_reasons = set(KEYWORDS_NOT_EXERCISED) - used
    assert not stale_reasons, f"listed but exercised or no longer used: {stale_reasons}"


@needs_workspace
def test_mindtorch_matches_pytorch_or_the_difference_is_known(ms, pt):
    known = load_known()
    unexplained = [d for d in differences(ms, pt) if explained(d, known) is None]
    assert not unexplained, "mindtorch differs from PyTorch (add a reason to op_known_differences.json only " \
        "for a difference understood):\n" + "\n".join(f"{d.case} | {d.label} | {d.path} | {d.message[:300]}"
                                                      for d in unexplained)


@needs_workspace
def test_every_known_difference_still_differs(ms, pt):
    """xpass-like: a known difference that no longer shows must leave the table."""
    gone = stale(load_known(), differences(ms, pt))
    assert not gone, "these known differences now match PyTorch: remove them from op_known_differences.json " \
        "(and docs/op_differential.md):\n" + "\n".join(f"{e['case']} | {e['label']} | {e['path']}" for e in gone)


@needs_workspace
def test_known_differences_name_real_labels(pt):
    for e in load_known():
        assert e["label"] in pt["cases"].get(e["case"], {}).get("labels", {}), e
        assert e["kind"] in {"bug", "missing", "aliasing", "precision", "intended"}, e


@needs_workspace
def test_megatron_aux_loss_router_differentiates_as_on_pytorch(testbed: Testbed):
    """Issue 10's aux-loss failure on upstream's own router functions (op_cases_backward.py): the loss
    and the logits' gradient with .backward() and with value_and_grad equal PyTorch's (float32, 1e-5)."""
    ms = read_report(testbed.ms_run(f"python {HERE / 'op_cases_backward.py'} mindtorch", timeout=600).stdout,
                     "OPDIFF_BACKWARD")
    pt = read_report(testbed.torch_run([str(HERE / "op_cases_backward.py"), "pytorch"], timeout=600).stdout,
                     "OPDIFF_BACKWARD")
    assert "error" not in pt["backward"], pt
    for way in ("backward", "value_and_grad"):
        assert not _mismatches(ms[way], pt["backward"], TOL["float32"]), (way, ms[way])


def test_known_differences_are_in_the_doc():
    """The doc's table is the data's (regenerate it with `op_cases_compare.py --table`)."""
    doc = (HERE.parents[1] / "docs" / "op_differential.md").read_text()
    assert markdown_table(load_known()) in doc, "docs/op_differential.md's table is not op_known_differences.json's"


SMALL_TREE = {
    "Megatron-LM/megatron/a.py": (
        "import math\n"
        "import mindtorch as torch\n"
        "import mindtorch.nn.functional as F\n"
        "def f(a, b):\n"
        "    x = torch.cat([a, b], dim=0)\n"
        "    y = F.softmax(x, dim=-1)\n"
        "    z = x.view(2, 3).sum(dim=1, keepdim=True)\n"
        "    math.ceil(3.2)\n"
        "    'a,b'.split(',')\n"
        "    x.untyped_storage().resize_(0)\n"
        "    torch.Tensor.add(x, 1)\n"
        "    torch.distributed.get_rank()\n"
        "    return torch.cat((y, z), 1)\n"),
    "Megatron-LM/tests/unit_tests/test_a.py": "import mindtorch as torch\ntorch.cat([1])\ntorch.zeros(3)\n",
    "MindSpeed/mindspeed/b.py": "import torch\nfrom torch import cat\ncat([x], dim=1)\n",
    "MindSpeed-LLM/mindspeed_llm/c.py": "x = 1\n",
}


def test_the_inventory_of_a_small_tree(tmp_path):
    """op_inventory.py on three small converted trees: functions resolved through the imports (mindtorch
    reported as torch, a from-import too), keywords and positional counts, methods by the heuristic (not
    math.ceil; str.split flagged as shared; a storage's resize_ apart; torch.Tensor.add as the method
    add), other namespaces counted, test files left out."""
    import json
    import subprocess

    from testbed import _clean_env, _git, reference_python
    for rel, text in SMALL_TREE.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for repo in ("Megatron-LM", "MindSpeed", "MindSpeed-LLM"):
        _git(tmp_path / repo, "init", "-q")
        _git(tmp_path / repo, "add", "-A")
        _git(tmp_path / repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "tree")
    out = tmp_path / "inventory.json"
    proc = subprocess.run([str(reference_python()), str(HERE / "op_inventory.py"), str(tmp_path), "-o", str(out)],
                          capture_output=True, text=True, timeout=300, env=_clean_env({}))
    assert proc.returncode == 0, proc.stderr
    inv = json.loads(out.read_text())
    cat = inv["functions"]["torch.cat"]
    assert cat["calls"] == 3 and cat["by_repo"] == {"Megatron-LM": 2, "MindSpeed": 1}
    assert cat["keywords"] == {"dim": 2} and cat["positional"] == {"1": 2, "2": 1}
    assert "torch.zeros" not in inv["functions"]                       # only in a test file
    assert inv["functions"]["torch.nn.functional.softmax"]["keywords"] == {"dim": 1}
    methods = inv["methods"]
    assert methods["sum"]["keywords"] == {"dim": 1, "keepdim": 1} and methods["view"]["positional"] == {"2": 1}
    assert "ceil" not in methods
    assert methods["split"]["shared_with"] == ["str"]
    assert methods["untyped_storage().resize_"]["calls"] == 1 and "resize_" not in methods
    assert methods["add"]["positional"] == {"1": 1}
    assert inv["other_namespaces"] == {"torch.distributed": 1}
    assert inv["repos"]["Megatron-LM"]["test_files_left_out"] == 1
