"""Helpers for the debugger tests: real processes, the real client, bounded waits everywhere.

Every process started here runs in its own session (process group) and is tracked by a
``Processes`` registry that kills whole groups at teardown, so a failing test can never leave a
rank waiting at a breakpoint or hang CI. No sleeps are used for synchronization: tests poll for
the files the debugger writes (registrations, barrier markers) with deadlines.
"""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

REPO_ROOT = Path(__file__).resolve().parents[2]
JOBS = Path(__file__).resolve().parent / "jobs"
PYTHON = sys.executable
PROMPT = "(Pdb) "

# Generous for a loaded 2-core machine, but bounded.
SESSION_TIMEOUT = 120.0
PROMPT_TIMEOUT = 60.0
JOB_TIMEOUT = 180.0

_LAUNCHER_VARS = (
    "RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "RANK_ID", "RANK_SIZE", "MS_NODE_ID",
    "MS_WORKER_NUM", "MS_SCHED_HOST", "MS_SCHED_PORT", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "PMI_RANK",
    "PMI_SIZE", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_JOB_ID", "SLURM_STEP_ID", "PMIX_NAMESPACE",
    "OMPI_MCA_ess_base_jobid", "TORCHELASTIC_RUN_ID", "MASTER_ADDR", "MASTER_PORT", "PYTHONBREAKPOINT",
)


def debug_env(debug_dir: Path, **extra: str) -> dict[str, str]:
    """A clean environment: no launcher or debugger variables leaking in from the caller."""
    env = {k: v for k, v in os.environ.items() if k not in _LAUNCHER_VARS and not k.startswith("MS_DEBUG_")}
    env.update(
        MS_DEBUG_DIR=str(debug_dir),
        PYTHONPATH=str(REPO_ROOT),
        PYTHONBREAKPOINT="tools.debug.set_trace",
        PYTHONUNBUFFERED="1",
        HOME=str(debug_dir.parent),  # the client's history file lands in the test's tmp dir
    )
    env.update(extra)
    return env


