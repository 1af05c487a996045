"""The cases of test_views_semantics.py, written once against `torch`: run as a script on PyTorch (the
reference environment) and in the converted workspace, where `torch` is mindtorch through its import
proxy (the script checks which one it got). Patch 0012: in-place writes go into a tensor's memory, so
views, detach() and .data share them both ways as on PyTorch.

Every view kind x every in-place write kind, both directions (write the base, read the view; write the
view, read the base), and the patterns of Megatron-core that rely on it (gradient clipping on
param.grad.detach(), loss.detach() then loss /= n, _ParamAndGradBuffer's main_grad views, MEG006's and
MEG008's writes through views), with gradients where autograd is involved.

Prints one line ``VIEWS_REPORT {json}``: per case its observations or ``{"error": traceback}``.
"""
from __future__ import annotations

import json
import sys

import numpy as np

# `torch` (and the shared helpers) are imported by _import_torch() when the script runs, so that the test
# can import this module for the case names without any torch
torch = grads = values = run_cases = None

VIEWS = {
    "detach": lambda b: b.detach(),
    "data": lambda b: b.data,
    "view(12)": lambda b: b.view(12),
    "reshape(4,3)": lambda b: b.reshape(4, 3),
    "b[1:3]": lambda b: b[1:3],
    "b[1]": lambda b: b[1],
    "b[:,1:3]": lambda b: b[:, 1:3],
    "b[::2]": lambda b: b[::2],
    "narrow(1,1,2)": lambda b: b.narrow(1, 1, 2),
    "select(1,2)": lambda b: b.select(1, 2),
    "transpose(0,1)": lambda b: b.transpose(0, 1),
    "t()": lambda b: b.t(),
}


def _rows(x):
    return torch.arange(x.numel(), dtype=torch.float32).reshape(x.shape) * 10 + 100


def _setitem(x):
    x[0] = -7.0
    return x


def _itruediv(x):
    x /= 4.0
    return x


WRITES = {
    "mul_": lambda x: x.mul_(3.0),
    "add_": lambda x: x.add_(10.0),
    "copy_": lambda x: x.copy_(_rows(x)),
    "fill_": lambda x: x.fill_(-1.0),
    "zero_": lambda x: x.zero_(),
    "x[0]=v": _setitem,
    "/=": _itruediv,
}

CASES = {}


def case(name):
    def register(fn):
        CASES[name] = fn
        return fn
    return register


def _base():
    return torch.arange(12, dtype=torch.float32).reshape(3, 4) + 1.0


def _view_write(view, write, direction):
    def run():
        base = _base()
        v = VIEWS[view](base)
        target = base if direction == "base->view" else v
        result = WRITES[write](target)
        return {"base": values(base), "view": values(v), "returns itself": result is target}
    return run


for _view in VIEWS:
    for _write in WRITES:
        for _direction in ("base->view", "view->base"):
            case(f"{_view}|{_write}|{_direction}")(_view_write(_view, _write, _direction))


def _differentiate(f, arrays, seen=None):
    """f(*parameters)'s value and gradients, by backward() (PyTorch's way; on mindtorch MindSpore 2.10's
    engine, patch 0011) and by the shared grads() helper (on mindtorch value_and_grad, on PyTorch
    backward() again); with what f put in `seen` during each."""
    out = {}
    for how in ("backward", "grads()"):
        params = [torch.nn.Parameter(torch.tensor(a)) for a in arrays]
        if how == "backward":
            value = f(*params)
            value.backward()
            result = {"loss": float(value), "grads": [values(p.grad) for p in params]}
        else:
            value, gs = grads(f, params)
            result = {"loss": value, "grads": gs}
        out[how] = {**result, **(dict(seen) if seen is not None else {})}
    return out


# --- Megatron-core's patterns ----------------------------------------------------------------------

def _params():
    ps = [torch.nn.Parameter(torch.ones(2, 3)), torch.nn.Parameter(torch.ones(4))]
    ps[0].grad = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    ps[1].grad = torch.arange(4, dtype=torch.float32) - 2.0
    return ps


@case("clip_grads[param.grad.detach() scaled in place]")
def clip_grads():
    """optimizer/clip_grads.py: the grads are collected as param.grad.detach() and scaled in place
    (multi_tensor_scale's CPU fallback copies src * scale into them; mul_ the same)."""
    out = {}
    for how in ("copy_", "mul_"):
        params = _params()
        grads_for_norm = [p.grad.detach() for p in params]
        total_norm = torch.sqrt(sum((g * g).sum() for g in grads_for_norm))
        clip_coeff = 1.0 / (float(total_norm) + 1.0e-6)
        for g in grads_for_norm:
            if how == "copy_":
                g.copy_(g * clip_coeff)
            else:
                g.mul_(clip_coeff)
        out[how] = [values(p.grad) for p in params]
    return out


@case("loss.detach() then loss /= n [no grad]")
def loss_detach_plain():
    loss = torch.tensor(6.0)
    reported = loss.detach()
    loss /= 4
    loss /= 2
    return {"reported": values(reported), "loss": values(loss)}


