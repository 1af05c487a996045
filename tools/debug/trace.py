"""``set_trace()``: the breakpoint entry point (also ``PYTHONBREAKPOINT=tools.debug.set_trace``),
and the two other ways a session opens: ``post_mortem()`` for an uncaught exception and
``break_here()`` for the break signal (both installed by ``tools.debug.agent``).

On a selected rank it registers a session, waits (bounded by the timeout) for a client, and
then hands the caller's frame to a real pdb talking to that client. On other ranks it returns
at once, or with ``wait_others`` waits at the same point until the selected ranks are done.

A failure of the debugger itself (insecure directory, path too long, ...) is logged and the
program continues: a broken debugger must never take a training job down with it.
"""
from __future__ import annotations

import os
import sys
import threading
import traceback
from collections import Counter
from types import FrameType, TracebackType
from typing import Callable, Iterable

from tools.debug.barrier import SiteBarrier
from tools.debug.rank import RankInfo, detect_rank, detect_world_size, process_role, resolve_selection
from tools.debug.registry import derive_job_id, job_dir_for_server, job_secret
from tools.debug.remote_pdb import Channel, RemotePdb
from tools.debug.session import Session
from tools.debug.settings import (
    ENV_JOB,
    ENV_RANK_PID,
    attach_hint,
    log,
    resolve_timeout,
    resolve_wait_others,
)

_local = threading.local()
_hits: Counter[str] = Counter()
_lock = threading.Lock()
_attached: dict[int, "_Attached"] = {}


class _Attached:
    """A session with a client: its pdb, its registration, and its place in a barrier."""

    def __init__(self, session: Session, barrier: SiteBarrier | None) -> None:
        self.session = session
        self.barrier = barrier  # set only with wait_others
        self.pdb: RemotePdb | None = None
        self.thread = threading.get_ident()

    def end(self, reason: str) -> None:
        """RemotePdb's on_end: tell the client, clean up, then keep step with the other ranks."""
        assert self.pdb is not None
        self.session.close()  # unregister first: once the client hears END, `list` no longer shows us
        self.pdb.channel.close(reason)
        with _lock:
            _attached.pop(self.thread, None)
        if getattr(_local, "attached", None) is self:
            _local.attached = None
        record = self.session.record
        log(f"rank {record.rank} pid {record.pid}: session at {os.path.basename(record.file)}:{record.line} ended ({reason})")
        if self.barrier is not None:
            self.barrier.done()
            if not self.pdb.interrupted:
                self.barrier.wait()


def end_attached_sessions(reason: str) -> None:
    """At exit: tell attached clients the process is going away."""
    with _lock:
        attached = list(_attached.values())
    for item in attached:
        if item.session.owner_pid == os.getpid() and item.pdb is not None:
            item.session.close()
            item.pdb.channel.close(reason)
            if item.barrier is not None:
                item.barrier.done()


def _after_fork_in_child() -> None:
    with _lock:
        _attached.clear()
    _local.attached = None
    sys.settrace(None)  # a child forked while its parent was being stepped must not trace


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def set_trace(
    ranks: int | Iterable[int] | str | None = None,
    wait_others: bool | None = None,
    timeout: float | str | None = None,
    *,
    header: str | None = None,
) -> None:
    """Stop this process in a remote pdb session if its rank is selected.

    ranks: which ranks stop (int, iterable, or "1,3"); None = all. ``$MS_DEBUG_RANKS`` overrides.
    wait_others: non-selected ranks wait here until the selected ranks' sessions end.
        ``$MS_DEBUG_WAIT_OTHERS`` overrides.
    timeout: seconds to wait for a client before continuing; 0 or "none" waits forever;
        None = ``$MS_DEBUG_TIMEOUT`` or 600 s. ``$MS_DEBUG_TIMEOUT`` overrides.
    header: a message shown to the client when it attaches (like pdb.set_trace's).
    """
    frame = sys._getframe(1)
    try:
        _set_trace(frame, ranks, wait_others, timeout, header)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # noqa: BLE001 - see module docstring
        log(f"debugger unavailable at {frame.f_code.co_filename}:{frame.f_lineno}: {exc}; continuing")
    # Nothing may run here: once pdb.set_trace() returned, every call is traced and would stop.


def _set_trace(frame, ranks, wait_others, timeout, header) -> None:
    rank = detect_rank()
    selection = resolve_selection(ranks)
    wait = resolve_wait_others(wait_others)
    selected = selection is None or rank.rank in selection
    if not selected and not wait and getattr(_local, "attached", None) is None:
        return  # the common case in a big job: keep it cheap (no /proc reads, no job id)
    seconds = resolve_timeout(timeout)

    attached: _Attached | None = getattr(_local, "attached", None)
    if attached is not None and attached.pdb is not None and not attached.pdb.ended:
        # Already being debugged in this thread (e.g. `n` over a function with a breakpoint):
        # stop in the same session instead of opening another one.
        if selected:
            sys.settrace(None)  # re-arm untraced, or pdb would stop inside its own bdb calls
            attached.pdb.set_trace(frame)
        return

    role, job = _identify(rank)

    barrier = None
    if wait and role == "main":
        code = frame.f_code
        key = f"{os.path.basename(code.co_filename)}:{frame.f_lineno}:{code.co_name}"
        with _lock:
            _hits[key] += 1
            hit = _hits[key]
        where = f"{code.co_filename}:{frame.f_lineno}"
        barrier = SiteBarrier(
            job_dir_for_server(job=job), key, where, hit, rank.rank, selection, detect_world_size(), seconds
        )
    if not selected:
        if barrier is not None:
            barrier.wait()
        return

    _serve(frame, job, rank, role, seconds, barrier, header)


