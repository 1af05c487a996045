"""Target path: which APIs the target provides is checked against the copy the converted code will
run against (a workspace's patched mindtorch), not only the installed one; the introspection cache
never mixes the two."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tools.convert.api import UsageError, convert_tree, load_rules

from .helpers import cli, read_csv, read_summary

PROBE_RULES = """\
version: 1
imports:
  - id: PRB001
    module: probe_src_xyz
    target: probe_target_xyz
"""
PROBE_SOURCE = b"import probe_src_xyz\n\nprobe_src_xyz.f()\nprobe_src_xyz.g()\nprobe_src_xyz.extra.h()\n"


def _status(report: Path) -> dict[str, str]:
    return {api: entry["status"] for api, entry in read_summary(report)["apis"].items()}


def test_target_path_is_searched_first_and_keys_the_cache(tmp_path: Path) -> None:
    """A fake target package that is not installed: found only through the target path; a module
    added to it later (as a patch adds mindtorch/npu/acl.py, leaving __init__.py alone) is seen
    although the cache of the earlier run is reused."""
    (tmp_path / "rules.yaml").write_text(PROBE_RULES)
    rules = load_rules([tmp_path / "rules.yaml"])
    src = tmp_path / "src"
    src.mkdir()
    (src / "m.py").write_bytes(PROBE_SOURCE)
    target = tmp_path / "target"
    (target / "probe_target_xyz").mkdir(parents=True)
    (target / "probe_target_xyz" / "__init__.py").write_text("def f():\n    pass\n")
    cache = tmp_path / "cache"

    def convert(n: int, target_path: list[Path]) -> Path:
        convert_tree(src, rules, output=tmp_path / f"out{n}", jobs=1, cache_dir=cache, report_dir=tmp_path / f"rep{n}",
                     target_path=target_path)
        return tmp_path / f"rep{n}"

    plain = convert(1, [])
    assert read_summary(plain)["targets"]["probe_target_xyz"]["available"] is False
    assert set(_status(plain).values()) == {"retargeted-unverified"}

    found = convert(2, [target])
    info = read_summary(found)["targets"]["probe_target_xyz"]
    assert info["available"] is True and info["path"] == str(target / "probe_target_xyz" / "__init__.py")
    assert _status(found) == {"probe_src_xyz.f": "retargeted", "probe_src_xyz.g": "unsupported",
                              "probe_src_xyz.extra.h": "unsupported"}
    key = json.loads((cache / "introspect.json").read_text())["key"]
    assert str(target) in key

    (target / "probe_target_xyz" / "extra.py").write_text("def h():\n    pass\n")
    patched = convert(3, [target])
    assert _status(patched)["probe_src_xyz.extra.h"] == "retargeted"
    _, rows = read_csv(patched / "unsupported_api.csv")
    assert [row[3] for row in rows] == ["probe_src_xyz.g"]


def test_target_path_must_be_a_folder(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    with pytest.raises(UsageError, match="not a directory"):
        convert_tree(tmp_path / "src", load_rules(), target_path=[tmp_path / "missing"])
    out = cli("rules", "check", "--no-introspect", "--target-path", str(tmp_path / "missing"))
    assert out.returncode == 2 and f"error: target path {tmp_path / 'missing'}: not a directory" in out.stderr


@pytest.mark.mindspore
def test_rules_check_answers_from_the_target_path_when_given(mindtorch_without_acl: Path) -> None:
    """The shipped ACL001 retargets `import acl` to mindtorch.npu.acl, which the project's patch
    series adds (the venv's mindtorch has it): plain `rules check` finds it; `--target-path` to a
    mindtorch without it reports it, naming that folder."""
    plain = cli("rules", "check")
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert "0 problem(s)" in plain.stderr
    target = cli("rules", "check", "--target-path", str(mindtorch_without_acl))
    assert target.returncode == 1, target.stdout + target.stderr
    assert "ACL001: target mindtorch.npu.acl does not exist in" in target.stderr
    assert str(mindtorch_without_acl) in target.stderr


@pytest.mark.mindspore
def test_conversion_reports_against_the_target_path(tmp_path: Path, mindtorch_without_acl: Path) -> None:
    """The same tree and cache: the installed mindtorch has mindtorch.npu.acl.get_soc_name, the
    target copy lacks it; a run with the target path after one without is not answered from the
    cache of the installed one, and the reverse."""
    (tmp_path / "rules.yaml").write_text(textwrap.dedent("""\
        version: 1
        imports:
          - {id: TAC001, module: acl, target: mindtorch.npu.acl}
        """))
    rules = load_rules([tmp_path / "rules.yaml"])
    src = tmp_path / "src"
    src.mkdir()
    (src / "soc.py").write_bytes(b"import acl\n\nSOC = acl.get_soc_name()\n")
    cache = tmp_path / "cache"
    runs = {}
    for name, target_path in (("installed", []), ("target", [mindtorch_without_acl]), ("installed again", [])):
        report = tmp_path / f"rep-{name}"
        convert_tree(src, rules, output=tmp_path / f"out-{name}", jobs=1, cache_dir=cache, report_dir=report,
                     target_path=target_path)
        runs[name] = report
    for name in ("installed", "installed again"):
        installed = read_summary(runs[name])
        assert installed["apis"]["acl.get_soc_name"]["status"] == "retargeted", name
        assert not installed["targets"]["mindtorch"]["path"].startswith(str(mindtorch_without_acl)), name
        assert installed["unsupported_api_uses"] == 0, name
    target = read_summary(runs["target"])
    assert target["apis"]["acl.get_soc_name"]["status"] == "unsupported"
    assert target["targets"]["mindtorch"]["path"] == str(mindtorch_without_acl / "mindtorch" / "__init__.py")
    assert (tmp_path / "out-target" / "soc.py").read_bytes() == (tmp_path / "out-installed" / "soc.py").read_bytes()
