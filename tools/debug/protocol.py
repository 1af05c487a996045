"""The wire format between a waiting breakpoint and the client.

Frames, not a raw text stream: the client must know exactly when pdb waits for a line (to show
a prompt with line editing, or, when driven through a pipe, to send the next command) and must
be able to ask for tab completions while pdb is waiting. A frame is one kind byte, a 4-byte
big-endian length and the payload.

Handshake (challenge/response, so the secret itself never crosses the socket)::

    server -> HELLO   {"protocol": 2, "nonce": <hex>}      (or DENIED <reason>: not the job's uid)
    client -> AUTH    hex(HMAC-SHA256(secret, "ms-debug-attach-v1:" + nonce))
    client -> REQUEST {"mode": "attach"} | {"mode": "eval", "expr": ...} | {"mode": "continue"}
    server -> WELCOME <session record JSON>  (attach: a pdb session follows)
           or RESULT  {"ok": bool, "value": repr | "error": text, "record": ...}, then close
           or DENIED  <reason>, then close

``eval`` and ``continue`` never start pdb: an evaluation leaves the breakpoint waiting (so one
command can read a value in every stopped rank), ``continue`` lets the rank go on.

Session: the server sends OUTPUT text and READ when pdb wants a line; the client answers with
LINE, COMPLETE (answered by MATCHES) or EOF (Ctrl-D / end of piped input). END carries the
reason the session finished, then the server closes.
"""
from __future__ import annotations

import hashlib
import hmac
import socket
import struct

PROTOCOL = 2
MAX_FRAME = 16 * 1024 * 1024
_HEADER = struct.Struct("!cI")
_AUTH_CONTEXT = b"ms-debug-attach-v1:"

# server -> client
HELLO = b"H"
WELCOME = b"K"
DENIED = b"N"
OUTPUT = b"O"
READ = b"R"
MATCHES = b"M"
END = b"E"
RESULT = b"V"
# client -> server
AUTH = b"A"
LINE = b"L"
COMPLETE = b"C"
EOF = b"X"
REQUEST = b"Q"


class ProtocolError(ConnectionError):
    """The peer sent something that is not a frame of this protocol."""


def send_frame(sock: socket.socket, kind: bytes, payload: bytes = b"") -> None:
    """Send one frame; MSG_NOSIGNAL so a vanished peer raises EPIPE instead of killing us."""
    sock.sendall(_HEADER.pack(kind, len(payload)) + payload, getattr(socket, "MSG_NOSIGNAL", 0))


def _recv_exact(sock: socket.socket, size: int) -> bytes | None:
    chunks = []
    remaining = size
    while remaining:
        chunk = sock.recv(min(remaining, 65536))
        if not chunk:
            if remaining == size:
                return None
            raise ProtocolError("connection closed in the middle of a frame")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def recv_frame(sock: socket.socket) -> tuple[bytes, bytes] | None:
    """The next (kind, payload), or None when the peer closed the connection cleanly."""
    header = _recv_exact(sock, _HEADER.size)
    if header is None:
        return None
    kind, length = _HEADER.unpack(header)
    if length > MAX_FRAME:
        raise ProtocolError(f"frame of {length} bytes is too large")
    payload = _recv_exact(sock, length) if length else b""
    if payload is None:
        raise ProtocolError("connection closed in the middle of a frame")
    return kind, payload


def auth_answer(secret: bytes, nonce: bytes) -> bytes:
    """What a client holding ``secret`` answers to ``nonce``."""
    return hmac.new(secret, _AUTH_CONTEXT + nonce, hashlib.sha256).hexdigest().encode()


def auth_ok(secret: bytes, nonce: bytes, answer: bytes) -> bool:
    """Constant-time check of a client's answer."""
    return hmac.compare_digest(auth_answer(secret, nonce), answer)
