"""The small decisions the debugger makes from the environment, tested in-process."""
from __future__ import annotations

import json
import os
import textwrap
import time
from pathlib import Path

import pytest

from tools.debug import protocol
from tools.debug.barrier import SiteBarrier
from tools.debug.client import choose_session
from tools.debug.rank import RankInfo, detect_rank, detect_world_size, parse_ranks, resolve_selection
from tools.debug.registry import (
    InsecureDirectory,
    SessionRecord,
    candidate_base_dirs,
    derive_job_id,
    ensure_private_dir,
    job_secret,
    sanitize_job_id,
)
from tools.debug.settings import DEFAULT_TIMEOUT, parse_timeout, resolve_timeout, resolve_wait_others


@pytest.mark.parametrize(
    "env, expected",
    [
        ({}, RankInfo(0, "default")),
        ({"RANK": "3", "LOCAL_RANK": "1"}, RankInfo(3, "RANK")),
        ({"LOCAL_RANK": "1", "RANK_ID": "5"}, RankInfo(1, "LOCAL_RANK")),
        ({"RANK_ID": "5", "MS_NODE_ID": "7"}, RankInfo(5, "RANK_ID")),
        ({"MS_NODE_ID": "worker-a", "OMPI_COMM_WORLD_RANK": "2"}, RankInfo(2, "OMPI_COMM_WORLD_RANK")),
        ({"PMI_RANK": "4", "SLURM_PROCID": "9"}, RankInfo(4, "PMI_RANK")),
        ({"SLURM_PROCID": "9"}, RankInfo(9, "SLURM_PROCID")),
        ({"MS_DEBUG_THIS_RANK": "6", "RANK": "3"}, RankInfo(6, "MS_DEBUG_THIS_RANK")),
        ({"MS_DEBUG_RANK": "6", "RANK": "3"}, RankInfo(3, "RANK")),  # MS_DEBUG_RANK selects, see below
    ],
)
def test_rank_comes_from_the_usual_variables_in_order(env: dict[str, str], expected: RankInfo) -> None:
    assert detect_rank(env) == expected


def test_world_size_and_rank_selection() -> None:
    assert detect_world_size({"RANK_SIZE": "8"}) == 8 and detect_world_size({}) is None
    assert parse_ranks("1,3") == {1, 3} and parse_ranks("0-2, 7") == {0, 1, 2, 7}
    assert parse_ranks("all") is None and parse_ranks("none") == frozenset()
    assert resolve_selection(None, {}) is None
    assert resolve_selection(2, {}) == {2} and resolve_selection([1, 3], {}) == {1, 3}
    assert resolve_selection([0], {"MS_DEBUG_RANKS": "1,3"}) == {1, 3}  # the launch-time override wins
    assert resolve_selection(None, {"MS_DEBUG_RANKS": "off"}) == frozenset()
    assert resolve_selection(None, {"MS_DEBUG_RANK": "1"}) == {1}  # the earlier helper's variable
    assert resolve_selection(None, {"MS_DEBUG_RANK": "1", "MS_DEBUG_RANKS": "2,3"}) == {2, 3}


def test_timeout_and_wait_others_resolution() -> None:
    assert resolve_timeout(None, {}) == DEFAULT_TIMEOUT == 600
    assert resolve_timeout(5, {}) == 5.0
    assert resolve_timeout(0, {}) is None and resolve_timeout("none", {}) is None
    assert resolve_timeout(5, {"MS_DEBUG_TIMEOUT": "none"}) is None
    assert resolve_timeout(None, {"MS_DEBUG_TIMEOUT": "2.5"}) == 2.5
    assert resolve_timeout(None, {"MS_DEBUG_TIMEOUT": "soon"}) == DEFAULT_TIMEOUT
    assert parse_timeout(float("inf")) is None
    assert resolve_wait_others(None, {}) is False and resolve_wait_others(True, {}) is True
    assert resolve_wait_others(True, {"MS_DEBUG_WAIT_OTHERS": "0"}) is False
    assert resolve_wait_others(False, {"MS_DEBUG_WAIT_OTHERS": "yes"}) is True


