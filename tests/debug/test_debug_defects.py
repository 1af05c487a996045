"""Regression tests for the defects found by trying the debugger as a new user would (each failed
before its fix): multiprocessing-spawned ranks, the prompt that outlived its session, secret and
uid refusals, history on Ctrl-C, an unreadable MS_DEBUG_DIR, a silent client holding up the
accept loop, ``list`` order, and the ``clean`` command for job directories that piled up."""
from __future__ import annotations

import fcntl
import json
import os
import pty
import queue
import shutil
import signal
import socket
import subprocess
import tempfile
import termios
import threading
import time
from pathlib import Path

import pytest
from debug_testkit import (
    JOB_TIMEOUT,
    JOBS,
    PROMPT_TIMEOUT,
    PYTHON,
    REPO_ROOT,
    Client,
    Processes,
    debug_env,
    run_cli,
    wait_for,
    wait_for_sessions,
)

from tools.debug import protocol

PLAIN = JOBS / "plain_script.py"
NOBODY = 65534
SYSTEM_PYTHON = "/usr/bin/python3"  # /root (the venv's interpreter) is closed to other users


def start_plain(procs: Processes, env: dict[str, str], tmp_path: Path, name: str = "plain", **kwargs) -> subprocess.Popen:
    return procs.start([kwargs.pop("python", PYTHON), str(PLAIN)], env, stdout=open(tmp_path / f"{name}.stdout", "wb"),
                       stderr=open(tmp_path / f"{name}.stderr", "wb"), **kwargs)


def as_nobody() -> None:
    os.setgid(NOBODY)
    os.setuid(NOBODY)


needs_root = pytest.mark.skipif(os.getuid() != 0 or not os.path.exists(SYSTEM_PYTHON),
                                reason="needs root (to run a process as another user) and /usr/bin/python3")


class PtyClient:
    """``attach`` in a real terminal: a pty that is the client's controlling terminal, so Ctrl-C
    typed into it is a real SIGINT to the client and readline is active."""

    def __init__(self, procs: Processes, env: dict[str, str], *args: str) -> None:
        master, slave = pty.openpty()
        self.master = master
        self.proc = procs.start([PYTHON, "-m", "tools.debug", "attach", *args], env, stdin=slave, stdout=slave,
                                stderr=slave, preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        os.close(slave)
        self.text = ""
        self._chunks: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: the client closed the terminal
                data = b""
            if not data:
                self._chunks.put(None)
                return
            self._chunks.put(data.decode("utf-8", "replace"))

    def wait_for_text(self, text: str, timeout: float = PROMPT_TIMEOUT, start: int = 0) -> int:
        deadline = time.monotonic() + timeout
        while text not in self.text[start:]:
            try:
                chunk = self._chunks.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                chunk = ""
            if chunk:
                self.text += chunk
            if time.monotonic() > deadline or chunk is None:
                raise AssertionError(f"{text!r} not shown within {timeout:.0f} s; terminal: {self.text!r}")
        return self.text.index(text, start) + len(text)

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())


# 1. ranks started by multiprocessing -------------------------------------------------------------
def test_multiprocessing_spawned_ranks_are_ranks_and_keep_in_step(procs: Processes, debug_dir: Path, tmp_path: Path) -> None:
    env = debug_env(debug_dir, MS_DEBUG_RANKS="1", MS_DEBUG_WAIT_OTHERS="1", MS_DEBUG_JOB="spawned",
                    MS_DEBUG_TIMEOUT="300")
    out = tmp_path / "out"
    out.mkdir()
    job = procs.start([PYTHON, str(JOBS / "mp_ranks.py"), str(out)], env, stderr=open(tmp_path / "stderr", "wb"))
    (session,) = wait_for_sessions(env, 1, job="spawned")
    assert (session["rank"], session["role"]) == (1, "main")  # was "subprocess", and nobody waited
    markers = debug_dir / "spawned" / "barrier"
    wait_for(lambda: {p.name for p in markers.glob("*/waiting-*.json")} == {f"waiting-{r}.json" for r in (0, 2, 3)},
             JOB_TIMEOUT, "ranks 0, 2, 3 waiting for rank 1")
    assert not list(out.glob("after-*"))
    client = Client(procs, env, "1")
    assert "-> breakpoint()" not in client.read_until_prompt()
    assert client.command("p value").strip() == "10"
    released = time.time()
    assert client.finish("c")[0] == 0
    assert job.wait(timeout=JOB_TIMEOUT) == 0, (tmp_path / "stderr").read_text()
    after = {r: json.loads((out / f"after-{r}.json").read_text()) for r in range(4)}
    assert [after[r]["value"] for r in range(4)] == [1, 11, 21, 31]
    assert all(after[r]["after"] >= released for r in (0, 2, 3))


