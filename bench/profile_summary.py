"""Where a converted run's time goes, from a cProfile written by bench/stepclock.py --profile.

    python bench/profile_summary.py RUN.prof [--top 15]

Every function's own time (tottime) goes to one layer:
- ``mindtorch dispatch``: mindtorch's executor.py and dispatcher.py (op name and device -> backend);
- ``mindtorch CPU backend``: _apis/ and _op_prim/ (torch ops written with MindSpore primitives);
- ``mindtorch tensor/ops/autograd/nn/optim``: the rest of mindtorch's Python, by package;
- ``MindSpore Python``: mindspore/*.py;
- ``MindSpore C++``: calls into MindSpore's extension (pyboost kernels, the PyNative executor's
  ``run_op_async``/``grad``/``new_graph``/``end_graph``, tensor methods of ``TensorPy``): kernels plus
  MindSpore's C++ runtime, which a Python profiler cannot split further;
- ``model code``: Megatron / MindSpeed / MindSpeed-LLM / the example's Python;
- ``other Python``: the standard library, NumPy, ...
A built-in that is not MindSpore's (``isinstance``, ``len``, ``getattr``) counts for the layer of
its caller, split by the time spent under each caller. cProfile adds a fixed cost to every Python
call, so the Python layers come out larger than without it: read the fractions as an upper bound
for Python and a lower bound for C++.
"""
from __future__ import annotations

import argparse
import pstats
from collections import defaultdict

# Python functions of MindSpore whose own time is one call into its C++ runtime (pybind methods
# called from them are not seen by cProfile as separate calls).
MINDSPORE_CPP_WRAPPERS = {"run_op_async", "grad", "new_graph", "end_graph", "run_backward"}
MINDTORCH_DISPATCH = ("/mindtorch/executor.py", "/mindtorch/dispatcher.py")
MINDTORCH_BACKEND = ("/mindtorch/_apis/", "/mindtorch/_op_prim/")
MINDSPORE_BUILTIN_MARKS = ("mindspore", "_c_expression", "TensorPy", "pyboost", "PyNativeExecutor", "Tensor_",
                           "Tensor._data_ptr")
MODEL_MARKS = ("/Megatron-LM/", "/MindSpeed/", "/MindSpeed-LLM/", "/megatron/", "/mindspeed", "/tiny_gpt/")


def layer(func: tuple[str, int, str]) -> str | None:
    """The layer of a profiled function, or None for a generic built-in (charged to its callers)."""
    filename, _, name = func
    if filename == "~":
        if any(mark in name for mark in MINDSPORE_BUILTIN_MARKS):
            return "MindSpore C++"
        return None
    path = filename.replace("\\", "/")
    if "/mindtorch/" in path:
        if any(part in path for part in MINDTORCH_DISPATCH):
            return "mindtorch dispatch"
        if any(part in path for part in MINDTORCH_BACKEND):
            return "mindtorch CPU backend"
        sub = path.rsplit("/mindtorch/", 1)[1].split("/")[0]
        group = {"_tensor.py": "tensor", "_C": "tensor", "ops": "ops", "autograd": "autograd", "nn": "nn",
                 "optim": "optim"}.get(sub, "other")
        return f"mindtorch {group}"
    if "/mindspore/" in path:
        return "MindSpore C++" if name in MINDSPORE_CPP_WRAPPERS else "MindSpore Python"
    if any(mark in path for mark in MODEL_MARKS):
        return "model code"
    return "other Python"


def summarize(stats: pstats.Stats) -> tuple[dict[str, float], list[tuple[float, str, str]]]:
    """Seconds per layer, and (own seconds, function, layer) of every function, largest first."""
    raw = stats.stats  # type: ignore[attr-defined]
    by_layer: dict[str, float] = defaultdict(float)
    funcs = []
    for func, (_, _, tottime, _, callers) in raw.items():
        own = layer(func)
        if own is not None:
            by_layer[own] += tottime
            funcs.append((tottime, pstats.func_std_string(func), own))
            continue
        shares = {caller: entry[2] for caller, entry in callers.items()} if callers else {}
        total = sum(shares.values())
        if not total:
            by_layer["other Python"] += tottime
            continue
        for caller, share in shares.items():
            by_layer[layer(caller) or "other Python"] += tottime * share / total
        funcs.append((tottime, pstats.func_std_string(func), "built-in"))
    funcs.sort(reverse=True)
    return dict(by_layer), funcs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("profile")
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    by_layer, funcs = summarize(pstats.Stats(args.profile))
    total = sum(by_layer.values())
    print(f"{args.profile}: {total:.3f} s profiled")
    print("| layer | s | share |\n| --- | ---: | ---: |")
    for name, seconds in sorted(by_layer.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {seconds:.3f} | {seconds / total:.1%} |")
    print(f"\ntop {args.top} functions by own time:")
    print("| own s | share | function | layer |\n| ---: | ---: | --- | --- |")
    for seconds, name, where in funcs[:args.top]:
        short = name.split("site-packages/")[-1]
        print(f"| {seconds:.3f} | {seconds / total:.1%} | `{short}` | {where} |")


if __name__ == "__main__":
    main()