def test_job_id_derivation() -> None:
    assert derive_job_id({"MS_DEBUG_JOB": "my job/1"}) == "my_job_1"
    assert derive_job_id({"SLURM_JOB_ID": "77", "SLURM_STEP_ID": "2", "MASTER_PORT": "1"}) == "slurm-77-2"
    assert derive_job_id({"PMIX_NAMESPACE": "prterun-host-123@1"}) == "mpi-prterun-host-123_1"
    assert derive_job_id({"TORCHELASTIC_RUN_ID": "abc", "MASTER_ADDR": "h", "MASTER_PORT": "1"}) == "torch-abc"
    torchrun_default = {"TORCHELASTIC_RUN_ID": "none", "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500"}
    assert derive_job_id(torchrun_default) == "torch-10.0.0.1-29500"
    assert derive_job_id({"MS_SCHED_HOST": "127.0.0.1", "MS_SCHED_PORT": "8118"}) == "ms-127.0.0.1-8118"
    assert derive_job_id({}) == f"pg-{os.getpgid(0)}"
    long_id = sanitize_job_id("x" * 200)
    assert len(long_id) <= 48 and long_id != sanitize_job_id("x" * 199)
    assert sanitize_job_id("../../etc") == "_.._etc"


def test_base_dirs(tmp_path: Path) -> None:
    assert candidate_base_dirs({"MS_DEBUG_DIR": str(tmp_path)}) == [tmp_path]
    dirs = candidate_base_dirs({"XDG_RUNTIME_DIR": str(tmp_path)})
    assert dirs == [tmp_path / f"ms-debug-{os.getuid()}", Path(f"/tmp/ms-debug-{os.getuid()}")]


def test_private_directories_and_secret(tmp_path: Path) -> None:
    job = ensure_private_dir(tmp_path / "a" / "job")
    assert (job.stat().st_mode & 0o777) == 0o700
    os.chmod(job, 0o750)
    with pytest.raises(InsecureDirectory, match="mode 0750"):
        ensure_private_dir(job)
    assert ensure_private_dir(job, strict=False) == job  # a user's own 0750 $MS_DEBUG_DIR is fine
    os.chmod(job, 0o700)
    (tmp_path / "link").symlink_to(job)
    with pytest.raises(InsecureDirectory, match="not a directory"):
        ensure_private_dir(tmp_path / "link")

    assert job_secret(job, {}, create=False) is None
    first = job_secret(job, {}, create=True)
    assert first is not None and len(first) == 64 and job_secret(job, {}, create=True) == first
    assert job_secret(job, {"MS_DEBUG_SECRET": "from-env"}, create=True) == b"from-env"
    os.chmod(job / "secret", 0o644)
    with pytest.raises(InsecureDirectory):
        job_secret(job, {}, create=False)


def test_auth_answer_depends_on_secret_and_nonce() -> None:
    answer = protocol.auth_answer(b"s", b"n1")
    assert protocol.auth_ok(b"s", b"n1", answer)
    assert not protocol.auth_ok(b"s", b"n2", answer)  # a recorded answer cannot be replayed
    assert not protocol.auth_ok(b"t", b"n1", answer)
    assert b"s" not in answer


def _record(rank: int, pid: int, role: str, job: str = "j", state: str = "waiting") -> SessionRecord:
    return SessionRecord(job, f"{pid}-1", rank, "RANK", role, pid, 1, "h", "MainThread", "f.py", 1, "f",
                         time.time(), None, state, "x.sock")


