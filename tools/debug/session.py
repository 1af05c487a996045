"""Server side of one breakpoint: a private Unix socket, its registration, and its cleanup.

Lifecycle: ``open()`` binds ``sessions/<pid>-<n>.sock`` (0600, in the 0700 job directory) and
writes ``sessions/<pid>-<n>.json``; ``wait_for_client()`` accepts until one client passes the
handshake or the timeout expires; once attached, the listening socket is closed and its file
removed, so nothing listens while pdb runs; ``close()`` removes the record. ``close()`` also
runs at interpreter exit (atexit) and on SIGTERM/SIGHUP (when the program had no handler of its
own), so a finished or killed-by-launcher job leaves no socket behind.
"""
from __future__ import annotations

import atexit
import hashlib
import itertools
import json
import os
import secrets
import signal
import socket
import struct
import sys
import threading
import time
from pathlib import Path

from tools.debug import protocol
from tools.debug.rank import RankInfo
from tools.debug.registry import (
    MAX_SOCKET_PATH,
    SESSIONS,
    SessionRecord,
    ensure_private_dir,
    short_socket_dir,
    write_private_file,
)
from tools.debug.settings import HANDSHAKE_TIMEOUT, log

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
    ) -> None:
        self.job = job
        self.job_dir = job_dir
        self.secret = secret
        self.timeout = timeout
        self.owner_pid = os.getpid()
        name = f"{self.owner_pid}-{next(_counter)}"
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
            host=socket.gethostname(),
            thread=threading.current_thread().name,
            file=frame.f_code.co_filename,
            line=frame.f_lineno,
            function=frame.f_code.co_name,
            since=now,
            timeout_at=None if timeout is None else now + timeout,
            state="waiting",
            socket=socket_name,
            argv=[str(a)[:200] for a in sys.argv[:8]],
        )
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
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
    def wait_for_client(self) -> socket.socket | None:
        """Accept until a client proves it knows the secret; None when the timeout expired.

        Refused clients do not extend the deadline, and each one gets at most
        HANDSHAKE_TIMEOUT seconds, so a silent or hostile peer cannot keep a rank waiting.
        """
        assert self._listener is not None
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            self._listener.settimeout(remaining)
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                return None
            if self._handshake(conn, remaining):
                self._mark_attached()
                return conn

    def _handshake(self, conn: socket.socket, remaining: float | None) -> bool:
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
                    self.record.state = "attached"
                    self.record.socket = None
                    protocol.send_frame(conn, protocol.WELCOME, self.record.to_json())
                    conn.settimeout(None)
                    return True
            protocol.send_frame(conn, protocol.DENIED, reason.encode())
        except (OSError, protocol.ProtocolError) as exc:
            reason = f"handshake failed ({exc.__class__.__name__})"
        log(f"rank {self.record.rank} pid {self.owner_pid}: refused a client: {reason}")
        try:
            conn.close()
        except OSError:
            pass
        return False

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


def close_all(reason: str = "process exiting") -> None:
    """Close every session this process still owns (atexit / fatal signal)."""
    from tools.debug import trace  # late: trace imports this module

    trace.end_attached_sessions(reason)
    with _live_lock:
        sessions = [s for s in _live if s.owner_pid == os.getpid()]
    for session in sessions:
        session.close()


def _on_fatal_signal(signum: int, _frame) -> None:
    close_all(f"process received signal {signum}")
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


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
