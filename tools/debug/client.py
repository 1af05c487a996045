"""The user's side: ``list`` waiting sessions and ``attach`` to one (through ssh when the rank
runs on another node).

``attach`` is interactive (readline line editing, history, remote tab completion) when stdin is
a terminal, and line-driven when stdin is a pipe: it prints pdb's output and the ``(Pdb) ``
prompt to stdout, then reads one command per line, which is how scripts and tests drive it.
End of input (Ctrl-D, closed pipe) detaches and lets the process continue.

While the user types, a watcher thread keeps an eye on the connection, so a session that ends
meanwhile (the rank was killed, the job stopped) ends the prompt at once instead of at the next
Enter.

Exit status: 0 session ended normally, 1 unexpected error (``list``: a directory could not be
read), 2 no such session, 3 refused (wrong/missing/insecure secret or not the job owner).
"""
from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, TextIO

from tools.debug import protocol
from tools.debug.registry import (
    InsecureDirectory,
    SessionRecord,
    candidate_base_dirs,
    job_secret,
    read_sessions,
    sanitize_job_id,
)
from tools.debug.settings import ENV_HISTORY, ENV_JOB, log

EXIT_OK, EXIT_ERROR, EXIT_NO_SESSION, EXIT_REFUSED = 0, 1, 2, 3
PDB_DELIMS = " \t\n`@#$%^&*()=+[{]}\\|;:'\",<>?"


_say = log


def job_filter(job: str | None) -> str | None:
    """The job to look at: ``job``, else ``$MS_DEBUG_JOB``, else None (every job)."""
    job = job or os.environ.get(ENV_JOB) or None
    return sanitize_job_id(job) if job else None


def find_sessions(job: str | None = None, errors: list[str] | None = None) -> list[SessionRecord]:
    """Live sessions of this user (one job, or all), by job and rank; stale records are pruned."""
    return read_sessions(candidate_base_dirs(), job_filter(job), errors=errors)


# --- list --------------------------------------------------------------------------------------
def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


def stopped_at(record: SessionRecord) -> str:
    """Why a session exists: a breakpoint, a signal, or (post mortem) the exception."""
    return record.exception or record.kind


def print_table(title: str, header: list[str], rows: list[list[str]], out: TextIO, upper: bool = True) -> None:
    """A rich table (plain aligned columns when rich is missing in a bare training environment)."""
    try:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text
    except ImportError:
        widths = [max(len(line) for row in [header, *rows] for line in row[i].splitlines() or [""]) for i in range(len(header))]
        for row in [header, *rows]:
            out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() + "\n")
        return
    table = Table(title=title, title_justify="left")
    for name in header:
        table.add_column(name.upper() if upper else name, overflow="fold")
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))  # plain text: "[worker-0]" is not markup
    console = Console(file=out, width=None if out.isatty() else 250, soft_wrap=False)
    console.print(table)


def list_sessions(job: str | None = None, as_json: bool = False, out: TextIO | None = None) -> int:
    """Print the waiting/attached sessions as a table (or JSON lines with ``as_json``)."""
    out = out or sys.stdout
    errors: list[str] = []
    sessions = find_sessions(job, errors)
    for error in errors:
        _say(error)
    status = EXIT_ERROR if errors else EXIT_OK
    if as_json:
        for record in sessions:
            out.write(json.dumps(asdict(record)) + "\n")
        return status
    if not sessions:
        where = ", ".join(str(p) for p in candidate_base_dirs())
        out.write(f"no debugger sessions{' in job ' + job if job else ''} (looked in {where})\n")
        return status
    now = time.time()
    header = ["job", "rank", "host", "pid", "role", "state", "stopped", "where", "function", "since", "timeout"]
    rows = []
    for r in sessions:
        role = r.role if r.role == "main" else f"{r.role} of {r.ppid}"
        if r.thread != "MainThread":
            role += f" [{r.thread}]"
        timeout = "none" if r.timeout_at is None else (_age(r.timeout_at - now) if r.state == "waiting" else "-")
        since = time.strftime("%H:%M:%S", time.localtime(r.since)) + f" ({_age(now - r.since)} ago)"
        rows.append([r.job, str(r.rank), r.host, str(r.pid), role, r.state, stopped_at(r), f"{r.file}:{r.line}",
                     r.function, since, timeout])
    print_table("debugger sessions", header, rows, out)
    return status


