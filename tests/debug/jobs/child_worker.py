"""Helper subprocess of one rank (like a data-loader worker): it inherits the rank's environment,
so it stops at its own breakpoint in a session of its own, labelled with its pid."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def cube_sum(values: list[int]) -> int:
    cubes = [v**3 for v in values]
    breakpoint()  # same MS_DEBUG_RANKS selection as the parent rank
    return sum(cubes)


def main() -> None:
    out, rank, world = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    value = cube_sum(list(range(1, 101))[rank::world])
    tmp = out / "child.json.tmp"
    tmp.write_text(json.dumps({"pid": os.getpid(), "ppid": os.getppid(), "rank": rank, "value": value}))
    os.replace(tmp, out / "child.json")


if __name__ == "__main__":
    main()
