"""Step time of the tiny GPT at 1, 2 and 4 processes, converted on MindSpore and unconverted on PyTorch CPU.

    .venv/bin/python bench/parallel_step_time.py [--steps N] [--root DIR] [--layout 1,dp2,...]

Each layout trains the baseline configuration of examples/tiny_gpt, launched as users launch:
``python -m mindtorch.distributed.mpi_run --nproc-per-node N`` in the workspace (MindSpore) and
``torchrun --nproc-per-node N`` (PyTorch 2.13, gloo, ``OMP_NUM_THREADS=1``); both sides are the
launches of tests/runtime/test_megatron_parallel.py. Every rank records each step's wall time and
its process CPU time (train.py); the table has, over the steps after the first two, the median of
the slowest rank's wall time and the median of the CPU time summed over the ranks. The machine has 2
cores: at 4 processes the ranks share them, and on a shared machine trust the CPU columns.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "runtime"), str(REPO / "examples" / "tiny_gpt")]

import testbed  # noqa: E402
from configs import Layout, ParallelRun  # noqa: E402
from test_megatron_parallel import _clean_env, _launch, _ranks, ms_command, pt_command  # noqa: E402

SKIP = 2   # the first steps compile and allocate
LAYOUTS: dict[str, ParallelRun] = {
    "1": ParallelRun(1, Layout(), "baseline"),
    "dp2": ParallelRun(2, Layout(), "baseline"),
    "tp2": ParallelRun(2, Layout(tp=2), "baseline"),
    "pp2": ParallelRun(2, Layout(pp=2), "baseline"),
    "dp4": ParallelRun(4, Layout(), "baseline"),
    "tp2_pp2": ParallelRun(4, Layout(tp=2, pp=2), "baseline"),
}


def clock(bed: testbed.Testbed, name: str, side: str, steps: int, out: Path) -> tuple[float, float]:
    """(median wall s of the slowest rank, median CPU s summed over the ranks) per step."""
    run = LAYOUTS[name]
    out.mkdir(parents=True, exist_ok=True)
    command = ms_command(bed, run, out, steps) if side == "ms" else pt_command(bed, run, out, steps)
    env = _clean_env({"GLOG_v": "3"}) if side == "ms" else \
        _clean_env({"PYTHONPATH": str(bed.megatron_src), "OMP_NUM_THREADS": "1"})
    returncode, output, _ = _launch(command, env, out, 1800)
    result = _ranks(returncode, output, out, run, 0.0)
    if "error" in result:
        sys.exit(f"parallel_step_time.py: {name} on {side} failed:\n{result['error'][-3000:]}")
    ranks = result["ranks"]
    if len(ranks[0]["step_times"]) <= SKIP:
        sys.exit(f"parallel_step_time.py: only {len(ranks[0]['step_times'])} steps; ask for more with --steps")
    wall = [max(r["step_times"][i] for r in ranks) for i in range(SKIP, steps)]
    cpu = [sum(r["step_cpu_times"][i] for r in ranks) for i in range(SKIP, steps)]
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=12, help="steps per run (the first 2 are not counted)")
    ap.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "ms-parallel-step-time")
    ap.add_argument("--layout", default=",".join(LAYOUTS), help=f"comma-separated, of {', '.join(LAYOUTS)}")
    args = ap.parse_args()
    bed = testbed.build(args.root.resolve() / "tiny_gpt")
    runs = args.root.resolve() / f"runs-{time.strftime('%Y%m%d-%H%M%S')}"
    rows = ["| layout | processes | MindSpore wall ms/step | MindSpore CPU ms/step (all ranks) | PyTorch wall ms/step "
            "| PyTorch CPU ms/step (all ranks) | CPU MindSpore / PyTorch |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name in args.layout.split(","):
        ms = clock(bed, name, "ms", args.steps, runs / "ms" / name)
        pt = clock(bed, name, "pt", args.steps, runs / "pt" / name)
        run = LAYOUTS[name]
        label = " ".join(run.layout.options()) or ("DP=%d" % run.world if run.world > 1 else "one process")
        if run.world > 1 and run.layout.tp * run.layout.pp == 1:
            label = f"DP={run.world}"
        rows.append(f"| {name} (`{label}`) | {run.world} | {ms[0] * 1000:.0f} | {ms[1] * 1000:.0f} | "
                    f"{pt[0] * 1000:.0f} | {pt[1] * 1000:.0f} | {ms[1] / pt[1]:.1f}x |")
    print("\n".join(rows))
    print(f"\nload average {' '.join(f'{x:.1f}' for x in os.getloadavg())}; runs in {runs}")


if __name__ == "__main__":
    main()
