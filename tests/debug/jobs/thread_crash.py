"""A thread of a program raises (no debugger call in the code); the main thread goes on."""
from __future__ import annotations

import threading


def average(items: list[float]) -> float:
    return sum(items) / len(items)


def main() -> None:
    worker = threading.Thread(target=average, args=([],), name="loader")
    worker.start()
    worker.join()
    print("main goes on", flush=True)


if __name__ == "__main__":
    main()
