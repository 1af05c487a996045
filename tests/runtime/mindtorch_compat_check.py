"""Run inside a converted workspace (``source set_env.sh``): what patch 0007 (MindSpeed / MindSpeed-LLM
on CPU) adds to mindtorch, case by case, on MindSpore's CPU backend; and Megatron's roll_tensor as
rule MEG008 rewrites it.

Each case is a small function that returns what it observed (values, shapes, names, the exceptions
raised) as JSON; the test (test_mindtorch_compat.py) asserts on them. The cases whose name is also in
mindtorch_compat_reference.py are compared with PyTorch on the same inputs: ``inputs()`` below, fixed
random NumPy arrays, is shared with the reference, which imports this file for it.

Prints one line ``COMPAT_REPORT {json}``: the device target, and per case either its observations
or ``{"error": traceback}`` (one broken case does not hide the others).
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback

import numpy as np

try:
    import mindtorch
except ModuleNotFoundError:     # the PyTorch reference imports this file for inputs() only
    mindtorch = None

SCALE = 0.3                     # softmax scale of the attention cases
ADAMW = dict(lr=0.05, beta1=0.9, beta2=0.95, weight_decay=0.1, eps=1e-8)
ADAMW_VARIANTS = [(False, False), (True, False), (False, True), (True, True)]   # (amsgrad, maximize)
SPLIT_SIZES = {0: [2, 0, 3, 0, 1], 1: [0, 2, 0, 3]}                             # dim -> sizes, with empty chunks


def inputs() -> dict[str, np.ndarray]:
    """Every random input, from one seeded generator: the same arrays on MindSpore and on PyTorch."""
    rng = np.random.default_rng(20240607)
    f = lambda *shape: rng.standard_normal(shape).astype(np.float32)   # noqa: E731
    d = {}
    # scatter_add: index larger than the value range (repeated targets), src larger than index
    d["scatter0.input"], d["scatter0.index"], d["scatter0.src"], d["scatter0.ct"] = (
        f(4, 5), rng.integers(0, 4, (6, 4)), f(7, 5), f(4, 5))
    d["scatter1.input"], d["scatter1.index"], d["scatter1.src"], d["scatter1.ct"] = (
        f(4, 5), rng.integers(0, 5, (3, 7)), f(4, 8), f(4, 5))
    # split with empty chunks
    d["split0.x"], d["split0.ct"] = f(6, 3), f(6, 3)
    d["split1.x"], d["split1.ct"] = f(4, 5), f(4, 5)
    d["experts.x"], d["experts.w"], d["experts.ct"] = f(6, 3), f(5, 3, 2), f(6, 2)   # 5 experts, 2 get nothing
    # histc inside a differentiated function
    d["histc.x"], d["histc.w"] = 1.5 * f(12), f(5)
    # AdamW: two parameters, three steps of gradients
    d["adamw.p0"], d["adamw.p1"] = f(4, 3), f(5)
    for step in range(3):
        d[f"adamw.g0.{step}"], d[f"adamw.g1.{step}"] = f(4, 3), f(5)
    # packed sequences (TND): 7 tokens, 2 heads, head dim 4
    d["tnd.q"], d["tnd.k"], d["tnd.v"], d["tnd.ct"] = f(7, 2, 4), f(7, 2, 4), f(7, 2, 4), f(7, 2, 4)
    # Megatron's roll_tensor
    d["roll.int64"] = rng.integers(1, 100, (3, 6)).astype(np.int64)
    d["roll.float32"] = f(4, 5)
    return d


# --- helpers --------------------------------------------------------------------------------------

def t(a):
    return mindtorch.tensor(a)


def param(a):
    return mindtorch.nn.Parameter(mindtorch.tensor(a))


def values(x):
    return x.detach().numpy().tolist()


def dtype_name(dtype):
    return str(dtype).rsplit(".", 1)[-1].lower()


def raised(fn, *args, **kwargs):
    """'ExceptionType: message' of what fn(*args, **kwargs) raises, or None."""
    try:
        fn(*args, **kwargs)
    except Exception as e:   # noqa: BLE001
        return f"{type(e).__name__}: {e}"
    return None


def grads(loss, params):
    """mindtorch.autograd.value_and_grad of loss(*params): the loss value and each parameter's grad."""
    value = mindtorch.autograd.value_and_grad(loss, params)(*params)
    return float(value), [values(p.grad) for p in params]