# --- attach ------------------------------------------------------------------------------------
def choose_session(sessions: list[SessionRecord], rank: int, pid: int | None) -> tuple[SessionRecord | None, str]:
    """The session to attach to, or (None, why not). Prefers the rank's main process over its
    children, and the oldest when a process has several (threads)."""
    matches = [s for s in sessions if s.rank == rank and (pid is None or s.pid == pid)]
    if not matches:
        return None, f"no session for rank {rank}" + (f" pid {pid}" if pid is not None else "")
    if len({s.job for s in matches}) > 1:
        jobs = ", ".join(sorted({s.job for s in matches}))
        return None, f"rank {rank} is waiting in several jobs ({jobs}); choose one with --job"
    waiting = [s for s in matches if s.state == "waiting"]
    if not waiting:
        return None, f"rank {rank} (pid {matches[0].pid}) is already attached by another client"
    mains = [s for s in waiting if s.role == "main"]
    chosen = (mains or waiting)[0]
    others = [s for s in waiting if s.pid != chosen.pid]
    if others and pid is None:
        extra = ", ".join(f"pid {s.pid} ({s.role})" for s in others)
        _say(f"rank {rank} also waits in {extra}; use --pid to pick one")
    return chosen, ""


class SessionEnded(Exception):
    """The rank ended the session while the client waited for the user's input."""