# 2. the prompt notices the session ended -----------------------------------------------------------
def test_prompt_ends_when_the_process_goes_away(procs: Processes, debug_dir: Path, tmp_path: Path) -> None:
    env = debug_env(debug_dir, MS_DEBUG_JOB="gone")
    job = start_plain(procs, env, tmp_path)
    wait_for_sessions(env, 1)
    client = PtyClient(procs, env, "0")
    client.wait_for_text("(Pdb) ")
    job.send_signal(signal.SIGTERM)  # what a launcher does when another rank failed
    assert job.wait(timeout=JOB_TIMEOUT) == -signal.SIGTERM
    client.wait_for_text("session ended: process received signal 15")  # nobody pressed Enter
    assert client.proc.wait(timeout=PROMPT_TIMEOUT) == 0


# 3. refusals: one line and exit status 3 ------------------------------------------------------------
def test_insecure_secret_file_is_refused_in_one_line(procs: Processes, debug_dir: Path, tmp_path: Path) -> None:
    env = debug_env(debug_dir, MS_DEBUG_JOB="modes")
    start_plain(procs, env, tmp_path)
    wait_for_sessions(env, 1)
    os.chmod(debug_dir / "modes" / "secret", 0o644)
    refused = run_cli(env, "attach", "0")
    assert refused.returncode == 3 and "Traceback" not in refused.stderr, refused.stderr
    assert refused.stderr.strip().splitlines() == [
        f"[ms-debug] cannot read the job secret: {debug_dir / 'modes' / 'secret'} must be a 0600 file owned by you"]
    os.chmod(debug_dir / "modes" / "secret", 0o600)


@needs_root
def test_another_users_client_is_told_why(procs: Processes, tmp_path: Path) -> None:
    shared = Path(tempfile.mkdtemp(prefix="ms-debug-uid-"))
    try:
        os.chmod(shared, 0o755)
        os.chown(shared, NOBODY, NOBODY)
        env = debug_env(shared / "dbg", MS_DEBUG_JOB="theirs", HOME=str(shared), MS_DEBUG_SECRET="known-to-both")
        job = start_plain(procs, env, shared, python=SYSTEM_PYTHON, preexec_fn=as_nobody)
        (session,) = wait_for_sessions(env, 1)
        refused = run_cli(env, "attach", "0")  # root knows the secret and may open the socket, but is not the owner
        assert refused.returncode == 3, refused.stderr
        assert f"refused by rank 0 pid {session['pid']}: uid 0 is not the owner of this job" in refused.stderr
        job.kill()
    finally:
        shutil.rmtree(shared, ignore_errors=True)


# 4. history, unreadable directories, silent clients, order, clean -------------------------------------
def test_history_is_saved_when_detaching_with_ctrl_c(procs: Processes, debug_dir: Path, tmp_path: Path) -> None:
    env = debug_env(debug_dir, MS_DEBUG_JOB="hist")
    start_plain(procs, env, tmp_path)
    wait_for_sessions(env, 1)
    client = PtyClient(procs, env, "0")
    end = client.wait_for_text("(Pdb) ")
    client.type("p secret_value\r")
    end = client.wait_for_text("1234", start=end)
    end = client.wait_for_text("(Pdb) ", start=end)
    client.type("!import time; time.sleep(30)\r")  # the rank is busy, the client waits for it
    client.wait_for_text("time.sleep(30)", start=end)
    time.sleep(0.5)
    client.type("\x03")  # Ctrl-C in the client's terminal
    client.wait_for_text("interrupted: detaching")
    assert client.proc.wait(timeout=PROMPT_TIMEOUT) == 0
    history = (tmp_path / ".ms_debug_history").read_text().splitlines()
    assert history[-2:] == ["p secret_value", "!import time; time.sleep(30)"]


