"""Run inside a converted workspace (``source set_env.sh``): what patches 0007 (MindSpeed / MindSpeed-LLM
on CPU) and 0008 (blas products with beta and alpha) add to mindtorch, case by case, on MindSpore's CPU
backend; and Megatron's roll_tensor as upstream wrote it (it writes through a view).

The cases that are the same code on PyTorch are in mindtorch_compat_cases.py, written against `torch`,
which here is mindtorch through its import proxy (verified below, before any case runs);
mindtorch_compat_reference.py runs them on PyTorch. This file adds what is MindSpore's own: the cases
only mindtorch has (mindtorch's and torch_npu's names, the CPU as 'cuda'), and its side of the cases
whose PyTorch reference is other code (scatter_add's gradient, the fused AdamW kernels,
npu_fusion_attention, upstream's roll_tensor writing through a view). The test (test_mindtorch_compat.py) asserts on
the observations and compares the cases of the same name.

Prints one line ``COMPAT_REPORT {json}``: the device target, and per case either its observations
or ``{"error": traceback}`` (one broken case does not hide the others).
"""
from __future__ import annotations

import json
import os
import sys
import tempfile

import numpy as np

import mindtorch   # first: it installs the `torch` import proxy (mindtorch/torch_proxy.py)
import torch

import mindtorch_compat_cases
from mindtorch_compat_cases import (ADAMW, SCALE, adamw_grads, adamw_params, attention_case, case, dtype_name,
                                    register_adamw, register_roll_tensor, register_scatter_add, run_cases, t,
                                    values)

# the shared cases must exercise mindtorch here, not a real torch: else the comparison is meaningless
if not (mindtorch_compat_cases.ON_MINDTORCH and mindtorch_compat_cases.torch is torch
        and torch.Tensor is mindtorch.Tensor and torch.tensor is mindtorch.tensor):
    raise SystemExit(f"`torch` is not mindtorch's proxy here: {torch!r}")


def raised(fn, *args, **kwargs):
    """'ExceptionType: message' of what fn(*args, **kwargs) raises, or None."""
    try:
        fn(*args, **kwargs)
    except Exception as e:   # noqa: BLE001
        return f"{type(e).__name__}: {e}"
    return None


# mindtorch differentiates scatter_add through the whole src: its part beyond the index gets zeros
register_scatter_add(lambda src, index: src)


# --- fused AdamW: mindtorch's kernels, directly ----------------------------------------------------

def _adamw(api, amsgrad, maximize, lr):
    """Three AdamW steps on two parameters; the parameters after each step."""
    params = adamw_params()
    exp_avgs = [mindtorch.zeros_like(p) for p in params]
    exp_avg_sqs = [mindtorch.zeros_like(p) for p in params]
    max_sqs = [mindtorch.zeros_like(p) for p in params]
    steps = [mindtorch.tensor(0.0) for _ in params]
    trajectory = []
    for step in range(3):
        grads_ = adamw_grads(step)
        steps = [s + 1 for s in steps]          # the caller counts the step, as torch's optimizer does
        if api == "npu_apply_fused_adamw_v2":
            for i, p in enumerate(params):
                mindtorch.npu.npu_apply_fused_adamw_v2(
                    p, grads_[i], exp_avgs[i], exp_avg_sqs[i], max_sqs[i] if amsgrad else None, steps[i],
                    lr=ADAMW["lr"], beta1=ADAMW["beta1"], beta2=ADAMW["beta2"], weight_decay=ADAMW["weight_decay"],
                    eps=ADAMW["eps"], amsgrad=amsgrad, maximize=maximize)
        else:
            # torch's AdamW(fused=True) passes an empty max_exp_avg_sqs list without amsgrad
            mindtorch._fused_adamw_(params, grads_, exp_avgs, exp_avg_sqs, max_sqs if amsgrad else [], steps,
                                    amsgrad=amsgrad, maximize=maximize, **dict(ADAMW, lr=lr))
        trajectory.append([values(p) for p in params])
    return {"params": trajectory}


register_adamw(_adamw)


@case("adamw[top-level name]")
def adamw_top_level():
    return {"same": mindtorch.npu_apply_fused_adamw_v2 is mindtorch.npu.npu_apply_fused_adamw_v2}


# --- the CPU target as the accelerator 'cuda' names ------------------------------------------------

@case("Tensor.type")
def tensor_type():
    x = mindtorch.ones(2)
    names = {dtype_name(dt): x.to(dt).type() for dt in (mindtorch.float32, mindtorch.float16, mindtorch.bfloat16,
                                                         mindtorch.int64, mindtorch.bool)}
    return {"names": names, "cast": dtype_name(x.type(mindtorch.float16).dtype)}