class _EndWatcher:
    """While the user types: notices END (or a closed connection) and interrupts the prompt.

    pdb sends nothing while it waits for a line except the answers to completion requests, which
    the completer reads itself while holding ``lock``; anything else is the end of the session.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lock = threading.Lock()
        self.reason: str | None = None
        self._active = False
        self._state = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop_r, self._stop_w = os.pipe()

    def __enter__(self) -> "_EndWatcher":
        with self._state:
            self._active = True
        self._thread = threading.Thread(target=self._run, name="ms-debug-watch", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        with self._state:
            self._active = False
        os.write(self._stop_w, b"!")
        if self._thread is not None:
            self._thread.join()
        os.read(self._stop_r, 64)

    def close(self) -> None:
        os.close(self._stop_r)
        os.close(self._stop_w)

    def _run(self) -> None:
        while True:
            readable, _, _ = select.select([self.sock, self._stop_r], [], [])
            if self._stop_r in readable:
                return
            with self.lock:
                if not select.select([self.sock], [], [], 0)[0]:
                    continue  # a completion's answer, read by the completer
                try:
                    head = self.sock.recv(1, socket.MSG_PEEK)
                except OSError:
                    head = b""
                if head and head != protocol.END:
                    time.sleep(0.05)
                    continue
                reason = "connection closed by the process"
                if head:
                    try:
                        frame = protocol.recv_frame(self.sock)
                        reason = frame[1].decode("utf-8", "replace") if frame else reason
                    except (OSError, protocol.ProtocolError):
                        pass
            with self._state:
                if self._active:
                    self.reason = reason
                    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            return


class _Terminal:
    """Where commands come from and output goes: a readline terminal or a pair of pipes."""

    def __init__(self, interactive: bool, completer: Callable[[str, int], str | None] | None) -> None:
        self.interactive = interactive
        self._pending = ""
        self._history: str | None = None
        if interactive:
            try:
                import readline
            except ImportError:
                readline = None  # type: ignore[assignment]
            if readline is not None:
                self._history = os.environ.get(ENV_HISTORY) or os.path.expanduser("~/.ms_debug_history")
                try:
                    readline.read_history_file(self._history)
                except OSError:
                    pass
                readline.set_history_length(2000)
                readline.set_completer_delims(PDB_DELIMS)
                if completer is not None:
                    readline.set_completer(completer)
                    readline.parse_and_bind("tab: complete")

    def output(self, text: str) -> None:
        if not self.interactive:
            sys.stdout.write(text)
            sys.stdout.flush()
            return
        # Keep the unfinished last line: it is the prompt readline must draw itself.
        text = self._pending + text
        head, sep, self._pending = text.rpartition("\n")
        if sep:
            sys.stdout.write(head + sep)
            sys.stdout.flush()

    def read_line(self, watcher: _EndWatcher) -> str | None:
        """One command, or None at end of input; raises SessionEnded if the rank ends the session
        meanwhile."""
        with watcher:
            try:
                return self._read_line(watcher)
            except KeyboardInterrupt:
                if watcher.reason is not None:
                    sys.stdout.write("\n")
                    raise SessionEnded(watcher.reason) from None
                raise

    def _read_line(self, watcher: _EndWatcher) -> str | None:
        if self.interactive:
            prompt, self._pending = self._pending, ""
            while True:
                try:
                    return input(prompt)
                except KeyboardInterrupt:
                    if watcher.reason is not None:
                        raise
                    sys.stdout.write("\n")  # like a shell: Ctrl-C drops the line, Ctrl-D detaches
                except EOFError:
                    sys.stdout.write("\n")
                    return None
        line = sys.stdin.readline()
        if not line:
            sys.stdout.write("\n")
            sys.stdout.flush()
            return None
        line = line.rstrip("\r\n")
        sys.stdout.write(line + "\n")  # echo, so a piped transcript reads like a terminal one
        sys.stdout.flush()
        return line

    def close(self) -> None:
        """Flush the last partial line and save the history (whatever ended the session)."""
        if self._pending:
            sys.stdout.write(self._pending + "\n")
            sys.stdout.flush()
            self._pending = ""
        if self._history:
            try:
                import readline

                fd = os.open(self._history, os.O_WRONLY | os.O_CREAT, 0o600)
                os.close(fd)
                readline.write_history_file(self._history)
            except OSError:
                pass


def _read_secret(record: SessionRecord, secret_file: str | None) -> bytes | None:
    if secret_file:
        return Path(secret_file).read_bytes().strip()
    return job_secret(Path(record.job_dir), create=False)


def session_secret(record: SessionRecord, secret_file: str | None = None) -> tuple[bytes | None, str]:
    """The job secret for ``record``, or (None, one line saying why not: exit status 3)."""
    try:
        secret = _read_secret(record, secret_file)
    except (OSError, InsecureDirectory) as exc:
        return None, f"cannot read the job secret: {exc}"
    if secret is None:
        return None, (
            f"no secret for job {record.job}: set MS_DEBUG_SECRET as the launcher did, or pass --secret-file "
            f"(no {Path(record.job_dir) / 'secret'})"
        )
    return secret, ""


def connect(
    record: SessionRecord, secret: bytes, request: dict[str, Any] | None = None, timeout: float = 10.0
) -> tuple[socket.socket, dict[str, Any], bytes]:
    """Connect, authenticate and send ``request`` (default: attach). Returns the socket, the
    reply as JSON and its kind (WELCOME or RESULT). Raises PermissionError when the session
    refuses us, ConnectionError when it is gone."""
    path = record.socket_path
    if path is None:
        raise ConnectionError("the session is not waiting for a client")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
        hello = protocol.recv_frame(sock)
        if hello is not None and hello[0] == protocol.DENIED:
            raise PermissionError(hello[1].decode("utf-8", "replace"))  # e.g. not the job owner's uid
        if hello is None or hello[0] != protocol.HELLO:
            raise ConnectionError("the session closed the connection before the handshake")
        info = json.loads(hello[1])
        if info.get("protocol") != protocol.PROTOCOL:
            raise ConnectionError(f"protocol {info.get('protocol')} not supported (this client speaks {protocol.PROTOCOL})")
        protocol.send_frame(sock, protocol.AUTH, protocol.auth_answer(secret, bytes.fromhex(info["nonce"])))
        try:
            protocol.send_frame(sock, protocol.REQUEST, json.dumps(request or {"mode": "attach"}).encode())
        except OSError:
            pass  # refused and closed already: the reason is waiting in our receive buffer
        reply = protocol.recv_frame(sock)
        if reply is None:
            raise ConnectionError("the session closed the connection during the handshake")
        if reply[0] == protocol.DENIED:
            raise PermissionError(reply[1].decode("utf-8", "replace"))
        if reply[0] not in (protocol.WELCOME, protocol.RESULT):
            raise ConnectionError("unexpected handshake reply")
        sock.settimeout(None)
        return sock, json.loads(reply[1]), reply[0]
    except BaseException:
        sock.close()
        raise


def _make_completer(sock: socket.socket, lock: threading.Lock) -> Callable[[str, int], str | None]:
    import readline

    matches: list[str] = []

    def complete(text: str, state: int) -> str | None:
        if state == 0:
            matches.clear()
            request = {
                "text": text,
                "line": readline.get_line_buffer(),
                "begidx": readline.get_begidx(),
                "endidx": readline.get_endidx(),
            }
            with lock:
                try:
                    protocol.send_frame(sock, protocol.COMPLETE, json.dumps(request).encode())
                    frame = protocol.recv_frame(sock)
                except OSError:
                    return None
            if frame is not None and frame[0] == protocol.MATCHES:
                matches.extend(json.loads(frame[1]))
        return matches[state] if state < len(matches) else None

    return complete


def _pending_end_reason(sock: socket.socket) -> str | None:
    """The END reason the process sent while we were waiting for the user's input, if any."""
    sock.settimeout(1.0)
    try:
        while (frame := protocol.recv_frame(sock)) is not None:
            if frame[0] == protocol.END:
                return frame[1].decode("utf-8", "replace")
    except (OSError, protocol.ProtocolError):
        pass
    return None


