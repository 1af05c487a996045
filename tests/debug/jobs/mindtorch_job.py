"""Converted-code style job: ``import torch`` resolved by mindtorch on MindSpore (CPU here).

Each rank builds a tensor, stops at ``breakpoint()`` if selected, and writes its reduced value.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import mindtorch  # noqa: F401  - makes `import torch` resolve to mindtorch, as in a converted workspace
import torch


def rank_tensor(rank: int) -> float:
    weights = torch.arange(6, dtype=torch.float32).reshape(2, 3) * (rank + 1)
    activations = torch.tanh(weights / 10)
    breakpoint()
    return float(activations.sum().item())


def main() -> None:
    rank = int(os.environ["RANK"])
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    value = rank_tensor(rank)
    (out / f"value-{rank}.json").write_text(json.dumps({"rank": rank, "value": value}))


if __name__ == "__main__":
    main()
