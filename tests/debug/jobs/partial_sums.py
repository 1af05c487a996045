"""A tiny distributed "training" job for the debugger tests (run by a launcher, one process per rank).

Every rank sums the squares of its shard of 1..100, stops at ``breakpoint()`` if selected, and the
ranks exchange their partial sums through files (an all-gather without collectives). The last rank
also starts a helper subprocess (think: data-loader worker) that hits a breakpoint of its own.
Each rank writes ``result-<rank>.json``; the job is correct when every total is 338350.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

DATA = list(range(1, 101))


def shard_sum(rank: int, world: int, data: list[int]) -> int:
    shard = data[rank::world]
    total = sum(x * x for x in shard)
    breakpoint()  # the ranks selected by MS_DEBUG_RANKS stop here
    doubled = total * 2
    return doubled // 2


def write_json(path: Path, obj: object) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj))
    os.replace(tmp, path)


def all_gather(out: Path, rank: int, world: int, value: int, timeout: float = 600.0) -> list[int]:
    write_json(out / f"partial-{rank}.json", {"rank": rank, "value": value})
    deadline = time.monotonic() + timeout
    while True:
        try:
            return [json.loads((out / f"partial-{r}.json").read_text())["value"] for r in range(world)]
        except FileNotFoundError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"rank {rank}: partial sums missing after {timeout} s") from None
            time.sleep(0.05)


def main() -> None:
    rank = int(os.environ["RANK"])
    world = int(os.environ["WORLD_SIZE"])
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    child = None
    if rank == world - 1:
        worker = Path(__file__).with_name("child_worker.py")
        child = subprocess.Popen([sys.executable, str(worker), str(out), str(rank), str(world)])
    partial = shard_sum(rank, world, DATA)
    partials = all_gather(out, rank, world, partial)
    result = {"rank": rank, "pid": os.getpid(), "partial": partial, "total": sum(partials)}
    if child is not None:
        result["child_status"] = child.wait(timeout=600)
        result["child"] = json.loads((out / "child.json").read_text())
    write_json(out / f"result-{rank}.json", result)


if __name__ == "__main__":
    main()
