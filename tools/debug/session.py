"""Server side of one breakpoint: a private Unix socket, its registration, and its cleanup.

Lifecycle: ``open()`` binds ``sessions/<host>-<pid>-<n>.sock`` (0600, in the 0700 job directory)
and writes ``sessions/<host>-<pid>-<n>.json``; ``wait_for_client()`` serves requests until one
client attaches (or asks the rank to continue) or the timeout expires; once attached, the
listening socket is closed and its file removed, so nothing listens while pdb runs; ``close()``
removes the record.

Each connection's handshake runs in a short-lived thread, so a silent client (even one of the
job's own user) cannot hold up the others for the handshake timeout; what the clients ask for
(attach, evaluate an expression, continue) is done in the breakpoint's own thread, where the
frame lives and thread-local state (grad mode, devices) is the rank's. ``close()`` also
runs at interpreter exit (atexit) and on SIGTERM/SIGHUP (when the program had no handler of its
own), so a finished or killed-by-launcher job leaves no socket behind.
"""
from __future__ import annotations

import atexit
import hashlib
import itertools
import json
import os
import queue
import secrets
import select
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from tools.debug import protocol
from tools.debug.rank import RankInfo
from tools.debug.registry import (
    MAX_SOCKET_PATH,
    REPO_ROOT,
    SESSIONS,
    SessionRecord,
    ensure_private_dir,
    host_tag,
    short_socket_dir,
    write_private_file,
)
from tools.debug.settings import HANDSHAKE_TIMEOUT, hostname, log

MAX_VALUE = 64 * 1024  # characters of an evaluated value sent back to the client

_counter = itertools.count(1)
_live: set["Session"] = set()
_live_lock = threading.Lock()
_previous_handlers: dict[int, object] = {}