def test_choose_session_prefers_the_ranks_own_process() -> None:
    child, main = _record(3, 20, "subprocess"), _record(3, 10, "main")
    assert choose_session([child, main], 3, None)[0] is main
    assert choose_session([child, main], 3, 20)[0] is child
    assert choose_session([child, main], 1, None) == (None, "no session for rank 1")
    assert "already attached" in choose_session([_record(1, 5, "main", state="attached")], 1, None)[1]
    assert "several jobs" in choose_session([_record(1, 5, "main", "a"), _record(1, 6, "main", "b")], 1, None)[1]


def test_barrier_ignores_markers_of_an_earlier_run(tmp_path: Path) -> None:
    def barrier(rank: int, timeout: float | None) -> SiteBarrier:
        return SiteBarrier(tmp_path, "s.py:1:f", "s.py:1", 1, rank, frozenset([1]), 4, timeout)

    barrier(1, None).done()
    marker = next(tmp_path.glob("barrier/*/done-1.json"))
    started = time.monotonic()
    barrier(0, 1.0).wait()  # fresh done marker: no wait at all
    assert time.monotonic() - started < 1.0
    stale = json.loads(marker.read_text())
    stale["time"] = time.time() - 3600  # written an hour before this process started
    marker.write_text(json.dumps(stale))
    started = time.monotonic()
    barrier(0, 1.0).wait()  # rank 1 of *this* run never arrived: wait for the timeout
    assert time.monotonic() - started >= 1.0
    assert list(tmp_path.glob("barrier/*/waiting-*")) == []


def test_known_launchers_are_never_a_ranks_parent_process() -> None:
    from tools.debug.rank import _is_launcher

    for argv in (["/usr/bin/python3", "/usr/local/bin/msrun", "--worker_num", "8"],
                 ["python", "-m", "torch.distributed.run", "--nproc-per-node", "8", "train.py"],
                 ["/venv/bin/python", "/venv/bin/torchrun", "train.py"],
                 ["python", "-m", "tools.debug", "launch", "-n", "4", "--", "train.py"]):
        assert _is_launcher([a.encode() for a in argv]), argv
    for argv in (["python", "/x/deepspeed_examples/train.py"], ["python", "-m", "tools.debug", "attach", "1"]):
        assert not _is_launcher([a.encode() for a in argv]), argv


def test_collectives_page_is_read_back_from_another_mapping(tmp_path: Path) -> None:
    from tools.debug import collectives

    page = tmp_path / "x.coll"
    with collectives.collective("all_reduce", group="tp"):  # not active yet: nothing to publish
        assert not page.exists()
    collectives.activate(page)
    try:
        assert collectives.read_page(page) == {}
        with collectives.collective("all_reduce", group="tp", bytes=64):
            (call,) = collectives.read_page(page).values()
            assert (call["op"], call["details"], call["thread"]) == ("all_reduce", {"group": "tp", "bytes": 64}, "MainThread")
        assert collectives.read_page(page) == {}
        assert (page.stat().st_mode & 0o777) == 0o600
    finally:
        collectives.deactivate()


def test_faulthandler_dump_is_parsed(tmp_path: Path) -> None:
    import faulthandler
    import threading

    from tools.debug.stacks import parse_faulthandler

    started, stop = threading.Event(), threading.Event()

    def parked() -> None:
        started.set()
        stop.wait()

    thread = threading.Thread(target=parked, daemon=True)
    thread.start()
    started.wait()
    with open(tmp_path / "dump", "w+b") as handle:
        faulthandler.dump_traceback(handle, all_threads=True)
        handle.seek(0)
        threads = parse_faulthandler(handle.read().decode())
    stop.set()
    by_ident = {t["ident"]: t for t in threads}
    assert {threading.get_ident(), thread.ident} <= set(by_ident)
    assert by_ident[threading.get_ident()]["current"] and by_ident[threading.get_ident()]["frames"][0]["function"] == \
        "test_faulthandler_dump_is_parsed"
    assert any(f["function"] == "parked" for f in by_ident[thread.ident]["frames"])


