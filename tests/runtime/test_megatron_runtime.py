"""Converted Megatron-core on MindSpore (CPU) against unconverted Megatron-core on PyTorch 2.13 CPU.

1. Every ``megatron.core`` module that imports on PyTorch imports on MindSpore.
2. The parity matrix: the tiny GPT of examples/tiny_gpt in every configuration of its configs.py (a
   baseline; RMSNorm, RoPE, SwiGLU, GQA, qk-layernorm, untied embeddings, MoE with the aux-loss,
   sinkhorn and no load balancing routers and the alltoall dispatcher, 4 micro-batches, gradient
   clipping, full and selective recomputation, the distributed optimizer, each switched on alone; and
   all together), trained from the same weights on the same data on both sides. At every one of 20
   steps (`all`: the first 8, where PyTorch keeps 1e-3 of itself: COMPARED_STEPS) the losses and
   gradient norms agree within 1e-3 relative, and at step 1 every parameter's gradient
   agrees within 1e-4 relative (norm of the difference over norm).

The losses alone cannot tell a broken attention: at this size (weights drawn with std 0.02) the
scores are near zero and attention near uniform, so attention with the query/key product lost (the
swapped beta/alpha of baddbmm before mindtorch patch 0008) still matched the loss to 2.5e-5. Its
query/key gradients were zero, which the per-parameter comparison sees: both layers' linear_qkv,
linear_proj and input layer norm weights were off by 5.9e-4 to 7.8e-4 relative (with it: <= 4.7e-7).

Run as a script, it prints the measured table of docs/parity_matrix.md::

    .venv/bin/python tests/runtime/test_megatron_runtime.py [--root DIR] [--steps N] [--config a,b]
"""
from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).parent
EXAMPLE = HERE.parent.parent / "examples" / "tiny_gpt"
sys.path.insert(0, str(HERE.parent.parent))      # tools.corpora, when run as a script
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(EXAMPLE))

from configs import CONFIGS, setup  # noqa: E402
from testbed import Testbed, free_port, table_command  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.pypi, pytest.mark.mindspore]


def test_every_megatron_core_module_that_imports_on_pytorch_imports_on_mindspore(testbed: Testbed):
    testbed.check_megatron_imports()


# per configuration, as the issue asks
STEPS = 20
# ... except where PyTorch itself does not keep 1e-3 over 20 steps: started from weights moved by 1e-6
# relative (noise the size of MindSpore's float32 differences), unconverted Megatron on PyTorch drifts from
# its own unperturbed run as MindSpore does, step for step (`all`: 1e-5 at step 5, 7e-4 at step 9, 1e-3
# at steps 15 and 19; a routing decision on a near-tie), while 1 ulp stays within 1e-7
# (docs/parity_matrix.md). There only the steps before that are compared.
COMPARED_STEPS = {"all": 8}
LOSS_TOL = 1e-3    # |a - b| / |b| of each step's loss and gradient norm
GRAD_TOL = 1e-4    # |g_ms - g_pt| / |g_pt| of each parameter's step-1 gradient
# A reference gradient below ZERO_GRAD of the whole gradient's norm is compared against that instead of
# its own norm: qk-layernorm's key bias has a gradient that is zero in exact arithmetic (softmax does
# not change when every key moves by the same vector); PyTorch's is 8e-10 of rounding noise (the whole
# gradient's norm is ~2), and MindSpore's noise is another (1.0e-9): 1.5 relative, 5e-6 with the floor.
ZERO_GRAD = 1e-4
MS_PROCESSES = 2   # the MindSpore side is split over this many processes, run beside the PyTorch one

# Configurations that fail today for a known, measured cause: (reason, a line of the failure that names
# it). strict: the day one passes, its test fails until the mark is removed; and the mark holds only
# for that failure (raises=KnownFailure): failing for another reason fails the test.
_DRIFT = "losses or gradient norms differ by more than"
KNOWN_FAILURES: dict[str, tuple[str, str]] = {}


class KnownFailure(AssertionError):
    """The failure a configuration's xfail mark names."""