@case("device")
def device():
    on0 = mindtorch.ones(2, device=0)
    return {"is_cpu": mindtorch.ones(2).is_cpu, "device_type": mindtorch.ones(2).device.type,
            "cuda.is_available": mindtorch.cuda.is_available(),
            "ones(device=0)": values(on0), "ones(device=0).device": str(on0.device),
            "max_memory_reserved": mindtorch.cuda.max_memory_reserved()}


@case("host streams")
def host_streams():
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal((8, 8)).astype(np.float32), rng.standard_normal((8, 8)).astype(np.float32)
    res = {"cuda.synchronize": raised(lambda: mindtorch.cuda.current_stream().synchronize()),
           "npu.synchronize": raised(lambda: mindtorch.npu.current_stream().synchronize())}
    for mod in ("cuda", "npu"):
        device_mod = getattr(mindtorch, mod)
        side = device_mod.Stream()
        with device_mod.stream(side):
            y = t(a) @ t(b)
        device_mod.current_stream().synchronize()
        res[f"{mod}.stream() matmul err"] = float(np.abs(y.numpy() - a @ b).max())
    side = mindtorch.cuda.Stream()
    main = mindtorch.cuda.current_stream()
    res["wait_stream"] = raised(lambda: (side.wait_stream(main), main.wait_stream(side)))
    event = side.record_event()
    res["record_event.query"] = event.query()
    res["wait_event"] = raised(lambda: main.wait_event(event))
    res["event.synchronize"] = raised(event.synchronize)
    res["default_stream == current_stream"] = mindtorch.cuda.default_stream() == main
    return res


# --- the torch import proxy, torch.library, utils ----------------------------------------------------

@case("torch proxy")
def torch_proxy():
    import torch  # mindtorch's proxy in a workspace
    res = {"is_proxy": torch is not mindtorch and getattr(torch, "tensor", None) is mindtorch.tensor}
    torch.foo_probe = 1
    res["set"] = getattr(mindtorch, "foo_probe", None)
    del torch.foo_probe
    res["deleted"] = not hasattr(mindtorch, "foo_probe")
    import torch.nn.functional as F  # noqa: N812
    original = mindtorch.nn.functional.silu
    x = t(np.array([-1.0, 2.0], np.float32))
    try:
        F.silu = lambda inp, inplace=False: "patched"
        res["patched function"] = mindtorch.nn.functional.silu(x)
        res["patched, through nn.SiLU"] = mindtorch.nn.SiLU()(x)
    finally:
        torch.nn.functional.silu = original
    res["restored"] = values(mindtorch.nn.functional.silu(x))
    return res


@case("library")
def library():
    from mindtorch.library import Library, impl
    lib = Library("compat_probe", "DEF")
    res = {"define": lib.define("op(Tensor a) -> Tensor"),
           "redefine": raised(lib.define, "op(Tensor a) -> Tensor"),
           "bad kind": raised(Library, "compat_probe", "BAD")}

    def kernel(a):
        return a

    returned = impl(lib, "op", "CPU")(kernel)
    res["impl registers"] = lib.impls.get(("op", "CPU")) is kernel
    res["impl returns the function"] = returned is kernel
    res["impl(qualname)"] = raised(lambda: impl("compat_probe::op2", "CPU")(kernel))
    import torch
    res["torch.library.Library"] = torch.library.Library is Library
    return res


@case("checkpoint._get_autocast_kwargs[in autocast]")
def autocast_kwargs_inside():
    import mindtorch.utils.checkpoint as checkpoint
    with mindtorch.autocast("cuda", dtype=mindtorch.bfloat16):
        device_kwargs, _ = checkpoint._get_autocast_kwargs("cuda")
    return {"enabled": device_kwargs["enabled"], "dtype": dtype_name(device_kwargs["dtype"])}


@case("autograd.recompute_instance")
def recompute_instance():
    return {"recompute": mindtorch.autograd.recompute_instance.recompute}


# --- torch_npu names --------------------------------------------------------------------------------

@case("torch_npu names")
def torch_npu_names():
    import mindtorch.npu.acl as acl
    import mindtorch.npu.contrib.transfer_to_npu  # noqa: F401
    import mindtorch.npu.npu
    from mindtorch.npu._C._distributed_c10d import ProcessGroupHCCL
    from mindtorch.npu.utils.collect_env import get_cann_version
    with tempfile.TemporaryDirectory() as home:
        with open(os.path.join(home, "ascend_toolkit_install.info"), "w") as f:
            f.write("package_name=Ascend-cann-toolkit\nversion=8.0.RC2\narch=x86_64\n")
        cann_from_info = get_cann_version(home)
    return {"acl.get_soc_name": acl.get_soc_name(), "acl.other": raised(lambda: acl.rtGetDevice),
            "get_cann_version": get_cann_version(), "get_cann_version(toolkit)": cann_from_info,
            "hccl_config": ProcessGroupHCCL.Options().hccl_config,
            "npu.npu is npu": mindtorch.npu.npu is mindtorch.npu and sys.modules["mindtorch.npu.npu"] is mindtorch.npu,
            "get_device_name": mindtorch.npu.get_device_name(),
            "npu.Event is cuda.Event": mindtorch.npu.Event is mindtorch.cuda.Event,
            "privateuse1": mindtorch._C._get_privateuse1_backend_name()}


