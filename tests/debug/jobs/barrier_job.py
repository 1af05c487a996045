"""Job for ``set_trace(wait_others=True)``: only rank 1 stops; the others must wait at the same point.

Each rank records when it reached the breakpoint (before-<rank>) and when it got past it
(after-<rank>.json, with its value), so the test can prove the others did not run ahead.
The timeout is passed as an argument (JOB_TIMEOUT), exercising the argument path.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import tools.debug


def step(rank: int, out: Path) -> int:
    value = (rank + 1) * 10
    (out / f"before-{rank}").write_text(repr(time.time()))
    tools.debug.set_trace(ranks=[1], wait_others=True, timeout=float(os.environ["JOB_TIMEOUT"]))
    return value + 1


def main() -> None:
    rank = int(os.environ["RANK"])
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    value = step(rank, out)
    after = time.time()
    tmp = out / f"after-{rank}.tmp"
    tmp.write_text(json.dumps({"rank": rank, "after": after, "value": value}))
    os.replace(tmp, out / f"after-{rank}.json")


if __name__ == "__main__":
    main()