def run_matrix(testbed: Testbed, out: Path, configs: list[str], steps: int = STEPS) -> dict[str, tuple[dict, dict]]:
    """Train ``configs`` on both sides at once (MindSpore over ``MS_PROCESSES`` processes, each running
    several configurations one after the other; PyTorch in one) and return {config: (ms, pt)}, each
    a train.py result (losses, grad_norms, step_times, seconds, step1_grads) or {"error": text}."""
    (out / "ms").mkdir(parents=True, exist_ok=True)
    (out / "pt").mkdir(parents=True, exist_ok=True)
    shares: list[list[str]] = [[] for _ in range(MS_PROCESSES)]
    for name in sorted(configs, key=_cost, reverse=True):          # the costliest first, to the least loaded
        min(shares, key=lambda share: sum(map(_cost, share))).append(name)
    train = testbed.workspace / "tiny_gpt" / "train.py"

    def ms(share: list[str]) -> None:
        _run_until_done(share, out / "ms", lambda names: testbed.ms_run(
            f"python {train} --config {','.join(names)} --steps {steps} --out-dir {out / 'ms'}",
            MASTER_PORT=free_port()))

    def pt() -> None:
        _run_until_done(configs, out / "pt", lambda names: testbed.torch_run(
            [str(EXAMPLE / "reference.py"), "--config", ",".join(names), "--steps", str(steps),
             "--out-dir", str(out / "pt")], MASTER_PORT=free_port(), OMP_NUM_THREADS="1"))

    with ThreadPoolExecutor(MS_PROCESSES + 1) as pool:
        for job in [pool.submit(pt)] + [pool.submit(ms, share) for share in shares if share]:
            job.result()
    return {name: (_load(out / "ms", name), _load(out / "pt", name)) for name in configs}


def _cost(config: str) -> float:
    """A configuration's cost in baseline steps, roughly (MoE layers about double a step)."""
    s = setup(config)
    return s.microbatches * (2.0 if s.experts else 1.0) * (1.3 if s.recompute else 1.0)


