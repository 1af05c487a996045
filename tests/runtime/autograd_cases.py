"""PyTorch's autograd semantics, case by case, written once against `torch`: run on PyTorch (the
reference, .venv-torch) and on mindtorch in the converted workspace (``--mindtorch``: `torch` is then
mindtorch's import proxy, on MindSpore's C++ engine through patch 0011). test_autograd_semantics.py runs
both and compares; bench/autograd_engine_probe.py imports these cases too.

    python tests/runtime/autograd_cases.py [--mindtorch]    # prints AUTOGRAD_REPORT {json}

Each case returns what it observed (values, gradients, flags, call orders, which calls raised) for one
dtype; numbers are compared within the dtype's tolerance (float64 1e-6, float32 1e-5), the rest exactly.
"""
from __future__ import annotations

import json
import sys
import traceback
from typing import Callable

import numpy as np

if "--mindtorch" in sys.argv:
    import mindtorch  # noqa: F401  (first: it installs the `torch` import proxy)
import torch  # noqa: E402

ON_MINDTORCH = "mindtorch" in sys.modules and torch.Tensor is sys.modules["mindtorch"].Tensor
DTYPES = ("float32", "float64")
CASES: dict[str, tuple[Callable, str]] = {}      # "name[dtype]" -> (case(dtype), dtype)
DT = {"float32": torch.float32, "float64": torch.float64}


def case(*dtypes: str):
    """register fn(dtype) once per dtype, as "name[dtype]" """
    def register(fn):
        for dtype in dtypes or DTYPES:
            CASES[f"{fn.__name__}[{dtype}]"] = (fn, dtype)
        return fn
    return register


