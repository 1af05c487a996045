"""The PyTorch reference run of train.py: unconverted megatron-core 0.12.1 on PyTorch's CPU.

Megatron-core assumes CUDA. These shims, and nothing else, let it run on a CPU-only PyTorch:

1. ``CudaToCpu``: a ``TorchFunctionMode`` that maps ``device="cuda"`` / ``device=<int>`` in torch
   calls (factories, ``.to``, ``.cuda()``) to the CPU;
2. ``torch.cuda.current_device`` returns ``"cpu"`` (Megatron passes it as a device);
3. the CUDA RNG state functions Megatron's RNG tracker uses read and write the CPU generator.

Usage: python examples/tiny_gpt/reference.py --out ref.json  (PYTHONPATH: megatron-core 0.12.1)
"""
from __future__ import annotations

import os
import sys

import torch
from torch.overrides import TorchFunctionMode


def _cpu(value):
    if isinstance(value, int) and not isinstance(value, bool):
        return torch.device("cpu")
    if isinstance(value, (str, torch.device)) and str(value).startswith("cuda"):
        return torch.device("cpu")
    return value


class CudaToCpu(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if "device" in kwargs:
            kwargs["device"] = _cpu(kwargs["device"])
        if getattr(func, "__name__", "") == "cuda":
            return args[0]
        if getattr(func, "__name__", "") == "to" and len(args) > 1:
            args = (args[0], _cpu(args[1]), *args[2:])
        return func(*args, **kwargs)


def install() -> None:
    torch.cuda.current_device = lambda: "cpu"
    torch.cuda.get_rng_state = lambda device="cuda": torch.get_rng_state()
    torch.cuda.set_rng_state = lambda state, device="cuda": torch.set_rng_state(state)
    torch.cuda.manual_seed = lambda seed: None
    import megatron.core.tensor_parallel.random as rnd
    rnd._get_cuda_rng_state = lambda device="cuda", clone=False, graph_safe=False: torch.get_rng_state()
    rnd._set_cuda_rng_state = lambda state, device=-1, graph_safe=False: torch.set_rng_state(state)
    CudaToCpu().__enter__()


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    install()
    import train
    train.main()
