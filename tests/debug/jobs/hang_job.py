"""A 4-rank job that hangs the way distributed jobs do, with no debugger call in its code.

Ranks 0, 2 and 3 enter a barrier (``toy_transport``); rank 1 is stuck in ``load_batch``, sleeping
until the file ``<out>/go`` appears, so the others block in the barrier. Rank 0 also has a
helper thread waiting on an event. Each rank writes ``result-<rank>.json`` once past the barrier.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

from toy_transport import barrier


def load_batch(out: Path) -> int:
    waited = 0
    while not (out / "go").exists():
        time.sleep(0.2)  # rank 1 is stuck here
        waited += 1
    return waited


def heartbeat(stop: threading.Event) -> None:
    stop.wait()


def main() -> None:
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    out = Path(sys.argv[1])
    stop = threading.Event()
    if rank == 0:
        threading.Thread(target=heartbeat, args=(stop,), name="heartbeat", daemon=True).start()
    value = (rank + 1) * 100
    if rank == 1:
        value += load_batch(out) * 0
    (out / f"entering-{rank}").write_text(str(os.getpid()))
    barrier(out / "barrier.sock", rank, world)
    stop.set()
    (out / f"result-{rank}.json").write_text(json.dumps({"rank": rank, "value": value}))


if __name__ == "__main__":
    main()
