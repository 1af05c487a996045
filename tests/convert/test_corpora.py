"""The shipped rules on real code from PyPI: megatron-core 0.12.1 and transformers 4.57.1."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from tools.convert.api import convert_tree, load_rules
from tools.convert.report import CHANGE_COLUMNS, UNSUPPORTED_COLUMNS
from tools.corpora import REPO_ROOT, megatron_core, transformers

from .helpers import read_csv, read_summary, snapshot

pytestmark = [pytest.mark.slow, pytest.mark.pypi]

CORPORA = {"megatron-core": megatron_core, "transformers": transformers}


@dataclass
class Converted:
    name: str
    original: dict[str, bytes]
    tree: Path
    reports: Path
    result: object


@pytest.fixture(scope="session", params=sorted(CORPORA))
def converted(request, tmp_path_factory) -> Converted:
    src = CORPORA[request.param]()
    base = tmp_path_factory.mktemp(request.param)
    tree = base / "tree"
    shutil.copytree(src, tree, symlinks=True)
    original = snapshot(tree)
    result = convert_tree(tree, load_rules(), jobs=2, report_dir=base / "reports", cache_dir=base / "cache")
    return Converted(request.param, original, tree, base / "reports", result)


def test_no_file_fails_and_every_output_compiles(converted):
    summary = converted.result.summary
    assert summary["files_failed"] == 0, summary["failures"][:5]
    assert summary["files_changed"] > 100
    for rel, data in snapshot(converted.tree).items():
        if rel.endswith(".py"):
            compile(data, rel, "exec", dont_inherit=True)


def test_files_without_a_match_are_byte_identical(converted):
    after = snapshot(converted.tree)
    assert set(after) == set(converted.original)
    changed = {r.path for r in converted.result.results if r.status == "changed"}
    for rel, data in after.items():
        if rel in changed:
            assert data != converted.original[rel]
        else:
            assert data == converted.original[rel], rel


def test_a_second_pass_changes_nothing(converted, tmp_path):
    before = snapshot(converted.tree)
    again = convert_tree(converted.tree, load_rules(), jobs=2, use_cache=False, report_dir=tmp_path)
    assert again.summary["files_changed"] == 0 and again.summary["files_failed"] == 0
    assert snapshot(converted.tree) == before


def test_reports_are_well_formed_and_agree_with_the_files(converted):
    summary = read_summary(converted.reports)
    header, changes = read_csv(converted.reports / "change_list.csv")
    assert header == CHANGE_COLUMNS
    changed = {r.path for r in converted.result.results if r.status == "changed"}
    assert {row[0] for row in changes} == changed
    assert len(changes) == summary["changes"] == sum(summary["changes_by_operation"].values())
    for row in changes:
        assert (converted.tree / row[0]).is_file() and 1 <= int(row[1]) <= int(row[2])
    header, unsupported = read_csv(converted.reports / "unsupported_api.csv")
    assert header == UNSUPPORTED_COLUMNS
    assert len(unsupported) == summary["unsupported_api_uses"]
    py_files = [k for k in converted.original if k.endswith(".py")]
    assert summary["files_seen"] == len(py_files)
    assert summary["files_seen"] == (summary["files_changed"] + summary["files_unchanged"]
                                     + summary["files_skipped"] + summary["files_failed"])
    uses = summary["api_uses"]
    assert uses["total"] == sum(v["uses"] for v in summary["apis"].values())
    assert uses["total"] == uses["rewritten"] + uses["retargeted"] + uses["retargeted_unverified"] + uses["unsupported"]
    assert 0 < summary["conversion_rate"] <= 1


def test_output_is_identical_for_any_jobs(tmp_path):
    src = megatron_core()
    source_before = snapshot(src)
    rules = load_rules()
    outputs = {}
    for jobs in (1, 2):
        res = convert_tree(src, rules, output=tmp_path / f"out{jobs}", jobs=jobs, report_dir=tmp_path / f"rep{jobs}",
                           use_cache=False)
        assert res.summary["files_failed"] == 0
        outputs[jobs] = snapshot(tmp_path / f"out{jobs}")
        for name in ("change_list.csv", "unsupported_api.csv"):
            outputs[(jobs, name)] = (tmp_path / f"rep{jobs}" / name).read_bytes()
    assert outputs[1] == outputs[2]
    for name in ("change_list.csv", "unsupported_api.csv"):
        assert outputs[(1, name)] == outputs[(2, name)]
    assert snapshot(src) == source_before, "output mode must not touch the input tree"


def test_a_killed_run_leaves_old_or_new_files_and_a_rerun_finishes(tmp_path):
    """SIGKILL the CLI mid-run on transformers: every file is old or new; re-running completes."""
    src = transformers()
    clean = tmp_path / "clean"
    convert_tree(src, load_rules(), output=clean, jobs=2, use_cache=False, introspect=False)
    expected = snapshot(clean)
    tree = tmp_path / "tree"
    shutil.copytree(src, tree)
    original = snapshot(tree)
    changed = sorted(rel for rel in original if original[rel] != expected[rel])
    first, last = tree / changed[0], tree / changed[-1]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    cmd = [sys.executable, "-m", "tools.convert", "convert", str(tree), "-j", "2", "-q", "--no-introspect"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while first.read_bytes() == original[changed[0]]:
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.02)
    workers = psutil.Process(proc.pid).children(recursive=True)
    assert workers, "the run has no worker processes"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    gone, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive, f"workers outlived the killed run: {[p.pid for p in alive]}"
    assert last.read_bytes() == original[changed[-1]], "the run was not killed mid-way"
    middle = snapshot(tree)
    leftovers = {k for k in middle if k.endswith(".ms-convert.tmp")}   # a write cut short: removed by the next run
    middle = {k: v for k, v in middle.items() if k not in leftovers}
    assert set(middle) == set(original)
    assert any(middle[k] == expected[k] != original[k] for k in changed)
    for rel, data in middle.items():
        assert data in (original[rel], expected[rel]), f"{rel} is neither old nor new"
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert snapshot(tree) == expected
    assert not [p for p in tree.rglob("*.ms-convert.tmp")], "temporary files were left behind"


def test_sigint_stops_cleanly_with_status_130(tmp_path):
    tree = tmp_path / "tree"
    shutil.copytree(transformers(), tree)
    original = snapshot(tree)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "tools.convert", "convert", str(tree), "-j", "2", "-q",
                             "--no-introspect"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    marker = tree / "activations.py"
    deadline = time.monotonic() + 300
    while marker.read_bytes() == original["activations.py"]:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "run the same command again" in err



def test_every_megatron_rule_applies_to_megatron_core(tmp_path):
    """Each rule of rules/megatron_core.yaml (scoped edits, some with the fingerprint of the upstream
    body they replace) matches megatron-core 0.12.1 as released: none is reported as drift, each
    one edits. The tree is laid out as in Megatron-LM (megatron/core/...), which the rules' paths name."""
    tree = tmp_path / "Megatron-LM"
    shutil.copytree(megatron_core(), tree / "megatron", symlinks=True)
    rules = load_rules([REPO_ROOT / "rules" / "torch_imports.yaml", REPO_ROOT / "rules" / "megatron_core.yaml"])
    convert_tree(tree, rules, jobs=2, report_dir=tmp_path / "reports", cache_dir=tmp_path / "cache")
    megatron_ids = {rule.id for rule in rules.scoped}
    unmatched = {u["rule"] for u in read_summary(tmp_path / "reports")["unmatched_rules"]}
    assert megatron_ids and not (megatron_ids & unmatched), sorted(megatron_ids & unmatched)
    _, changes = read_csv(tmp_path / "reports" / "change_list.csv")
    applied = {row[4].split(":", 1)[0] for row in changes} & megatron_ids
    assert applied == megatron_ids, sorted(megatron_ids - applied)