@needs_root
def test_list_reports_an_unreadable_directory_in_one_line(tmp_path: Path) -> None:
    parent = Path(tempfile.mkdtemp(prefix="ms-debug-list-"))
    try:
        os.chmod(parent, 0o755)
        unreadable = parent / "dbg"
        unreadable.mkdir(mode=0o711)  # nobody may enter it but not list it
        os.chmod(unreadable, 0o711)
        env = debug_env(unreadable, HOME=str(parent))
        done = subprocess.run([SYSTEM_PYTHON, "-m", "tools.debug", "list"], env=env, cwd=str(REPO_ROOT),
                              capture_output=True, text=True, timeout=60, preexec_fn=as_nobody)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.splitlines() == [f"[ms-debug] cannot read {unreadable}: Permission denied"]
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def test_a_silent_client_does_not_hold_up_the_next_one(procs: Processes, debug_dir: Path, tmp_path: Path) -> None:
    env = debug_env(debug_dir, MS_DEBUG_JOB="silent")
    job = start_plain(procs, env, tmp_path)
    (session,) = wait_for_sessions(env, 1)
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.connect(str(debug_dir / "silent" / "sessions" / session["socket"]))
    silent.settimeout(30)
    hello = protocol.recv_frame(silent)  # the challenge, which it never answers
    assert hello is not None and hello[0] == protocol.HELLO
    client = Client(procs, env, "0")
    assert "-> result = accumulate(5) + secret_value" in client.read_until_prompt()
    silent.setblocking(False)
    with pytest.raises(BlockingIOError):  # still open and unanswered: the attach did not wait for it
        silent.recv(1)
    assert client.finish("c")[0] == 0
    assert job.wait(timeout=JOB_TIMEOUT) == 0
    silent.close()


def test_list_is_sorted_by_rank(procs: Processes, debug_dir: Path, tmp_path: Path) -> None:
    env = debug_env(debug_dir, MS_DEBUG_JOB="order", WORLD_SIZE="4")
    start_plain(procs, dict(env, RANK="3"), tmp_path, "rank3")
    wait_for_sessions(env, 1)
    start_plain(procs, dict(env, RANK="1"), tmp_path, "rank1")  # arrives second
    assert [s["rank"] for s in wait_for_sessions(env, 2)] == [1, 3]
    table = run_cli(env, "list").stdout
    assert table.index("plain_script.py") < table.index("plain_script.py", table.index("│ 3 "))  # row 1 first
    assert run_cli(env, "continue").returncode == 0


def test_clean_removes_only_job_directories_nobody_uses(procs: Processes, debug_dir: Path, tmp_path: Path) -> None:
    dead = subprocess.Popen([PYTHON, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()

    def job_dir(name: str, pid: int, record_host: str, age: float) -> Path:
        path = debug_dir / name / "sessions"
        path.mkdir(parents=True, mode=0o700)
        (debug_dir / name / "secret").write_text("x" * 64)
        (path / f"x-{pid}-1.json").write_text(json.dumps({"pid": pid, "host": record_host}))
        for item in [debug_dir / name, *(debug_dir / name).rglob("*")]:
            os.utime(item, (time.time() - age, time.time() - age))
        return debug_dir / name

    stale = job_dir("stale", dead.pid, host, 7200)
    live = job_dir("live", os.getpid(), host, 7200)  # this test process is alive
    far = job_dir("far", 1, "node-b", 7200)  # another node's process: cannot be checked from here
    fresh = job_dir("fresh", dead.pid, host, 0)
    env = debug_env(debug_dir)
    dry = run_cli(env, "clean", "--older-than", "3600", "--dry-run")
    assert dry.returncode == 0 and f"would remove {stale}" in dry.stdout and stale.exists()
    done = run_cli(env, "clean", "--older-than", "3600")
    assert done.returncode == 0, done.stderr
    assert f"removed {stale}" in done.stdout and not stale.exists()
    assert f"kept    {live}: process {os.getpid()} is alive" in done.stdout
    assert f"kept    {far}: has records of node-b" in done.stdout and "kept    " + str(fresh) in done.stdout
    assert live.exists() and far.exists() and fresh.exists()
    assert f"removed {far}" in run_cli(env, "clean", "--older-than", "3600", "--all-hosts").stdout


def test_the_attach_hint_names_a_custom_debug_dir(procs: Processes, debug_dir: Path, tmp_path: Path) -> None:
    env = debug_env(debug_dir, MS_DEBUG_JOB="hint")
    start_plain(procs, env, tmp_path)
    wait_for_sessions(env, 1)
    (line,) = [line for line in (tmp_path / "plain.stderr").read_text().splitlines() if "attach:" in line]
    hint = line.split("attach: ", 1)[1].rsplit(" (", 1)[0]
    assert hint == f"MS_DEBUG_DIR={debug_dir} python -m tools.debug attach 0 --job hint"
    # Copied into a shell with no MS_DEBUG_* variables, the hint works as printed.
    name, _, value = hint.split()[0].partition("=")
    clean_env = {k: v for k, v in env.items() if not k.startswith("MS_DEBUG_")}
    done = subprocess.run(hint.split()[1:], env=dict(clean_env, **{name: value}, PATH=os.environ["PATH"]),
                          executable=PYTHON, input="p secret_value\nc\n", capture_output=True, text=True,
                          cwd=str(REPO_ROOT), timeout=PROMPT_TIMEOUT)
    assert done.returncode == 0 and "1234" in done.stdout, done.stderr
