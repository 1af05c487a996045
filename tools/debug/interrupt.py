"""``python -m tools.debug break RANK``: open a session in a running rank, then attach to it.

The rank's agent handles the break signal by opening a session where its main thread is
(``tools.debug.trace.break_here``); this command checks the registration (job, rank, live pid
with the registered start time), sends the signal and attaches as ``attach --wait`` would.
"""
from __future__ import annotations

import os
from pathlib import Path

from tools.debug.agent import read_agents
from tools.debug.client import EXIT_NO_SESSION, attach, job_filter
from tools.debug.registry import candidate_base_dirs, job_dirs
from tools.debug.settings import hostname, log
from tools.debug.stacks import why_not_signalled

BREAK_WAIT = 60.0  # seconds for the rank's main thread to reach Python and open the session


def break_command(rank: int, job: str | None = None, pid: int | None = None, wait: float = BREAK_WAIT,
                  print_only: bool = False) -> int:
    """Signal rank ``rank`` (or the process ``pid``) and attach; exit codes as ``attach``."""
    job = job_filter(job)
    agents = [a for a in read_agents(job_dirs(candidate_base_dirs(), job)) if a.rank == rank
              and (pid is None or a.pid == pid)]
    if len({a.job for a in agents}) > 1:
        log(f"rank {rank} runs in several jobs ({', '.join(sorted({a.job for a in agents}))}); choose one with --job")
        return EXIT_NO_SESSION
    if not agents:
        log(f"no registered process for rank {rank}" + (f" in job {job}" if job else "")
            + " (ranks register when started by `python -m tools.debug launch` or `run`)")
        return EXIT_NO_SESSION
    agent = agents[0]
    if agent.host != hostname():
        from tools.debug.remote import run_remote

        return run_remote(agent.host, ["break", str(rank), "--job", agent.job, "--pid", str(agent.pid)], agent.python,
                          agent.root, Path(agent.job_dir).parent, tty=os.isatty(0), print_only=print_only,
                          what=f"rank {rank}")  # type: ignore[return-value]
    why = why_not_signalled(agent)
    if why is None and agent.break_signal is None:
        why = "the program handles the break signal itself"
    if why is not None:
        log(f"cannot break into rank {rank} pid {agent.pid}: {why}")
        return EXIT_NO_SESSION
    os.kill(agent.pid, agent.break_signal)  # type: ignore[arg-type]
    log(f"sent signal {agent.break_signal} to rank {rank} pid {agent.pid}; waiting for its session")
    return attach(rank, pid=agent.pid, job=agent.job, wait=wait)