class Processes:
    """Starts processes in their own process group and kills every group at teardown."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen] = []

    def start(self, argv: list[str], env: dict[str, str], **kwargs) -> subprocess.Popen:
        proc = subprocess.Popen(argv, env=env, cwd=str(REPO_ROOT), start_new_session=True, **kwargs)
        self._procs.append(proc)
        return proc

    def kill_all(self) -> None:
        for proc in self._procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass


def wait_for(predicate: Callable[[], object], timeout: float, what: str, poll: float = 0.05) -> object:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)
        poll = min(0.5, poll * 1.3)


def list_json(env: dict[str, str], job: str | None = None) -> list[dict]:
    """Sessions as the real ``python -m tools.debug list --json`` reports them."""
    argv = [PYTHON, "-m", "tools.debug", "list", "--json"] + (["--job", job] if job else [])
    done = subprocess.run(argv, env=env, cwd=str(REPO_ROOT), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def wait_for_sessions(env: dict[str, str], count: int, job: str | None = None) -> list[dict]:
    """Poll the registry (in-process, cheap) until ``count`` sessions wait, then return them as
    the real client lists them."""
    from tools.debug.registry import read_sessions

    base = [Path(env["MS_DEBUG_DIR"])]
    wait_for(
        lambda: len([s for s in read_sessions(base, job) if s.state == "waiting"]) >= count,
        SESSION_TIMEOUT,
        f"{count} waiting debugger sessions",
    )
    return list_json(env, job)


def run_cli(env: dict[str, str], *args: str, timeout: float = 120.0, **kwargs) -> subprocess.CompletedProcess:
    """One real ``python -m tools.debug ARGS`` run, its output captured as text."""
    return subprocess.run([PYTHON, "-m", "tools.debug", *args], env=env, cwd=str(REPO_ROOT), capture_output=True,
                          text=True, timeout=timeout, **kwargs)


def launch_job(procs: Processes, env: dict[str, str], log: Path, script: Path, *args: str, nproc: int = 4,
               options: tuple[str, ...] = ()) -> subprocess.Popen:
    """``python -m tools.debug launch -n NPROC OPTIONS -- script ARGS``, its stderr in ``log``."""
    argv = [PYTHON, "-m", "tools.debug", "launch", "-n", str(nproc), *options, "--", str(script), *args]
    return procs.start(argv, env, stdout=open(log.with_suffix(".stdout"), "wb"), stderr=open(log, "wb"))


def agents(env: dict[str, str], job: str) -> list[dict]:
    """The rank registrations of ``job`` (files written by the agent)."""
    directory = Path(env["MS_DEBUG_DIR"]) / job / "ranks"
    found = []
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return found


class Client:
    """``python -m tools.debug attach`` (or ``break``) driven through pipes, the way a script would."""

    def __init__(self, procs: Processes, env: dict[str, str], *args: str, command: str = "attach") -> None:
        self.proc = procs.start(
            [PYTHON, "-m", "tools.debug", command, *args],
            env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._chunks: queue.Queue[str | None] = queue.Queue()
        self._buffer = ""
        self.stderr = ""
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        fd = self.proc.stdout.fileno()
        while True:
            data = os.read(fd, 65536)
            if not data:
                self._chunks.put(None)
                return
            self._chunks.put(data.decode("utf-8", "replace"))

    def read_until_prompt(self, timeout: float = PROMPT_TIMEOUT) -> str:
        """Output up to and including the next ``(Pdb) `` prompt (prompt stripped)."""
        deadline = time.monotonic() + timeout
        while PROMPT not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no pdb prompt within {timeout:.0f} s; got {self._buffer!r}")
            try:
                chunk = self._chunks.get(timeout=remaining)
            except queue.Empty:
                continue
            if chunk is None:
                raise AssertionError(f"client exited before the prompt; output {self._buffer!r}, stderr {self._stderr()!r}")
            self._buffer += chunk
        text, _, self._buffer = self._buffer.partition(PROMPT)
        return text

    def command(self, line: str, timeout: float = PROMPT_TIMEOUT) -> str:
        """Send one pdb command and return its output (without the echoed command line)."""
        self.proc.stdin.write(f"{line}\n".encode())
        self.proc.stdin.flush()
        output = self.read_until_prompt(timeout)
        echo, _, rest = output.partition("\n")
        assert echo == line, f"expected the echo of {line!r}, got {echo!r}"
        return rest

    def finish(self, line: str | None = "c", timeout: float = PROMPT_TIMEOUT) -> tuple[int, str]:
        """Send a last command (or just close stdin) and wait for the client to exit."""
        try:
            if line is not None:
                self.proc.stdin.write(f"{line}\n".encode())
            self.proc.stdin.close()
        except BrokenPipeError:  # the client had already ended (e.g. the session ended at its prompt)
            pass
        deadline = time.monotonic() + timeout
        rest = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("client did not exit")
            try:
                chunk = self._chunks.get(timeout=remaining)
            except queue.Empty:
                continue
            if chunk is None:
                break
            rest.append(chunk)
        code = self.proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        return code, self._buffer + "".join(rest)

    def _stderr(self) -> str:
        if not self.stderr and self.proc.poll() is not None:
            self.stderr = self.proc.stderr.read().decode("utf-8", "replace")
        return self.stderr

    def stderr_text(self) -> str:
        """Client's stderr (attach/refusal messages); only after it exited."""
        self.proc.wait(timeout=PROMPT_TIMEOUT)
        return self._stderr()


def run_client(env: dict[str, str], *args: str, input_text: str = "") -> subprocess.CompletedProcess:
    """A one-shot client run (e.g. expected to be refused)."""
    return subprocess.run(
        [PYTHON, "-m", "tools.debug", "attach", *args],
        env=env,
        cwd=str(REPO_ROOT),
        input=input_text,
        capture_output=True,
        text=True,
        timeout=PROMPT_TIMEOUT,
    )


def live_sockets(root: Path) -> list[Path]:
    """Socket files under ``root`` (there must be none once a job has ended)."""
    import stat

    return [p for p in root.rglob("*") if stat.S_ISSOCK(p.lstat().st_mode)] if root.exists() else []
