"""Step time of the tiny Megatron-core GPT (examples/tiny_gpt) on MindSpore and on PyTorch (CPU).

    .venv/bin/python bench/tiny_gpt_bench.py [--root DIR] [--steps 20]

Builds the llm-shaped workspace with the real driver (as the runtime tests do, cached in --root),
runs the converted example on MindSpore and the unconverted one on PyTorch 2.13 (the reference
environment from `bash tools/setup_env.sh --reference`), and prints the median step time of each (the
first two steps, which include compilation and allocation, are left out) and their ratio.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "runtime")]

import testbed  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "ms-tiny-gpt-bench")
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    args.root.mkdir(parents=True, exist_ok=True)
    bed = testbed.build(args.root)
    out = args.root / "results"
    out.mkdir(exist_ok=True)
    ms = bed.ms_run(f"python {bed.workspace / 'tiny_gpt' / 'train.py'} --steps {args.steps} --out {out / 'ms.json'}",
                    MASTER_PORT=testbed.free_port())
    pt = bed.torch_run([str(REPO / "examples" / "tiny_gpt" / "reference.py"), "--steps", str(args.steps),
                        "--out", str(out / "pt.json")], MASTER_PORT=testbed.free_port())
    for name, proc in (("MindSpore", ms), ("PyTorch", pt)):
        if proc.returncode != 0:
            sys.exit(f"{name} run failed:\n{proc.stderr[-3000:]}")
    ms_t = json.loads((out / "ms.json").read_text())["step_times"][2:]
    pt_t = json.loads((out / "pt.json").read_text())["step_times"][2:]
    ms_med, pt_med = statistics.median(ms_t), statistics.median(pt_t)
    print(f"tiny GPT (2 layers, hidden 64, seq 32, micro-batch 2), median of steps 3-{args.steps}:")
    print(f"  MindSpore 2.7.0 CPU (converted): {ms_med * 1000:8.1f} ms/step")
    print(f"  PyTorch 2.13 CPU (reference):    {pt_med * 1000:8.1f} ms/step")
    print(f"  ratio MindSpore / PyTorch:       {ms_med / pt_med:8.1f}x")


if __name__ == "__main__":
    main()
