"""Whole-tree behaviour: bad input never stops a run, reports agree with the files, CLI modes."""
from __future__ import annotations

import os
import textwrap

import pytest

from tools.convert.api import UsageError, convert_tree, load_rules
from tools.convert.report import CHANGE_COLUMNS, UNSUPPORTED_COLUMNS

from .helpers import GOOD, GOOD_OUT, cli, make_tree as _tree, read_csv, read_summary, snapshot



def test_bad_input_is_reported_and_the_rest_continues(tmp_path, rules):
    outside = tmp_path / "outside.py"
    outside.write_bytes(GOOD)
    root = _tree(tmp_path / "src", {
        "a_good.py": GOOD,
        "py2.py": b"import torch\nprint 'hello'\n",
        "conflict.py": b"import torch\n<<<<<<< HEAD\nx = 1\n=======\nx = 2\n>>>>>>> branch\n",
        "latin1_nocookie.py": b"import torch\ns = '\xe9t\xe9'\n",
        "latin1_cookie.py": b"# -*- coding: latin-1 -*-\nimport torch\ns = '\xe9t\xe9'\n",
        "binary.py": b"import torch\x00\x01\x02",
        "empty.py": b"",
        "big.py": b"import torch\n" + b"x = 1\n" * 40000,
        "z_good.py": GOOD,
    })
    os.symlink(outside, root / "link_out.py")
    os.symlink(root, root / "loop")          # a directory symlink that would loop
    from tools.convert.runner import RunOptions, run
    result = run(root, rules, RunOptions(jobs=2, report_dir=tmp_path / "rep", use_cache=False, introspect=False,
                                         max_file_size=100_000))
    by_file = {r.path: r for r in result.results}
    assert by_file["a_good.py"].status == by_file["z_good.py"].status == "changed"
    assert (root / "a_good.py").read_bytes() == (root / "z_good.py").read_bytes() == GOOD_OUT
    assert "syntax error at line 2" in by_file["py2.py"].reason
    assert "syntax error at line 2" in by_file["conflict.py"].reason
    assert by_file["latin1_nocookie.py"].status == "failed" and "cannot decode" in by_file["latin1_nocookie.py"].reason
    assert by_file["latin1_cookie.py"].status == "changed"
    assert (root / "latin1_cookie.py").read_bytes() == b"# -*- coding: latin-1 -*-\nimport mindtorch as torch\ns = '\xe9t\xe9'\n"
    assert "binary" in by_file["binary.py"].reason
    assert by_file["empty.py"].status == "skipped"
    assert "too large" in by_file["big.py"].reason
    assert by_file["link_out.py"].reason == "symlink (not followed)"
    assert "not followed" in by_file["loop"].reason
    assert outside.read_bytes() == GOOD, "a symlink out of the tree was followed"
    for bad in ("py2.py", "conflict.py", "latin1_nocookie.py", "binary.py", "big.py"):
        assert by_file[bad].status in ("failed", "skipped")
    summary = read_summary(tmp_path / "rep")
    failed = {f["file"] for f in summary["failures"]}
    assert failed == {"py2.py", "conflict.py", "latin1_nocookie.py", "binary.py"}
    assert summary["files_failed"] == 4 and summary["files_changed"] == 3


def test_untouched_files_stay_byte_identical_and_reports_agree(tmp_path, rules):
    files = {
        "pkg/__init__.py": b"",
        "pkg/model.py": b"import torch.nn as nn\n\n\nclass M(nn.Module):\n    pass\n",
        "pkg/plain.py": b"def f():\n    return 1\n",
        "pkg/comment_only.py": b"# torch is mentioned here only\nX = 'torch'\n",
        "pkg/uses.py": b"import torch\nimport importlib\nm = importlib.import_module('torch.nn')\n"
                       b"y = torch.cuda.graph_pool_handle()\n",
        "README.md": b"torch\n",
    }
    root = _tree(tmp_path / "src", files)
    result = convert_tree(root, rules, jobs=2, report_dir=tmp_path / "rep")
    after = snapshot(root)
    for rel in ("pkg/__init__.py", "pkg/plain.py", "pkg/comment_only.py", "README.md"):
        assert after[rel] == files[rel]
    header, changes = read_csv(tmp_path / "rep" / "change_list.csv")
    assert header == CHANGE_COLUMNS
    changed = {r.path for r in result.results if r.status == "changed"}
    assert {row[0] for row in changes} == changed == {"pkg/model.py", "pkg/uses.py"}
    for rel in changed:
        assert after[rel] != files[rel]
    header, unsupported = read_csv(tmp_path / "rep" / "unsupported_api.csv")
    assert header == UNSUPPORTED_COLUMNS
    apis = {row[3] for row in unsupported}
    assert "importlib.import_module('torch.nn')" in apis          # dynamic import reported, not missed
    summary = read_summary(tmp_path / "rep")
    assert summary["changes"] == len(changes)
    assert summary["unsupported_api_uses"] == len(unsupported)
    assert summary["files_seen"] == 5 and summary["files_changed"] == 2
    assert summary["api_uses"]["total"] >= 3


