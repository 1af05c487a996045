"""What type promotion (mindtorch patch 0023) costs same-dtype arithmetic, the hot path: run it on a
mindtorch with and one without the patch (docs/type_promotion.md has the figures):

    PYTHONPATH=<dir holding a patched mindtorch> .venv/bin/python tests/runtime/type_promotion_bench.py

Prints two lines: the CPU time of whole ops on 8x8 float32 tensors (best of 15 rounds of 1,000 calls;
kernel launch included, so noisy on a shared machine), then the Python work around the kernel alone
(mindtorch.ops.pointwise's execute replaced by a no-op; best of 7 rounds of 100,000 calls), in us.
"""
from __future__ import annotations

import time
import timeit

import mindtorch as torch
from mindtorch.ops import pointwise


def whole_ops() -> dict[str, float]:
    a, b, c = torch.randn(8, 8), torch.randn(8, 8), torch.randn(8, 8)
    cases = {"a*b": lambda: a * b, "torch.mul(a,b)": lambda: torch.mul(a, b), "a+b": lambda: a + b,
             "a-b": lambda: a - b, "a/b": lambda: a / b, "a*0.5": lambda: a * 0.5,
             "c.add_(b)": lambda: c.add_(b), "c.mul_(1.0)": lambda: c.mul_(1.0)}
    out = {}
    for name, f in cases.items():
        for _ in range(200):
            f()
        best = float("inf")
        for _ in range(15):
            start = time.process_time()
            for _ in range(1000):
                f()
            best = min(best, (time.process_time() - start) / 1000)
        out[name] = best * 1e6
    return out


def python_side() -> dict[str, float]:
    a, b = torch.randn(8, 8), torch.randn(8, 8)
    kernel = pointwise.execute
    pointwise.execute = lambda name, x, *args: x
    try:
        cases = {"a*b": lambda: a * b, "a+b": lambda: a + b, "a-b": lambda: a - b, "a/b": lambda: a / b,
                 "a*0.5": lambda: a * 0.5, "a+1": lambda: a + 1}
        n = 100000
        return {name: min(timeit.repeat(f, number=n, repeat=7)) / n * 1e6 for name, f in cases.items()}
    finally:
        pointwise.execute = kernel


if __name__ == "__main__":
    print("whole op (CPU us):  " + " ".join(f"{k}={v:.1f}" for k, v in whole_ops().items()))
    print("python side (us):   " + " ".join(f"{k}={v:.2f}" for k, v in python_side().items()))
