"""A minimal local launcher: N copies of a Python program with the usual rank variables.

For plain multi-process runs (no torchrun/msrun at hand) and for the tests. It also prepares the
debugger for the job: a unique job id (``MS_DEBUG_JOB``), the job directory with its secret,
``PYTHONBREAKPOINT=tools.debug.set_trace`` unless set, this checkout on ``PYTHONPATH``, and runs
Python programs through ``python -m tools.debug run`` so every rank has the agent (``stacks``,
``break``, and with ``--post-mortem`` a session on an uncaught exception).
When the job ends the job directory is removed (``--keep`` leaves it for inspection).

If one rank fails the others are terminated (a distributed job cannot finish without it);
Ctrl-C / SIGTERM to the launcher are passed on to the ranks.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tools.debug.registry import job_dir_for_server, job_secret, sanitize_job_id
from tools.debug.settings import ENV_JOB, ENV_POST_MORTEM, ENV_RANK, ENV_RANK_PID, attach_hint, log

REPO_ROOT = Path(__file__).resolve().parents[2]
TERMINATE_GRACE = 10.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rank_command(command: list[str]) -> list[str]:
    """``script.py args`` and ``-m module args`` run with this Python under the agent
    (``python -m tools.debug run -- ...``); anything else as given."""
    if command and (command[0] == "-m" or command[0].endswith(".py")):
        return [sys.executable, "-m", "tools.debug", "run", "--", *command]
    return list(command)


def rank_env(base: dict[str, str], rank: int, nprocs: int, job: str, port: int) -> dict[str, str]:
    """The environment of one rank: torchrun's variable names, plus the debugger's."""
    env = dict(base)
    for name in (ENV_RANK_PID, ENV_RANK):
        env.pop(name, None)
    env.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(nprocs),
        LOCAL_WORLD_SIZE=str(nprocs),
        GROUP_RANK="0",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    env[ENV_JOB] = job
    env.setdefault("PYTHONBREAKPOINT", "tools.debug.set_trace")
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(REPO_ROOT) not in paths:
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *paths])
    return env


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + TERMINATE_GRACE
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def launch(nprocs: int, command: list[str], job: str | None = None, keep: bool = False,
           post_mortem: bool = False) -> int:
    """Run ``command`` as ranks 0..nprocs-1 and return the job's exit status."""
    if nprocs < 1 or not command:
        raise ValueError("need at least one process and a command")
    job = sanitize_job_id(job or f"launch-{os.getpid()}-{int(time.time())}")
    env = dict(os.environ)
    env[ENV_JOB] = job
    if post_mortem:
        env[ENV_POST_MORTEM] = "1"
    job_dir = job_dir_for_server(env, job)
    job_secret(job_dir, env, create=True)
    port = _free_port()
    log(f"job {job}: {nprocs} ranks; attach with: {attach_hint(0, job, env=env).replace(' attach 0 ', ' attach RANK ')}; "
        f"stacks: python -m tools.debug stacks --job {job}")

    stopping: list[int] = []

    def on_signal(signum: int, _frame) -> None:
        stopping.append(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    procs: list[subprocess.Popen] = []
    status = 0
    try:
        argv = rank_command(command)
        for rank in range(nprocs):
            procs.append(subprocess.Popen(argv, env=rank_env(env, rank, nprocs, job, port)))
        running = set(range(nprocs))
        while running and not stopping:
            for rank in sorted(running):
                code = procs[rank].poll()
                if code is None:
                    continue
                running.discard(rank)
                if code != 0 and status == 0:
                    status = code if code > 0 else 128 - code
                    log(f"rank {rank} exited with status {code}; stopping the other ranks")
            if status:
                break
            time.sleep(0.1)
        if stopping:
            log(f"signal {stopping[0]}: stopping the ranks")
            status = 128 + stopping[0]
        _stop(procs)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if procs:
            _stop(procs)
        if not keep:
            shutil.rmtree(job_dir, ignore_errors=True)
    return status