def _identify(rank: RankInfo) -> tuple[str, str]:
    """This process's role and job id, exported so the processes it starts from now on know both."""
    role = process_role(rank)
    if role == "main" and os.environ.get(ENV_RANK_PID) != str(os.getpid()):
        os.environ[ENV_RANK_PID] = str(os.getpid())
    job = derive_job_id()
    os.environ.setdefault(ENV_JOB, job)  # children join this job even if they change process group
    return role, job


def _user_traceback(tb: TracebackType | None) -> TracebackType | None:
    """``tb`` without the leading frames of ``python -m tools.debug run`` (runpy and ours)."""
    from tools.debug.run import is_wrapper_frame

    while tb is not None and tb.tb_next is not None and is_wrapper_frame(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    return tb


def post_mortem(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> TracebackType | None:
    """Open a session at the frame that raised ``exc`` (an uncaught exception); returns when the
    session is over (or nobody attached in time) so the caller can end the rank as it would have.

    Returns the traceback without the debugger's own leading frames, for printing."""
    tb = _user_traceback(tb)
    try:
        rank = detect_rank()
        selection = resolve_selection(None)
        if tb is None or not (selection is None or rank.rank in selection):
            return tb
        innermost = tb
        while innermost.tb_next is not None:
            innermost = innermost.tb_next
        frame = innermost.tb_frame
        role, job = _identify(rank)
        text = traceback.format_exception_only(exc_type, exc)[-1].strip()
        header = "".join(traceback.format_exception(exc_type, exc, tb)).rstrip()
        _serve(frame, job, rank, role, resolve_timeout(None), None, header, kind="post-mortem", exception=text,
               start=lambda debugger: debugger.post_mortem(tb))
    except Exception as exc_:  # noqa: BLE001 - see module docstring
        log(f"debugger unavailable for the post-mortem of {exc_type.__name__}: {exc_}; exiting as usual")
    return tb


def break_here(frame: FrameType) -> None:
    """A session where the main thread is now (the break signal's handler calls this): the
    prompt shows at once at the interrupted line; ``c`` lets the rank go on."""
    attached: _Attached | None = getattr(_local, "attached", None)
    if attached is not None and attached.pdb is not None and not attached.pdb.ended:
        log("break signal ignored: this thread is already in a debugging session")
        return
    try:
        rank = detect_rank()
        role, job = _identify(rank)
        _serve(frame, job, rank, role, resolve_timeout(None), None, "opened by a signal (tools.debug break)",
               kind="signal", start=lambda debugger: debugger.interact_now(frame))
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # noqa: BLE001 - see module docstring
        log(f"debugger unavailable at {frame.f_code.co_filename}:{frame.f_lineno}: {exc}; continuing")


def _serve(
    frame,
    job: str,
    rank: RankInfo,
    role: str,
    seconds: float | None,
    barrier: SiteBarrier | None,
    header: str | None,
    *,
    kind: str = "breakpoint",
    exception: str | None = None,
    start: Callable[[RemotePdb], None] | None = None,
) -> None:
    try:
        job_dir = job_dir_for_server(job=job)
        secret = job_secret(job_dir, create=True)
        assert secret is not None
        if barrier is not None:
            barrier.arrived()
        session = Session(job, job_dir, secret, rank, role, frame, seconds, kind=kind, exception=exception)
        session.open()
    except BaseException:
        if barrier is not None:
            try:
                barrier.done()  # we will not stop here: do not keep the other ranks waiting for us
            except Exception:  # noqa: BLE001 - the original error is the one to report
                pass
        raise
    where = f"{os.path.basename(session.record.file)}:{session.record.line}"
    limit = "no timeout" if seconds is None else f"continues after {seconds:g} s"
    what = "waiting at" if kind == "breakpoint" else f"{kind} session ({exception})" if exception else f"{kind} session at"
    log(
        f"rank {rank.rank} pid {session.owner_pid} {what} {where} ({session.record.function}); "
        f"attach: {attach_hint(rank.rank, job, session.owner_pid if role != 'main' else None)} ({limit})"
    )
    try:
        outcome, conn = session.wait_for_client()
    except BaseException:
        session.close()
        if barrier is not None:
            barrier.done()
        raise
    if conn is None:
        session.close()
        if outcome == "timeout":
            log(f"rank {rank.rank} pid {session.owner_pid}: nobody attached at {where} within {seconds:g} s; continuing")
        else:
            log(f"rank {rank.rank} pid {session.owner_pid}: continued by a client at {where}")
        if barrier is not None:
            barrier.done()
            barrier.wait()
        return

    attached = _Attached(session, barrier)
    debugger = RemotePdb(Channel(conn), attached.end)
    attached.pdb = debugger
    _local.attached = attached
    with _lock:
        _attached[attached.thread] = attached
    if header:
        debugger.message(header)
    if start is not None:
        start(debugger)
        return
    debugger.set_trace(frame)  # must be the last call: from here on the caller is traced
