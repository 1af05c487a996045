"""The PyTorch side of mindtorch_compat_check.py: the cases that torch has too, on the same inputs
(``inputs()`` of the check script), computed with PyTorch (CPU) and the unconverted megatron-core.

Run with the reference environment (``testbed.torch_run``). Prints one line
``COMPAT_REFERENCE {json}``: per case the same keys as the check script's case of that name.
"""
from __future__ import annotations

import json
import os
import tempfile
import traceback

import numpy as np
import torch

from mindtorch_compat_check import ADAMW, ADAMW_VARIANTS, SCALE, SPLIT_SIZES, inputs

INPUTS = inputs()
CASES = {}


def case(name):
    def register(fn):
        CASES[name] = fn
        return fn
    return register


def t(a):
    return torch.tensor(a)


def param(a):
    return torch.tensor(a, requires_grad=True)


def values(x):
    return x.detach().numpy().tolist()


def dtype_name(dtype):
    return str(dtype).rsplit(".", 1)[-1].lower()


def grads(loss, params):
    value = loss(*params)
    value.backward()
    return float(value), [values(p.grad) for p in params]


def _scatter_add(dim):
    d = INPUTS
    x, idx, src, ct = (d[f"scatter{dim}.{k}"] for k in ("input", "index", "src", "ct"))
    out = torch.scatter_add(t(x), dim, t(idx), t(src))
    # scatter_add reads the index-shaped leading part of src; torch's own backward rejects a src larger
    # than index (it returns a gradient of index's shape), so differentiate through that part explicitly
    used = tuple(slice(0, n) for n in idx.shape)
    loss_value, (g_input, g_src) = grads(
        lambda a, s: (torch.scatter_add(a, dim, t(idx), s[used]) * t(ct)).sum(), [param(x), param(src)])
    return {"out": values(out), "method": values(out), "inplace": values(out), "loss": loss_value,
            "grad_input": g_input, "grad_src": g_src}


case("scatter_add[dim=0]")(lambda: _scatter_add(0))
case("scatter_add[dim=1]")(lambda: _scatter_add(1))


@case("sum[empty]")
def sum_empty():
    res = {}
    for label, shape in (("0x4", (0, 4)), ("3x0x2", (3, 0, 2))):
        x = torch.zeros(*shape)
        for key, r in ((f"{label}.sum(-1,keepdim)", x.sum(-1, keepdim=True)), (f"{label}.sum(-1)", x.sum(-1)),
                       (f"{label}.sum(0)", x.sum(0)), (f"{label}.sum()", x.sum()),
                       (f"{label}.sum((0,1))", x.sum((0, 1))), (f"{label}.sum(1,keepdim)", x.sum(1, keepdim=True))):
            res[key] = {"shape": list(r.shape), "dtype": dtype_name(r.dtype), "values": values(r)}
    r = torch.zeros(0, 4, dtype=torch.int64).sum(-1, keepdim=True)
    res["0x4.int64.sum(-1,keepdim)"] = {"shape": list(r.shape), "dtype": dtype_name(r.dtype), "values": values(r)}
    return res


def _split(dim):
    x, ct = INPUTS[f"split{dim}.x"], INPUTS[f"split{dim}.ct"]
    sizes = SPLIT_SIZES[dim]
    cts = [t(c) for c in np.split(ct, np.cumsum(sizes)[:-1], axis=dim)]

    def loss(p):
        return sum((c * c * w).sum() for c, w, n in zip(torch.split(p, sizes, dim), cts, sizes) if n)
    loss_value, (g,) = grads(loss, [param(x)])
    return {"shapes": [list(c.shape) for c in torch.split(t(x), sizes, dim)], "loss": loss_value, "grad": g}


case("split[dim=0,empty chunks]")(lambda: _split(0))
case("split[dim=1,empty chunks]")(lambda: _split(1))


@case("split[experts,cat back]")
def split_experts():
    x, w, ct = INPUTS["experts.x"], INPUTS["experts.w"], INPUTS["experts.ct"]
    sizes = SPLIT_SIZES[0]

    def loss(xs, ws):
        outs = [chunk @ ws[e] for e, chunk in enumerate(torch.split(xs, sizes, 0))]
        return (torch.cat(outs, 0) * t(ct)).sum()
    loss_value, (gx, gw) = grads(loss, [param(x), param(w)])
    return {"loss": loss_value, "grad_x": gx, "grad_w": gw}


@case("matmul[empty contraction]")
def matmul_empty_contraction():
    products = []
    for _ in range(4):
        leftover = t(np.full((3, 2), 7.5, np.float32)) * 2
        del leftover
        products.append(values(torch.zeros(3, 0) @ torch.zeros(0, 2)))
    return {"out": products}


@case("histc[in a differentiated function]")
def histc_in_grad():
    # torch.histc has no derivative: its output does not require grad, so it adds nothing to x's gradient
    x, w = INPUTS["histc.x"], INPUTS["histc.w"]

    def loss(xs, ws):
        return (torch.histc(xs, bins=5, min=-2, max=2) * ws).sum() + (xs * xs).sum() / 2
    loss_value, (gx, gw) = grads(loss, [param(x), param(w)])
    return {"counts": values(torch.histc(t(x), bins=5, min=-2, max=2)), "loss": loss_value,
            "grad_x": gx, "grad_w": gw}


