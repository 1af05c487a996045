"""A realistic workspace: megatron-core 0.12.1's source from PyPI, committed into a repo named
Megatron-LM, served from a mirror, converted by the real engine through the real script; then the
same run killed (SIGKILL) or interrupted (SIGINT, as Ctrl-C does) in the middle of its conversion
stage, and run again.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO_ROOT, RULES, Result, git, script_env

pytestmark = [pytest.mark.slow, pytest.mark.pypi]

FIND_SPEC = "python -c \"import importlib.util as u; print('ORIGIN=' + u.find_spec('megatron.core').origin)\""


@dataclass
class Upstream:
    mirror: Path
    pin: str
    manifest: Path


@pytest.fixture(scope="session")
def megatron_upstream(tmp_path_factory: pytest.TempPathFactory, megatron_core_src: Path) -> Upstream:
    root = tmp_path_factory.mktemp("megatron-upstream")
    repo = root / "Megatron-LM"
    shutil.copytree(megatron_core_src.parent, repo, ignore=shutil.ignore_patterns("*.egg-info"))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "megatron-core 0.12.1")
    git(repo, "tag", "core_v0.12.1")
    pin = git(repo, "rev-parse", "HEAD")
    mirror = root / "mirror"
    mirror.mkdir()
    git(root, "clone", "-q", "--bare", str(repo), str(mirror / "Megatron-LM.git"))
    manifest = root / "megatron.yaml"
    manifest.write_text(
        "name: megatron\nrepos:\n  - name: Megatron-LM\n    source:\n      kind: git\n"
        "      url: https://github.com/NVIDIA/Megatron-LM.git\n      ref: core_v0.12.1\n"
        f"      commit: {pin}\n    rules: [{RULES[0]}, {RULES[1]}]\n"
    )
    return Upstream(mirror, pin, manifest)


def _source(ws: Path, up: Upstream, post: str = "") -> Result:
    command = (f"source {REPO_ROOT / 'auto_convert_llm.sh'} --mirror {up.mirror} --workspace {ws} "
               f"--manifest {up.manifest} -j 2\necho \"SHELL_ALIVE $?\"\n{post}\n")
    proc = subprocess.run(["bash", "-i", "-c", command], cwd=ws.parent, env=script_env(), capture_output=True, text=True,
                          timeout=600, stdin=subprocess.DEVNULL)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def _state(ws: Path) -> dict:
    path = ws / ".ms-workspace" / "state.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _converting(ws: Path) -> bool:
    record = _state(ws).get("repos", {}).get("Megatron-LM", {})
    return record.get("in_progress", {}).get("stage") == "convert"


def _has_converted_files(repo: Path) -> bool:
    """True once the conversion has rewritten at least one tracked file."""
    return subprocess.run(["git", "diff", "--quiet"], cwd=repo, capture_output=True).returncode == 1


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory, megatron_upstream: Upstream) -> dict:
    """One uninterrupted run; the interrupted runs must end with exactly its converted tree."""
    ws = tmp_path_factory.mktemp("megatron-ref") / "ws"
    result = _source(ws, megatron_upstream, post=FIND_SPEC)
    assert result.alive == 0, result
    repo = ws / "Megatron-LM"
    return {"ws": ws, "result": result, "tree": git(repo, "rev-parse", "HEAD^{tree}"),
            "record": _state(ws)["repos"]["Megatron-LM"]}


def test_megatron_core_converted_in_a_workspace(reference: dict, megatron_upstream: Upstream) -> None:
    ws, result, record = reference["ws"], reference["result"], reference["record"]
    repo = ws / "Megatron-LM"
    assert f"ORIGIN={repo}/megatron/core/__init__.py" in result.stdout, result
    converted = record["stages"]["converted"]
    changed = git(repo, "diff", "--name-only", megatron_upstream.pin, "HEAD").splitlines()
    assert len(changed) == converted["files_changed"] > 100
    assert converted["unsupported"] > 0
    assert git(repo, "rev-parse", "HEAD~1") == megatron_upstream.pin
    assert git(repo, "status", "--porcelain") == ""
    summary = json.loads((ws / ".ms-workspace" / "reports" / "Megatron-LM" / "summary.json").read_text())
    assert summary["files_changed"] == converted["files_changed"]
    assert "import torch\n" not in (repo / "megatron/core/tensor_parallel/layers.py").read_text()

    started = time.monotonic()
    again = _source(ws, megatron_upstream, post=FIND_SPEC)
    assert again.alive == 0, again
    assert time.monotonic() - started < 15
    assert "up to date" in again.stderr and git(repo, "rev-parse", "HEAD^{tree}") == reference["tree"]


@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT"])
def test_interrupted_conversion_is_rolled_back_and_completed(tmp_path: Path, megatron_upstream: Upstream,
                                                             reference: dict, how: str) -> None:
    ws = tmp_path / "ws"
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    command = (f"source {REPO_ROOT / 'auto_convert_llm.sh'} --mirror {megatron_upstream.mirror} --workspace {ws} "
               f"--manifest {megatron_upstream.manifest} -j 2\necho \"SHELL_ALIVE $?\"\n")
    with open(out, "w") as fo, open(err, "w") as fe:
        proc = subprocess.Popen(["bash", "-i", "-c", command], cwd=tmp_path, env=script_env(), stdout=fo, stderr=fe,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        caught = False
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            if _converting(ws) and _has_converted_files(ws / "Megatron-LM"):
                os.killpg(proc.pid, signal.SIGSTOP)  # freeze everything, then look again
                caught = _converting(ws)
                if not caught:
                    os.killpg(proc.pid, signal.SIGCONT)
                break
            time.sleep(0.01)
        if not caught:
            proc.wait(timeout=300)
            pytest.fail(f"the run left its conversion stage before it could be interrupted:\n{err.read_text()}")
        if how == "SIGKILL":
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            os.killpg(proc.pid, signal.SIGINT)
            os.killpg(proc.pid, signal.SIGCONT)
        proc.wait(timeout=120)
    if how == "SIGINT":  # Ctrl-C: the user's shell survives and says how to go on
        assert "SHELL_ALIVE 130" in out.read_text(), err.read_text()
        assert "interrupted: nothing is lost; run the same command again" in err.read_text()
    else:  # nothing of the killed run goes on in the background
        deadline = time.monotonic() + 10
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _group_alive(proc.pid)
    record = _state(ws)["repos"]["Megatron-LM"]
    assert record["in_progress"]["stage"] == "convert"
    assert "converted" not in record["stages"]
    repo = ws / "Megatron-LM"

    again = _source(ws, megatron_upstream, post=FIND_SPEC)
    assert again.alive == 0, again
    assert "rolled back the interrupted convert stage" in again.stderr, again.stderr
    record = _state(ws)["repos"]["Megatron-LM"]
    assert "in_progress" not in record and record["stages"]["converted"]["rules"]
    assert git(repo, "status", "--porcelain", "--ignored") == ""  # no temp file of the killed run either
    assert git(repo, "log", "-1", "--format=%s").startswith("ms-workspace: converted (rules ")
    assert git(repo, "rev-parse", "HEAD~1") == megatron_upstream.pin
    assert git(repo, "rev-parse", "HEAD^{tree}") == reference["tree"]  # complete, nothing half-written
    # It was stopped mid-stage: the files it had converted are kept under a ref, a part of the whole.
    (kept,) = git(repo, "for-each-ref", "--format=%(refname)", "refs/ms-workspace/").splitlines()
    partial = set(git(repo, "diff", "--name-only", megatron_upstream.pin, kept).splitlines())
    final = set(git(repo, "diff", "--name-only", megatron_upstream.pin, "HEAD").splitlines())
    assert partial and partial <= final
    assert f"its partial changes are kept as {kept}" in again.stderr
    assert f"ORIGIN={repo}/megatron/core/__init__.py" in again.stdout
    assert not list((ws / ".ms-workspace").glob("tmp/*"))
