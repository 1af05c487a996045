"""Which collective each thread of a rank is waiting in, readable from outside the process.

A stack shows *where* a rank blocks; for a hang the question is also *which* collective (and on
which group) it waits in, which a C-level call does not show. A transport wraps each blocking
call::

    from tools.debug.collectives import collective

    with collective("all_reduce", group="tp", bytes=nbytes):
        backend.all_reduce(buf)

While the agent (``tools.debug.agent``) is installed, entering and leaving publish the calls in
progress into a small shared-memory page (``ranks/<host>-<pid>.coll``) that ``python -m
tools.debug stacks`` reads directly: it needs nothing from the rank, so it works even when the
rank holds the GIL inside C code. Without the agent ``collective()`` costs one global lookup.

Page layout: an 8-byte sequence number (odd while a write is in progress), a 4-byte length and
a JSON object ``{thread ident: {"op", "details", "since", "thread"}}``; readers retry on a
changing sequence (a seqlock), so the writer never waits for anyone.
"""
from __future__ import annotations

import json
import mmap
import os
import struct
import threading
import time
from pathlib import Path
from typing import Any

PAGE = 4096
_HEADER = struct.Struct("<QI")

_page: mmap.mmap | None = None
_calls: dict[int, str] = {}  # thread ident -> its entry, already JSON (serialized once, on enter)
_lock = threading.Lock()
_seq = 0


def activate(path: Path) -> None:
    """Create the page at ``path`` (0600) and start publishing (called by the agent)."""
    global _page
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.ftruncate(fd, PAGE)
        _page = mmap.mmap(fd, PAGE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(fd)
    _publish()


def deactivate() -> None:
    """Stop publishing (a forked child must not write into its parent's page)."""
    global _page
    page, _page = _page, None
    _calls.clear()
    if page is not None:
        try:
            page.close()
        except (BufferError, ValueError):
            pass


def _publish() -> None:
    global _seq
    page = _page
    if page is None:
        return
    payload = ("{" + ",".join(_calls.values()) + "}").encode()
    if len(payload) > PAGE - _HEADER.size:
        payload = b"{}"  # hundreds of threads in collectives at once: better nothing than torn JSON
    _seq += 1
    page[0:8] = struct.pack("<Q", _seq * 2 - 1)  # odd: writing
    page[8 : 12 + len(payload)] = struct.pack("<I", len(payload)) + payload
    page[0:8] = struct.pack("<Q", _seq * 2)


def enter(op: str, **details: Any) -> int:
    """Record that this thread now waits in ``op``; returns a token for ``leave``."""
    ident = threading.get_ident()
    if _page is not None:
        entry = {"op": op, "details": details, "since": time.time(), "thread": threading.current_thread().name}
        text = f'"{ident}":' + json.dumps(entry, default=str)
        with _lock:
            _calls[ident] = text
            _publish()
    return ident


def leave(token: int) -> None:
    """The call recorded by ``enter`` returned."""
    if _page is not None:
        with _lock:
            if _calls.pop(token, None) is not None:
                _publish()


class collective:  # noqa: N801 - used like a function: ``with collective("all_reduce"):``
    """Mark the enclosed block as waiting in collective ``op`` (with free-form ``details``).

    A class rather than a generator-based context manager: without the agent, entering and
    leaving cost two attribute checks."""

    __slots__ = ("_op", "_details", "_token")

    def __init__(self, op: str, **details: Any) -> None:
        self._op = op
        self._details = details
        self._token: int | None = None

    def __enter__(self) -> "collective":
        if _page is not None:
            self._token = enter(self._op, **self._details)
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._token is not None:
            leave(self._token)
            self._token = None


def read_page(path: Path, attempts: int = 50) -> dict[int, dict[str, Any]] | None:
    """The calls in progress published at ``path`` (another process's page), or None."""
    try:
        with open(path, "rb") as handle:
            page = mmap.mmap(handle.fileno(), PAGE, mmap.MAP_SHARED, mmap.PROT_READ)
    except (OSError, ValueError):
        return None
    try:
        for _ in range(attempts):
            before, length = _HEADER.unpack(page[: _HEADER.size])
            data = page[_HEADER.size : _HEADER.size + min(length, PAGE - _HEADER.size)]
            after = struct.unpack("<Q", page[0:8])[0]
            if before == after and before % 2 == 0:
                try:
                    return {int(k): v for k, v in json.loads(data or b"{}").items()}
                except ValueError:
                    return None
            time.sleep(0.001)
        return None
    finally:
        page.close()
