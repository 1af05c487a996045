"""The type-promotion grid of test_type_promotion.py, written once against `torch` and run on one side:

    python type_promotion_cases.py mindtorch     # in a workspace (source set_env.sh): mindtorch's torch proxy
    python type_promotion_cases.py pytorch       # in the PyTorch reference environment

prints ``TYPEPROMO_REPORT {json}``: per label (``<op> <dtype of a> <dtype of b> <kind of b>``) the result's
dtype, shape and values, or the error, recorded by op_cases' Recorder (the differential op test's machinery:
the same observation and error handling). ``a`` is a 2x3 tensor of each of the ten dtypes; ``b`` a 2x3
tensor (kind ``t``), a 0-dim tensor (``0d``) of each dtype, or a Python bool/int/float (``py``, its
dtype column names the scalar: bool True, int64 3, float32 2.5). Ops: the binary arithmetic as
functions, Tensor methods, operators, reflected operators (``py`` op tensor), in-place methods and
operators; pow, maximum/minimum, where and the comparisons; torch.result_type, promote_types and
can_cast; and the gradients of float mixes (each operand's gradient, in its own dtype).
"""
from __future__ import annotations

import itertools
import json
import sys
import time

DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16", "float32", "float64"]
FLOATS = ["float16", "bfloat16", "float32", "float64"]
PROMOTE_DTYPES = DTYPES + ["uint16", "uint32", "uint64", "complex64", "complex128"]
PY_SCALARS = {"bool": True, "int64": 3, "float32": 2.5}        # b of kind "py", by the dtype it stands for

# values: a has negatives (floor vs trunc), b has no zeros (no division by zero)
A_VALUES = {"bool": [[True, False, True], [False, True, True]], "uint8": [[0, 1, 2], [7, 5, 9]],
            "int": [[-7, -1, 0], [1, 5, 9]], "float": [[-2.5, -1.0, 0.0], [0.5, 1.75, 9.0]]}
B_VALUES = {"bool": [[True, True, True], [True, True, True]], "uint8": [[2, 3, 1], [2, 1, 4]],
            "int": [[-2, 3, 1], [2, -1, 4]], "float": [[-1.5, 2.0, 0.5], [2.5, -4.0, 1.25]]}
ZERO_DIM = {"bool": True, "uint8": 3, "int": -3, "float": -1.5}


def _group(dtype: str) -> str:
    return dtype if dtype in ("bool", "uint8") else "float" if dtype in FLOATS else "int"


def binary_ops(torch) -> dict:
    """label -> f(a, b): the forms the converted code writes (function, operator; the Tensor methods call
    the same functions, the in-place ones are below)."""
    return {
        "add": torch.add, "+": lambda a, b: a + b, "sub": torch.sub, "-": lambda a, b: a - b,
        "mul": torch.mul, "*": lambda a, b: a * b,
        "div": torch.div, "a.div": lambda a, b: a.div(b, rounding_mode="trunc"), "/": lambda a, b: a / b,
        "div floor": lambda a, b: torch.div(a, b, rounding_mode="floor"),
        "div trunc": lambda a, b: torch.div(a, b, rounding_mode="trunc"),
        "true_divide": torch.true_divide, "floor_divide": torch.floor_divide, "//": lambda a, b: a // b,
        "remainder": torch.remainder, "%": lambda a, b: a % b,
        "pow": torch.pow, "**": lambda a, b: a ** b,
        "eq": torch.eq, "==": lambda a, b: a == b, "ne": torch.ne, "lt": torch.lt, "le": torch.le,
        "gt": torch.gt, "ge": torch.ge,
        "where": lambda a, b: torch.where(a.to(torch.bool), a, b),
    }


def tensor_ops(torch) -> dict:
    """Ops PyTorch takes two tensors only for."""
    return {"maximum": torch.maximum, "minimum": torch.minimum}


