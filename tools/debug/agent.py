"""The rank agent: what makes a running rank inspectable without a breakpoint in its code.

``install()`` (done by ``python -m tools.debug run``, which ``tools.debug launch`` uses for every
rank) registers the process in ``<job dir>/ranks/<host>-<pid>.json`` and sets up:

* stacks on demand: ``faulthandler.register(signal, all_threads=True)`` writes the Python stack
  of every thread into ``ranks/<host>-<pid>.stacks`` (0600) when ``python -m tools.debug
  stacks`` sends the signal. faulthandler writes from the C signal handler, so this works while
  the main thread is blocked in C code (a collective, a lock, a ``recv``), even holding the GIL;
* which collective each thread waits in: the shared page of ``tools.debug.collectives``;
* a session on demand: the break signal's handler opens a session where the main thread is
  (``python -m tools.debug break RANK``); Python runs the handler when the main thread next
  executes bytecode, which includes being interrupted in ``sleep``, ``recv``, lock waits;
* post mortem (opt-in): an uncaught exception opens a session at the frame that raised it, then
  the process ends as it would have (the traceback printed, exit status 1).

A signal the program already handles is left alone (the registration records ``null`` for it).
Cost when nothing is asked: no thread, no timer, nothing on the program's path; see the
overheads in docs/debugger.md.
"""
from __future__ import annotations

import atexit
import faulthandler
import os
import signal
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.debug import collectives
from tools.debug.barrier import process_start_time
from tools.debug.rank import detect_rank
from tools.debug.registry import (
    RANKS,
    REPO_ROOT,
    JobFileRecord,
    ensure_private_dir,
    host_tag,
    job_dir_for_server,
    job_secret,
    derive_job_id,
    write_private_file,
)
from tools.debug.settings import (
    DEFAULT_BREAK_SIGNAL,
    DEFAULT_STACKS_SIGNAL,
    ENV_BREAK_SIGNAL,
    ENV_JOB,
    ENV_POST_MORTEM,
    ENV_RANK_PID,
    ENV_STACKS_SIGNAL,
    hostname,
    log,
    resolve_flag,
    resolve_signal,
)


@dataclass
class AgentRecord(JobFileRecord):
    """A registered rank process, as ``stacks`` and ``break`` find it."""

    job: str
    rank: int
    rank_source: str
    pid: int
    host: str
    started: float  # process start time: a recycled pid is never signalled
    main_thread: int
    stacks_signal: int | None
    break_signal: int | None
    post_mortem: bool
    argv: list[str] = field(default_factory=list)
    python: str = ""
    root: str = ""
    job_dir: str = ""  # filled in when read back, never written

    @property
    def stem(self) -> str:
        return f"{host_tag(self.host)}-{self.pid}"

    def path(self, suffix: str) -> Path:
        return Path(self.job_dir) / RANKS / f"{self.stem}{suffix}"


class _Agent:
    def __init__(self, record: AgentRecord, stacks_file) -> None:
        self.record = record
        self.stacks_file = stacks_file
        self.previous_hooks: tuple[Any, Any] | None = None


_agent: _Agent | None = None


def installed() -> AgentRecord | None:
    """This process's registration, if the agent is installed."""
    return _agent.record if _agent is not None else None


def install(post_mortem: bool | None = None) -> AgentRecord | None:
    """Make this process inspectable (see the module docstring); idempotent.

    post_mortem: open a session on an uncaught exception; ``$MS_DEBUG_POST_MORTEM`` overrides.
    Returns the registration, or None when the debugger cannot work here (logged; the program
    goes on).
    """
    global _agent
    if _agent is not None and _agent.record.pid == os.getpid():
        return _agent.record
    try:
        _agent = _install(resolve_flag(ENV_POST_MORTEM, post_mortem))
    except Exception as exc:  # noqa: BLE001 - a debugger problem never takes the job down
        log(f"debugger agent unavailable: {exc}; continuing")
        return None
    return _agent.record


def _claim(signum: int | None) -> int | None:
    """``signum`` if the program has not claimed it (its handler is still the default)."""
    if signum is None:
        return None
    try:
        if signal.getsignal(signum) != signal.SIG_DFL:
            log(f"signal {signum} already has a handler in this program; leaving it alone")
            return None
    except ValueError:
        return None
    return signum


