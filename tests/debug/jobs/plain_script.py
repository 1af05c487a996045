"""A plain single-process Python program (no launcher, no rank variables) with breakpoints.

Stops once at ``breakpoint()``; the test then sets a pdb breakpoint inside the loop, continues to
it, and detaches, which must clear that breakpoint so the remaining iterations run through.
"""
from __future__ import annotations

import sys


def accumulate(n: int) -> int:
    acc = 0
    for i in range(n):
        acc += i * i  # LOOP_BODY
    return acc


def main() -> None:
    secret_value = 1234
    breakpoint()
    print("result", accumulate(5) + secret_value, flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
