"""The cases of test_mindtorch_compat.py that are the same code on both sides, written once against `torch`:
imported by mindtorch_compat_check.py, where `torch` is mindtorch through its import proxy
(mindtorch/torch_proxy.py; the check script imports mindtorch first and verifies it), and by
mindtorch_compat_reference.py, where it is PyTorch. Also what both sides share: the seeded inputs, the
helpers, the case registry and the report loop, and the common part of the cases that differ between
the sides (scatter_add's gradient, AdamW, npu_fusion_attention, the MindSpore side's marker that
roll_tensor is upstream's), each script passing in its own part.

Each case is a small function that returns what it observed (values, shapes, names) as JSON.
"""
from __future__ import annotations

import os
import sys
import tempfile
import traceback

import numpy as np
import torch

# True in the workspace, where `torch` is mindtorch's proxy (each script checks its side before any case runs)
ON_MINDTORCH = "mindtorch" in sys.modules and torch.Tensor is sys.modules["mindtorch"].Tensor

SCALE = 0.3                     # softmax scale of the attention cases
ADAMW = dict(lr=0.05, beta1=0.9, beta2=0.95, weight_decay=0.1, eps=1e-8)
ADAMW_VARIANTS = [(False, False), (True, False), (False, True), (True, True)]   # (amsgrad, maximize)
SPLIT_SIZES = {0: [2, 0, 3, 0, 1], 1: [0, 2, 0, 3]}                             # dim -> sizes, with empty chunks
# torch.<op>(input, a, b, beta=, alpha=): the shapes of input, a, b and of the output's cotangent; "input.bcast"
# is an input that broadcasts to the output (a bias row, a batch of one), as Megatron and F.linear pass them
BLAS_SHAPES = {
    "baddbmm": {"input": (2, 3, 4), "input.bcast": (1, 3, 4), "a": (2, 3, 5), "b": (2, 5, 4), "ct": (2, 3, 4)},
    "addmm": {"input": (3, 4), "input.bcast": (4,), "a": (3, 5), "b": (5, 4), "ct": (3, 4)},
    "addbmm": {"input": (3, 4), "input.bcast": (1, 4), "a": (2, 3, 5), "b": (2, 5, 4), "ct": (3, 4)},
    "addmv": {"input": (3,), "input.bcast": (1,), "a": (3, 5), "b": (5,), "ct": (3,)},
    "addr": {"input": (3, 4), "input.bcast": (4,), "a": (3,), "b": (4,), "ct": (3, 4)},
}
# (beta, alpha): swapped pairs tell a swap apart; beta=0 must ignore the input, alpha=0 the product
BLAS_SCALARS = [(1, 1), (0.5, 2.0), (2.0, 0.5), (0.0, 0.3), (1.0, 0.0), (-1.5, 0.25)]


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
    # the blas products with beta and alpha (drawn last: the arrays above stay what they were)
    for op, shapes in BLAS_SHAPES.items():
        for key, shape in shapes.items():
            d[f"{op}.{key}"] = f(*shape)
    d["attn.k"], d["attn.v"] = f(2, 4, 5), f(2, 4, 4)   # 4 keys of dim 5 (q: baddbmm.a), values of dim 4
    return d


INPUTS = inputs()


# --- helpers --------------------------------------------------------------------------------------

def t(a):
    return torch.tensor(a)


def param(a):
    return torch.nn.Parameter(torch.tensor(a))


def values(x):
    return x.detach().numpy().tolist()


def dtype_name(dtype):
    return str(dtype).rsplit(".", 1)[-1].lower()


def grads(loss, params):
    """loss(*params): its value and each parameter's grad. mindtorch differentiates as MindSpore does,
    functionally (mindtorch.autograd.value_and_grad; its backward() leaves the grads unset), PyTorch by
    backward()."""
    if ON_MINDTORCH:
        value = torch.autograd.value_and_grad(loss, params)(*params)
    else:
        value = loss(*params)
        value.backward()
    return float(value), [values(p.grad) for p in params]


CASES = {}


def case(name):
    def register(fn):
        CASES[name] = fn
        return fn
    return register