def _run_until_done(names: list[str], out: Path, run) -> None:
    """train.py records a configuration that raises and goes on; one that ends the process (a crash
    in a kernel) is recorded with the process's output and the rest run in a new process. A process
    that ends before starting any configuration (an import error) is recorded for all of them."""
    while names:
        proc = run(names)
        names = [name for name in names if not (out / f"{name}.json").exists()]
        if not names:
            break
        failed = names[:1] if f"== {names[0]}\n" in proc.stdout else names
        for name in failed:
            (out / f"{name}.json").write_text(json.dumps({
                "error": f"the process ended with {proc.returncode} during this configuration:\n"
                         f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"}))
        names = names[len(failed):]


def _load(out: Path, name: str) -> dict:
    result = json.loads((out / f"{name}.json").read_text())
    grads = out / f"{name}_grads.npz"
    if "error" not in result and grads.exists():
        with np.load(grads) as g:
            result["step1_grads"] = {key: g[key] for key in g.files}
    return result


def step1_errors(ms: dict, pt: dict) -> dict[str, float]:
    """Each parameter's relative step-1 gradient difference, |g_ms - g_pt| / max(|g_pt|, ZERO_GRAD * |G_pt|)
    with |G_pt| the norm of the whole reference gradient. A parameter without a gradient on MindSpore
    (NaN) or on one side only is infinitely far."""
    total = float(np.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in pt["step1_grads"].values())))
    errors = {}
    for name in sorted(set(ms["step1_grads"]) | set(pt["step1_grads"])):
        got, want = ms["step1_grads"].get(name), pt["step1_grads"].get(name)
        if got is None or want is None or got.shape != want.shape:
            errors[name] = float("inf")
            continue
        diff = float(np.linalg.norm(got.astype(np.float64) - want))
        err = diff / max(float(np.linalg.norm(want)), ZERO_GRAD * total)
        errors[name] = float("inf") if np.isnan(err) else err
    return errors


def compared(config: str, result: dict) -> dict:
    """``result`` with its losses and gradient norms cut to the steps of ``config`` that are compared."""
    n = COMPARED_STEPS.get(config)
    return result if n is None or "losses" not in result else \
        {**result, "losses": result["losses"][:n], "grad_norms": result["grad_norms"][:n]}


def differences(ms: dict, pt: dict) -> dict:
    """Relative differences of MindSpore from PyTorch: the largest over the steps of the loss and of
    the gradient norm (infinite if a side has fewer steps), and the largest over the parameters of the
    step-1 gradient, with its parameter."""
    def rel(a: float, b: float) -> float:
        return abs(a - b) / abs(b) if b else abs(a)

    def worst(a: list[float], b: list[float]) -> float:
        return max(rel(x, y) for x, y in zip(a, b)) if len(a) == len(b) and b else float("inf")

    errors = step1_errors(ms, pt)
    param = max(errors, key=errors.get)
    return {"loss": worst(ms["losses"], pt["losses"]), "grad_norm": worst(ms["grad_norms"], pt["grad_norms"]),
            "step1_grad": errors[param], "step1_grad_param": param}


@pytest.fixture(scope="module")
def matrix(testbed: Testbed, tmp_path_factory) -> dict[str, tuple[dict, dict]]:
    return run_matrix(testbed, tmp_path_factory.mktemp("parity"), list(CONFIGS))


def known_failure_param(name: str, known: dict[str, tuple[str, str]]):
    """``name`` as a pytest parameter, marked strict xfail (raising KnownFailure only) if ``known`` lists it."""
    marks = [pytest.mark.xfail(strict=True, raises=KnownFailure, reason=known[name][0])] if name in known else []
    return pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("config", [known_failure_param(name, KNOWN_FAILURES) for name in CONFIGS])
def test_megatron_core_matches_pytorch(matrix, config: str):
    ms, pt = matrix[config]
    ms, pt = compared(config, ms), compared(config, pt)
    assert "error" not in pt, f"the PyTorch reference failed:\n{pt['error'][-3000:]}"
    assert len(pt["losses"]) == COMPARED_STEPS.get(config, STEPS) and all(np.isfinite(pt["losses"])), pt["losses"]
    # the reference learns (the loss is not monotone: Adam at 3e-3 overshoots at step 5 in every configuration)
    assert all(norm > 0.1 for norm in pt["grad_norms"]) and min(pt["losses"]) < pt["losses"][0] - 0.3, pt["losses"]
    known = KNOWN_FAILURES.get(config)
    if "error" in ms and known and known[1] in ms["error"]:
        raise KnownFailure(known[0])
    assert "error" not in ms, f"MindSpore failed:\n{ms['error'][-3000:]}"
    bad = {name: err for name, err in step1_errors(ms, pt).items() if not err <= GRAD_TOL}
    assert not bad, "relative step-1 gradient error above %g:\n%s" % (
        GRAD_TOL, "\n".join(f"  {n}: {e:.3g}" for n, e in sorted(bad.items())))
    d = differences(ms, pt)
    if d["loss"] <= LOSS_TOL and d["grad_norm"] <= LOSS_TOL:
        return
    steps = "\n".join(f"  step {i}: loss {a} vs {b}, grad norm {c} vs {e}" for i, (a, b, c, e) in enumerate(
        zip(ms["losses"], pt["losses"], ms["grad_norms"], pt["grad_norms"]), 1))
    failure = f"{_DRIFT} {LOSS_TOL} (MindSpore vs PyTorch):\n{steps}"
    if known and known[1] in failure:
        raise KnownFailure(f"{known[0]}\n{failure}")
    raise AssertionError(failure)


def table(results: dict[str, tuple[dict, dict]]) -> str:
    """The markdown table of docs/parity_matrix.md."""
    rows = ["| config | max loss rel diff | max grad-norm rel diff | worst step-1 parameter gradient rel diff "
            "(parameter) | MindSpore s (CPU s) | PyTorch s |", "| --- | --- | --- | --- | --- | --- |"]
    for name, (ms, pt) in results.items():
        failed = ms.get("error") or pt.get("error")
        if failed:
            last = [line for line in failed.strip().splitlines() if line.strip()][-1]
            side = "MindSpore" if ms.get("error") else "PyTorch"
            rows.append(f"| {name} | {side} fails: `{last[:150]}` | | | {_seconds(ms)} | {_seconds(pt)} |")
            continue
        d = differences(compared(name, ms), compared(name, pt))
        label = f"{name} (steps 1-{len(compared(name, pt)['losses'])})" if name in COMPARED_STEPS else name
        rows.append(f"| {label} | {d['loss']:.2g} | {d['grad_norm']:.2g} | {d['step1_grad']:.2g} "
                    f"(`{d['step1_grad_param']}`) | {_seconds(ms)} | {_seconds(pt)} |")
    return "\n".join(rows)


def _seconds(result: dict) -> str:
    if "seconds" not in result:
        return "-"
    return f"{result['seconds']:.1f} ({result['cpu_seconds']:.1f})" if "cpu_seconds" in result else \
        f"{result['seconds']:.1f}"


def main(argv: list[str] | None = None) -> None:
    table_command(argv, description="print the Megatron-core parity matrix (docs/parity_matrix.md)", what="config",
                  choices=list(CONFIGS), steps=STEPS, run=run_matrix, table=table,
                  note=f"MindSpore in {MS_PROCESSES} processes beside PyTorch")


if __name__ == "__main__":
    main()