def _adamw(amsgrad, maximize):
    d = INPUTS
    params = [param(d["adamw.p0"]), param(d["adamw.p1"])]
    opt = torch.optim.AdamW(params, lr=ADAMW["lr"], betas=(ADAMW["beta1"], ADAMW["beta2"]), eps=ADAMW["eps"],
                            weight_decay=ADAMW["weight_decay"], amsgrad=amsgrad, maximize=maximize, foreach=False)
    trajectory = []
    for step in range(3):
        params[0].grad, params[1].grad = t(d[f"adamw.g0.{step}"]), t(d[f"adamw.g1.{step}"])
        opt.step()
        trajectory.append([values(p) for p in params])
    return {"params": trajectory}


for _api in ("npu_apply_fused_adamw_v2", "_fused_adamw_"):
    for _amsgrad, _maximize in ADAMW_VARIANTS:
        case(f"adamw[{_api},amsgrad={_amsgrad},maximize={_maximize}]")(
            lambda a=_amsgrad, m=_maximize: _adamw(a, m))
case("adamw[_fused_adamw_,lr tensor]")(lambda: _adamw(False, False))


def _fused_adamw_amp():
    d = INPUTS
    params = [t(d["adamw.p0"]), t(d["adamw.p1"])]
    exp_avgs, exp_avg_sqs = [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params]
    trajectory = []
    for step, (scale, inf) in enumerate(((4.0, 0.0), (1.0, 1.0), (1.0, 0.0))):
        grads_ = [t(d[f"adamw.g0.{step}"] * scale), t(d[f"adamw.g1.{step}"] * scale)]
        steps = [torch.tensor(float(min(step, 1) + 1)) for _ in params]
        torch._fused_adamw_(params, grads_, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, maximize=False,
                            grad_scale=torch.tensor(scale), found_inf=torch.tensor(inf), **ADAMW)
        trajectory.append([values(x) for x in params + exp_avgs + exp_avg_sqs])
    return {"state": trajectory}


case("_fused_adamw_[grad_scale,found_inf]")(_fused_adamw_amp)


@case("cpp_extension._get_build_directory")
def build_directory():
    from torch.utils import cpp_extension
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
    from torch.utils import checkpoint
    device_kwargs, cpu_kwargs = checkpoint._get_autocast_kwargs("cuda")
    return {"keys": [sorted(device_kwargs), sorted(cpu_kwargs)],
            "enabled": [device_kwargs["enabled"], cpu_kwargs["enabled"]]}


def _tnd(seqs):
    """Packed sequences attended one by one: seqs = [(q0, q1, kv0, kv1)], causal aligned to the
    bottom right (sparse_mode 3); queries without keys give zeros."""
    d = INPUTS

    def out(q, k, v):
        rows = []
        for q0, q1, kv0, kv1 in seqs:
            if kv1 == kv0:
                rows.append(torch.zeros(q1 - q0, q.shape[1], v.shape[2]))
                continue
            sq, sk = q1 - q0, kv1 - kv0
            allowed = torch.arange(sk)[None, :] <= torch.arange(sq)[:, None] + (sk - sq)
            o = torch.nn.functional.scaled_dot_product_attention(
                q[q0:q1].transpose(0, 1), k[kv0:kv1].transpose(0, 1), v[kv0:kv1].transpose(0, 1),
                attn_mask=allowed, scale=SCALE)
            rows.append(o.transpose(0, 1))
        return torch.cat(rows, 0)
    loss_value, (gq, gk, gv) = grads(lambda q, k, v: (out(q, k, v) * t(d["tnd.ct"])).sum(),
                                     [param(d["tnd.q"]), param(d["tnd.k"]), param(d["tnd.v"])])
    return {"out": values(out(*(t(d[f"tnd.{n}"]) for n in "qkv"))), "loss": loss_value,
            "grad_q": gq, "grad_k": gk, "grad_v": gv}


case("npu_fusion_attention[TND]")(lambda: _tnd([(0, 3, 0, 3), (3, 7, 3, 7)]))
case("npu_fusion_attention[TND,queries without keys]")(lambda: _tnd([(0, 3, 0, 3), (3, 5, 3, 3), (5, 7, 3, 7)]))


def _roll(dtype, dims):
    from megatron.core.transformer.multi_token_prediction import roll_tensor   # unconverted megatron-core 0.12.1
    rolled, total = roll_tensor(t(INPUTS[f"roll.{dtype}"]), shifts=-1, dims=dims)
    return {"rolled": values(rolled), "sum": values(total), "dtype": dtype_name(rolled.dtype)}


for _dtype in ("int64", "float32"):
    for _dims in (-1, 0):
        case(f"roll_tensor[{_dtype},shifts=-1,dims={_dims}]")(lambda dt=_dtype, dm=_dims: _roll(dt, dm))


def main():
    report = {}
    for name, fn in CASES.items():
        try:
            report[name] = fn()
        except Exception:   # noqa: BLE001
            report[name] = {"error": traceback.format_exc()}
    print("COMPAT_REFERENCE " + json.dumps({"torch": torch.__version__, "cases": report}))


if __name__ == "__main__":
    main()