def test_signals_and_flags_from_the_environment() -> None:
    import signal

    from tools.debug.settings import resolve_flag, resolve_signal

    assert resolve_signal("S", 40, {}) == 40
    assert resolve_signal("S", 40, {"S": "SIGUSR2"}) == resolve_signal("S", 40, {"S": "usr2"}) == signal.SIGUSR2
    assert resolve_signal("S", 40, {"S": "RTMIN+5"}) == signal.SIGRTMIN + 5
    assert resolve_signal("S", 40, {"S": "none"}) is None
    with pytest.raises(ValueError, match="is not a signal"):
        resolve_signal("S", 40, {"S": "SIGNOPE"})
    assert resolve_flag("F", None, {"F": "1"}) and not resolve_flag("F", True, {"F": "off"}) and resolve_flag("F", True, {})


def test_a_process_that_set_its_own_rank_is_a_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    from tools.debug import rank as rank_module

    monkeypatch.delenv("MS_DEBUG_RANK_PID", raising=False)
    monkeypatch.setattr(rank_module, "_inherited", RankInfo(0, "default"))  # started without a rank variable
    assert rank_module.process_role(RankInfo(2, "RANK")) == "main"  # set RANK=2 itself (mp.spawn)
    assert rank_module.process_role(RankInfo(0, "RANK")) == "main"  # rank 0 too
    monkeypatch.setattr(rank_module, "_inherited", RankInfo(2, "RANK"))  # inherited RANK=2 from its parent ...
    monkeypatch.setenv("MS_DEBUG_RANK_PID", "1")  # ... whose rank process is another one: a worker of rank 2
    assert rank_module.process_role(RankInfo(2, "RANK")) == "subprocess"


def test_remote_commands_are_quoted_for_the_remote_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    import shlex

    from tools.debug.remote import remote_command, ssh_argv

    command = remote_command(["eval", "x['a b']", "--job", "j"], "/opt/py 3/bin/python", "/src", Path("/shared/dbg"))
    assert shlex.split(command) == ["env", "PYTHONPATH=/src", "MS_DEBUG_DIR=/shared/dbg", "/opt/py 3/bin/python",
                                    "-m", "tools.debug", "eval", "x['a b']", "--job", "j"]
    monkeypatch.delenv("MS_DEBUG_SSH", raising=False)
    assert ssh_argv("node7", command, tty=True) == ["ssh", "-t", "node7", command]
    monkeypatch.setenv("MS_DEBUG_SSH", "ssh -J gateway -p 2222")
    assert ssh_argv("node7", command, tty=False) == ["ssh", "-J", "gateway", "-p", "2222", "node7", command]
    monkeypatch.setenv("MS_DEBUG_SSH", "none")
    assert ssh_argv("node7", command, tty=False) is None


def test_run_with_a_missing_script_is_one_line(tmp_path: Path) -> None:
    from debug_testkit import debug_env, run_cli

    done = run_cli(debug_env(tmp_path / "dbg"), "run", "--", str(tmp_path / "missing.py"))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"[ms-debug] can't open file '{tmp_path / 'missing.py'}': no such file"]
    assert not (tmp_path / "dbg").exists()  # nothing registered for a program that never ran



def test_sigterm_while_the_main_thread_holds_a_debugger_lock_still_ends_the_process(tmp_path: Path) -> None:
    """A launcher's SIGTERM reaches the main thread wherever it is: here while it holds the lock the
    clean-up needs (as it does inside a channel's send or a session's close). The process must
    still clean up and die of the signal, not wait for itself forever."""
    import signal
    import subprocess
    import sys

    script = tmp_path / "held.py"
    script.write_text(textwrap.dedent("""
        import os, signal, time
        from tools.debug import session
        session._install_signal_cleanup()
        with session._live_lock:          # what close_all() takes first
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.5)
        time.sleep(30)                    # the clean-up thread delivers the signal again meanwhile
        print("survived")
    """))
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=20)
    assert proc.returncode == -signal.SIGTERM, (proc.returncode, proc.stdout, proc.stderr)
    assert "survived" not in proc.stdout