@case("comm_func.all_to_all_v_c")
def all_to_all_v_c():
    from mindtorch.ops.comm_func import all_to_all_v_c as a2a
    x = np.arange(6, dtype=np.float32) * 1.5
    out = mindtorch.zeros(2, 3)
    returned = a2a(out, t(x), [6])
    return {"copy": values(out), "returned": returned,
            "wrong count": raised(a2a, mindtorch.zeros(6), t(x), [5]),
            "not square": raised(a2a, mindtorch.zeros(6), t(x), [2, 2, 2]),
            "two ranks": raised(a2a, mindtorch.zeros(6), t(x), [3, 3, 3, 3])}


@case("num_threads")
def num_threads():
    before = mindtorch.get_num_threads()
    try:
        mindtorch.set_num_threads(3)
        res = {"before": before, "after set(3)": mindtorch.get_num_threads(),
               "set(0)": raised(mindtorch.set_num_threads, 0)}
        res["after set(0)"] = mindtorch.get_num_threads()
    finally:
        mindtorch.set_num_threads(before)
    return res


@case("DataLoader pin-memory thread")
def pin_memory_thread():
    """A DataLoader with a worker and pin_memory: its pin-memory thread calls set_num_threads(1),
    multiprocessing._set_thread_name and, for pin_memory_device='npu' (torch's privateuse1 backend),
    looks the device module up by that name."""
    import mindtorch.multiprocessing  # noqa: F401  (the loader's workers need it; importing Megatron does it)
    from mindtorch.utils.data import DataLoader, TensorDataset
    x = np.arange(24, dtype=np.float32).reshape(6, 4)
    dataset = TensorDataset(t(x), t(np.arange(6)))
    before = mindtorch.get_num_threads()
    res = {}
    try:
        for device in ("", "npu"):
            try:
                it = iter(DataLoader(dataset, batch_size=2, num_workers=1, pin_memory=True, pin_memory_device=device))
                res[device or "default"] = {"batches": [[values(a) for a in batch] for batch in it],
                                            "thread": it._pin_memory_thread.name}
            except Exception as e:   # noqa: BLE001
                res[device or "default"] = {"error": f"{type(e).__name__}: {e}"}
        res["num_threads after"] = mindtorch.get_num_threads()
    finally:
        mindtorch.set_num_threads(before)
    return res


# --- npu_fusion_attention TND with empty sequences ----------------------------------------------------

def _tnd(qlen, kvlen):
    tri = t(np.triu(np.ones((2048, 2048), dtype=np.bool_), 1))
    return attention_case(lambda q, k, v: mindtorch.npu.npu_fusion_attention(
        q, k, v, 2, "TND", atten_mask=tri, scale=SCALE, sparse_mode=3, actual_seq_qlen=qlen,
        actual_seq_kvlen=kvlen)[0])


case("npu_fusion_attention[TND]")(lambda: _tnd([3, 7], [3, 7]))
case("npu_fusion_attention[TND,empty sequence first]")(lambda: _tnd([0, 3, 7], [0, 3, 7]))
case("npu_fusion_attention[TND,empty sequence inside]")(lambda: _tnd([3, 3, 7], [3, 3, 7]))
case("npu_fusion_attention[TND,empty sequence last]")(lambda: _tnd([3, 7, 7], [3, 7, 7]))
case("npu_fusion_attention[TND,queries without keys]")(lambda: _tnd([3, 5, 7], [3, 3, 7]))


# --- Megatron's roll_tensor, as upstream wrote it -----------------------------------------------------

def _upstream(roll_tensor):
    """roll_tensor zeroes the wrapped-around position by filling a select() view in place; rule MEG008
    rewrote it while mindtorch's views were copies, and was removed with patch 0012."""
    import inspect
    return {"fills a select() view": ".select(" in inspect.getsource(roll_tensor)}


register_roll_tensor(_upstream)


# --- the report ---------------------------------------------------------------------------------------

def main():
    import mindspore
    print("COMPAT_REPORT " + json.dumps({"device_target": mindspore.get_context("device_target"),
                                         "cases": run_cases()}, default=repr))


if __name__ == "__main__":
    main()