def _peer_uid(conn: socket.socket) -> int | None:
    """Linux: uid of the connecting process (SO_PEERCRED); None where unsupported."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    try:
        _pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i")))
    except OSError:
        return None
    return uid


class Session:
    """One breakpoint waiting for (or served to) one client."""

    def __init__(
        self,
        job: str,
        job_dir: Path,
        secret: bytes,
        rank: RankInfo,
        role: str,
        frame,
        timeout: float | None,
        kind: str = "breakpoint",
        exception: str | None = None,
    ) -> None:
        self.job = job
        self.job_dir = job_dir
        self.secret = secret
        self.timeout = timeout
        self.frame = frame
        self.owner_pid = os.getpid()
        name = f"{host_tag()}-{self.owner_pid}-{next(_counter)}"
        self.record_path = job_dir / SESSIONS / f"{name}.json"
        self.socket_path = job_dir / SESSIONS / f"{name}.sock"
        socket_name = self.socket_path.name
        if len(bytes(self.socket_path)) > MAX_SOCKET_PATH:
            # A deep $MS_DEBUG_DIR would exceed sun_path: use the short private fallback directory.
            digest = hashlib.sha1(str(job_dir).encode()).hexdigest()[:10]
            self.socket_path = ensure_private_dir(short_socket_dir()) / f"{digest}-{name}.sock"
            socket_name = str(self.socket_path)
        now = time.time()
        self.record = SessionRecord(
            job=job,
            session=name,
            rank=rank.rank,
            rank_source=rank.source,
            role=role,
            pid=self.owner_pid,
            ppid=os.getppid(),
            host=hostname(),
            thread=threading.current_thread().name,
            file=frame.f_code.co_filename,
            line=frame.f_lineno,
            function=frame.f_code.co_name,
            since=now,
            timeout_at=None if timeout is None else now + timeout,
            state="waiting",
            socket=socket_name,
            argv=[str(a)[:200] for a in sys.argv[:8]],
            kind=kind,
            exception=exception,
            python=sys.executable,
            root=str(REPO_ROOT),
        )
        self._socket_name = socket_name
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self._accepting = False
        self._accept_lock = threading.Lock()
        self.closed = False

    # --- setup -------------------------------------------------------------------------------
    def open(self) -> None:
        """Listen on the private socket, then register (so a listed session is attachable)."""
        path = str(self.socket_path)
        if len(path.encode()) > MAX_SOCKET_PATH:
            raise OSError(f"socket path too long ({len(path)} bytes): {path}")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(path)
            os.chmod(path, 0o600)  # the 0700 directory already keeps others out; belt and braces
            listener.listen(4)
        except OSError:
            listener.close()
            self._unlink(self.socket_path)
            raise
        self._listener = listener
        with _live_lock:
            _live.add(self)
        _install_signal_cleanup()
        self._write_record()

    def _write_record(self) -> None:
        write_private_file(self.record_path, self.record.to_json())

    # --- waiting for a client ----------------------------------------------------------------
    def wait_for_client(self) -> tuple[str, socket.socket | None]:
        """Serve clients until one attaches or asks to continue, or the timeout expires.

        Returns ("attach", connection), ("continue", None) or ("timeout", None). Evaluations
        are answered and the wait goes on. Refused clients do not extend the deadline, and each
        gets at most HANDSHAKE_TIMEOUT seconds in its own thread, so a silent or hostile peer
        cannot keep a rank waiting nor hold up the next client.
        """
        assert self._listener is not None
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        ready: queue.SimpleQueue = queue.SimpleQueue()
        wake_r, wake_w = os.pipe()
        self._listener.setblocking(False)
        self._accepting = True
        try:
            while True:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return "timeout", None
                try:
                    readable, _, _ = select.select([self._listener, wake_r], [], [], remaining)
                except InterruptedError:
                    continue
                if self._listener in readable:
                    self._accept(deadline, ready, wake_w)
                if wake_r in readable:
                    os.read(wake_r, 4096)
                while True:
                    try:
                        conn, request = ready.get_nowait()
                    except queue.Empty:
                        break
                    outcome = self._serve_request(conn, request)
                    if outcome is not None:
                        return outcome, conn if outcome == "attach" else None
        finally:
            self._stop_accepting(ready)
            os.close(wake_r)
            os.close(wake_w)

    def _accept(self, deadline: float | None, ready: queue.SimpleQueue, wake_w: int) -> None:
        try:
            conn, _ = self._listener.accept()  # type: ignore[union-attr]
        except (BlockingIOError, InterruptedError):
            return
        conn.setblocking(True)
        threading.Thread(
            target=self._handshake, args=(conn, deadline, ready, wake_w), name="ms-debug-handshake", daemon=True
        ).start()

    def _serve_request(self, conn: socket.socket, request: dict[str, Any]) -> str | None:
        """Do what an authenticated client asked, in the breakpoint's thread."""
        mode = request.get("mode")
        try:
            if mode == "eval":
                reply = evaluate(self.frame, str(request.get("expr", "")))
                reply["record"] = json.loads(self.record.to_json())
                protocol.send_frame(conn, protocol.RESULT, json.dumps(reply).encode())
                conn.close()
                return None
            if mode == "continue":
                protocol.send_frame(conn, protocol.RESULT, json.dumps({"ok": True, "value": "continued"}).encode())
                conn.close()
                return "continue"
            if mode != "attach":
                protocol.send_frame(conn, protocol.DENIED, f"unknown request {mode!r}".encode())
                conn.close()
                return None
            self.record.state = "attached"
            self.record.socket = None
            protocol.send_frame(conn, protocol.WELCOME, self.record.to_json())
        except OSError:  # the client went away meanwhile: keep waiting for the next one
            self.record.state = "waiting"
            self.record.socket = self._socket_name
            conn.close()
            return None
        conn.settimeout(None)
        self._mark_attached()
        return "attach"

    def _stop_accepting(self, ready: queue.SimpleQueue) -> None:
        with self._accept_lock:
            self._accepting = False
        while True:
            try:
                conn, _ = ready.get_nowait()
            except queue.Empty:
                return
            try:
                protocol.send_frame(conn, protocol.DENIED, b"the breakpoint is no longer waiting")
            except OSError:
                pass
            conn.close()

    def _handshake(self, conn: socket.socket, deadline: float | None, ready: queue.SimpleQueue, wake_w: int) -> None:
        remaining = None if deadline is None else deadline - time.monotonic()
        limit = HANDSHAKE_TIMEOUT if remaining is None else max(0.1, min(HANDSHAKE_TIMEOUT, remaining))
        conn.settimeout(limit)
        reason = "wrong or missing secret"
        try:
            peer = _peer_uid(conn)
            if peer is not None and peer != os.getuid():
                reason = f"uid {peer} is not the owner of this job"
            else:
                nonce = secrets.token_bytes(32)
                hello = {"protocol": protocol.PROTOCOL, "nonce": nonce.hex()}
                protocol.send_frame(conn, protocol.HELLO, json.dumps(hello).encode())
                frame = protocol.recv_frame(conn)
                if frame is not None and frame[0] == protocol.AUTH and protocol.auth_ok(self.secret, nonce, frame[1]):
                    request = protocol.recv_frame(conn)
                    if request is None or request[0] != protocol.REQUEST:
                        raise protocol.ProtocolError("no request after the handshake")
                    parsed = json.loads(request[1])
                    if not isinstance(parsed, dict):
                        raise protocol.ProtocolError("malformed request")
                    with self._accept_lock:
                        if self._accepting:
                            ready.put((conn, parsed))
                            os.write(wake_w, b"!")
                            return
                    reason = "the breakpoint is no longer waiting"
            protocol.send_frame(conn, protocol.DENIED, reason.encode())
        except (OSError, ValueError, protocol.ProtocolError) as exc:
            reason = f"handshake failed ({exc.__class__.__name__})"
        log(f"rank {self.record.rank} pid {self.owner_pid}: refused a client: {reason}")
        try:
            conn.close()
        except OSError:
            pass

    def _mark_attached(self) -> None:
        """Stop listening as soon as a client is in: at most one client, nothing left listening."""
        self._close_listener()
        try:
            self._write_record()
        except OSError:
            pass

    # --- cleanup -----------------------------------------------------------------------------
    def _close_listener(self) -> None:
        if self._listener is not None:
            try:
                self._listener.close()
            except OSError:
                pass
            self._listener = None
        self._unlink(self.socket_path)

    @staticmethod
    def _unlink(path: Path) -> None:
        try:
            os.unlink(path)
        except OSError:
            pass

    def close(self) -> None:
        """Remove the socket and the registration; idempotent, safe from atexit and signals."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
        if os.getpid() != self.owner_pid:  # an inherited copy after fork: the files are the parent's
            return
        self._close_listener()
        self._unlink(self.record_path)
        with _live_lock:
            _live.discard(self)


def evaluate(frame, expr: str) -> dict[str, Any]:
    """``p expr`` without pdb: the value's repr (or the error's last line) in ``frame``."""
    try:
        value = eval(compile(expr, "<ms-debug eval>", "eval"), frame.f_globals, frame.f_locals)
        text = repr(value)
    except Exception as exc:  # noqa: BLE001 - the user's expression: report, never raise
        return {"ok": False, "error": traceback.format_exception_only(type(exc), exc)[-1].strip()}
    if len(text) > MAX_VALUE:
        text = text[:MAX_VALUE] + f"... ({len(text)} characters)"
    return {"ok": True, "value": text}


def close_all(reason: str = "process exiting") -> None:
    """Close every session this process still owns (atexit / fatal signal)."""
    from tools.debug import trace  # late: trace imports this module

    trace.end_attached_sessions(reason)
    with _live_lock:
        sessions = [s for s in _live if s.owner_pid == os.getpid()]
    for session in sessions:
        session.close()


def _on_fatal_signal(signum: int, _frame) -> None:
    """Tell attached clients why, remove our files, then die of the signal as without us.

    The handler runs in the main thread wherever it was: possibly inside a send that holds a
    channel's lock, or inside ``close()`` holding a session's. Doing the clean-up here deadlocked
    there (the job hung instead of ending), so it runs on a thread of its own, which then delivers
    the signal again with its default action. The handler waits for it, so the program does not go
    on meanwhile; only when the clean-up needs a lock this thread holds does the wait end (after
    ``_FATAL_WAIT`` s) and the program runs until that lock is let go."""
    signal.signal(signum, signal.SIG_DFL)

    def finish() -> None:
        try:
            close_all(f"process received signal {signum}")
        finally:
            os.kill(os.getpid(), signum)

    cleanup = threading.Thread(target=finish, name="ms-debug-fatal-signal", daemon=True)
    cleanup.start()
    cleanup.join(_FATAL_WAIT)


_FATAL_WAIT = 2.0


def _install_signal_cleanup() -> None:
    """Clean up on SIGTERM/SIGHUP (what launchers send), but only where the program had no handler."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signum in _previous_handlers:
            continue
        try:
            if signal.getsignal(signum) == signal.SIG_DFL:
                signal.signal(signum, _on_fatal_signal)
                _previous_handlers[signum] = signal.SIG_DFL
        except (ValueError, OSError):
            pass


def _after_fork_in_child() -> None:
    """A forked child must not serve its parent's session nor remove its parent's files."""
    with _live_lock:
        _live.clear()
    _previous_handlers.clear()


atexit.register(close_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
