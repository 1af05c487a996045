"""PyTorch's autograd and view semantics, probed case by case: on PyTorch (the reference), or on mindtorch
with MindSpore 2.10's C++ autograd engine behind a small shim (the candidate mechanism of
docs/runtime_autograd.md), or on mindtorch as it is (MindSpore 2.7: no engine, the shim is not installed).

Every case is written once against ``torch``; each prints what it observed (values, gradients, call
orders, whether writes are shared). Run it on both sides and compare::

    .venv-torch/bin/python bench/autograd_engine_probe.py --out /tmp/pt.json              # PyTorch
    PYTHONPATH=<patched mindtorch> <venv with mindspore 2.10>/bin/python \\
        bench/autograd_engine_probe.py --against /tmp/pt.json                           # mindtorch
    PYTHONPATH=<patched mindtorch> .venv/bin/python bench/autograd_engine_probe.py --cost  # overhead only

``--against`` prints one line per case: ``ok`` or what differs (numbers: max |got - want| / max(1, |want|)
above 1e-5). ``--cost`` times a 10-op chain shaped like a tiny-GPT layer (64x64 matmuls, softmax, tanh),
microseconds per forward op: without recording; forward + ``Tensor.backward`` (PyTorch's engine, or
MindSpore's behind the shim); forward + backward by ``mindtorch.autograd.value_and_grad`` (how the
converted stack differentiates today). docs/runtime_autograd.md has the results and what they decide.
Everything runs on the CPU.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import traceback

import numpy as np

ON_MINDTORCH = False
ENGINE = "pytorch"
HAS_ENGINE = False          # an engine behind Tensor.backward: PyTorch's, or MindSpore's run_backward (shim)
if "--torch" not in sys.argv:
    try:
        import mindtorch   # noqa: F401  (first: it installs the `torch` import proxy)
        ON_MINDTORCH = True
    except ImportError:
        pass


def _install_engine_shim():
    """Map mindtorch's autograd surface onto MindSpore 2.10's engine: requires_grad/requires_grad_,
    .grad, .is_leaf, .grad_fn, retain_grad, Tensor.backward(gradient, retain_graph, create_graph, inputs),
    torch.autograd.backward/grad, Variable._execution_engine.run_backward. Returns the engine's name."""
    import mindspore
    import mindtorch
    try:
        from mindspore._c_expression import TensorPy, run_backward
    except ImportError:
        return f"none (MindSpore {mindspore.__version__}: no run_backward; mindtorch's own backward)"
    from mindspore.common.api import _pynative_executor

    def ones_like(t):
        return mindtorch.ones(t.shape, dtype=t.dtype)

    def as_tuple(x):
        return tuple(x) if isinstance(x, (list, tuple)) else (x,)

    def run(tensors, grad_tensors, keep_graph, create_graph, inputs, allow_unreachable=True, accumulate_grad=True):
        tensors = as_tuple(tensors)
        grads = as_tuple(grad_tensors) if grad_tensors is not None else (None,) * len(tensors)
        grads = tuple(ones_like(t) if g is None else g for t, g in zip(tensors, grads))
        before = [_grad_state(p) for p, _ in post_hooks]
        out = run_backward(tensors, grads, bool(keep_graph), bool(create_graph), () if inputs is None else as_tuple(inputs),
                           bool(allow_unreachable), accumulate_grad=accumulate_grad)
        for (p, hook), state in zip(list(post_hooks), before):
            if _grad_state(p) != state:
                hook(p)
        if isinstance(out, (tuple, list)):
            out = tuple(with_device(g, x) for g, x in zip(out, as_tuple(inputs)))
        return out

    def _grad_state(p):   # the accumulated value itself: the engine's wrappers and buffers are not stable
        g = d["_grad"].__get__(p)
        return None if g is None else g.asnumpy().tobytes()

    def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
        run(tensors, grad_tensors, create_graph if retain_graph is None else retain_graph, create_graph, inputs)

    def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=None):
        return run(outputs, grad_outputs, create_graph if retain_graph is None else retain_graph, create_graph,
                   inputs, bool(allow_unused), accumulate_grad=False)

    T, P, d = mindtorch.Tensor, mindtorch.nn.Parameter, TensorPy.__dict__
    from mindspore.common._register_for_tensor import tensor_operator_registry
    from mindspore.common.tensor import _TensorHookHandle
    make_contiguous = tensor_operator_registry.get("contiguous")
    _pynative_executor.set_grad_flag(True)
    T._requires_grad = d["_requires_grad"]        # mindtorch shadows the engine's descriptor with False

    def requires_grad_(self, value=True):
        TensorPy.requires_grad_(self, value)
        if value and not getattr(self, "_contiguous_grad_hook", False):
            # MindSpore 2.10's CPU engine accumulates a strided incoming gradient (a transpose's backward:
            # every F.linear weight) wrongly into an existing .grad; a contiguous copy accumulates right
            TensorPy.register_hook(self, lambda g: make_contiguous(g) if g._need_contiguous() else g)
            self._contiguous_grad_hook = True
        return self
    T.requires_grad = property(d["_requires_grad"].__get__, requires_grad_)
    T.requires_grad_ = requires_grad_

    def with_device(g, like):                     # the engine's tensors lack mindtorch's device
        if g is not None and getattr(g, "_device", None) is None:
            g._device = like.device
        return g
    T.grad = property(lambda s: with_device(d["_grad"].__get__(s), s), d["_grad"].__set__)

    def register_hook(self, hook):
        def call(g):
            out = hook(with_device(g, self))
            return g if out is None else out      # MindSpore's hooks must return a gradient
        handle = _TensorHookHandle(self)
        handle.id = TensorPy.register_hook(self, call)
        return handle
    T.register_hook = register_hook
    post_hooks = []                                # torch fires them per leaf as it accumulates; here after the pass

    def register_post_accumulate_grad_hook(self, hook):
        post_hooks.append((self, hook))
    T.register_post_accumulate_grad_hook = register_post_accumulate_grad_hook
    T.is_leaf = property(d["_is_leaf"].__get__)
    T.grad_fn = property(d["_grad_node"].__get__)
    T.retain_grad = lambda s: TensorPy._retain_grad(s)
    T.backward = lambda s, gradient=None, retain_graph=None, create_graph=False, inputs=None: backward(
        s, gradient, retain_graph, create_graph, inputs)
    for name in ("grad", "_grad_fn"):              # class attributes of mindtorch's Parameter
        if name in P.__dict__:
            delattr(P, name)
    param_init = P.__init__

    def init(self, input_data=None, requires_grad=True, **kwargs):
        param_init(self, input_data, requires_grad, **kwargs)
        requires_grad_(self, requires_grad)
    P.__init__ = init
    move_to = T._move_to

    def same_device_is_self(self, device, non_blocking=False):   # torch: .to(own device) is self; mindtorch
        return self if device == self.device else move_to(self, device, non_blocking)   # copied via NumPy, detached
    T._move_to = same_device_is_self
    mindtorch.autograd.backward, mindtorch.autograd.grad = backward, grad
    mindtorch.autograd.Variable._execution_engine = type("Engine", (), {"run_backward": staticmethod(run)})()
    return f"MindSpore {mindspore.__version__} run_backward (shim)"