def run_cases(cases: dict | None = None) -> dict:
    """Per case of ``cases`` (default: this module's registry) its observations, or ``{"error":
    traceback}`` (one broken case does not hide the others; the test names the broken case)."""
    report = {}
    for name, fn in (CASES if cases is None else cases).items():
        try:
            report[name] = fn()
        except Exception:   # noqa: BLE001
            report[name] = {"error": traceback.format_exc()}
    return report


# --- MoE on CPU: scatter_add, empty sums, empty split chunks (and experts' matmuls), histc ---------

def register_scatter_add(differentiated_src):
    """scatter_add with repeated targets and a src larger than the index: the function, the method, in
    place, and the gradients of sum(scatter_add(input, src) * ct), through differentiated_src(src, index)."""
    def scatter_add(dim):
        x, idx, src, ct = (INPUTS[f"scatter{dim}.{k}"] for k in ("input", "index", "src", "ct"))
        inplace = t(x)
        inplace.scatter_add_(dim, t(idx), t(src))
        loss_value, (g_input, g_src) = grads(
            lambda a, s: (torch.scatter_add(a, dim, t(idx), differentiated_src(s, idx)) * t(ct)).sum(),
            [param(x), param(src)])
        return {"out": values(torch.scatter_add(t(x), dim, t(idx), t(src))),
                "method": values(t(x).scatter_add(dim, t(idx), t(src))),
                "inplace": values(inplace), "loss": loss_value, "grad_input": g_input, "grad_src": g_src}

    for dim in (0, 1):
        case(f"scatter_add[dim={dim}]")(lambda dim=dim: scatter_add(dim))


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

    def loss(p):   # over the non-empty chunks: sum(chunk^2 * ct)
        return sum((c * c * w).sum() for c, w, n in zip(torch.split(p, sizes, dim), cts, sizes) if n)
    loss_value, (g,) = grads(loss, [param(x)])
    return {"shapes": [list(c.shape) for c in torch.split(t(x), sizes, dim)], "loss": loss_value, "grad": g}


case("split[dim=0,empty chunks]")(lambda: _split(0))
case("split[dim=1,empty chunks]")(lambda: _split(1))


@case("arange[dtype inference]")
def arange_dtypes():
    """torch infers float32 when any of start/end/step is a float (mindtorch took start's type, so
    arange(9.) was int64 and arange(0, 1, 0.25) divided by a zero step)."""
    res = {}
    for label, args in (("9.", (9.,)), ("3", (3,)), ("0,1,0.25", (0, 1, 0.25)), ("0.,1.,0.25", (0., 1., 0.25)),
                        ("2,10,3", (2, 10, 3)), ("1,2.5,0.5", (1, 2.5, 0.5)), ("tensor(4)", (torch.tensor(4),))):
        r = torch.arange(*args)
        res[label] = {"dtype": dtype_name(r.dtype), "values": values(r)}
    r = torch.arange(5, dtype=torch.float64)
    res["5,float64"] = {"dtype": dtype_name(r.dtype), "values": values(r)}
    return res


@case("split[experts,cat back]")
def split_experts():
    """MoE's expert loop: tokens split by expert, each expert's matmul (empty for two), outputs concatenated."""
    x, w, ct = INPUTS["experts.x"], INPUTS["experts.w"], INPUTS["experts.ct"]
    sizes = SPLIT_SIZES[0]

    def loss(xs, ws):
        outs = [chunk @ ws[e] for e, chunk in enumerate(torch.split(xs, sizes, 0))]
        return (torch.cat(outs, 0) * t(ct)).sum()
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
        products.append(values(torch.zeros(3, 0) @ torch.zeros(0, 2)))
    return {"out": products}


@case("histc[in a differentiated function]")
def histc_in_grad():
    """loss(x, w) = sum(histc(x) * w) + sum(x^2) / 2: histc stops the gradient (x's is x, w's the counts;
    torch.histc has no derivative: its output does not require grad, so it adds nothing to x's gradient)."""
    x, w = INPUTS["histc.x"], INPUTS["histc.w"]

    def loss(xs, ws):
        return (torch.histc(xs, bins=5, min=-2, max=2) * ws).sum() + (xs * xs).sum() / 2
    loss_value, (gx, gw) = grads(loss, [param(x), param(w)])
    return {"counts": values(torch.histc(t(x), bins=5, min=-2, max=2)), "loss": loss_value,
            "grad_x": gx, "grad_w": gw}