@case("loss.detach() then loss /= n [in the graph]")
def loss_detach_graph():
    """schedules.py: the loss function returns {"lm loss": loss.detach()}, then forward_step divides the
    loss in place by the number of microbatches; the logged (detached) value is the divided one."""
    x = torch.tensor(np.linspace(-1, 1, 6, dtype=np.float32))
    seen = {}

    def f(w):
        loss = (x * w * w).sum()
        seen["reported"] = loss.detach()
        loss /= 4          # output_tensor /= num_tokens
        loss /= 2          # output_tensor /= num_microbatches
        seen["reported after"] = float(seen["reported"])
        return loss
    out = _differentiate(f, [np.arange(6, dtype=np.float32)], seen)
    for result in out.values():
        del result["reported"]   # the tensor itself; its value after the division is "reported after"
    return out


@case("_ParamAndGradBuffer main_grad views, grad_data.zero_()")
def param_and_grad_buffer():
    grad_data = torch.zeros(10)
    params = [torch.nn.Parameter(torch.ones(2, 3)), torch.nn.Parameter(torch.ones(4))]
    offsets = [(0, 6), (6, 10)]
    for p, (a, b) in zip(params, offsets):
        p.main_grad = grad_data[a:b].view(p.shape)
    out = {}
    for step in range(2):
        for i, p in enumerate(params):
            p.main_grad.add_(torch.full(p.shape, float(step + i + 1)))
        out[f"grad_data after accumulate {step}"] = values(grad_data)
        grad_data.zero_()
        out[f"main_grads after zero_ {step}"] = [values(p.main_grad) for p in params]
    return out


@case("param.data = buffer[a:b].view(shape), both directions")
def param_data_into_buffer():
    param_data = torch.arange(10, dtype=torch.float32)
    params = [torch.nn.Parameter(torch.ones(2, 3)), torch.nn.Parameter(torch.ones(4))]
    for p, (a, b) in zip(params, [(0, 6), (6, 10)]):
        p.data = param_data[a:b].view(p.shape)
    out = {"params": [values(p) for p in params]}
    with torch.no_grad():
        params[0].data.mul_(0.5)
        params[1].add_(100.0)
    out["buffer after param writes"] = values(param_data)
    param_data.fill_(3.0)
    out["params after buffer fill_"] = [values(p) for p in params]
    return out


@case("t.view(3).copy_(x)")
def view_copy():
    t = torch.zeros(3)
    t.view(3).copy_(torch.tensor([1.0, 2.0, 3.0]))
    u = torch.zeros(2, 3)
    u.view(6)[2:5].copy_(torch.tensor([7.0, 8.0, 9.0]))
    return {"t": values(t), "u": values(u)}


@case("in-place after detach, with autograd")
def inplace_after_detach():
    ct = torch.tensor(np.linspace(0.5, 2.0, 6, dtype=np.float32).reshape(2, 3))
    seen = {}

    def f(w):
        y = w * 2.0
        d = y.detach()
        d.add_(1.0)
        seen["y"] = values(y)
        return (y * ct).sum()
    return _differentiate(f, [np.arange(6, dtype=np.float32).reshape(2, 3)], seen)


@case("x[0] = 0.0 on a non-leaf, gradients")
def setitem_non_leaf():
    ct = torch.tensor(np.linspace(0.5, 2.0, 12, dtype=np.float32).reshape(3, 4))

    def f(w, u):
        y = w * 2.0
        y[0] = 0.0
        y[2, 1:3] = u * 3.0
        return (y * y * ct).sum()
    return _differentiate(f, [np.arange(12, dtype=np.float32).reshape(3, 4), np.array([1.5, -2.0], np.float32)])


@case("mul_ on a non-leaf, gradients")
def mul_non_leaf():
    ct = torch.tensor(np.linspace(0.5, 2.0, 12, dtype=np.float32).reshape(3, 4))

    def f(w):
        y = w * 2.0
        y.mul_(3.0)
        y.masked_fill_(ct > 1.5, 0.0)
        return (y * y * ct).sum()
    return _differentiate(f, [np.arange(12, dtype=np.float32).reshape(3, 4)])


@case("in-place ops whose gradient reads the original self, gradients")
def inplace_original_self():
    """z.mul_(y) with y requiring grad (y's gradient is ct * the z before the write) and z.sin_()
    (its gradient reads the z before the write): torch saves the original self; so must mindtorch,
    whose write goes into z's memory."""
    ct = torch.tensor(np.array([1.0, -1.0, 2.0], np.float32))

    def f(x, y):
        z = x * 1.0
        z.mul_(y)
        z.sin_()
        return (z * ct).sum()
    return _differentiate(f, [np.array([1.0, 2.0, 3.0], np.float32), np.array([0.4, 0.5, -0.6], np.float32)])


