"""A real ``pdb.Pdb`` whose stdin/stdout are an authenticated client connection.

Only the parts that would be wrong in a multi-process job differ from plain pdb:

* end of input, ``detach``, ``quit``/``exit`` let the process continue (like ``c``) and clear
  the breakpoints set in this session: killing one rank, as pdb's ``quit`` does, leaves the
  other ranks blocked in their next collective until the job times out;
* ``restart``/``run`` are refused: they would raise into the training code;
* ``interact`` runs its console over the connection instead of the process's own stdin;
* tab completion is answered here, with pdb's own completers, for the client's readline;
* Ctrl-C delivered to the debugged process ends the session and propagates, so the job can
  still be interrupted while a rank sits at the prompt.
"""
from __future__ import annotations

import code
import io
import json
import pdb
import socket
import sys
import threading
from typing import Callable

from tools.debug import protocol

SKIP_MODULES = ["tools.debug", "tools.debug.*", "bdb", "pdb"]  # never step into the debugger itself


class Channel:
    """Frame I/O on the accepted connection; any socket error marks it closed (never raises)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.closed = False
        self._lock = threading.Lock()

    def send(self, kind: bytes, payload: bytes = b"") -> bool:
        if self.closed:
            return False
        try:
            with self._lock:
                protocol.send_frame(self.sock, kind, payload)
            return True
        except OSError:
            self.closed = True
            return False

    def recv(self) -> tuple[bytes, bytes] | None:
        if self.closed:
            return None
        try:
            frame = protocol.recv_frame(self.sock)
        except OSError:
            frame = None
        if frame is None:
            self.closed = True
        return frame

    def close(self, reason: str | None = None) -> None:
        if reason is not None and not self.closed:
            self.send(protocol.END, reason.encode("utf-8", "replace"))
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class RemoteOutput(io.TextIOBase):
    """pdb's stdout: line-buffered text sent as OUTPUT frames."""

    def __init__(self, channel: Channel) -> None:
        super().__init__()
        self._channel = channel
        self._buffer: list[str] = []

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        self._buffer.append(text)
        if "\n" in text:
            self.flush()
        return len(text)

    def flush(self) -> None:
        if self._buffer:
            data = "".join(self._buffer)
            self._buffer.clear()
            self._channel.send(protocol.OUTPUT, data.encode("utf-8", "replace"))


class RemoteInput(io.TextIOBase):
    """pdb's stdin: each ``readline`` sends READ and waits for the client's LINE (or EOF)."""

    def __init__(self, channel: Channel, output: RemoteOutput, completer: Callable[[dict], list[str]]) -> None:
        super().__init__()
        self._channel = channel
        self._output = output
        self._completer = completer

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def readable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        self._output.flush()
        if not self._channel.send(protocol.READ):
            return ""
        while True:
            frame = self._channel.recv()
            if frame is None:
                return ""
            kind, payload = frame
            if kind == protocol.LINE:
                return payload.decode("utf-8", "replace").rstrip("\r\n") + "\n"
            if kind == protocol.EOF:
                return ""
            if kind == protocol.COMPLETE:
                try:
                    matches = self._completer(json.loads(payload))
                except Exception:  # a completer must never break the session
                    matches = []
                self._channel.send(protocol.MATCHES, json.dumps(matches).encode())


class _RemoteConsole(code.InteractiveConsole):
    def __init__(self, stdin: RemoteInput, stdout: RemoteOutput, namespace: dict) -> None:
        super().__init__(namespace)
        self._in = stdin
        self._out = stdout

    def raw_input(self, prompt: str = "") -> str:
        self._out.write(prompt)
        line = self._in.readline()
        if not line:
            raise EOFError
        return line.rstrip("\n")

    def write(self, data: str) -> None:
        self._out.write(data)


