"""Fixture pairs: ``fixtures/<family>/<case>.in.py`` converts to ``<case>.out.py`` with the rules
in ``fixtures/<family>/rules.yaml``. Adding a case is adding two files."""
from __future__ import annotations

from pathlib import Path

import pytest

from tools.convert.fileconv import convert_source
from tools.convert.ruleset import load_rules

FIXTURES = Path(__file__).parent / "fixtures"
CASES = sorted(FIXTURES.glob("*/*.in.py"))


def _case_id(path: Path) -> str:
    return f"{path.parent.name}/{path.name[:-len('.in.py')]}"


def _convert(path: Path) -> tuple[bytes, object]:
    rules = load_rules([path.parent / "rules.yaml"])
    relpath = path.name[:-len(".in.py")] + ".py"
    return path.read_bytes(), convert_source(relpath, path.read_bytes(), rules)


def test_every_family_has_fixtures():
    assert {p.parent.name for p in CASES} >= {"imports", "apis", "scoped", "transforms"}


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
    rules = load_rules([case.parent / "rules.yaml"])
    result = convert_source(case.name[:-len(".in.py")] + ".py", expected.read_bytes(), rules)
    assert result.status == "unchanged", (result.status, result.reason, result.changes)
    compile(expected.read_bytes(), str(expected), "exec")