@case("masked_fill_ through a view of a non-leaf, gradients")
def masked_fill_view_non_leaf():
    """Megatron's attention: the scores are a view of baddbmm's output (into an uninitialised buffer,
    beta=0), masked in place (attention_mask_func), then softmaxed."""
    rng = np.random.default_rng(5)
    k = torch.tensor(rng.standard_normal((2, 4, 4)).astype(np.float32))
    ct = torch.tensor(rng.standard_normal((2, 3, 4)).astype(np.float32))
    mask = torch.tensor(np.triu(np.ones((3, 4), bool), 1))

    def f(q):
        scores = torch.baddbmm(torch.empty(6, 4).view(2, 3, 4), q, k, beta=0.0, alpha=0.5).view(2, 3, 4)
        scores.masked_fill_(mask, -10000.0)
        return (torch.softmax(scores, dim=-1) * ct).sum()
    return _differentiate(f, [rng.standard_normal((2, 3, 4)).astype(np.float32)])


@case("in-place through a view of a non-leaf, gradients")
def view_inplace_non_leaf():
    ct = torch.tensor(np.linspace(0.5, 2.0, 12, dtype=np.float32).reshape(3, 4))

    def f(w):
        y = w * 2.0
        y[1].mul_(3.0)
        return (y * y * ct).sum()
    return _differentiate(f, [np.arange(12, dtype=np.float32).reshape(3, 4)])


@case("cross_entropy gradient through grad_2d (MEG006's upstream body)")
def cross_entropy_grad_2d():
    """VocabParallelCrossEntropy.calculate_gradients as upstream writes it: the update goes through a
    2-d view of grad_input with advanced indexing, then grad_input itself is scaled in place."""
    rng = np.random.default_rng(3)
    grad_input = torch.tensor(rng.random((2, 3, 5), dtype=np.float32))
    target = torch.tensor(np.array([[0, 4, 2], [1, 1, 3]], np.int64))
    target_mask = torch.tensor(np.array([[False, True, False], [False, False, True]]))
    grad_output = torch.tensor(np.array([[1.0, 2.0, 0.5], [3.0, 1.5, 2.5]], np.float32))
    grad_2d = grad_input.view(-1, 5)
    arange_1d = torch.arange(start=0, end=grad_2d.size()[0])
    masked_target_1d = target.view(-1)
    softmax_update = 1.0 - target_mask.view(-1).float()
    grad_2d[arange_1d, masked_target_1d] -= softmax_update
    grad_input.mul_(grad_output.unsqueeze(dim=-1))
    return {"grad_input": values(grad_input)}


@case("roll_tensor's select().fill_(0) (MEG008's upstream body)")
def roll_select_fill():
    out = {}
    for dims in (-1, 0):
        x = torch.arange(1, 19, dtype=torch.int64).reshape(3, 6)
        rolled = torch.roll(x, shifts=-1, dims=dims)
        rolled.select(dims, -1).fill_(0)
        out[str(dims)] = values(rolled)
    return out


@case("index_put_, index_put, copy_(non_blocking=True)")
def index_put_and_copy():
    x = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    row = x[2]
    x.index_put_((torch.tensor([0, 2]),), torch.tensor([-1.0, -2.0, -3.0, -4.0]))
    out = {"rows": values(x), "view of row 2": values(row)}
    x.index_put_((torch.tensor([1, 1, 2]), torch.tensor([0, 0, 3])), torch.tensor([10.0, 20.0, 30.0]),
                 accumulate=True)
    out["accumulated (repeated positions add up)"] = values(x)
    out["index_put"] = values(x.index_put((torch.tensor([0]),), torch.tensor(5.0)))
    out["x after index_put"] = values(x)
    row.copy_(torch.ones(4), non_blocking=True)
    out["after copy_ into the row view"] = values(x)
    return out


@case("_base is None for tensors of their own, not None for partial views")
def base_link():
    """What Megatron asks of Tensor._base: the distributed optimizer asserts param.data._base is None,
    make_viewless_tensor and deallocate_output_tensor test it."""
    x = torch.zeros(3, 4)
    p = torch.nn.Parameter(torch.ones(2, 3))
    return {"none": [t._base is None for t in (x, x.detach(), x.data, p, p.data)],
            "not none": [t._base is not None for t in (x[1:3], x[1], x[:, 1:3], x.t(), x.narrow(1, 1, 2))]}


def _import_torch(on_mindtorch: bool) -> None:
    global torch, grads, values, run_cases
    if on_mindtorch:
        import mindtorch  # noqa: F401  (first: it installs the `torch` import proxy)
    import torch
    import mindtorch_compat_cases
    grads, values = mindtorch_compat_cases.grads, mindtorch_compat_cases.values
    run_cases = mindtorch_compat_cases.run_cases   # its report loop, given this module's CASES
    # the side must be the one asked for: a comparison of PyTorch with itself means nothing
    if on_mindtorch != mindtorch_compat_cases.ON_MINDTORCH or mindtorch_compat_cases.torch is not torch:
        raise SystemExit(f"asked for {'mindtorch' if on_mindtorch else 'PyTorch'}, got {torch!r}")


if __name__ == "__main__":
    _import_torch("--mindtorch" in sys.argv)
    print("VIEWS_REPORT " + json.dumps({"cases": run_cases(CASES)}))
