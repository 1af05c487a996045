"""PyTorch's autograd semantics on mindtorch (patch 0011: MindSpore 2.10's C++ engine), case by case, and
what recording for the engine costs.

The cases are tests/runtime/autograd_cases.py's (written once against ``torch``; the test
tests/runtime/test_autograd_semantics.py runs them in the converted workspace and on PyTorch and
compares). Views and in-place writes are tests/runtime/views_semantics_cases.py's. Run by hand::

    .venv-torch/bin/python bench/autograd_engine_probe.py --out /tmp/pt.json                # PyTorch
    PYTHONPATH=<patched mindtorch> .venv/bin/python bench/autograd_engine_probe.py --against /tmp/pt.json
    PYTHONPATH=<patched mindtorch> .venv/bin/python bench/autograd_engine_probe.py --cost   # overhead only

``--against`` prints one line per case: ``ok`` or what differs (float64 1e-6, float32 1e-5 relative to
the largest reference magnitude). ``--cost`` times a 10-op chain shaped like a tiny-GPT layer (64x64
matmuls, softmax, tanh), microseconds per forward op: without recording; forward + ``Tensor.backward``
(PyTorch's engine or MindSpore's); forward + backward by ``mindtorch.autograd.value_and_grad``.
docs/runtime_autograd.md has the results. Everything runs on the CPU.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ON_MINDTORCH = False
if "--torch" not in sys.argv:
    try:
        import mindtorch  # noqa: F401  (first: it installs the `torch` import proxy)
        ON_MINDTORCH = True
    except ImportError:
        pass
import torch  # noqa: E402  (PyTorch, or mindtorch's proxy)

RUNTIME = Path(__file__).resolve().parents[1] / "tests" / "runtime"
sys.path[:0] = [str(RUNTIME), str(RUNTIME.parents[1])]
import autograd_cases  # noqa: E402

if ON_MINDTORCH:
    import mindspore
    ENGINE = f"mindtorch on MindSpore {mindspore.__version__}"
else:
    ENGINE = f"PyTorch {torch.__version__}"


def t(a):
    return torch.tensor(a)


def val(x):
    return x.detach().numpy().tolist()


# --- cost -------------------------------------------------------------------------------------------------------

def cost(repeats: int = 30):
    """Microseconds per forward op of a 10-op chain shaped like a tiny-GPT layer (hidden 64, 64 tokens), run
    with torch's API (mindtorch's ops on MindSpore): forward without recording; forward + backward through
    Tensor.backward (PyTorch's engine or MindSpore's); forward + backward through
    mindtorch.autograd.value_and_grad (the functional path, which other code still uses)."""
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
        for w in ws:
            w.grad = None
        chain(*ws).backward()
        return [val(w.grad) for w in ws]

    out = {"runtime": ENGINE}
    with torch.no_grad():
        out["forward, no recording"] = timed(lambda: val(chain(*ws)))
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
    args = ap.parse_args()
    if args.cost:
        print(f"{'microseconds per forward op':52s} {'wall':>8s} {'CPU':>8s}")
        for k, v in cost().items():
            if isinstance(v, tuple):
                print(f"{k:52s} {v[0]:8.0f} {v[1]:8.0f}")
            else:
                print(f"{k:52s} {v if isinstance(v, str) else f'{v:.3g}'}")
        return
    report = {"engine": ENGINE, "cases": autograd_cases.run_cases()}
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(report, fh)
    print(f"engine: {ENGINE}")
    if args.against:   # the tests' comparison (it imports pytest: not in the PyTorch environment)
        from op_cases_compare import TOL
        from test_mindtorch_compat import _mismatches
        want = json.load(open(args.against))["cases"]
        same = 0
        for name, w in want.items():
            got = report["cases"].get(name, {"error": "missing"})
            if "error" in got:
                print(f"{name}: ERROR {got['error'].strip().splitlines()[-1][:300]}")
                continue
            diffs = _mismatches(got["observed"], w["observed"], TOL[w["dtype"]])
            same += not diffs
            print(f"{name}: " + ("ok" if not diffs else "; ".join(diffs[:6]) + (" ..." if len(diffs) > 6 else "")))
        print(f"{same} of {len(want)} cases as on PyTorch")
    else:
        print(json.dumps(report["cases"], indent=None)[:4000])


if __name__ == "__main__":
    main()
