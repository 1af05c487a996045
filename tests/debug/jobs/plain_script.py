"""A plain single-process Python program (no launcher, no rank variables) with a breakpoint.

It stops once at ``breakpoint()``. Tests then set pdb breakpoints, continue, detach, or make the
process exit while attached. At the end it reports whether anything still traces it (a stale
breakpoint left by a detached session would keep pdb's trace function installed).
"""
from __future__ import annotations

import bdb
import sys


def accumulate(n: int) -> int:
    acc = 0
    for i in range(n):
        acc += i * i  # LOOP_BODY
    return acc


def never_called() -> None:
    pass


def main() -> None:
    secret_value = 1234
    breakpoint()
    result = accumulate(5) + secret_value
    stale = [bp for bp in bdb.Breakpoint.bpbynumber if bp is not None]
    print(f"result {result} tracing {sys.gettrace() is not None} breakpoints {len(stale)}", flush=True)


if __name__ == "__main__":
    main()
