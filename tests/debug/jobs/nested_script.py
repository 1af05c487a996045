"""Breakpoints reached while already being debugged, and breakpoints in two threads at once."""
from __future__ import annotations

import threading


def inner(v: int) -> int:
    w = v + 1
    breakpoint()  # INNER: reached during `n` over inner(): must stop here, in the same session
    return w * 10


def outer() -> int:
    a = 1
    breakpoint()  # OUTER
    b = inner(a)
    return b


def worker(n: int, results: dict[int, int]) -> None:
    local = n * 100
    breakpoint()  # WORKER
    results[n] = local + 1


def main() -> None:
    value = outer()
    results: dict[int, int] = {}
    threads = [threading.Thread(target=worker, args=(i, results), name=f"worker-{i}") for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print("outer", value, "workers", sorted(results.items()), flush=True)


if __name__ == "__main__":
    main()
