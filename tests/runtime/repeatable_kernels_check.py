"""Run inside a converted workspace (``source set_env.sh``): the ops that add into repeated positions
(Megatron's MoE unpermute and the backward of its permute, embedding gradients, index_put with
accumulate), each run REPEATS times on the same inputs at sizes where a kernel that adds from several
threads without synchronisation shows it: every repetition must give the same bits, and the float32
result must agree with a float64 NumPy reference.

Prints one line ``REPEATABLE_REPORT {json}``: per case, the number of distinct results over the
repetitions and the largest error relative to the reference's largest magnitude.
"""
from __future__ import annotations

import hashlib
import json
import traceback

import numpy as np

import mindtorch as torch

REPEATS = 8
RNG = np.random.default_rng(7)
# Megatron's unpermute at a small LLM's size: 256 permuted token copies (top-2 of 128 tokens) summed back
# into 64 rows of hidden size 4096; and the same in a narrow, tall shape
ROWS, HIDDEN, COPIES = 64, 4096, 256


def _rows(n: int) -> np.ndarray:
    return RNG.integers(0, ROWS, size=n).astype(np.int64)


def _add_rows(index: np.ndarray, src: np.ndarray, rows: int = ROWS) -> np.ndarray:
    out = np.zeros((rows,) + src.shape[1:], np.float64)
    np.add.at(out, index, src.astype(np.float64))
    return out


def cases() -> dict:
    """name -> (function of no arguments returning a NumPy array, float64 reference)."""
    idx = _rows(COPIES)
    src = RNG.standard_normal((COPIES, HIDDEN)).astype(np.float32)
    wide_index = np.broadcast_to(idx[:, None], src.shape)
    tall_idx = RNG.integers(0, 8, size=200_000).astype(np.int64)
    tall_src = RNG.standard_normal(200_000).astype(np.float32)
    ct = RNG.standard_normal((COPIES, HIDDEN)).astype(np.float32)

    def scatter_add_():
        index = torch.tensor(idx).unsqueeze(1).expand(-1, HIDDEN)      # as moe_utils.unpermute does
        return torch.zeros(ROWS, HIDDEN).scatter_add_(0, index, torch.tensor(src)).numpy()

    def scatter_add_dim1():
        return torch.zeros(HIDDEN, ROWS).scatter_add(1, torch.tensor(wide_index.T.copy()),
                                                     torch.tensor(src.T.copy())).numpy()

    def scatter_reduce_sum():
        return torch.zeros(8).scatter_reduce(0, torch.tensor(tall_idx), torch.tensor(tall_src), "sum").numpy()

    def index_add_():
        return torch.zeros(ROWS, HIDDEN).index_add_(0, torch.tensor(idx), torch.tensor(src)).numpy()

    def index_put_accumulate():
        return torch.zeros(ROWS, HIDDEN).index_put_((torch.tensor(idx),), torch.tensor(src), accumulate=True).numpy()

    def index_select_backward():            # the permute's backward: gradients of repeated rows add up
        x = torch.nn.Parameter(torch.zeros(ROWS, HIDDEN))
        (x.index_select(0, torch.tensor(idx)) * torch.tensor(ct)).sum().backward()
        return x.grad.numpy()

    def embedding_backward():
        weight = torch.nn.Parameter(torch.zeros(ROWS, HIDDEN))
        (torch.nn.functional.embedding(torch.tensor(idx), weight) * torch.tensor(ct)).sum().backward()
        return weight.grad.numpy()

    unpermuted = _add_rows(idx, src)
    return {
        "scatter_add_ (MoE unpermute)": (scatter_add_, unpermuted),
        "scatter_add dim=1": (scatter_add_dim1, unpermuted.T),
        "scatter_reduce sum, 200000 into 8": (scatter_reduce_sum, _add_rows(tall_idx, tall_src, 8)),
        "index_add_": (index_add_, unpermuted),
        "index_put_ accumulate": (index_put_accumulate, unpermuted),
        "index_select backward": (index_select_backward, _add_rows(idx, ct)),
        "embedding backward": (embedding_backward, _add_rows(idx, ct)),
    }


def main() -> None:
    report = {}
    for name, (fn, ref) in cases().items():
        try:
            results = [fn() for _ in range(REPEATS)]
            scale = max(float(np.abs(ref).max()), 1.0)
            report[name] = {
                "distinct": len({hashlib.sha256(np.ascontiguousarray(r).tobytes()).hexdigest() for r in results}),
                "max_error": max(float(np.abs(r.astype(np.float64) - ref).max()) for r in results) / scale,
            }
        except Exception:   # noqa: BLE001  (reported per case; the others still run)
            report[name] = {"error": traceback.format_exc()[-1500:]}
    print("REPEATABLE_REPORT " + json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