def _install(post_mortem: bool) -> _Agent:
    rank = detect_rank()
    job = derive_job_id()
    os.environ.setdefault(ENV_JOB, job)
    # The launcher started this process as a rank: it is the rank's main process.
    os.environ[ENV_RANK_PID] = str(os.getpid())
    job_dir = job_dir_for_server(job=job)
    job_secret(job_dir, create=True)
    ranks_dir = ensure_private_dir(job_dir / RANKS)
    main = threading.current_thread() is threading.main_thread()
    stacks_signal = _claim(resolve_signal(ENV_STACKS_SIGNAL, DEFAULT_STACKS_SIGNAL))
    break_signal = _claim(resolve_signal(ENV_BREAK_SIGNAL, DEFAULT_BREAK_SIGNAL)) if main else None
    record = AgentRecord(
        job=job,
        rank=rank.rank,
        rank_source=rank.source,
        pid=os.getpid(),
        host=hostname(),
        started=process_start_time(),
        main_thread=threading.main_thread().ident or 0,
        stacks_signal=stacks_signal,
        break_signal=break_signal,
        post_mortem=post_mortem,
        argv=[str(a)[:200] for a in sys.argv[:8]],
        python=sys.executable,
        root=str(REPO_ROOT),
        job_dir=str(job_dir),
    )
    stacks_file = None
    if stacks_signal is not None:
        fd = os.open(record.path(".stacks"), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC
                     | getattr(os, "O_NOFOLLOW", 0), 0o600)
        stacks_file = os.fdopen(fd, "wb", buffering=0)
        faulthandler.register(stacks_signal, file=stacks_file, all_threads=True, chain=False)
    if break_signal is not None:
        signal.signal(break_signal, _on_break_signal)
    collectives.activate(record.path(".coll"))
    agent = _Agent(record, stacks_file)
    if post_mortem:
        agent.previous_hooks = (sys.excepthook, threading.excepthook)
        sys.excepthook = _excepthook
        threading.excepthook = _thread_excepthook
    write_private_file(ranks_dir / f"{record.stem}.json", record.to_json())
    atexit.register(_uninstall)
    return agent


def _on_break_signal(_signum: int, frame) -> None:
    from tools.debug.trace import break_here

    if frame is not None:
        break_here(frame)


def _excepthook(exc_type, exc, tb) -> None:
    from tools.debug.trace import post_mortem

    previous = _agent.previous_hooks[0] if _agent is not None and _agent.previous_hooks else sys.__excepthook__
    if issubclass(exc_type, KeyboardInterrupt):
        previous(exc_type, exc, tb)
        return
    tb = post_mortem(exc_type, exc, tb)
    if exc is not None:
        exc = exc.with_traceback(tb)  # the default hook prints the exception's own traceback
    previous(exc_type, exc, tb)


def _thread_excepthook(args) -> None:
    from tools.debug.trace import post_mortem

    previous = _agent.previous_hooks[1] if _agent is not None and _agent.previous_hooks else threading.__excepthook__
    if args.exc_type is not SystemExit and args.exc_value is not None:
        post_mortem(args.exc_type, args.exc_value, args.exc_traceback)
    previous(args)


def _uninstall() -> None:
    """At exit: unregister and remove this process's files (not a forked child's job)."""
    agent = _agent
    if agent is None or agent.record.pid != os.getpid():
        return
    for suffix in (".json", ".stacks", ".coll"):
        try:
            os.unlink(agent.record.path(suffix))
        except OSError:
            pass


def _after_fork_in_child() -> None:
    """A forked child (data-loader worker) is not its parent: no dumps into the parent's file,
    no writes into the parent's page, no session for the parent's signal."""
    global _agent
    agent, _agent = _agent, None
    collectives.deactivate()
    if agent is None:
        return
    if agent.record.stacks_signal is not None:
        faulthandler.unregister(agent.record.stacks_signal)
    if agent.record.break_signal is not None:
        try:
            signal.signal(agent.record.break_signal, signal.SIG_DFL)
        except ValueError:
            pass
    if agent.previous_hooks is not None:
        sys.excepthook, threading.excepthook = agent.previous_hooks


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def read_agents(job_dirs: list[Path], errors: list[str] | None = None) -> list[AgentRecord]:
    """The registered rank processes of these job directories, by rank."""
    found = []
    for job_dir in job_dirs:
        directory = job_dir / RANKS
        try:
            paths = sorted(directory.glob("*.json")) if directory.is_dir() else []
        except OSError as exc:
            if errors is not None:
                errors.append(f"cannot read {directory}: {exc.strerror or exc}")
            continue
        for path in paths:
            try:
                found.append(AgentRecord.from_json(path.read_bytes(), job_dir))
            except (OSError, ValueError, TypeError):
                continue
    found.sort(key=lambda r: (r.job, r.rank, r.host, r.pid))
    return found
