"""Each rank computes the mean squared value of its shard (its "loss"), stops at ``breakpoint()``
and writes ``result-<rank>.json``. With ``CRASH_RANK=k`` rank k gets an empty shard and raises
ZeroDivisionError in ``mean_loss`` (an uncaught exception: no try/except, no debugger call).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def shard_of(rank: int) -> list[float]:
    if rank == int(os.environ.get("CRASH_RANK", "-1")):
        return []
    return [rank + k / 4 for k in range(4)]


def mean_loss(values: list[float]) -> float:
    total = sum(v * v for v in values)
    return total / len(values)


def main() -> None:
    rank = int(os.environ["RANK"])
    out = Path(sys.argv[1])
    loss = mean_loss(shard_of(rank))
    breakpoint()
    (out / f"result-{rank}.json").write_text(json.dumps({"rank": rank, "loss": loss}))


if __name__ == "__main__":
    main()
