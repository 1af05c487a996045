"""Run small mindtorch ops the way a training step does (op, then .shape / .item()) and print, as
JSON, how much CPU the whole process and the calling thread used: with MindSpore's asynchronous
PyNative pipeline, worker threads busy-wait beside the caller; with mindtorch's synchronous CPU
execution (patch 0016) the caller does all the work."""
from __future__ import annotations

import json
import sys
import time

import mindtorch as torch


def main(rounds: int = 400) -> None:
    x = torch.ones(16, 16)
    w = torch.full((16, 16), 0.01)
    total = 0.0
    for _ in range(3):                           # first calls: kernel selection, allocation
        x = torch.tanh(x @ w + 1.0)
    wall, cpu, main_cpu = time.perf_counter(), time.process_time(), time.thread_time()
    for i in range(rounds):
        x = torch.tanh(x @ w + 1.0)
        assert tuple(x.shape) == (16, 16)
        if i % 20 == 0:
            total += float(x.sum().item())
    print(json.dumps({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
                      "main_cpu": time.thread_time() - main_cpu, "total": total}))


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
