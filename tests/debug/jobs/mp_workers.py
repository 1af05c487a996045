"""A rank that stops itself, then starts multiprocessing workers (fork and spawn, like data-loader
workers) that hit breakpoints of their own. Run with RANK set; prints the workers' results."""
from __future__ import annotations

import multiprocessing as mp
import os


def load_batch(index: int, queue) -> None:
    batch = [index * 10 + k for k in range(3)]
    breakpoint()  # WORKER
    queue.put((index, sum(batch), os.getpid()))


def run(method: str, index: int) -> tuple[int, int, int]:
    ctx = mp.get_context(method)
    queue = ctx.Queue()
    proc = ctx.Process(target=load_batch, args=(index, queue))
    proc.start()
    result = queue.get(timeout=600)
    proc.join(timeout=600)
    assert proc.exitcode == 0, proc.exitcode
    return result


def main() -> None:
    step = 0
    breakpoint()  # MAIN
    fork = run("fork", 1)
    spawn = run("spawn", 2)
    print("results", fork[:2], spawn[:2], "main", os.getpid(), flush=True)


if __name__ == "__main__":
    main()
