"""Four ranks started the way ``torch.multiprocessing.spawn`` starts them: a parent process (no
launcher, no rank variable) spawns one multiprocessing child per rank, and each child sets RANK and
WORLD_SIZE itself. Each rank records when it reached ``breakpoint()`` (before-<rank>) and when it
got past it (after-<rank>.json); run with MS_DEBUG_RANKS=1 MS_DEBUG_WAIT_OTHERS=1.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path


def rank_main(rank: int, world: int, out: Path) -> None:
    os.environ["RANK"], os.environ["WORLD_SIZE"] = str(rank), str(world)
    value = rank * 10
    (out / f"before-{rank}").write_text(repr(time.time()))
    breakpoint()
    (out / f"after-{rank}.json").write_text(json.dumps({"after": time.time(), "value": value + 1}))


def main() -> None:
    out = Path(sys.argv[1])
    ctx = mp.get_context("spawn")
    ranks = [ctx.Process(target=rank_main, args=(rank, 4, out)) for rank in range(4)]
    for proc in ranks:
        proc.start()
    for proc in ranks:
        proc.join()
    sys.exit(max(proc.exitcode for proc in ranks))


if __name__ == "__main__":
    main()