def arr(seed: int, *shape: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def t(a, dtype: str, requires_grad: bool = False):
    x = torch.tensor(np.asarray(a, dtype=dtype))
    return x.requires_grad_(True) if requires_grad else x


def val(x):
    return None if x is None else x.detach().numpy().tolist()


def raises(fn: Callable) -> str | None:
    """the name of the exception fn() raises, or None"""
    try:
        fn()
    except Exception as e:   # noqa: BLE001
        return type(e).__name__
    return None


# --- backward, gradients, accumulation ------------------------------------------------------------

@case()
def mlp_backward(dtype):
    """parameters and an input leaf, F.linear (a transposed weight), the autograd flags"""
    w1, b1 = torch.nn.Parameter(t(arr(1, 8, 6), dtype)), torch.nn.Parameter(t(arr(2, 8), dtype))
    w2, b2 = torch.nn.Parameter(t(arr(3, 3, 8), dtype)), torch.nn.Parameter(t(arr(4, 3), dtype))
    x = t(arr(5, 4, 6), dtype, True)
    h = torch.nn.functional.linear(x, w1, b1)
    y = torch.nn.functional.linear(torch.relu(h) + 0.1 * h * h, w2, b2)
    loss = (y * t(arr(6, 4, 3), dtype)).sum()
    flags = {"x.is_leaf": x.is_leaf, "w1.is_leaf": w1.is_leaf, "loss.is_leaf": loss.is_leaf,
             "loss.requires_grad": loss.requires_grad, "loss.grad_fn": loss.grad_fn is not None,
             "w1.grad_fn": w1.grad_fn is not None, "h.grad before": h.grad is None,
             "w1.grad before": w1.grad is None}
    loss.backward()
    return {"loss": val(loss), "flags": flags, "grads": [val(p.grad) for p in (w1, b1, w2, b2, x)],
            "h.grad (not retained)": h.grad is None}


@case()
def value_and_grad_or_backward(dtype):
    """mindtorch's functional autograd.value_and_grad (other code still differentiates with it) gives
    torch's backward() gradients, and records again afterwards (MindSpore switches recording off)"""
    w = torch.nn.Parameter(t(arr(7, 3, 4), dtype))
    x = t(arr(8, 2, 4), dtype)
    fired = []
    w.register_post_accumulate_grad_hook(lambda p: fired.append(val(p.grad)))

    def loss_fn(w):
        return (x @ w.t()).pow(2).sum()
    if ON_MINDTORCH:
        loss = torch.autograd.value_and_grad(loss_fn, (w,))(w)
    else:
        loss = loss_fn(w)
        loss.backward()
    first = val(w.grad)
    after = loss_fn(w)                     # recorded again: backward() accumulates on top
    after.backward()
    return {"loss": val(loss), "grad": first, "post hooks": fired, "grad after backward": val(w.grad)}


@case()
def backward_with_gradient(dtype):
    """non-scalar backward with a gradient; torch.autograd.backward of two outputs, one gradient None"""
    x = t(arr(9, 4, 6), dtype, True)
    y = x * x * 3 + x
    y.backward(t(arr(10, 4, 6), dtype))
    g1 = val(x.grad)
    x.grad = None
    a, b = (x * x).sum(), x * 2
    torch.autograd.backward([a, b], [None, t(arr(11, 4, 6), dtype)])
    return {"gradient=": g1, "autograd.backward": val(x.grad),
            "non-scalar without gradient raises": raises(lambda: (x * 2).backward()),
            "no grad at all raises": raises(lambda: t(arr(12, 3), dtype).sum().backward())}


@case()
def two_backwards_accumulate(dtype):
    """two backwards accumulate into .grad, through x @ w.t() (a strided incoming gradient: the MindSpore
    2.10 CPU accumulation defect), F.linear, and a leaf used twice within one pass"""
    x, w = t(arr(13, 3, 4), dtype, True), t(arr(14, 5, 4), dtype, True)
    lin = torch.nn.Parameter(t(arr(15, 2, 5), dtype))
    ct = t(arr(16, 3, 5), dtype)
    seen = []
    for _ in range(2):
        h = x @ w.t()
        loss = (h * ct).sum() + torch.nn.functional.linear(h, lin).pow(2).sum() + (w * w.t().t()).sum()
        loss.backward()
        seen.append([val(x.grad), val(w.grad), val(lin.grad)])
    return {"after one": seen[0], "after two": seen[1]}


@case()
def leaves_added_directly(dtype):
    """two leaves added (Add's backward hands one gradient to both: MindSpore 2.10's engine then cloned it
    for the second with a kernel its CPU lacks, 'The kernel Clone unregistered'), a leaf plus a product,
    a parameter added to itself, twice so that the gradients accumulate"""
    a, b = t(arr(60, 3, 4), dtype, True), t(arr(61, 3, 4), dtype, True)
    bias = torch.nn.Parameter(t(arr(62, 4), dtype))
    ct = t(arr(63, 3, 4), dtype)
    seen = []
    for _ in range(2):
        ((a + b) * ct).sum().backward()
        ((a + b * 2 + bias) * ct).sum().backward()
        (bias + bias).sum().backward()
        seen.append([val(a.grad), val(b.grad), val(bias.grad)])
    return {"after one": seen[0], "after two": seen[1]}


@case()
def retain_graph(dtype):
    x = t(arr(17, 4, 3), dtype, True)
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    first = val(x.grad)
    y.backward()
    z = (x.exp() * x).sum()
    z.backward()
    return {"first": first, "second": val(x.grad), "third backward of z raises": raises(z.backward)}


@case()
def create_graph_double_backward(dtype):
    x = t([1.0, 2.0, -1.5], dtype, True)
    (g,) = torch.autograd.grad((x ** 3).sum(), x, create_graph=True)
    (g2,) = torch.autograd.grad(g.sum(), x)
    y = t([0.5, -1.0, 2.0], dtype, True)
    (y ** 3).sum().backward(create_graph=True)
    gy = y.grad
    y.grad = None
    (gy * gy).sum().backward()
    return {"g": val(g), "g2": val(g2), "g.requires_grad": g.requires_grad, "x.grad untouched": x.grad is None,
            "backward(create_graph) then backward of the gradient": val(y.grad)}


@case()
def autograd_grad_allow_unused(dtype):
    x, y, z = t(arr(18, 3), dtype, True), t(arr(19, 3), dtype, True), t(arr(20, 3), dtype, True)
    out = (x * x * z).sum()
    gx, gy = torch.autograd.grad(out, [x, y], allow_unused=True, retain_graph=True)
    mx, my = torch.autograd.grad(out, [x, y], retain_graph=True, materialize_grads=True)
    two = torch.autograd.grad([out, (z * 3).sum()], [z], grad_outputs=[t(2.0, dtype), t(-1.0, dtype)],
                              retain_graph=True)
    return {"gx": val(gx), "gy is None": gy is None, "materialized gy": val(my), "mx": val(mx),
            "two outputs with grad_outputs": val(two[0]),
            "unused without allow_unused raises": raises(lambda: torch.autograd.grad(out, [x, y], retain_graph=True)),
            "nothing accumulated": [x.grad is None, y.grad is None, z.grad is None]}


@case()
def backward_inputs(dtype):
    """backward(inputs=[...]) accumulates only into those"""
    x, y = t(arr(21, 3), dtype, True), t(arr(22, 3), dtype, True)
    (x * y).sum().backward(inputs=[x])
    return {"x.grad": val(x.grad), "y.grad is None": y.grad is None}


@case()
def execution_engine_run_backward(dtype):
    """Megatron's custom_backward (pipeline schedules) and MindSpeed call the engine directly"""
    x = t(arr(23, 4, 3), dtype, True)
    y = (x ** 2).sum(1)
    torch.autograd.Variable._execution_engine.run_backward(
        (y,), (t(np.arange(4.0), dtype),), False, False, (), allow_unreachable=True, accumulate_grad=True)
    return {"grad": val(x.grad)}


@case()
def backward_through_views(dtype):
    x = t(arr(24, 4, 6), dtype, True)
    parts = [x.view(6, 4)[1:4], x[1:3].transpose(0, 1), x.reshape(3, 8)[:, ::2], x.narrow(1, 2, 3),
             x.unsqueeze(0).expand(2, 4, 6), x.t()[0], x[:, 1]]
    cts = [t(arr(25 + i, *p.shape), dtype) for i, p in enumerate(parts)]
    sum(((p * c).sum() for p, c in zip(parts, cts)), t(0.0, dtype)).backward()
    return {"grad": val(x.grad)}


@case()
def detach_is_not_differentiated(dtype):
    x = t(arr(40, 4, 6), dtype, True)
    d = x.detach()
    (x * d).sum().backward()
    return {"grad": val(x.grad), "detached requires_grad": d.requires_grad, "detached is_leaf": d.is_leaf}


class TimesTwoBackward(torch.autograd.Function):
    """identity forward, gradient doubled: a custom Function inside a bigger graph"""
    @staticmethod
    def forward(ctx, x, scale):
        ctx.save_for_backward(x)
        ctx.scale = scale
        return x * 1.0

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * ctx.scale, None


def attention(x, w):
    """2 heads of dim 4 over 5 tokens: views (view, indexing, transpose, reshape), Megatron-style scores
    (baddbmm on an uninitialised buffer, beta=0), an in-place causal mask on a non-leaf, a detached max, a
    custom Function, an in-place scaling"""
    b, s, _ = x.shape
    qkv = torch.nn.functional.linear(x, w).view(b, s, 3, 2, 4)
    q, k, v = (qkv[:, :, i].transpose(1, 2).reshape(b * 2, s, 4) for i in range(3))
    scores = torch.baddbmm(torch.empty(b * 2, s, s, dtype=x.dtype), q, k.transpose(1, 2), beta=0.0, alpha=0.5)
    scores.masked_fill_(torch.tensor(np.triu(np.ones((s, s), dtype=bool), 1)), float("-inf"))
    scores = scores - scores.detach().amax(-1, keepdim=True)
    out = TimesTwoBackward.apply(torch.bmm(torch.softmax(scores, -1), v), 2.0)
    out = out.view(b, 2, s, 4).transpose(1, 2).reshape(b, s, 8)
    out.mul_(0.5)
    return out


@case()
def attention_retain_graph_twice(dtype):
    """backward(retain_graph=True) then backward() through the attention: every gradient twice"""
    x, w = t(arr(55, 2, 5, 8), dtype, True), torch.nn.Parameter(t(arr(56, 24, 8), dtype))
    loss = (attention(x, w) * t(arr(57, 2, 5, 8), dtype)).sum()
    loss.backward(retain_graph=True)
    first = [val(x.grad), val(w.grad)]
    loss.backward()
    return {"loss": val(loss), "first": first, "second": [val(x.grad), val(w.grad)]}


@case()
def inplace_on_a_view_of_a_non_leaf(dtype):
    """Megatron's attention: scores = baddbmm(...).view(b, heads, s, s), masked in place through that view
    (attention_mask_func's masked_fill_), softmax, bmm; the gradient must flow through the in-place write
    into the view's base"""
    x = t(arr(58, 4, 6, 3), dtype, True)
    mask = torch.tensor(np.triu(np.ones((6, 6), dtype=bool), 1))
    ct = t(arr(59, 4, 6, 3), dtype)
    seen = {}
    for where in ("on the tensor", "through a view"):
        x.grad = None
        scores = torch.bmm(x, x.transpose(1, 2)) * 0.5
        if where == "on the tensor":
            scores.masked_fill_(mask, -10000.0)
        else:
            scores.view(2, 2, 6, 6).masked_fill_(mask, -10000.0)
        (torch.bmm(torch.softmax(scores, -1), x) * ct).sum().backward()
        seen[where] = {"grad": val(x.grad), "scores": val(scores)}
    return seen


# --- hooks ----------------------------------------------------------------------------------------

@case()
def hooks_order(dtype):
    """a non-leaf's hook (changes the gradient), two leaf hooks (one returns None, one scales), the
    post-accumulate hook (sees the accumulated .grad), a removed hook; in PyTorch's order"""
    calls = []
    a = t([1.0, -2.0, 3.0], dtype, True)
    b = a * 2
    b.register_hook(lambda g: (calls.append(["b", val(g)]), g * 3)[1])
    a.register_hook(lambda g: (calls.append(["a1", val(g)]), None)[1])
    a.register_hook(lambda g: (calls.append(["a2", val(g)]), g + 1)[1])
    removed = a.register_hook(lambda g: (calls.append(["removed", val(g)]), g * 100)[1])
    removed.remove()
    a.register_post_accumulate_grad_hook(lambda p: calls.append(["post", val(p.grad)]))
    a.grad = t([10.0, 10.0, 10.0], dtype)
    (b * b).sum().backward()
    return {"calls": calls, "grad": val(a.grad)}


@case()
def post_accumulate_per_leaf(dtype):
    """post-accumulate hooks fire per leaf, once per pass, during the pass: a leaf's hook has run before
    a leaf nearer the input is reached (the order DDP's overlapped reduction relies on), and not for
    autograd.grad"""
    w1, w2 = torch.nn.Parameter(t(arr(41, 4, 4), dtype)), torch.nn.Parameter(t(arr(42, 4, 4), dtype))
    calls = []
    w1.register_post_accumulate_grad_hook(lambda p: calls.append(["w1", val(p.grad), w2.grad is not None]))
    w2.register_post_accumulate_grad_hook(lambda p: calls.append(["w2", val(p.grad), w1.grad is not None]))
    x = t(arr(43, 2, 4), dtype)
    loss = (torch.relu(x @ w1) @ w2).sum()
    torch.autograd.grad(loss, [w1, w2], retain_graph=True)
    after_grad = list(calls)
    loss.backward()
    return {"after autograd.grad": after_grad, "after backward": calls}


@case()
def hook_errors(dtype):
    x = t([1.0, 2.0], dtype)
    n = t([1.0, 2.0], dtype, True) * 2
    return {"hook on a tensor without grad": raises(lambda: x.register_hook(lambda g: g)),
            "requires_grad on an int tensor": raises(lambda: torch.tensor([1, 2]).requires_grad_()),
            "requires_grad=False on a non-leaf": raises(lambda: n.requires_grad_(False))}


@case()
def retain_grad(dtype):
    x = t(arr(44, 3, 2), dtype, True)
    h = x * 3
    h.retain_grad()
    x.retain_grad()                         # a leaf: nothing changes
    h2 = h.exp()
    (h2 * t(arr(45, 3, 2), dtype)).sum().backward()
    return {"h.grad": val(h.grad), "h.retains_grad": h.retains_grad, "x.retains_grad": x.retains_grad,
            "h2.grad is None": h2.grad is None, "h2.retains_grad": h2.retains_grad, "x.grad": val(x.grad)}


# --- custom Function ------------------------------------------------------------------------------

class ScaledSquare(torch.autograd.Function):
    """y = scale * x * w; also returns argmax (non-differentiable), a non-tensor and a tensor it marks
    non-differentiable; backward uses saved tensors and needs_input_grad"""

    @staticmethod
    def forward(ctx, x, w, scale, tag):
        ctx.save_for_backward(x, w)
        ctx.scale = scale
        ctx.seen_needs = list(ctx.needs_input_grad)
        y = x * w * scale
        mask = (y > 0).to(x.dtype)
        ctx.mark_non_differentiable(mask)
        return y, mask, f"{tag}:{len(x)}"

    @staticmethod
    def backward(ctx, gy, gmask, gtag):
        x, w = ctx.saved_tensors
        needs = list(ctx.needs_input_grad)
        gx = gy * w * ctx.scale if needs[0] else None
        gw = gy * x * ctx.scale if needs[1] else None
        ScaledSquare.backward_needs = needs
        return gx, gw, None, None


@case()
def custom_function(dtype):
    x, w = t(arr(46, 5), dtype, True), t(arr(47, 5), dtype)
    y, mask, tag = ScaledSquare.apply(x, w, 2.5, "t")
    (y * y).sum().backward()
    w2 = t(arr(48, 5), dtype, True)
    y2, _, _ = ScaledSquare.apply(x.detach(), w2, -1.0, "u")
    y2.sum().backward()
    return {"y": val(y), "mask": val(mask), "mask.requires_grad": mask.requires_grad, "tag": tag,
            "y.requires_grad": y.requires_grad, "x.grad": val(x.grad), "w2.grad": val(w2.grad),
            "backward needs_input_grad": ScaledSquare.backward_needs}


class ShiftInPlace(torch.autograd.Function):
    """forward modifies its input in place, as Megatron's vocab-parallel cross entropy does with its
    logits (subtracts the max); the gradient is the identity's"""

    @staticmethod
    def forward(ctx, logits):
        logits.sub_(logits.max(dim=-1, keepdim=True)[0])
        return logits * 2

    @staticmethod
    def backward(ctx, g):
        return g * 2


@case()
def custom_function_modifying_its_input(dtype):
    x = t(arr(49, 2, 3), dtype, True)
    logits = x * 1.0
    out = ShiftInPlace.apply(logits)
    (out * t(arr(50, 2, 3), dtype)).sum().backward()
    return {"out": val(out), "x.grad": val(x.grad), "the input after forward": val(logits)}


class Recompute(torch.autograd.Function):
    """activation checkpointing as Megatron's CheckpointFunction does it: forward without a graph,
    backward recomputes with one and runs a nested (reentrant) backward through it"""

    @staticmethod
    def forward(ctx, fn, x, w):
        ctx.fn = fn
        ctx.save_for_backward(x, w)
        with torch.no_grad():
            return fn(x, w)

    @staticmethod
    def backward(ctx, g):
        Recompute.valid.append(torch.autograd._is_checkpoint_valid())
        x, w = ctx.saved_tensors
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            out = ctx.fn(x, w)
        torch.autograd.backward(out, g)
        return None, x.grad, None


@case()
def reentrant_checkpoint(dtype):
    Recompute.valid = []
    x = t(arr(60, 3, 4), dtype, True)
    w = torch.nn.Parameter(t(arr(61, 4, 4), dtype))
    fn = lambda a, b: torch.relu(a @ b) * 2   # noqa: E731
    y = Recompute.apply(fn, x * 1.0, w)
    (y * y).sum().backward()
    in_backward, Recompute.valid = Recompute.valid, []
    (gx,) = torch.autograd.grad((Recompute.apply(fn, x * 1.0, w) ** 2).sum(), x)
    return {"y": val(y), "x.grad": val(x.grad), "w.grad": val(w.grad), "autograd.grad": val(gx),
            "_is_checkpoint_valid in backward()": in_backward,
            "_is_checkpoint_valid in autograd.grad": Recompute.valid,
            "_is_checkpoint_valid outside": torch.autograd._is_checkpoint_valid()}


# --- grad modes, zero_grad ------------------------------------------------------------------------

@case("float32")
def grad_modes(dtype):
    x = t(arr(51, 3), dtype, True)
    seen = {}
    with torch.no_grad():
        seen["no_grad"] = (x * 2).requires_grad
        with torch.enable_grad():
            seen["enable_grad in no_grad"] = (x * 2).requires_grad
            with torch.inference_mode():
                seen["inference_mode in enable_grad"] = (x * 2).requires_grad
            seen["after inference_mode"] = (x * 2).requires_grad
        seen["back in no_grad"] = (x * 2).requires_grad
        with torch.set_grad_enabled(True):
            seen["set_grad_enabled(True) in no_grad"] = (x * 2).requires_grad
            seen["is_grad_enabled"] = torch.is_grad_enabled()
    seen["outside"] = (x * 2).requires_grad
    with torch.inference_mode(False):
        seen["inference_mode(False)"] = (x * 2).requires_grad
    torch.set_grad_enabled(False)
    seen["set_grad_enabled(False) called"] = (x * 2).requires_grad
    torch.set_grad_enabled(True)

    @torch.no_grad()
    def decorated():
        return (x * 2).requires_grad
    seen["no_grad decorator"] = decorated()
    seen["after decorator"] = (x * 2).requires_grad
    return seen


@case()
def zero_grad_and_assignment(dtype):
    model = torch.nn.Linear(3, 2).to(DT[dtype])
    with torch.no_grad():
        model.weight.copy_(t(arr(52, 2, 3), dtype))
        model.bias.copy_(t(arr(53, 2), dtype))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    inp = t(arr(54, 4, 3), dtype)
    model(inp).pow(2).sum().backward()
    first = val(model.weight.grad)
    opt.zero_grad(set_to_none=False)
    zeroed = val(model.weight.grad)
    model(inp).pow(2).sum().backward()
    second = val(model.weight.grad)
    opt.zero_grad(set_to_none=True)
    none_after = [p.grad is None for p in model.parameters()]
    model.weight.grad = t(np.full((2, 3), 0.5), dtype)       # assigned, then accumulated into
    model(inp).pow(2).sum().backward()
    assigned = val(model.weight.grad)
    model.zero_grad()
    return {"first": first, "zeroed": zeroed, "none after zero_grad()": none_after,
            "second (from zero)": second, "assigned then accumulated": assigned,
            "module.zero_grad()": [p.grad is None for p in model.parameters()],
            "wrong shape raises": raises(lambda: setattr(model.weight, "grad", t(np.ones(3), dtype)))}


def run_cases() -> dict:
    report = {}
    for name, (fn, dtype) in CASES.items():
        try:
            report[name] = {"dtype": dtype, "observed": fn(dtype)}
        except Exception:   # noqa: BLE001
            report[name] = {"dtype": dtype, "error": traceback.format_exc()}
    return report


if __name__ == "__main__":
    if "--mindtorch" in sys.argv and not ON_MINDTORCH:
        raise SystemExit(f"`torch` is not mindtorch's proxy here: {torch!r}")
    print("AUTOGRAD_REPORT " + json.dumps({"on_mindtorch": ON_MINDTORCH, "cases": run_cases()}))
