"""Fixture pairs: ``fixtures/<family>/<case>.in.py`` converts to ``<case>.out.py`` with the rules
in ``fixtures/<family>/rules.yaml``. Adding a case is adding two files.

``fixtures/shipped/`` holds cases for the project's own rule files (``rules/``): snippets written
for the tests in the shape of the upstream code a rule targets (MindSpeed, MindSpeed-LLM and
Megatron-LM cannot be downloaded in CI). A case's path in its repository is its name with
``__`` for ``/`` (``megatron__core__utils.in.py`` is ``megatron/core/utils.py``), because scoped
rules match paths."""
from __future__ import annotations

from pathlib import Path

import pytest

from tools.convert.fileconv import convert_source
from tools.convert.ruleset import load_rules

FIXTURES = Path(__file__).parent / "fixtures"
CASES = sorted(FIXTURES.glob("*/*.in.py"))
SHIPPED_RULES = Path(__file__).resolve().parents[2] / "rules"


def _case_id(path: Path) -> str:
    return f"{path.parent.name}/{path.name[:-len('.in.py')]}"


def _rules_and_relpath(case: Path):
    """The rules a case converts with and the path it converts as."""
    stem = case.name[:-len(".in.py")]
    if case.parent.name == "shipped":
        return load_rules([SHIPPED_RULES]), stem.replace("__", "/") + ".py"
    return load_rules([case.parent / "rules.yaml"]), stem + ".py"


def _convert(path: Path) -> tuple[bytes, object]:
    rules, relpath = _rules_and_relpath(path)
    return path.read_bytes(), convert_source(relpath, path.read_bytes(), rules)


def test_every_family_has_fixtures():
    assert {p.parent.name for p in CASES} >= {"imports", "apis", "scoped", "transforms", "shipped"}


def test_every_shipped_rule_has_a_fixture_case():
    """A rule added to rules/ without a case in fixtures/shipped/ (one that it edits, or reports)
    fails here: its before/after is what documents and guards it."""
    rules = load_rules([SHIPPED_RULES])
    exercised: set[str] = set()
    for case in CASES:
        if case.parent.name == "shipped":
            _original, result = _convert(case)
            exercised |= {c[4] for c in result.changes} | {u[4] for u in result.uses if u[4]}
    missing = sorted(r.id for r in rules.all_rules() if r.id not in exercised)
    assert not missing, f"shipped rules without a case in {FIXTURES / 'shipped'}: {', '.join(missing)}"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_fixture_converts_to_expected(case: Path):
    expected = case.with_name(case.name.replace(".in.py", ".out.py")).read_bytes()
    original, result = _convert(case)
    assert result.status in ("changed", "unchanged"), result.reason
    produced = result.new_data if result.status == "changed" else original
    assert produced.decode() == expected.decode()
    if original == expected:
        assert result.status == "unchanged" and not result.changes


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_fixture_output_is_a_fixed_point(case: Path):
    expected = case.with_name(case.name.replace(".in.py", ".out.py"))
    rules, relpath = _rules_and_relpath(case)
    result = convert_source(relpath, expected.read_bytes(), rules)
    assert result.status == "unchanged", (result.status, result.reason, result.changes)
    compile(expected.read_bytes(), str(expected), "exec")