class RemotePdb(pdb.Pdb):
    """pdb over a client connection; ``on_end`` runs once when the session is over."""

    def __init__(self, channel: Channel, on_end: Callable[[str], None]) -> None:
        self.channel = channel
        self._out = RemoteOutput(channel)
        self._in = RemoteInput(channel, self._out, self._complete)
        super().__init__(stdin=self._in, stdout=self._out, skip=SKIP_MODULES, nosigint=True, readrc=False)
        self._on_end = on_end
        self._end_reason: str | None = None
        self.ended = False
        self.interrupted = False

    # --- session end -------------------------------------------------------------------------
    def set_continue(self) -> None:
        super().set_continue()
        if not self.breaks and self._end_reason is None:
            self._end_reason = "continued; the process runs on"

    def interaction(self, frame, traceback) -> None:  # type: ignore[override]
        super().interaction(frame, traceback)
        if self._end_reason is None and self.channel.closed:
            self._detach()  # client vanished while the process ran between two stops
        if self._end_reason is not None:
            self.finish(self._end_reason)

    def finish(self, reason: str) -> None:
        """End the session once: tell the client why, close, let the owner clean up."""
        if self.ended:
            return
        self.ended = True
        self._out.flush()
        self._on_end(reason)

    def _clear_session_breaks(self) -> None:
        for filename, lines in list(self.breaks.items()):
            for line in sorted(set(lines)):
                self.clear_break(filename, line)

    def _detach(self, reason: str = "detached; the process runs on") -> None:
        self._clear_session_breaks()
        self._end_reason = reason
        self.set_continue()

    def _cmdloop(self) -> None:
        try:
            self.allow_kbdint = True
            self.cmdloop()
            self.allow_kbdint = False
        except KeyboardInterrupt:
            self._clear_session_breaks()
            sys.settrace(None)
            self.interrupted = True
            self.finish("the debugged process was interrupted (KeyboardInterrupt)")
            raise

    # --- other ways in ------------------------------------------------------------------------
    def post_mortem(self, tb) -> None:
        """pdb.post_mortem over the connection: the frames of ``tb``, innermost first shown.
        Whatever ends the interaction (c, n, q, detach) ends the session; the caller then lets
        the exception finish the process."""
        self.reset()
        self._end_reason = "post-mortem session over; the process ends with its exception"
        self.interaction(None, tb)
        self.finish(self._end_reason)

    def interact_now(self, frame) -> None:
        """A prompt at ``frame`` right away (a signal interrupted it), not at its next line;
        after ``n``/``s``/``c`` with breakpoints, trace from there as ``set_trace`` would."""
        from tools.debug.run import is_wrapper_frame

        self.reset()
        top = frame
        while top.f_back is not None and not is_wrapper_frame(top.f_back.f_code.co_filename):
            top = top.f_back
        self.botframe = top  # `w` starts at the program's <module>, not in runpy
        self.interaction(frame, None)
        if self.ended:
            return
        while frame is not None:
            frame.f_trace = self.trace_dispatch
            self.botframe = frame
            frame = frame.f_back
        sys.settrace(self.trace_dispatch)

    # --- commands ----------------------------------------------------------------------------
    def do_detach(self, arg: str) -> int:
        """detach
        End this debugging session and let the process continue; breakpoints
        set in this session are cleared. Ctrl-D and end of input do the same."""
        self.message("detached; the process continues")
        self._detach()
        return 1

    def do_quit(self, arg: str) -> int:
        """q(uit) | exit
        Detach (like 'detach'): in a multi-process job killing one rank would
        leave the others blocked in their next collective."""
        self.message("quit detaches from a rank instead of killing it; the process continues")
        self._detach()
        return 1

    do_q = do_exit = do_quit

    def do_EOF(self, arg: str) -> int:
        """EOF
        The client went away (Ctrl-D, end of input, disconnect): detach."""
        self._detach("client disconnected; the process runs on")
        return 1

    def do_run(self, arg: str) -> None:
        """run/restart are not available: the program was not started by this debugger."""
        self.error("restart is not available in a remote session (the job was not started by pdb)")

    do_restart = do_run

    def do_interact(self, arg: str) -> None:
        """interact
        Start an interactive interpreter (over this connection) whose global
        namespace contains all the names found in the current scope; Ctrl-D returns to pdb."""
        namespace = {**self.curframe.f_globals, **self.curframe_locals}
        console = _RemoteConsole(self._in, self._out, namespace)
        saved = sys.stdin, sys.stdout
        sys.stdin, sys.stdout = self._in, self._out  # type: ignore[assignment]
        try:
            console.interact(banner="*interactive*", exitmsg="")
        finally:
            sys.stdin, sys.stdout = saved

    # --- completion --------------------------------------------------------------------------
    def _complete(self, request: dict) -> list[str]:
        """cmd.Cmd.complete's logic, fed by the client's readline state instead of ours."""
        origline = str(request.get("line", ""))
        line = origline.lstrip()
        stripped = len(origline) - len(line)
        begidx = int(request.get("begidx", 0)) - stripped
        endidx = int(request.get("endidx", 0)) - stripped
        text = str(request.get("text", ""))
        if begidx > 0:
            command, _, _ = self.parseline(line)
            compfunc = self.completedefault if not command else getattr(self, "complete_" + command, self.completedefault)
        else:
            compfunc = self.completenames
        return [str(m) for m in (compfunc(text, line, begidx, endidx) or [])][:1000]