if ON_MINDTORCH and "--no-shim" not in sys.argv:
    ENGINE = _install_engine_shim()
    HAS_ENGINE = ENGINE.endswith("(shim)")
elif ON_MINDTORCH:
    ENGINE = "mindtorch as patched (no shim)"
else:
    HAS_ENGINE = True

import torch  # noqa: E402  (PyTorch, or mindtorch's proxy)

RNG = np.random.default_rng(2026)


def arr(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def t(a, requires_grad=False):
    x = torch.tensor(a)
    return x.requires_grad_(True) if requires_grad else x


def val(x):
    if x is None:
        return None
    return x.detach().numpy().tolist() if hasattr(x, "detach") else x


CASES = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


# --- (1) gradients ---------------------------------------------------------------------------------------

W1, B1, W2, B2, X, CT = arr(8, 6), arr(8), arr(3, 8), arr(3), arr(4, 6), arr(4, 3)


@case
def mlp():
    w1, b1 = torch.nn.Parameter(t(W1)), torch.nn.Parameter(t(B1))
    w2, b2 = torch.nn.Parameter(t(W2)), torch.nn.Parameter(t(B2))
    x = t(X, True)
    h = torch.nn.functional.linear(x, w1, b1)
    y = torch.nn.functional.linear(torch.relu(h) + 0.1 * h * h, w2, b2)   # not tanh: MindSpore's CPU tanh is off by 1.5e-5
    loss = (y * t(CT)).sum()
    flags = [x.is_leaf, w1.is_leaf, loss.is_leaf, loss.requires_grad, loss.grad_fn is not None]
    loss.backward()
    return {"loss": val(loss), "flags": flags, "grads": [val(p.grad) for p in (w1, b1, w2, b2, x)]}


class TimesTwoBackward(torch.autograd.Function):
    """identity forward, gradient doubled: a custom Function the engine must call"""
    @staticmethod
    def forward(ctx, x, scale):
        ctx.save_for_backward(x)
        ctx.scale = scale
        return x * 1.0

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * ctx.scale, None


QKV, XA, CTA = arr(24, 8), arr(2, 5, 8), arr(2, 5, 8)


def attention(x, w):
    """2 heads of dim 4 over 5 tokens: views (view/unbind/transpose), Megatron-style scores (baddbmm on an
    uninitialised buffer, beta=0), an in-place causal mask, a detached max, a custom Function."""
    b, s, _ = x.shape
    qkv = torch.nn.functional.linear(x, w).view(b, s, 3, 2, 4)
    q, k, v = (qkv[:, :, i].transpose(1, 2).reshape(b * 2, s, 4) for i in range(3))
    scores = torch.baddbmm(torch.empty(b * 2, s, s), q, k.transpose(1, 2), beta=0.0, alpha=0.5)
    mask = torch.tensor(np.triu(np.ones((s, s), dtype=bool), 1))
    scores.masked_fill_(mask, float("-inf"))                              # in place, on a non-leaf
    scores = scores - scores.detach().amax(-1, keepdim=True)              # detach: no gradient through max
    probs = torch.softmax(scores, -1)
    out = TimesTwoBackward.apply(torch.bmm(probs, v), 2.0)
    out = out.view(b, 2, s, 4).transpose(1, 2).reshape(b, s, 8)
    out.mul_(0.5)                                                         # in place again
    return out


@case
def attention_retain_graph_twice():
    """backward(retain_graph=True) then backward(): every gradient accumulates twice"""
    x, w = t(XA, True), torch.nn.Parameter(t(QKV))
    loss = (attention(x, w) * t(CTA)).sum()
    loss.backward(retain_graph=True)
    first = [val(x.grad), val(w.grad)]
    loss.backward()
    return {"loss": val(loss), "first": first, "second": [val(x.grad), val(w.grad)]}


@case
def backward_with_gradient_and_autograd_backward():
    x = t(X, True)
    y = torch.tanh(x) * 3
    y.backward(t(CT[:, :1].repeat(6, 1).reshape(4, 6)))
    g1 = val(x.grad)
    x.grad = None
    torch.autograd.backward([(x * x).sum()], [None])
    return {"gradient=": g1, "autograd.backward": val(x.grad)}


@case
def execution_engine_run_backward():
    """Megatron's custom_backward (pipeline schedules) calls the engine directly"""
    x = t(X, True)
    y = (x ** 2).sum(1)
    torch.autograd.Variable._execution_engine.run_backward(
        (y,), (t(np.arange(4, dtype=np.float32)),), False, False, (), allow_unreachable=True, accumulate_grad=True)
    return {"grad": val(x.grad)}


@case
def hooks_order():
    calls = []
    a = t(np.array([1.0, -2.0, 3.0], np.float32), True)
    b = a * 2
    b.register_hook(lambda g: (calls.append("b"), g * 3)[1])
    a.register_hook(lambda g: (calls.append("a"), None)[1])
    a.register_post_accumulate_grad_hook(lambda p: calls.append(f"post:{val(p.grad)}"))
    (b * b).sum().backward()
    return {"calls": list(calls), "grad": val(a.grad)}


@case
def grad_create_graph():
    x = t(np.array([1.0, 2.0, -1.5], np.float32), True)
    (g,) = torch.autograd.grad((x ** 3).sum(), x, create_graph=True)
    (g2,) = torch.autograd.grad(g.sum(), x)
    return {"g": val(g), "g2": val(g2), "x.grad untouched": x.grad is None}


@case
def no_grad_enable_grad():
    x = t(X, True)
    with torch.no_grad():
        a = x * 2
        with torch.enable_grad():
            b = x * 2
    return {"no_grad": a.requires_grad, "enable_grad inside": b.requires_grad, "outside": (x * 2).requires_grad}


@case
def second_backward_without_retain_raises():
    x = t(X, True)
    y = (torch.tanh(x) * x).sum()
    y.backward()
    try:
        y.backward()
        return {"raised": False}
    except RuntimeError:
        return {"raised": True}


@case
def inplace_ops_recorded():
    x = t(X, True)
    a = x * 1.0
    a.mul_(3)
    a.add_(x * x)
    a[0] = 0.0                                                           # setitem on a non-leaf
    a.sum().backward()
    return {"grad": val(x.grad)}


@case
def detach_is_not_differentiated():
    x = t(X, True)
    y = (x * x.detach()).sum()
    y.backward()
    return {"grad": val(x.grad)}                                          # x, not 2x


# --- (2) views: do writes reach the other side? -------------------------------------------------------------

def _shares(make_view, write):
    """write(base) then the view's values; write(view) then the base's values (on PyTorch the writes reach
    the other side, at the right elements)"""
    base = torch.tensor(np.arange(12, dtype=np.float32).reshape(3, 4))
    view = make_view(base)
    val(view), val(base)                       # both materialised first (MindSpore runs ops asynchronously)
    write(base)
    view_after = val(view)
    base = torch.tensor(np.arange(12, dtype=np.float32).reshape(3, 4))
    view = make_view(base)
    val(view), val(base)
    write(view)
    return {"view after writing the base": view_after, "base after writing the view": val(base)}


VIEWS = {
    "detach": lambda b: b.detach(),
    "view": lambda b: b.view(12),
    "reshape": lambda b: b.reshape(4, 3),
    "slice": lambda b: b[1:3],
    "select": lambda b: b[1],
    "narrow": lambda b: b.narrow(1, 1, 2),
    "transpose": lambda b: b.transpose(0, 1),
    ".data": lambda b: b.data,
}
WRITES = {"mul_": lambda x: x.mul_(2), "copy_": lambda x: x.copy_(-x),
          "fill_": lambda x: x.fill_(7), "setitem": lambda x: x.__setitem__(0, -5.0)}


@case
def views_share_storage():
    res = {}
    for vname, make in VIEWS.items():
        for wname, write in WRITES.items():
            try:
                res[f"{vname}/{wname}"] = _shares(make, write)
            except Exception as e:   # noqa: BLE001
                res[f"{vname}/{wname}"] = f"{type(e).__name__}: {str(e).splitlines()[0][:80]}"
    return res


@case
def param_data_is_a_buffer_view():
    """Megatron's grad/param buffers: param.data = buffer[a:b].view(shape); writes through either side"""
    buffer = torch.zeros(10)
    p = torch.nn.Parameter(torch.ones(2, 3))
    p.data = buffer[2:8].view(2, 3)
    buffer.fill_(4.0)
    seen_in_param = val(p)
    p.data.mul_(0.5)
    return {"param after buffer.fill_": seen_in_param, "buffer after p.data.mul_": val(buffer)}


# --- runner ---------------------------------------------------------------------------------------------------

def run_cases():
    report = {}
    for name, fn in CASES.items():
        try:
            report[name] = fn()
        except Exception:   # noqa: BLE001
            lines = [ln for ln in traceback.format_exc().strip().splitlines() if ln.strip() and not ln.startswith(("-", " "))]
            report[name] = {"error": " | ".join(lines[-3:])[:400]}
    return report


def differences(got, want, path=""):
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{path}: {str(got)[:200]}"]
        return [m for k in want for m in differences(got.get(k), want[k], f"{path}.{k}")]
    if isinstance(want, list) and want and isinstance(want[0], str) or isinstance(want, (bool, str)) or want is None:
        return [] if got == want else [f"{path}: {got!r} != {want!r}"[:300]]
    try:
        a, b = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    except (TypeError, ValueError):
        if isinstance(want, list) and isinstance(got, list) and len(got) == len(want):   # ragged: item by item
            return [m for i, (g, w) in enumerate(zip(got, want)) for m in differences(g, w, f"{path}[{i}]")]
        return [f"{path}: {str(got)[:120]} != {str(want)[:120]}"]
    if a.shape != b.shape:
        return [f"{path}: shape {a.shape} != {b.shape}"]
    err = float(np.abs(a - b).max() / max(1.0, float(np.abs(b).max()))) if b.size else 0.0
    return [] if err <= 1e-5 else [f"{path}: relative error {err:.3g}"]


# --- (3) cost ---------------------------------------------------------------------------------------------------

def cost(repeats: int = 30):
    """Microseconds per forward op of a 10-op chain shaped like a tiny-GPT layer (hidden 64, 64 tokens), run
    with torch's API (mindtorch's ops on MindSpore): forward without recording; forward + backward through
    Tensor.backward (the engine, where there is one); forward + backward through
    mindtorch.autograd.value_and_grad (how the converted stack differentiates today)."""
    rng = np.random.default_rng(0)
    x0 = t(rng.standard_normal((64, 64)).astype(np.float32))
    ws = [torch.nn.Parameter(t(rng.standard_normal((64, 64)).astype(np.float32) * 0.1)) for _ in range(4)]
    nops = 10

    def chain(w0, w1, w2, w3):   # 10 ops: 4 matmuls, softmax, tanh, scalings, an add, a sum
        h = x0 @ w0
        p = torch.softmax((h @ w1) * 0.125, -1)
        h = (p @ h) + x0
        h = torch.tanh(h @ w2) * w3
        return (h * h).sum()

    def timed(fn):   # (wall, CPU time of this process) per op, each the best of 5 rounds: the machine is shared
        fn()
        walls, cpus = [], []
        for _ in range(5):
            start, cpu = time.perf_counter(), time.process_time()
            for _ in range(repeats):
                fn()
            walls.append((time.perf_counter() - start) / repeats / nops * 1e6)
            cpus.append((time.process_time() - cpu) / repeats / nops * 1e6)
        return min(walls), min(cpus)

    def engine():
        if ON_MINDTORCH:   # MindSpore's value_and_grad switches the recording off when it returns
            from mindspore.common.api import _pynative_executor
            _pynative_executor.set_grad_flag(True)
        for w in ws:
            w.grad = None
        chain(*ws).backward()
        return [val(w.grad) for w in ws]

    out = {"runtime": ENGINE}
    with torch.no_grad():
        out["forward, no recording"] = timed(lambda: val(chain(*ws)))
    if HAS_ENGINE:
        out["forward + Tensor.backward (engine)"] = timed(engine)
        out["forward recorded, no backward"] = timed(lambda: val(chain(*ws)))
    if ON_MINDTORCH:
        value_and_grad = torch.autograd.value_and_grad(chain, ws)

        def functional():
            for w in ws:
                w.grad = None
            value_and_grad(*ws)
            return [val(w.grad) for w in ws]
        out["forward + backward by value_and_grad"] = timed(functional)
        if HAS_ENGINE:
            ref, got = functional(), engine()
            out["engine vs value_and_grad, max relative difference"] = max(
                float(np.abs(np.subtract(a, b)).max() / max(1.0, np.abs(b).max())) for a, b in zip(got, ref))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="write the observations as JSON here")
    ap.add_argument("--against", help="compare with observations written by another run (the reference)")
    ap.add_argument("--cost", action="store_true", help="time the engine against value_and_grad instead")
    ap.add_argument("--torch", action="store_true", help="run on PyTorch even where mindtorch is importable")
    ap.add_argument("--no-shim", action="store_true", help="mindtorch as it is, without the engine shim")
    args = ap.parse_args()
    if args.cost:
        print(f"{'microseconds per forward op':52s} {'wall':>8s} {'CPU':>8s}")
        for k, v in cost().items():
            if isinstance(v, tuple):
                print(f"{k:52s} {v[0]:8.0f} {v[1]:8.0f}")
            else:
                print(f"{k:52s} {v if isinstance(v, str) else f'{v:.3g}'}")
        return
    report = {"engine": ENGINE, "cases": run_cases()}
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(report, fh)
    print(f"engine: {ENGINE}")
    if args.against:
        want = json.load(open(args.against))["cases"]
        same = 0
        for name, w in want.items():
            got = report["cases"].get(name, {"error": "missing"})
            if isinstance(got, dict) and "error" in got:
                print(f"{name}: ERROR {got['error']}")
                continue
            diffs = differences(got, w)
            same += not diffs
            print(f"{name}: " + ("ok" if not diffs else "; ".join(diffs[:6]) + (" ..." if len(diffs) > 6 else "")))
        print(f"{same} of {len(want)} cases as on PyTorch")
    else:
        print(json.dumps(report["cases"], indent=None)[:4000])


if __name__ == "__main__":
    main()