def reflected_ops() -> dict:
    """A Python number on the left of a tensor."""
    return {"r+": lambda s, t: s + t, "r-": lambda s, t: s - t, "r*": lambda s, t: s * t, "r/": lambda s, t: s / t,
            "r//": lambda s, t: s // t, "r%": lambda s, t: s % t, "r**": lambda s, t: s ** t}


def inplace_ops() -> dict:
    def iadd(a, b):
        a += b
        return a

    def isub(a, b):
        a -= b
        return a

    def imul(a, b):
        a *= b
        return a

    def idiv(a, b):
        a /= b
        return a

    def ifloordiv(a, b):
        a //= b
        return a

    def imod(a, b):
        a %= b
        return a
    return {"add_": lambda a, b: a.add_(b), "sub_": lambda a, b: a.sub_(b), "mul_": lambda a, b: a.mul_(b),
            "div_": lambda a, b: a.div_(b), "div_ floor": lambda a, b: a.div_(b, rounding_mode="floor"),
            "true_divide_": lambda a, b: a.true_divide_(b), "floor_divide_": lambda a, b: a.floor_divide_(b),
            "remainder_": lambda a, b: a.remainder_(b),
            "+=": iadd, "-=": isub, "*=": imul, "/=": idiv, "//=": ifloordiv, "%=": imod}


GRAD_OPS = ("add", "sub", "mul", "div")
# the op -> the group test_type_promotion.py reports it in (the binary ops' forms under their function)
GROUP_OF = {"+": "add", "-": "sub", "*": "mul", "a.div": "div", "/": "div", "div floor": "div", "div trunc": "div",
            "//": "floor_divide", "%": "remainder",
            "**": "pow", "eq": "compare", "==": "compare", "ne": "compare", "lt": "compare", "le": "compare",
            "gt": "compare", "ge": "compare", "minimum": "maximum", "promote_types": "result_type",
            "can_cast": "result_type"}
GROUPS = ["add", "sub", "mul", "div", "true_divide", "floor_divide", "remainder", "pow", "compare", "where",
          "maximum", "in-place", "reflected", "result_type", "grad"]


def group_of(op: str) -> str:
    if op.startswith("grad "):
        return "grad"
    if op in inplace_ops():
        return "in-place"
    if op in reflected_ops():
        return "reflected"
    return GROUP_OF.get(op, op)


def run(torch, Recorder) -> dict:
    rec = Recorder("type_promotion", "float64")
    groups = {}

    def value(op, rest, fn):
        groups[f"{op} {rest}"] = group_of(op)
        rec.value(f"{op} {rest}", fn)

    def dt(name):
        return getattr(torch, name)

    def a_of(da):
        return torch.tensor(A_VALUES[_group(da)], dtype=dt(da))

    def b_of(db, kind):
        if kind == "py":
            return PY_SCALARS[db]
        if kind == "0d":
            return torch.tensor(ZERO_DIM[_group(db)], dtype=dt(db))
        return torch.tensor(B_VALUES[_group(db)], dtype=dt(db))

    # the gradients first: on MindSpore 2.10 an op that failed in some kernels (TruncateDiv of bool) leaves
    # .backward() broken for the rest of the process ("element 0 of tensors does not require grad")
    for name in GRAD_OPS:
        f = binary_ops(torch)[name]
        for da, db, kind in itertools.product(FLOATS, FLOATS, ("t", "0d")):
            groups[f"grad {name} {da} {db} {kind}"] = "grad"
            rec._record(f"grad {name} {da} {db} {kind}",
                        lambda f=f, da=da, db=db, kind=kind: _grads(torch, f, a_of(da), b_of(db, kind)))
    pairs = [(da, db, kind) for da in DTYPES for kind in ("t", "0d", "py") for db in DTYPES
             if kind != "py" or db in PY_SCALARS]
    for name, f in binary_ops(torch).items():
        for da, db, kind in pairs:
            value(name, f"{da} {db} {kind}", lambda f=f, da=da, db=db, kind=kind: f(a_of(da), b_of(db, kind)))
    for name, f in tensor_ops(torch).items():
        for da, db, kind in pairs:
            if kind != "py":
                value(name, f"{da} {db} {kind}", lambda f=f, da=da, db=db, kind=kind: f(a_of(da), b_of(db, kind)))
    for name, f in reflected_ops().items():
        for db, da in itertools.product(PY_SCALARS, DTYPES):       # label: <op> <scalar> <tensor> py
            # b's values: no integer division by zero (PyTorch raises, mindtorch does not: not promotion)
            value(name, f"{db} {da} py", lambda f=f, da=da, db=db: f(PY_SCALARS[db], b_of(da, "t")))
    for name, f in inplace_ops().items():
        for da, db, kind in pairs:
            groups[f"{name} {da} {db} {kind}"] = group_of(name)
            rec.inplace(f"{name} {da} {db} {kind}", f, a_of(da), b_of(db, kind))
    for name in ("sub", "div"):                                    # a 0-dim tensor first
        f = binary_ops(torch)[name]
        for da, db in itertools.product(DTYPES, DTYPES):
            value(name, f"{da} {db} 0d-first",
                  lambda f=f, da=da, db=db: f(torch.tensor(ZERO_DIM[_group(da)], dtype=dt(da)), b_of(db, "t")))
    for da, db, kind in pairs:
        value("result_type", f"{da} {db} {kind}",
              lambda da=da, db=db, kind=kind: torch.result_type(a_of(da), b_of(db, kind)))
    for da, db in itertools.product(PROMOTE_DTYPES, PROMOTE_DTYPES):
        value("promote_types", f"{da} {db}", lambda da=da, db=db: torch.promote_types(dt(da), dt(db)))
        value("can_cast", f"{da} {db}", lambda da=da, db=db: torch.can_cast(dt(da), dt(db)))
    return {"labels": rec.results, "groups": groups}


def _grads(torch, f, a, b) -> dict:
    """Both operands' gradients of sum(f(a * 1, b * 1) * 1.5) by backward(), as observed (dtype and values).
    (``* 1``: on MindSpore 2.10 a leaf that receives an Add's gradient directly, ``(a + b).sum().backward()``,
    raises 'The kernel Clone unregistered' with or without promotion; docs/type_promotion.md.)"""
    from op_cases import observe
    a.requires_grad_(True)
    b.requires_grad_(True)
    (f(a * 1, b * 1).float() * 1.5).sum().backward()
    return {"a.grad": observe(a.grad), "b.grad": observe(b.grad)}


if __name__ == "__main__":
    wanted = sys.argv[1] if len(sys.argv) > 1 else ""
    if wanted not in ("mindtorch", "pytorch"):
        raise SystemExit("usage: type_promotion_cases.py mindtorch|pytorch")
    if wanted == "mindtorch":
        import mindtorch  # noqa: F401  (first: installs the `torch` import proxy)
    import torch

    import op_cases
    if op_cases.side() != wanted or (wanted == "pytorch" and "mindtorch" in sys.modules):
        raise SystemExit(f"asked for {wanted}, but `torch` is {torch!r}")
    start = time.perf_counter()
    grid = run(torch, op_cases.Recorder)
    print("TYPEPROMO_REPORT " + json.dumps({"side": wanted, "seconds": round(time.perf_counter() - start, 2),
                                           **grid}))