# --- fused AdamW ----------------------------------------------------------------------------------

def adamw_params(make=t):
    """The two parameters, fresh."""
    return [make(INPUTS["adamw.p0"]), make(INPUTS["adamw.p1"])]


def adamw_grads(step, scale=1.0):
    """The two parameters' gradients of step 0, 1 or 2, times scale."""
    return [t(INPUTS[f"adamw.g0.{step}"] * scale), t(INPUTS[f"adamw.g1.{step}"] * scale)]


def register_adamw(run):
    """The AdamW cases, each run(api, amsgrad, maximize, lr) -> {"params": the parameters after each of
    three steps}."""
    for api in ("npu_apply_fused_adamw_v2", "_fused_adamw_"):
        for amsgrad, maximize in ADAMW_VARIANTS:
            case(f"adamw[{api},amsgrad={amsgrad},maximize={maximize}]")(
                lambda api=api, a=amsgrad, m=maximize: run(api, a, m, ADAMW["lr"]))
    case("adamw[_fused_adamw_,lr tensor]")(   # torch's _fused_adamw_.tensor_lr
        lambda: run("_fused_adamw_", False, False, torch.tensor(ADAMW["lr"])))


@case("_fused_adamw_[grad_scale,found_inf]")
def fused_adamw_amp():
    """torch._fused_adamw_ as AMP's GradScaler drives it: step 1 with gradients scaled by 4
    (grad_scale=4), step 2 with an overflow (found_inf=1: nothing changes), step 3 plain; the
    parameters and moments after each step."""
    params = adamw_params()
    exp_avgs, exp_avg_sqs = [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params]
    trajectory = []
    for step, (scale, inf) in enumerate(((4.0, 0.0), (1.0, 1.0), (1.0, 0.0))):
        steps = [torch.tensor(float(min(step, 1) + 1)) for _ in params]   # 1, 2 (skipped), 2
        torch._fused_adamw_(params, adamw_grads(step, scale), exp_avgs, exp_avg_sqs, [], steps, amsgrad=False,
                            maximize=False, grad_scale=torch.tensor(scale), found_inf=torch.tensor(inf), **ADAMW)
        trajectory.append([values(x) for x in params + exp_avgs + exp_avg_sqs])
    return {"state": trajectory}


# --- torch.utils ---------------------------------------------------------------------------------------

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


# --- npu_fusion_attention TND with empty sequences ----------------------------------------------------

def attention_case(out):
    """out(q, k, v) on the packed sequences (TND): its value, and the gradients of sum(out * ct)."""
    d = INPUTS
    loss_value, (gq, gk, gv) = grads(lambda q, k, v: (out(q, k, v) * t(d["tnd.ct"])).sum(),
                                     [param(d["tnd.q"]), param(d["tnd.k"]), param(d["tnd.v"])])
    return {"out": values(out(*(t(d[f"tnd.{n}"]) for n in "qkv"))), "loss": loss_value,
            "grad_q": gq, "grad_k": gk, "grad_v": gv}


# --- Megatron's roll_tensor -------------------------------------------------------------------------

def register_roll_tensor(more=lambda roll_tensor: {}):
    """megatron's roll_tensor (the workspace's converted one; on PyTorch the unconverted megatron-core
    0.12.1) on int64 and float32, along each dim: the rolled tensor, its sum, and more(roll_tensor)."""
    def roll(dtype, dims):
        from megatron.core.transformer.multi_token_prediction import roll_tensor
        rolled, total = roll_tensor(t(INPUTS[f"roll.{dtype}"]), shifts=-1, dims=dims)
        return {"rolled": values(rolled), "sum": values(total), "dtype": dtype_name(rolled.dtype),
                **more(roll_tensor)}

    for dtype in ("int64", "float32"):
        for dims in (-1, 0):
            case(f"roll_tensor[{dtype},shifts=-1,dims={dims}]")(lambda dt=dtype, dm=dims: roll(dt, dm))


