"""The differential op test's machinery, written once against `torch`: a registry of op cases, the
recorder each case drives, and the report loop. The cases themselves are in op_cases_*.py.

`torch` is mindtorch through its import proxy in the workspace (op_cases_run.py imports mindtorch first
and checks it) and PyTorch in the reference environment; the same case code, on the same seeded inputs,
runs on both and each side prints its observations (``OPDIFF_REPORT {json}``); test_op_differential.py
compares them.

A case covers one or more inventory entries (op_inventory.json: ``torch.cat``, or a Tensor method
``view``) and records labelled call patterns, each the way the converted code calls it (positional and
keyword arguments as at its call sites). A label records, as far as it applies: the output (dtype, shape,
values), the gradients of ``sum(out * ct)`` with respect to every floating input (a fixed random
cotangent ``ct``), and for in-place ops and views whether the input is modified / the base is shared.
One label's exception is recorded as its observation and does not hide the others.

Floating inputs are float64 (compared within 1e-6) unless the case says why it runs in float32 (1e-5).
"""
from __future__ import annotations

import traceback
import zlib
from typing import Any, Callable

import numpy as np
import torch

from mindtorch_compat_cases import ON_MINDTORCH, dtype_name, grads

# case name -> (the inventory entries it covers, float dtype, its function); tolerances: op_cases_compare.TOL
CASES: dict[str, tuple[tuple[str, ...], str, Callable]] = {}


def op(*covers: str, dtype: str = "float64"):
    """Register a case covering these inventory entries; ``dtype``: the floating dtype of its inputs
    (float32 only where MindSpore's CPU backend has no float64 kernel for the op, said at the case)."""
    def register(fn: Callable) -> Callable:
        CASES[fn.__name__] = (covers, dtype, fn)
        return fn
    return register


def observe(x: Any) -> Any:
    """A JSON-able observation of an op's result: tensors as dtype, shape and values (non-finite values
    listed apart, so that a comparison within a tolerance stays numeric); sequences item by item."""
    if isinstance(x, torch.Tensor):
        a = x.detach().cpu().numpy() if x.dtype != torch.bfloat16 else x.detach().float().cpu().numpy()
        rec = {"dtype": dtype_name(x.dtype), "shape": list(x.shape)}
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            bad = ~np.isfinite(a)
            rec["nonfinite"] = [[list(map(int, i)), repr(float(a[tuple(i)]))] for i in np.argwhere(bad)]
            a = np.where(bad, 0.0, a)
        rec["values"] = a.tolist()
        return rec
    if isinstance(x, torch.Size):
        return {"size": list(x)}
    if isinstance(x, (tuple, list)):
        return [observe(v) for v in x]
    if isinstance(x, dict):
        return {k: observe(v) for k, v in x.items()}
    if isinstance(x, (bool, int, float, str)) or x is None:
        return x
    if isinstance(x, torch.dtype):
        return dtype_name(x)
    return repr(type(x).__name__)