@pytest.mark.mindspore
def test_apis_the_installed_mindtorch_lacks_are_listed(tmp_path, rules):
    root = _tree(tmp_path / "src", {"m.py": b"import torch\npool = torch.cuda.graph_pool_handle()\n"
                                            b"layer = torch.nn.Linear(2, 2)\n"})
    convert_tree(root, rules, jobs=1, report_dir=tmp_path / "rep")
    _, unsupported = read_csv(tmp_path / "rep" / "unsupported_api.csv")
    apis = {row[3]: row for row in unsupported}
    assert "torch.cuda.graph_pool_handle" in apis and apis["torch.cuda.graph_pool_handle"][1] == "2"
    assert "not provided by the installed mindtorch" in apis["torch.cuda.graph_pool_handle"][4]
    assert "torch.nn.Linear" not in apis
    summary = read_summary(tmp_path / "rep")
    assert summary["targets"]["mindtorch"]["available"] is True
    assert summary["apis"]["torch.nn.Linear"]["status"] == "retargeted"
    assert summary["apis"]["torch.cuda.graph_pool_handle"]["status"] == "unsupported"


def test_scoped_rule_drift_is_reported_and_already_applied_is_not(tmp_path):
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(textwrap.dedent("""\
        version: 1
        imports:
          - {id: TIM001, module: torch, target: mindtorch}
        scoped:
          - id: DRF001
            path: "core/utils.py"
            action: replace_expr
            match: torch.cuda.is_available()
            replace: "False"
            reason: test
          - id: DRF002
            path: "core/utils.py"
            within: Gone.method
            action: remove_stmt
            match: x = 1
            reason: test
          - id: DRF003
            path: "core/missing.py"
            action: insert_import
            replace: import os
            reason: test
        """))
    rules = load_rules([rules_file])
    root = _tree(tmp_path / "src", {"core/utils.py": b"import torch\nok = torch.cuda.is_available()\n"})
    first = convert_tree(root, rules, jobs=1, report_dir=tmp_path / "rep", use_cache=False)
    assert (root / "core/utils.py").read_bytes() == b"import mindtorch as torch\nok = False\n"
    drift = {d["rule"]: d["message"] for d in first.summary["unmatched_rules"]}
    assert set(drift) == {"DRF002", "DRF003"}
    assert drift["DRF002"] == "rule DRF002 (remove_stmt x = 1 in Gone.method) did not match in core/utils.py"
    assert "core/missing.py (no such file)" in drift["DRF003"]
    again = convert_tree(root, rules, jobs=1, report_dir=tmp_path / "rep", use_cache=False)
    assert again.summary["files_changed"] == 0
    assert {d["rule"] for d in again.summary["unmatched_rules"]} == {"DRF002", "DRF003"}


def test_output_tree_mode_copies_everything_and_refuses_nesting(tmp_path, rules):
    root = _tree(tmp_path / "src", {"a.py": GOOD, "data/x.txt": b"hello", "b.py": b"y = 1\n"})
    out = tmp_path / "out"
    convert_tree(root, rules, output=out, jobs=2)
    assert (out / "a.py").read_bytes() == GOOD_OUT and (root / "a.py").read_bytes() == GOOD
    assert (out / "data/x.txt").read_bytes() == b"hello" and (out / "b.py").read_bytes() == b"y = 1\n"
    with pytest.raises(UsageError, match="inside the input"):
        convert_tree(root, rules, output=root / "converted")
    with pytest.raises(UsageError, match="inside the output"):
        convert_tree(root, rules, output=tmp_path)
    (tmp_path / "a_file").write_bytes(b"x")
    with pytest.raises(UsageError, match="exists and is not a directory"):
        convert_tree(root, rules, output=tmp_path / "a_file")


def test_cli_diff_and_check_write_nothing(tmp_path):
    root = _tree(tmp_path / "src", {"a.py": GOOD, "b.py": b"y = 1\n"})
    before = snapshot(root)
    diff = cli("convert", str(root), "--diff", "-q")
    assert diff.returncode == 0, diff.stderr
    assert "-import torch\n+import mindtorch as torch\n" in diff.stdout and "+++ b/a.py" in diff.stdout
    check = cli("convert", str(root), "--check", "-q")
    assert check.returncode == 1 and "would convert a.py" in check.stdout
    assert snapshot(root) == before and not (root / ".ms-convert").exists()
    done = cli("convert", str(root), "-q")
    assert done.returncode == 0, done.stderr
    assert cli("convert", str(root), "--check", "-q").returncode == 0


