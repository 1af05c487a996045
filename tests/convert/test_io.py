"""The engine's file I/O against hostile trees: what it reads, writes, caches and reports."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tools.convert import runner
from tools.convert.api import convert_tree, load_rules
from tools.convert.walk import TMP_SUFFIX
from tools.corpora import REPO_ROOT

from .helpers import GOOD, GOOD_OUT, can_drop_file_powers, cli, make_tree as _tree, read_csv, read_summary, snapshot

FAST = ("-q", "--no-introspect", "-j", "1")

needs_unprivileged = pytest.mark.skipif(not can_drop_file_powers(),
                                        reason="cannot run a child bound by file modes here")


def _convert(root: Path, rules, **kw):
    kw.setdefault("jobs", 1)
    kw.setdefault("introspect", False)
    return convert_tree(root, rules, **kw)


def _scoped_rules(tmp_path: Path) -> object:
    rules_file = tmp_path / "scoped.yaml"
    rules_file.write_text(textwrap.dedent("""\
        version: 1
        imports:
          - {id: TIM001, module: torch, target: mindtorch}
        scoped:
          - id: INS001
            path: "a/x.py"
            action: insert_import
            replace: import os
            reason: test
        """))
    return load_rules([rules_file])


def test_the_cache_tells_apart_the_same_content_at_another_path(tmp_path):
    """Scoped rules aim at paths: a file moved onto a rule's target must not get the cached result
    of its old path (which the rule did not aim at)."""
    rules = _scoped_rules(tmp_path)
    content = b"import mindtorch as torch\n\nx = torch.zeros(3)\n"   # nothing for the import rules to do
    root = _tree(tmp_path / "src", {"b/x.py": content})
    first = _convert(root, rules, cache_dir=tmp_path / "cache")
    assert first.summary["files_unchanged"] == 1
    (root / "a").mkdir()
    os.replace(root / "b/x.py", root / "a/x.py")
    again = _convert(root, rules, cache_dir=tmp_path / "cache")
    assert (root / "a/x.py").read_bytes() == b"import os\n" + content
    assert again.summary["files_changed"] == 1
    # and a second tree sharing the cache gets the result of its own path
    other = _tree(tmp_path / "other", {"a/x.py": content, "b/x.py": content})
    third = _convert(other, rules, cache_dir=tmp_path / "cache")
    assert {r.path: r.status for r in third.results} == {"a/x.py": "changed", "b/x.py": "unchanged"}


def test_a_failed_write_fails_that_file_and_the_run_goes_on(tmp_path):
    """Into an output tree where a folder is in the way (a file named like it): that file fails
    with the reason, every other file is written, the reports are written, exit 3."""
    root = _tree(tmp_path / "src", {"a.py": GOOD, "pkg/m.py": GOOD, "pkg/data.txt": b"d", "z.py": GOOD})
    out = tmp_path / "out"
    out.mkdir()
    (out / "pkg").write_bytes(b"a file where the folder pkg/ goes\n")
    done = cli("convert", str(root), "-o", str(out), *FAST)
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    assert "failed pkg/m.py: cannot write: File exists" in done.stderr
    assert "failed pkg/data.txt: cannot copy: File exists" in done.stderr
    assert (out / "a.py").read_bytes() == (out / "z.py").read_bytes() == GOOD_OUT
    summary = read_summary(out / ".ms-convert" / "report")
    assert {f["file"]: f["reason"] for f in summary["failures"]} == {
        "pkg/m.py": "cannot write: File exists", "pkg/data.txt": "cannot copy: File exists"}
    _, changes = read_csv(out / ".ms-convert" / "report" / "change_list.csv")
    assert {row[0] for row in changes} == {"a.py", "z.py"}


@needs_unprivileged
def test_a_read_only_folder_fails_its_files_and_an_unsavable_cache_is_a_warning(tmp_path):
    root = _tree(tmp_path / "src", {"a.py": GOOD, "locked/m.py": GOOD, "z.py": GOOD})
    cache = tmp_path / "cache"
    cache.mkdir()
    os.chmod(root / "locked", 0o555)
    os.chmod(cache, 0o555)
    try:
        done = cli("convert", str(root), *FAST, "--cache-dir", str(cache), unprivileged=True)
    finally:
        os.chmod(root / "locked", 0o755)
        os.chmod(cache, 0o755)
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert "failed locked/m.py: cannot write: Permission denied" in lines
    assert [line for line in lines if line.startswith("warning: cannot save the cache in")], done.stderr
    assert (root / "locked/m.py").read_bytes() == GOOD
    assert (root / "a.py").read_bytes() == (root / "z.py").read_bytes() == GOOD_OUT
    summary = read_summary(root / ".ms-convert" / "report")
    assert summary["files_failed"] == 1 and summary["files_changed"] == 2
    assert not list((root / "locked").glob(f"*{TMP_SUFFIX}"))


@needs_unprivileged
def test_an_unreadable_folder_is_reported_and_counted(tmp_path):
    root = _tree(tmp_path / "src", {"a.py": GOOD, "secret/m.py": GOOD})
    os.chmod(root / "secret", 0)
    try:
        done = cli("convert", str(root), *FAST, unprivileged=True)
    finally:
        os.chmod(root / "secret", 0o755)
    assert done.returncode == 3, done.stderr
    assert "failed secret: cannot read directory: Permission denied" in done.stderr.splitlines()
    summary = read_summary(root / ".ms-convert" / "report")
    assert summary["failures"] == [{"file": "secret", "reason": "cannot read directory: Permission denied"}]
    assert summary["files_seen"] == 2 and summary["files_changed"] == 1


def test_an_edit_made_during_the_run_is_kept(tmp_path, rules, monkeypatch):
    """The user saves a file while it is being converted: their version wins, the file is
    reported, and the next run converts it."""
    root = _tree(tmp_path / "src", {"a.py": GOOD, "b.py": GOOD})
    users = b"import torch\n\nx = torch.ones(3)  # edited meanwhile\n"
    real = runner.convert_source

    def convert_while_the_user_saves(relpath, data, rules_):
        if relpath == "a.py":
            (root / "a.py").write_bytes(users)
        return real(relpath, data, rules_)

    monkeypatch.setattr(runner, "convert_source", convert_while_the_user_saves)
    result = _convert(root, rules, report_dir=tmp_path / "rep")
    assert (root / "a.py").read_bytes() == users
    assert (root / "b.py").read_bytes() == GOOD_OUT
    by_file = {r.path: r for r in result.results}
    assert by_file["a.py"].status == "failed"
    assert by_file["a.py"].reason == "changed during conversion: your version is kept; run again to convert it"
    _, changes = read_csv(tmp_path / "rep" / "change_list.csv")
    assert {row[0] for row in changes} == {"b.py"}
    monkeypatch.setattr(runner, "convert_source", real)
    again = _convert(root, rules, report_dir=tmp_path / "rep")
    assert again.summary["files_failed"] == 0
    assert (root / "a.py").read_bytes() == b"import mindtorch as torch\n\nx = torch.ones(3)  # edited meanwhile\n"


@pytest.mark.parametrize("output", [False, True], ids=["in-place", "output-tree"])
def test_a_named_pipe_is_never_read(tmp_path, output):
    root = _tree(tmp_path / "src", {"a.py": GOOD})
    os.mkfifo(root / "pipe.py")
    os.mkfifo(root / "feed.txt")
    args = ["-o", str(tmp_path / "out")] if output else []
    done = cli("convert", str(root), *FAST, *args, timeout=120)
    assert done.returncode == 0, done.stderr
    report = (tmp_path / "out" if output else root) / ".ms-convert" / "report"
    skipped = {s["file"]: s["reason"] for s in read_summary(report)["skipped"]}
    tail = " or copied" if output else ""
    assert skipped["pipe.py"] == f"not a regular file (named pipe): not read{tail}"
    assert ("feed.txt" in skipped) == output
    if output:
        assert (tmp_path / "out/a.py").read_bytes() == GOOD_OUT
        assert not (tmp_path / "out/pipe.py").exists() and not (tmp_path / "out/feed.txt").exists()


def test_an_output_tree_loses_the_temp_files_of_an_interrupted_run(tmp_path, rules):
    root = _tree(tmp_path / "src", {"pkg/a.py": GOOD})
    out = tmp_path / "out"
    _convert(root, rules, output=out)
    stale = [out / "pkg" / f".a.py.k2j3x{TMP_SUFFIX}", out / f".other.txt.9zq1{TMP_SUFFIX}"]
    for path in stale:
        path.write_bytes(b"half")
    _convert(root, rules, output=out)
    assert not [p for p in stale if p.exists()]
    assert snapshot(out) == {"pkg/a.py": GOOD_OUT}


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
def test_in_place_keeps_owner_group_and_mode(tmp_path, rules):
    root = _tree(tmp_path / "src", {"a.py": GOOD, "tool.py": GOOD})
    os.chown(root / "a.py", 65534, 65534)
    os.chmod(root / "a.py", 0o640)
    os.chmod(root / "tool.py", 0o751)
    _convert(root, rules, use_cache=False, report_dir=tmp_path / "rep")
    a, tool = os.stat(root / "a.py"), os.stat(root / "tool.py")
    assert (root / "a.py").read_bytes() == GOOD_OUT
    assert (a.st_uid, a.st_gid, stat.S_IMODE(a.st_mode)) == (65534, 65534, 0o640)
    assert stat.S_IMODE(tool.st_mode) == 0o751


def test_a_hard_linked_file_is_not_converted_in_place(tmp_path, rules):
    """Replacing it would detach it from its other names (a uv cache, a cp -al backup), writing
    through it would change them too: it is left alone with the reason and the way out."""
    root = _tree(tmp_path / "src", {"a.py": GOOD, "b.py": GOOD})
    backup = tmp_path / "backup.py"
    os.link(root / "a.py", backup)
    result = _convert(root, rules, use_cache=False, report_dir=tmp_path / "rep")
    by_file = {r.path: r for r in result.results}
    assert by_file["a.py"].status == "failed"
    assert by_file["a.py"].reason.startswith("hard-linked (2 names share this file): not converted in place")
    assert (root / "a.py").read_bytes() == backup.read_bytes() == GOOD
    assert os.stat(root / "a.py").st_ino == os.stat(backup).st_ino
    assert (root / "b.py").read_bytes() == GOOD_OUT
    out = _convert(root, rules, output=tmp_path / "out", use_cache=False)   # the way out it names
    assert out.summary["files_failed"] == 0 and (tmp_path / "out/a.py").read_bytes() == GOOD_OUT


def test_check_does_not_pass_a_tree_with_failing_files(tmp_path):
    root = _tree(tmp_path / "src", {"ok.py": GOOD_OUT, "py2.py": b"import torch\nprint 'x'\n"})
    check = cli("convert", str(root), "--check", *FAST)
    assert check.returncode == 3, check.stdout + check.stderr
    assert "failed py2.py: syntax error at line 2" in check.stderr
    assert cli("convert", str(root), *FAST).returncode == 3


def test_check_prints_one_line_per_file_whatever_its_name(tmp_path):
    root = _tree(tmp_path / "src", {"a\nb.py": GOOD, "c\x1b[31m.py": GOOD, "plain.py": GOOD})
    check = cli("convert", str(root), "--check", *FAST)
    assert check.returncode == 1, check.stderr
    assert check.stdout.splitlines() == ["would convert 'a\\nb.py'", "would convert 'c\\x1b[31m.py'",
                                         "would convert plain.py"]
    diff = cli("convert", str(root), "--diff", *FAST)
    assert diff.returncode == 0, diff.stderr
    headers = [line for line in diff.stdout.splitlines() if line.startswith(("--- ", "+++ "))]
    assert headers == ["--- 'a/a\\nb.py'", "+++ 'b/a\\nb.py'", "--- 'a/c\\x1b[31m.py'", "+++ 'b/c\\x1b[31m.py'",
                       "--- a/plain.py", "+++ b/plain.py"]


def test_reports_of_a_resumed_run_describe_the_whole_conversion(tmp_path):
    """A run killed (SIGKILL: no clean-up at all) after writing two of five files; the next run
    converts the rest, and its change list has all five."""
    files = {f"m{i}.py": GOOD for i in range(5)}
    root = _tree(tmp_path / "src", files)
    script = textwrap.dedent(f"""\
        import os, signal, sys
        from pathlib import Path
        from tools.convert import runner
        from tools.convert.api import convert_tree, load_rules
        real, writes = runner.replace_converted, []
        def write_then_die(*args, **kw):
            if len(writes) == 2:
                os.kill(os.getpid(), signal.SIGKILL)
            real(*args, **kw)
            writes.append(args[0])
        runner.replace_converted = write_then_die
        convert_tree(Path({str(root)!r}), load_rules(), jobs=1, introspect=False)
        """)
    killed = subprocess.run([sys.executable, "-c", script], env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr
    middle = snapshot(root)
    assert sorted(middle.values()) == sorted([GOOD] * 3 + [GOOD_OUT] * 2)
    done = cli("convert", str(root), *FAST)
    assert done.returncode == 0, done.stderr
    assert snapshot(root) == {rel: GOOD_OUT for rel in files}
    report = root / ".ms-convert" / "report"
    _, changes = read_csv(report / "change_list.csv")
    assert sorted({row[0] for row in changes}) == sorted(files)
    assert read_summary(report)["files_changed"] == 5
    again = cli("convert", str(root), *FAST)        # the conversion is complete: a no-op now
    assert again.returncode == 0
    assert read_summary(report)["files_changed"] == 0


def test_an_output_tree_never_gets_the_state_folder_of_the_input(tmp_path, rules):
    root = _tree(tmp_path / "src", {"a.py": GOOD})
    _convert(root, rules)                                     # in place: leaves .ms-convert/ in the tree
    assert (root / ".ms-convert" / "report" / "change_list.csv").is_file()
    out = tmp_path / "out"
    _convert(root, rules, output=out, report_dir=tmp_path / "rep", use_cache=False)
    assert not (out / ".ms-convert").exists()
    assert snapshot(out) == {"a.py": GOOD_OUT}


def test_default_rules_report_no_drift_on_a_tree_that_is_not_megatron(tmp_path, rules):
    assert any("megatron_core" in f for f in rules.files)
    root = _tree(tmp_path / "src", {"core/utils.py": GOOD, "model.py": GOOD})
    result = _convert(root, rules, use_cache=False, report_dir=tmp_path / "rep")
    assert result.summary["unmatched_rules"] == []
    assert read_summary(tmp_path / "rep")["unmatched_rules"] == []


def test_a_file_name_that_is_not_utf8_is_converted_and_reported(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    raw = os.fsencode(root) + b"/caf\xe9.py"      # latin-1 bytes: not UTF-8
    with open(raw, "wb") as fh:
        fh.write(GOOD)
    done = cli("convert", str(root), *FAST)
    assert done.returncode == 0, done.stderr
    with open(raw, "rb") as fh:
        assert fh.read() == GOOD_OUT
    rows = (root / ".ms-convert" / "report" / "change_list.csv").read_bytes().splitlines()
    assert rows[1].startswith(b"caf\xe9.py,1,1,import-retarget,")
    check = cli("convert", str(root), "--check", *FAST)
    assert check.returncode == 0, check.stderr
    (root / "other.py").write_bytes(GOOD)
    with open(os.fsencode(root) + b"/caf\xe9_again.py", "wb") as fh:
        fh.write(GOOD)
    check = cli("convert", str(root), "--check", *FAST)
    assert check.returncode == 1
    assert check.stdout.splitlines() == ["would convert 'caf\\udce9_again.py'", "would convert other.py"]


def test_a_failed_unpack_of_a_corpus_leaves_nothing_behind(tmp_path):
    """An archive cut short (an interrupted download): the first member is unpacked, then it
    fails; no half-unpacked folder is left, and a good archive then unpacks."""
    import io
    import tarfile
    import zipfile

    from tools.corpora import unpack

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name in ("pkg/a.py", "pkg/b.py"):
            data = b"x = 1\n" * 20000
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    archive = tmp_path / "broken-1.0.tar"
    archive.write_bytes(buf.getvalue()[:200_000])
    with pytest.raises(tarfile.TarError):
        unpack(archive)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken-1.0.tar"]
    archive.unlink()
    good = tmp_path / "good-1.0.zip"
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("pkg/m.py", "x = 1\n")
    assert (unpack(good) / "pkg/m.py").read_text() == "x = 1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good-1.0.zip", "unpacked"]


def test_names_that_look_like_console_markup_are_printed_as_they_are(tmp_path, rules):
    import io

    from rich.console import Console

    # "[" sorts after "A": the last file the progress line shows is one of them
    root = _tree(tmp_path / "src", {"A.py": GOOD, "[/x].py": GOOD, "[/y].py": b"import torch\nprint 'x'\n"})
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, color_system=None, width=200)
    result = _convert(root, rules, use_cache=False, report_dir=tmp_path / "rep", progress=True, console=console)
    assert result.summary["files_changed"] == 2
    assert "failed [/y].py: syntax error at line 2" in screen.getvalue()


DEPTH = 1200   # deeper than Python's recursion limit (1000)


def _deep_file(root: Path) -> str:
    """``a/a/.../a/m.py``, DEPTH folders deep, made without recursion; its relative path."""
    root.mkdir()
    fd = os.open(root, os.O_RDONLY)
    try:
        for _ in range(DEPTH):
            os.mkdir("a", dir_fd=fd)
            inner = os.open("a", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
        out = os.open("m.py", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(out, GOOD)
        os.close(out)
    finally:
        os.close(fd)
    return "a/" * DEPTH + "m.py"


def _remove_deep(root: Path) -> None:
    """Remove a tree made by _deep_file (shutil.rmtree recurses: it would fail on it)."""
    walked = []
    pending = [os.fspath(root)]
    while pending:
        here = pending.pop()
        with os.scandir(here) as it:
            entries = list(it)
        walked.append(here)
        pending.extend(e.path for e in entries if e.is_dir(follow_symlinks=False))
        for e in entries:
            if not e.is_dir(follow_symlinks=False):
                os.unlink(e.path)
    for here in reversed(walked):
        os.rmdir(here)


def test_a_tree_nested_deeper_than_the_recursion_limit_is_converted(tmp_path, rules):
    src, out = tmp_path / "src", tmp_path / "out"
    try:
        rel = _deep_file(src)
        into = _convert(src, rules, output=out, use_cache=False, report_dir=tmp_path / "rep1")
        assert into.summary["files_changed"] == 1 and into.summary["files_failed"] == 0
        assert (out / rel).read_bytes() == GOOD_OUT
        done = _convert(src, rules, use_cache=False, report_dir=tmp_path / "rep2")
        assert done.summary["files_changed"] == 1
        assert (src / rel).read_bytes() == GOOD_OUT
    finally:
        for tree in (src, out):
            if tree.exists():
                _remove_deep(tree)


@needs_unprivileged
def test_a_read_only_tree_fails_its_files_with_one_line_each(tmp_path):
    root = _tree(tmp_path / "src", {"a.py": GOOD, "plain.py": b"x = 1\n"})
    os.chmod(root, 0o555)
    try:
        done = cli("convert", str(root), *FAST, unprivileged=True)
    finally:
        os.chmod(root, 0o755)
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        "failed a.py: cannot write: Permission denied",
        f"warning: cannot create {root / '.ms-convert'}: Permission denied: no cache and no reports in this run "
        "(give --cache-dir and --report-dir elsewhere)"]
    assert (root / "a.py").read_bytes() == GOOD


@needs_unprivileged
def test_an_unsavable_introspection_cache_is_not_a_traceback(tmp_path):
    # The same read-only cache folder, with the API check on: its cache is a cache too.
    root = _tree(tmp_path / "src", {"a.py": GOOD})
    cache = tmp_path / "cache"
    cache.mkdir()
    os.chmod(cache, 0o555)
    try:
        done = cli("convert", str(root), "-q", "-j", "1", "--cache-dir", str(cache), unprivileged=True)
    finally:
        os.chmod(cache, 0o755)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr
    assert (root / "a.py").read_bytes() == GOOD_OUT
    assert read_summary(root / ".ms-convert" / "report")["files_changed"] == 1
