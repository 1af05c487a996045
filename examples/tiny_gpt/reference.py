"""The PyTorch reference run of train.py: unconverted megatron-core 0.12.1 on PyTorch's CPU.

Megatron-core assumes CUDA. These shims, and nothing else, let it run on a CPU-only PyTorch:

1. ``CudaToCpu``: a ``TorchFunctionMode`` that maps ``device="cuda"`` / ``device=<int>`` in torch
   calls (factories, ``.to``, ``.cuda()``) to the CPU, and ``Tensor.type()`` names a CPU tensor's
   CUDA type (Megatron's optimizers and gradient clipping check for ``torch.cuda.FloatTensor``);
2. ``torch.cuda.current_device`` returns ``"cpu"`` (Megatron passes it as a device); CUDA streams are
   PyTorch's CPU streams (the MoE alltoall dispatcher makes a side stream for its device-to-host copies)
   and ``torch.cuda.synchronize`` has nothing to wait for (the pipeline's p2p calls it after its sends);
3. the CUDA RNG state functions Megatron's RNG tracker uses read and write the CPU generator.

Usage: python examples/tiny_gpt/reference.py --out ref.json  (PYTHONPATH: megatron-core 0.12.1); it takes
train.py's options (``--config``, ``--steps``, ``--out-dir``, ``--tp``, ...). Several processes:
``torchrun --nproc-per-node 2 examples/tiny_gpt/reference.py --tp 2 --out-dir D`` (gloo).
"""
from __future__ import annotations

import contextlib
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
        result = func(*args, **kwargs)
        if getattr(func, "__name__", "") == "type" and len(args) == 1 and not kwargs and isinstance(result, str):
            return result.replace("torch.", "torch.cuda.", 1)      # torch.FloatTensor -> torch.cuda.FloatTensor
        return result


class CpuStream:
    """A CUDA stream on the CPU: work is done when it is issued, so waiting and synchronising are no-ops."""
    DEFAULT: "CpuStream"

    def __init__(self, device=None, priority=0, **kwargs):
        pass

    def wait_stream(self, stream) -> None:
        pass

    def synchronize(self) -> None:
        pass

    @staticmethod
    def context(stream):
        return contextlib.nullcontext()


CpuStream.DEFAULT = CpuStream()


def install() -> None:
    torch.cuda.current_device = lambda: "cpu"
    torch.cuda.get_rng_state = lambda device="cuda": torch.get_rng_state()
    torch.cuda.set_rng_state = lambda state, device="cuda": torch.set_rng_state(state)
    torch.cuda.manual_seed = lambda seed: None
    torch.cuda.Stream, torch.cuda.stream = CpuStream, CpuStream.context
    torch.cuda.current_stream = lambda device=None: CpuStream.DEFAULT
    torch.cuda.synchronize = lambda device=None: None
    import megatron.core.tensor_parallel.random as rnd
    rnd._get_cuda_rng_state = lambda device="cuda", clone=False, graph_safe=False: torch.get_rng_state()
    rnd._set_cuda_rng_state = lambda state, device=-1, graph_safe=False: torch.set_rng_state(state)
    CudaToCpu().__enter__()


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    install()
    import train
    train.main()