# --- blas products with beta and alpha: beta * input + alpha * (a @ b) -----------------------------------

def _blas(op, beta, alpha, input_key="input"):
    """torch.<op> with these beta and alpha: the function, the method, the in-place method (on a copy), and
    the gradients of sum(out * ct) with respect to input, a and b."""
    fn = getattr(torch, op)
    x, a, b, ct = (INPUTS[f"{op}.{k}"] for k in (input_key, "a", "b", "ct"))
    inplace = t(np.broadcast_to(x, ct.shape).copy())
    getattr(inplace, op + "_")(t(a), t(b), beta=beta, alpha=alpha)
    loss_value, (gx, ga, gb) = grads(lambda xs, as_, bs: (fn(xs, as_, bs, beta=beta, alpha=alpha) * t(ct)).sum(),
                                     [param(x), param(a), param(b)])
    return {"out": values(fn(t(x), t(a), t(b), beta=beta, alpha=alpha)),
            "method": values(getattr(t(x), op)(t(a), t(b), beta=beta, alpha=alpha)),
            "inplace": values(inplace), "loss": loss_value, "grad_input": gx, "grad_a": ga, "grad_b": gb}


def _blas_beta0(op, fill):
    """beta=0 on an input full of NaN (or inf): torch ignores the input, in the value and in the gradient
    (Megatron's attention scores: baddbmm on torch.empty(...) with beta=0.0)."""
    a, b, ct = (INPUTS[f"{op}.{k}"] for k in ("a", "b", "ct"))
    full = np.full(INPUTS[f"{op}.input"].shape, fill, np.float32)
    fn = getattr(torch, op)
    loss_value, (gx, ga, gb) = grads(lambda xs, as_, bs: (fn(xs, as_, bs, beta=0.0, alpha=0.7) * t(ct)).sum(),
                                     [param(full), param(a), param(b)])
    inplace = t(full)
    getattr(inplace, op + "_")(t(a), t(b), beta=0, alpha=0.7)
    return {"out": values(fn(t(full), t(a), t(b), beta=0, alpha=0.7)), "inplace": values(inplace),
            "loss": loss_value, "grad_input": gx, "grad_a": ga, "grad_b": gb}


for _op in BLAS_SHAPES:
    for _beta, _alpha in BLAS_SCALARS:
        case(f"{_op}[beta={_beta},alpha={_alpha}]")(lambda op=_op, be=_beta, al=_alpha: _blas(op, be, al))
    case(f"{_op}[beta=0.5,alpha=2.0,broadcast input]")(lambda op=_op: _blas(op, 0.5, 2.0, "input.bcast"))
    for _fill in ("nan", "inf"):
        case(f"{_op}[beta=0,{_fill} input]")(lambda op=_op, v=float(_fill): _blas_beta0(op, v))

BLAS_CASES = [name for name in CASES if name.split("[")[0] in BLAS_SHAPES]


@case("baddbmm[attention scores on torch.empty]")
def attention_scores():
    """Megatron's local attention (DotProductAttention): scores = baddbmm(torch.empty buffer, q, k^T,
    beta=0.0, alpha=1/sqrt(d)), softmax, then the values: the output and the gradients of q, k, v (q's and
    k's are exactly zero when the product is lost, as with beta and alpha swapped)."""
    q, k, v, ct = INPUTS["baddbmm.a"], INPUTS["attn.k"], INPUTS["attn.v"], INPUTS["baddbmm.ct"]

    def attend(qs, ks, vs):
        buffer = torch.empty(qs.shape[0], qs.shape[1], ks.shape[1])            # [b, sq, sk], uninitialised
        scores = torch.baddbmm(buffer, qs, ks.transpose(1, 2), beta=0.0, alpha=1.0 / np.sqrt(qs.shape[2]))
        return torch.bmm(torch.softmax(scores, dim=-1), vs)

    loss_value, (gq, gk, gv) = grads(lambda qs, ks, vs: (attend(qs, ks, vs) * t(ct)).sum(),
                                     [param(q), param(k), param(v)])
    return {"out": values(attend(t(q), t(k), t(v))), "loss": loss_value, "grad_q": gq, "grad_k": gk, "grad_v": gv}