def test_cli_errors_are_one_line_with_exit_2(tmp_path):
    root = _tree(tmp_path / "src", {"a.py": GOOD})
    nested = cli("convert", str(root), "-o", str(root / "out"))
    assert nested.returncode == 2 and "inside the input" in nested.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nimports:\n  - {id: X, module: torch, target: mindtorch}\n")
    invalid = cli("convert", str(root), "--rules", str(bad))
    assert invalid.returncode == 2
    assert invalid.stderr.strip().count("\n") == 0 and f"{bad}:3: imports[0].id" in invalid.stderr
    assert (root / "a.py").read_bytes() == GOOD
    missing = cli("convert", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "no such file or directory" in missing.stderr


def test_cli_help_lists_the_subcommands():
    out = cli("--help")
    assert out.returncode == 0
    for word in ("convert", "rules"):
        assert word in out.stdout
    # The engine does not reach into its driver: workspaces are python -m tools.workspace.
    gone = cli("workspace", "llm")
    assert gone.returncode == 2 and "invalid choice: 'workspace'" in gone.stderr
    conv = cli("convert", "--help")
    for flag in ("--diff", "--check", "-j", "--select", "--ignore", "--report-dir", "--output"):
        assert flag in conv.stdout


def test_select_and_ignore_change_what_is_converted(tmp_path):
    files = {"a.py": b"import torch\nimport torch_npu\n"}
    only_torch = cli("convert", str(_tree(tmp_path / "one", files)), "--ignore", "IMP002", "-q")
    assert only_torch.returncode == 0, only_torch.stderr
    assert (tmp_path / "one/a.py").read_bytes() == b"import mindtorch as torch\nimport torch_npu\n"
    only_npu = cli("convert", str(_tree(tmp_path / "two", files)), "--select", "IMP002", "-q")
    assert only_npu.returncode == 0
    assert (tmp_path / "two/a.py").read_bytes() == b"import torch\nimport mindtorch.npu as torch_npu\n"


@pytest.mark.mindspore
def test_rules_check_validates_targets_against_installed_mindtorch(tmp_path):
    # The shipped rules target the workspace's patched mindtorch (ACL001: mindtorch.npu.acl), which
    # the venv's mindtorch is too (tools/setup_env.sh applies patches/mindtorch to it).
    ok = cli("rules", "check")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "0 problem(s)" in ok.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(textwrap.dedent("""\
        version: 1
        apis:
          - id: CHK001
            api: torch.nn.functional.gelu
            target: mindtorch.nn.functional.gelu
            kwargs_rename: {approximate: approx_mode}
          - id: CHK002
            api: torch.frobnicate
            target: mindtorch.frobnicate
        """))
    out = cli("rules", "check", "--rules", str(bad))
    assert out.returncode == 1
    assert "CHK001: mindtorch.nn.functional.gelu has no parameter(s) approx_mode" in out.stderr
    assert "CHK002: target mindtorch.frobnicate does not exist" in out.stderr


def test_replace_body_on_a_changed_upstream_body_is_drift_not_an_overwrite(tmp_path):
    rules_file = tmp_path / "rules.yaml"
    src = b"def f(x):\n    return x + 1\n"
    root = _tree(tmp_path / "src", {"m.py": src})
    fp = cli("rules", "fingerprint", str(root / "m.py"), "f")
    assert fp.returncode == 0, fp.stderr
    rule = textwrap.dedent(f"""\
        version: 1
        scoped:
          - id: FPR001
            path: m.py
            within: f
            action: replace_body
            expect_body: {fp.stdout.strip()}
            replace: return x + 2
            reason: test
        """)
    rules_file.write_text(rule)
    done = convert_tree(root, load_rules([rules_file]), jobs=1, use_cache=False, report_dir=tmp_path / "r1")
    assert (root / "m.py").read_bytes() == b"def f(x):\n    return x + 2\n" and not done.summary["unmatched_rules"]
    (root / "m.py").write_bytes(b"def f(x):\n    return x * 3  # upstream changed\n")
    drift = convert_tree(root, load_rules([rules_file]), jobs=1, use_cache=False, report_dir=tmp_path / "r2")
    assert (root / "m.py").read_bytes() == b"def f(x):\n    return x * 3  # upstream changed\n"
    (message,) = [u["message"] for u in drift.summary["unmatched_rules"]]
    assert "FPR001" in message and "expect_body" in message