def _session_loop(sock: socket.socket, terminal: _Terminal, watcher: _EndWatcher) -> int:
    while True:
        try:
            frame = protocol.recv_frame(sock)
        except (OSError, protocol.ProtocolError) as exc:
            _say(f"connection lost ({exc})")
            return EXIT_ERROR
        if frame is None:
            _say("connection closed by the process (it exited?)")
            return EXIT_OK
        kind, payload = frame
        if kind == protocol.OUTPUT:
            terminal.output(payload.decode("utf-8", "replace"))
        elif kind == protocol.READ:
            try:
                line = terminal.read_line(watcher)
            except SessionEnded as ended:
                _say(f"session ended: {ended}")
                return EXIT_OK
            try:
                if line is None:
                    protocol.send_frame(sock, protocol.EOF)
                else:
                    protocol.send_frame(sock, protocol.LINE, line.encode())
            except OSError:
                _say(f"session ended: {_pending_end_reason(sock) or 'connection closed by the process'}")
                return EXIT_OK
        elif kind == protocol.END:
            _say(f"session ended: {payload.decode('utf-8', 'replace')}")
            return EXIT_OK


def wait_for_session(rank: int, pid: int | None, job: str | None, wait: float) -> tuple[SessionRecord | None, str]:
    """``choose_session`` over the live sessions, polling up to ``wait`` seconds for one."""
    deadline = time.monotonic() + max(0.0, wait)
    poll = 0.05
    while True:
        record, why = choose_session(find_sessions(job), rank, pid)
        if record is not None or time.monotonic() >= deadline:
            return record, why
        time.sleep(poll)
        poll = min(0.5, poll * 1.5)


def attach(
    rank: int,
    pid: int | None = None,
    job: str | None = None,
    secret_file: str | None = None,
    wait: float = 0.0,
    interactive: bool | None = None,
    print_only: bool = False,
) -> int:
    """Attach to rank ``rank``'s waiting breakpoint; with ``wait``, first wait up to that many
    seconds for it to appear (so you can attach before the rank gets there). A rank on another
    node is reached through ``$MS_DEBUG_SSH`` (ssh), or with ``print_only`` the command is shown."""
    record, why = wait_for_session(rank, pid, job, wait)
    if record is None:
        _say(why)
        return EXIT_NO_SESSION
    if not record.is_local():
        from tools.debug.remote import run_remote

        args = ["attach", str(record.rank), "--job", record.job, "--pid", str(record.pid)]
        if secret_file:
            args += ["--secret-file", os.path.abspath(secret_file)]
        return run_remote(record.host, args, record.python, record.root, Path(record.job_dir).parent,
                          tty=sys.stdin.isatty(), print_only=print_only, what=f"rank {record.rank}")
    secret, why = session_secret(record, secret_file)
    if secret is None:
        _say(why)
        return EXIT_REFUSED
    try:
        sock, info, _kind = connect(record, secret)
    except PermissionError as exc:
        _say(f"refused by rank {record.rank} pid {record.pid}: {exc}")
        return EXIT_REFUSED
    except (OSError, ValueError, KeyError) as exc:
        _say(f"cannot attach to rank {record.rank} pid {record.pid}: {exc}")
        return EXIT_NO_SESSION
    where = f"{info.get('file')}:{info.get('line')}"
    _say(
        f"attached to rank {info.get('rank')} pid {info.get('pid')} ({info.get('role')}) of job {info.get('job')} "
        f"on {info.get('host')} at {where}; 'detach' or Ctrl-D lets it continue"
    )
    if info.get("exception"):
        _say(f"post mortem: the rank raised {info['exception']}; 'c' lets it end as it would have")
    interactive = sys.stdin.isatty() if interactive is None else interactive
    watcher = _EndWatcher(sock)
    completer = _make_completer(sock, watcher.lock) if interactive else None
    terminal = _Terminal(interactive, completer)
    try:
        return _session_loop(sock, terminal, watcher)
    except KeyboardInterrupt:
        if watcher.reason is not None:
            _say(f"session ended: {watcher.reason}")
        else:
            _say("interrupted: detaching; the process continues at its next stop")
        return EXIT_OK
    finally:
        terminal.close()
        watcher.close()
        sock.close()
