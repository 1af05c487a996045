"""A stand-in for the project's future multi-process transport: a barrier over a Unix socket.

Rank 0 accepts one connection per other rank, then releases them all; a rank that never arrives
keeps the others blocked for real (rank 0 in ``accept``, the others in ``recv``). Like the real
transport will, it reports the call it waits in through ``tools.debug.collectives``.
"""
from __future__ import annotations

import socket
import time
from pathlib import Path

from tools.debug.collectives import collective


def barrier(path: Path, rank: int, world: int, timeout: float = 600.0) -> None:
    with collective("barrier", group="world", size=world):
        if rank == 0:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
                server.bind(str(path))
                server.listen(world)
                peers = [server.accept()[0] for _ in range(world - 1)]  # blocks until every rank came
                for peer in peers:
                    peer.sendall(b"!")
                    peer.close()
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                conn.connect(str(path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                conn.close()
                if time.monotonic() > deadline:
                    raise TimeoutError("rank 0 never opened the barrier") from None
                time.sleep(0.05)
        with conn:
            conn.recv(1)  # blocks until rank 0 releases everybody