CASES = {}


def case(name):
    def register(fn):
        CASES[name] = fn
        return fn
    return register


# --- MoE on CPU: scatter_add, empty sums, empty split chunks (and experts' matmuls), histc ---------

def _scatter_add(dim):
    d = INPUTS
    x, idx, src, ct = (d[f"scatter{dim}.{k}"] for k in ("input", "index", "src", "ct"))
    inplace = t(x)
    inplace.scatter_add_(dim, t(idx), t(src))
    loss_value, (g_input, g_src) = grads(
        lambda a, s: (mindtorch.scatter_add(a, dim, t(idx), s) * t(ct)).sum(), [param(x), param(src)])
    return {"out": values(mindtorch.scatter_add(t(x), dim, t(idx), t(src))),
            "method": values(t(x).scatter_add(dim, t(idx), t(src))),
            "inplace": values(inplace), "loss": loss_value, "grad_input": g_input, "grad_src": g_src}


case("scatter_add[dim=0]")(lambda: _scatter_add(0))
case("scatter_add[dim=1]")(lambda: _scatter_add(1))


@case("sum[empty]")
def sum_empty():
    res = {}
    for label, shape in (("0x4", (0, 4)), ("3x0x2", (3, 0, 2))):
        x = mindtorch.zeros(*shape)
        for key, r in ((f"{label}.sum(-1,keepdim)", x.sum(-1, keepdim=True)), (f"{label}.sum(-1)", x.sum(-1)),
                       (f"{label}.sum(0)", x.sum(0)), (f"{label}.sum()", x.sum()),
                       (f"{label}.sum((0,1))", x.sum((0, 1))), (f"{label}.sum(1,keepdim)", x.sum(1, keepdim=True))):
            res[key] = {"shape": list(r.shape), "dtype": dtype_name(r.dtype), "values": values(r)}
    r = mindtorch.zeros(0, 4, dtype=mindtorch.int64).sum(-1, keepdim=True)
    res["0x4.int64.sum(-1,keepdim)"] = {"shape": list(r.shape), "dtype": dtype_name(r.dtype), "values": values(r)}
    return res


def _split(dim):
    x, ct = INPUTS[f"split{dim}.x"], INPUTS[f"split{dim}.ct"]
    sizes = SPLIT_SIZES[dim]
    cts = [t(c) for c in np.split(ct, np.cumsum(sizes)[:-1], axis=dim)]

    def loss(p):   # over the non-empty chunks: sum(chunk^2 * ct)
        return sum((c * c * w).sum() for c, w, n in zip(mindtorch.split(p, sizes, dim), cts, sizes) if n)
    loss_value, (g,) = grads(loss, [param(x)])
    return {"shapes": [list(c.shape) for c in mindtorch.split(t(x), sizes, dim)], "loss": loss_value, "grad": g}


case("split[dim=0,empty chunks]")(lambda: _split(0))
case("split[dim=1,empty chunks]")(lambda: _split(1))


@case("split[experts,cat back]")
def split_experts():
    """MoE's expert loop: tokens split by expert, each expert's matmul (empty for two), outputs concatenated."""
    x, w, ct = INPUTS["experts.x"], INPUTS["experts.w"], INPUTS["experts.ct"]
    sizes = SPLIT_SIZES[0]

    def loss(xs, ws):
        outs = [chunk @ ws[e] for e, chunk in enumerate(mindtorch.split(xs, sizes, 0))]
        return (mindtorch.cat(outs, 0) * t(ct)).sum()
    loss_value, (gx, gw) = grads(loss, [param(x), param(w)])
    return {"loss": loss_value, "grad_x": gx, "grad_w": gw}