def _error(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"[:300]


def _float_outputs(out: Any) -> list:
    if isinstance(out, torch.Tensor):
        return [out] if out.is_floating_point() else []
    if isinstance(out, (tuple, list)):
        return [o for x in out for o in _float_outputs(x)]
    return []


class Recorder:
    """What one case observes, label by label; inputs are drawn from a generator seeded by the case's
    name, so both sides draw the same arrays."""

    def __init__(self, name: str, dtype: str) -> None:
        self.rng = np.random.default_rng(zlib.crc32(name.encode()))
        self.np_dtype = np.dtype(dtype)
        self.dtype = getattr(torch, dtype)
        self.results: dict[str, Any] = {}

    # --- inputs (numpy arrays: each call site gets fresh tensors of them) ---------------------------
    def f(self, *shape: int, scale: float = 1.0, positive: bool = False) -> np.ndarray:
        a = self.rng.standard_normal(shape) * scale
        return (np.abs(a) + 0.1 if positive else a).astype(self.np_dtype)

    def i(self, low: int, high: int, *shape: int) -> np.ndarray:
        return self.rng.integers(low, high, shape).astype(np.int64)

    def b(self, *shape: int) -> np.ndarray:
        return self.rng.random(shape) < 0.4

    @staticmethod
    def t(a: Any) -> Any:
        return torch.tensor(a) if isinstance(a, np.ndarray) else a

    # --- observations -------------------------------------------------------------------------------
    def _record(self, label: str, fn: Callable[[], dict]) -> None:
        assert label not in self.results, f"label {label!r} twice"
        try:
            self.results[label] = fn()
        except Exception as e:   # noqa: BLE001
            self.results[label] = {"error": _error(e)}
            _settle()

    def check(self, label: str, fn: Callable, *inputs: Any, grad: bool | tuple[int, ...] = True,
              values: bool = True) -> None:
        """fn(*tensors of inputs): its output; with ``grad``, the gradient of sum(out * ct) with respect
        to each floating array input (or those at the positions ``grad`` names: torch gives the others
        no gradient); without ``values`` only dtypes and shapes (uninitialised memory)."""
        def run() -> dict:
            out = fn(*map(self.t, inputs))
            rec = {"out": observe(out) if values else _shapes(out)}
            floats = [k for k, a in enumerate(inputs) if isinstance(a, np.ndarray) and a.dtype.kind == "f"
                      and (grad is True or (isinstance(grad, tuple) and k in grad))]
            if grad and floats and _float_outputs(out):
                rec["grad"] = self._grads(label, fn, inputs, floats, out)
            return rec
        self._record(label, run)

    def _grads(self, label: str, fn: Callable, inputs: tuple, floats: list[int], out: Any) -> Any:
        # the cotangents come from the label's own generator: a label that fails on one side must not
        # shift the inputs the case draws afterwards
        rng = np.random.default_rng(zlib.crc32(label.encode()))
        cts = [torch.tensor(rng.standard_normal(tuple(o.shape)).astype(self.np_dtype)) for o in _float_outputs(out)]

        def loss(*params):
            args = list(map(self.t, inputs))
            for k, p in zip(floats, params):
                args[k] = p
            return sum((o * ct).sum() for o, ct in zip(_float_outputs(fn(*args)), cts))
        try:
            # the loss value is not kept: float() of a mindtorch float64 tensor keeps 5 digits (a finding
            # of its own, case `tensor`); the forward output is compared in full already
            _value, gs = grads(loss, [torch.nn.Parameter(torch.tensor(inputs[k])) for k in floats])
        except Exception as e:   # noqa: BLE001
            return {"error": _error(e)}
        return {"inputs": gs}

    def inplace(self, label: str, fn: Callable, *inputs: Any) -> None:
        """fn(x, *rest) modifies x (the first input) in place: what it returns, whether that is x itself,
        and x afterwards."""
        def run() -> dict:
            args = list(map(self.t, inputs))
            x = args[0]
            out = fn(*args)
            return {"returns_input": out is x, "input_after": observe(x),
                    "out": observe(out) if out is not x else "input"}
        self._record(label, run)

    def aliasing(self, label: str, view: Callable, base: np.ndarray) -> None:
        """view(base) as the converted code uses it: whether an in-place write into the view reaches the
        base (``mul_``, ``fill_``), and a write into the base the view."""
        def run() -> dict:
            rec = {}
            for write in ("mul_", "fill_"):
                b = self.t(base)
                v = view(b)
                getattr(v, write)(3.0)
                rec[f"view.{write} -> base"] = observe(b)
                b = self.t(base)
                v = view(b)
                getattr(b, write)(3.0)
                rec[f"base.{write} -> view"] = observe(v)
            return rec
        self._record(label, run)

    def value(self, label: str, fn: Callable) -> None:
        """A result that is not an op's output tensor (a property, a Python value)."""
        self._record(label, lambda: {"out": observe(fn())})


def _settle() -> None:
    """After an op failed: let a pending error surface here, not in the next label. On MindSpore a failed
    op's error is raised again by the next op (a failed matmul(vector, matrix) makes the next bmm, or any
    next op's ``.shape``, raise the same ValueError): without this, one failing label could fail the next."""
    for _ in range(2):
        try:
            _ = (torch.zeros(1) + 1).shape
        except Exception:   # noqa: BLE001
            pass


def _shapes(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return {"dtype": dtype_name(out.dtype), "shape": list(out.shape)}
    if isinstance(out, (tuple, list)):
        return [_shapes(o) for o in out]
    return observe(out)


def run_cases() -> dict:
    """Per case: the entries it covers, its dtype, and its labels' observations (or the case's own
    failure as ``{"error": traceback}``)."""
    import op_cases_ops  # noqa: F401  (registers the cases)
    report = {}
    for name, (covers, dtype, fn) in CASES.items():
        rec = Recorder(name, dtype)
        try:
            fn(rec)
            labels = rec.results
        except Exception:   # noqa: BLE001
            labels = {"<case>": {"error": traceback.format_exc()[-1500:]}}
        report[name] = {"covers": list(covers), "dtype": dtype, "labels": labels}
    return report


def side() -> str:
    return "mindtorch" if ON_MINDTORCH else "pytorch"