@case("matmul[empty contraction]")
def matmul_empty_contraction():
    """[3, 0] @ [0, 2] is zeros: the weight gradient (tokens^T @ grad_output) of an expert without tokens.
    A freed buffer of the result's size, as a training step leaves them, is made before each product."""
    products = []
    for _ in range(4):
        leftover = t(np.full((3, 2), 7.5, np.float32)) * 2
        del leftover
        products.append(values(mindtorch.zeros(3, 0) @ mindtorch.zeros(0, 2)))
    return {"out": products}


@case("histc[in a differentiated function]")
def histc_in_grad():
    """loss(x, w) = sum(histc(x) * w) + sum(x^2) / 2: histc stops the gradient (x's is x, w's the counts)."""
    x, w = INPUTS["histc.x"], INPUTS["histc.w"]

    def loss(xs, ws):
        return (mindtorch.histc(xs, bins=5, min=-2, max=2) * ws).sum() + (xs * xs).sum() / 2
    loss_value, (gx, gw) = grads(loss, [param(x), param(w)])
    return {"counts": values(mindtorch.histc(t(x), bins=5, min=-2, max=2)), "loss": loss_value,
            "grad_x": gx, "grad_w": gw}


# --- fused AdamW ----------------------------------------------------------------------------------

def _adamw(api, amsgrad, maximize, lr=ADAMW["lr"]):
    """Three AdamW steps on two parameters; the parameters after each step."""
    d = INPUTS
    params = [t(d["adamw.p0"]), t(d["adamw.p1"])]
    exp_avgs = [mindtorch.zeros_like(p) for p in params]
    exp_avg_sqs = [mindtorch.zeros_like(p) for p in params]
    max_sqs = [mindtorch.zeros_like(p) for p in params]
    steps = [mindtorch.tensor(0.0) for _ in params]
    trajectory = []
    for step in range(3):
        grads_ = [t(d[f"adamw.g0.{step}"]), t(d[f"adamw.g1.{step}"])]
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


for _api in ("npu_apply_fused_adamw_v2", "_fused_adamw_"):
    for _amsgrad, _maximize in ADAMW_VARIANTS:
        case(f"adamw[{_api},amsgrad={_amsgrad},maximize={_maximize}]")(
            lambda api=_api, a=_amsgrad, m=_maximize: _adamw(api, a, m))
case("adamw[_fused_adamw_,lr tensor]")(   # torch's _fused_adamw_.tensor_lr
    lambda: _adamw("_fused_adamw_", False, False, lr=mindtorch.tensor(ADAMW["lr"])))


def _fused_adamw_amp():
    """torch._fused_adamw_ as AMP's GradScaler drives it: step 1 with gradients scaled by 4
    (grad_scale=4), step 2 with an overflow (found_inf=1: nothing changes), step 3 plain; the
    parameters and moments after each step."""
    d = INPUTS
    params = [t(d["adamw.p0"]), t(d["adamw.p1"])]
    exp_avgs, exp_avg_sqs = [mindtorch.zeros_like(p) for p in params], [mindtorch.zeros_like(p) for p in params]
    trajectory = []
    for step, (scale, inf) in enumerate(((4.0, 0.0), (1.0, 1.0), (1.0, 0.0))):
        grads_ = [t(d[f"adamw.g0.{step}"] * scale), t(d[f"adamw.g1.{step}"] * scale)]
        steps = [mindtorch.tensor(float(min(step, 1) + 1)) for _ in params]   # 1, 2 (skipped), 2
        mindtorch._fused_adamw_(params, grads_, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, maximize=False,
                                grad_scale=mindtorch.tensor(scale), found_inf=mindtorch.tensor(inf), **ADAMW)
        trajectory.append([values(x) for x in params + exp_avgs + exp_avg_sqs])
    return {"state": trajectory}


case("_fused_adamw_[grad_scale,found_inf]")(_fused_adamw_amp)


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


@case("cpp_extension._get_build_directory")
def build_directory():
    from mindtorch.utils import cpp_extension
    saved = {k: os.environ.get(k) for k in ("TORCH_EXTENSIONS_DIR", "XDG_CACHE_HOME")}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["TORCH_EXTENSIONS_DIR"] = os.path.join(tmp, "ext")
            path = cpp_extension._get_build_directory("compat_op", False)
            res = {"TORCH_EXTENSIONS_DIR": os.path.relpath(path, tmp), "created": os.path.isdir(path)}
            del os.environ["TORCH_EXTENSIONS_DIR"]
            os.environ["XDG_CACHE_HOME"] = os.path.join(tmp, "cache")
            path = cpp_extension._get_build_directory("compat_op", False)
            res["default root"] = os.path.relpath(path, tmp)
            res["default root created"] = os.path.isdir(path)
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    return res


@case("checkpoint._get_autocast_kwargs")
def autocast_kwargs():
    import mindtorch.utils.checkpoint as checkpoint
    device_kwargs, cpu_kwargs = checkpoint._get_autocast_kwargs("cuda")
    return {"keys": [sorted(device_kwargs), sorted(cpu_kwargs)],
            "enabled": [device_kwargs["enabled"], cpu_kwargs["enabled"]]}


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
    d = INPUTS
    tri = t(np.triu(np.ones((2048, 2048), dtype=np.bool_), 1))

    def out(q, k, v):
        return mindtorch.npu.npu_fusion_attention(q, k, v, 2, "TND", atten_mask=tri, scale=SCALE, sparse_mode=3,
                                                  actual_seq_qlen=qlen, actual_seq_kvlen=kvlen)[0]
    qkv = [param(d["tnd.q"]), param(d["tnd.k"]), param(d["tnd.v"])]
    loss_value, (gq, gk, gv) = grads(lambda q, k, v: (out(q, k, v) * t(d["tnd.ct"])).sum(), qkv)
    return {"out": values(out(*(t(d[f"tnd.{n}"]) for n in "qkv"))), "loss": loss_value,
            "grad_q": gq, "grad_k": gk, "grad_v": gv}


case("npu_fusion_attention[TND]")(lambda: _tnd([3, 7], [3, 7]))
case("npu_fusion_attention[TND,empty sequence first]")(lambda: _tnd([0, 3, 7], [0, 3, 7]))
case("npu_fusion_attention[TND,empty sequence inside]")(lambda: _tnd([3, 3, 7], [3, 3, 7]))
case("npu_fusion_attention[TND,empty sequence last]")(lambda: _tnd([3, 7, 7], [3, 7, 7]))
case("npu_fusion_attention[TND,queries without keys]")(lambda: _tnd([3, 5, 7], [3, 3, 7]))


# --- Megatron's roll_tensor (MEG008) ------------------------------------------------------------------

def _roll(dtype, dims):
    import inspect
    from megatron.core.transformer.multi_token_prediction import roll_tensor
    rolled, total = roll_tensor(t(INPUTS[f"roll.{dtype}"]), shifts=-1, dims=dims)
    return {"rolled": values(rolled), "sum": values(total), "dtype": dtype_name(rolled.dtype),
            "rewritten (MEG008)": "inserted" in inspect.getsource(roll_tensor)}


for _dtype in ("int64", "float32"):
    for _dims in (-1, 0):
        case(f"roll_tensor[{_dtype},shifts=-1,dims={_dims}]")(lambda dt=_dtype, dm=_dims: _roll(dt, dm))


# --- the report ---------------------------------------------------------------------------------------

INPUTS = inputs()


def main():
    import mindspore
    report = {}
    for name, fn in CASES.items():
        try:
            report[name] = fn()
        except Exception:   # noqa: BLE001  (reported: the test names the broken case)
            report[name] = {"error": traceback.format_exc()}
    print("COMPAT_REPORT " + json.dumps({"device_target": mindspore.get_context("device_target"), "cases": report},
                                        default=repr))


if __name__ == "__main__":
    main()
