"""Step time of the tiny GPT and of DeepSeek-V3 tiny, converted on MindSpore and (tiny GPT) on PyTorch CPU.

    .venv/bin/python bench/step_time.py [--model tiny_gpt|deepseek3_tiny|all] [--steps N] [--runs R]
        [--root DIR] [--ds-workspace WS] [--old-workspace WS27 --old-python PY27]

Each run goes through bench/stepclock.py, which clocks every step in wall time, process CPU time
(all threads) and main-thread CPU time; the table has the median over the steps after the first two
(compilation, allocation) of all runs. On a shared machine trust the CPU columns: wall time there
measures the other users too.

Rows:
- ``PyTorch 2.13 CPU``: examples/tiny_gpt/reference.py, unconverted Megatron-core, in .venv-torch,
  with ``OMP_NUM_THREADS=1`` as the parity test runs it (on a loaded machine PyTorch's OpenMP
  threads spin at their barriers: 0.54 s of CPU per step with the default 2 threads, 0.04 s idle).
- ``MindSpore 2.10, async pipeline``: the converted example with ``MINDTORCH_CPU_PIPELINE=1``, i.e.
  MindSpore's default asynchronous PyNative execution, as before mindtorch patch 0016.
- ``MindSpore 2.10, synchronous``: the same with the workspace's mindtorch as it is (patch 0016).
- ``MindSpore 2.7 (old)``: only with ``--old-workspace``/``--old-python``: a workspace converted by
  the 2.7-era checkout (patches 0001-0009) run with the 2.7 venv (docs/performance.md says how).

The tiny GPT's workspace is built with tests/runtime/testbed.py in ``--root`` (cached); DeepSeek-V3
tiny needs a real workspace (``source auto_convert_llm.sh --mirror ... --workspace WS``) and runs
examples/deepseek3_tiny/pretrain_deepseek3_tiny.sh with its data in ``--root``. There is no PyTorch
row for DeepSeek-V3: MindSpeed-LLM's unconverted tree needs torch_npu.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "runtime")]

import testbed  # noqa: E402

STEPCLOCK = Path(__file__).with_name("stepclock.py")
SKIP = 2   # the first steps compile and allocate


@dataclass
class Row:
    model: str
    config: str
    steps: list[dict]

    def median(self, key: str) -> float:
        return statistics.median(s[key] for s in self.steps)


def _check(proc: subprocess.CompletedProcess, name: str) -> None:
    if proc.returncode != 0:
        sys.exit(f"step_time.py: the {name} run failed ({proc.returncode}):\n"
                 f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")


def _steps(out: Path) -> list[dict]:
    steps = json.loads(out.read_text())["steps"]
    if len(steps) <= SKIP:
        sys.exit(f"step_time.py: {out}: only {len(steps)} steps clocked; ask for more with --steps")
    return steps[SKIP:]


def tiny_gpt(args: argparse.Namespace) -> list[Row]:
    bed = testbed.build(args.root / "tiny_gpt")
    out = args.root / "results"
    out.mkdir(parents=True, exist_ok=True)
    clock = f"python {STEPCLOCK}"
    configs: list[tuple[str, testbed.Testbed | None, dict[str, str]]] = [
        ("PyTorch 2.13 CPU", None, {"OMP_NUM_THREADS": "1"}),
        ("MindSpore 2.10, async pipeline", bed, {"MINDTORCH_CPU_PIPELINE": "1"}),
        ("MindSpore 2.10, synchronous", bed, {}),
    ]
    if args.old_workspace:   # its set_env.sh puts the 2.7-era checkout's .venv (MindSpore 2.7) on PATH
        configs.insert(1, ("MindSpore 2.7 (old)", testbed.Testbed(args.old_workspace, bed.megatron_src,
                                                                  bed.reference_python), {}))
    rows = []
    for name, ms_bed, env in _selected(configs, args.only):
        steps = []
        for run in range(args.runs):
            result = out / f"tiny_gpt-{_slug(name)}-{run}.json"
            env = {**env, "MASTER_PORT": testbed.free_port(), "GLOG_v": "3"}
            if ms_bed is None:
                reference = REPO / "examples" / "tiny_gpt" / "reference.py"
                proc = bed.torch_run([str(STEPCLOCK), "--out", str(result), str(reference), "--steps", str(args.steps)],
                                     timeout=3600, **env)
            else:
                proc = ms_bed.ms_run(f"{clock} --out {result} {ms_bed.workspace / 'tiny_gpt' / 'train.py'} "
                                     f"--steps {args.steps}", timeout=3600, **env)
            _check(proc, name)
            steps += _steps(result)
        rows.append(Row("tiny GPT", name, steps))
    return rows


def deepseek3_tiny(args: argparse.Namespace) -> list[Row]:
    if not args.ds_workspace or not (args.ds_workspace / "set_env.sh").exists():
        sys.exit("step_time.py: --model deepseek3_tiny needs --ds-workspace WS, a workspace made by "
                 "`source auto_convert_llm.sh --mirror ... --workspace WS`")
    out = args.root / "results"
    out.mkdir(parents=True, exist_ok=True)
    configs = [("MindSpore 2.10, async pipeline", {"MINDTORCH_CPU_PIPELINE": "1"}),
               ("MindSpore 2.10, synchronous", {})]
    launcher = REPO / "examples" / "deepseek3_tiny" / "pretrain_deepseek3_tiny.sh"
    rows = []
    for name, extra in _selected(configs, args.only):
        steps = []
        for run in range(args.runs):
            result = out / f"deepseek3_tiny-{_slug(name)}-{run}.json"
            work = args.root / "deepseek3_tiny"
            # the launcher runs "$PYTHON" for the tokenizer, the data and the training; only the last is clocked
            wrapper = args.root / "clocked_python.sh"
            wrapper.write_text("#!/bin/bash\n"
                               f'if [ "$1" = pretrain_gpt.py ]; then exec python {STEPCLOCK} --pattern megatron '
                               f'--out "$STEP_TIME_OUT" "$@"; fi\nexec python "$@"\n')
            wrapper.chmod(0o755)
            for stale in ("ckpt", "logs"):
                subprocess.run(["rm", "-rf", str(work / stale)], check=True)
            ws = testbed.Testbed(args.ds_workspace, Path(), Path())
            proc = ws.ms_run(f"bash {launcher}", timeout=3600, MASTER_PORT=testbed.free_port(), WORK=str(work),
                             PYTHON=str(wrapper), TRAIN_ITERS=str(args.steps), STEP_TIME_OUT=str(result), **extra)
            _check(proc, f"DeepSeek-V3 tiny {name}")
            steps += _steps(result)
        rows.append(Row("DeepSeek-V3 tiny", name, steps))
    return rows


def _selected(configs: list, only: str | None) -> list:
    return [c for c in configs if only is None or only in c[0]]


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()


def table(rows: list[Row]) -> str:
    lines = ["| model | runtime | steps | wall ms/step | CPU ms/step | main-thread CPU ms/step | CPU vs PyTorch "
             "| CPU vs async |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in rows:
        torch_row = next((r for r in rows if r.model == row.model and r.config.startswith("PyTorch")), None)
        async_row = next((r for r in rows if r.model == row.model and "async" in r.config), None)
        vs_torch = f"{row.median('cpu') / torch_row.median('cpu'):.1f}x" if torch_row else "-"
        vs_async = "-"
        if async_row and "MindSpore 2.10" in row.config:
            vs_async = f"{row.median('cpu') / async_row.median('cpu'):.2f}x"
        ms = [f"{row.median(key) * 1000:.0f}" for key in ("wall", "cpu", "main_cpu")]
        lines.append(f"| {row.model} | {row.config} | {len(row.steps)} | {' | '.join(ms)} | {vs_torch} | {vs_async} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["tiny_gpt", "deepseek3_tiny", "all"], default="tiny_gpt")
    ap.add_argument("--steps", type=int, default=12, help="steps per run (the first 2 are not counted)")
    ap.add_argument("--runs", type=int, default=1, help="runs per configuration")
    ap.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "ms-step-time")
    ap.add_argument("--ds-workspace", type=Path, help="a workspace made by auto_convert_llm.sh (DeepSeek-V3 tiny)")
    ap.add_argument("--old-workspace", type=Path, help="a tiny GPT workspace of the 2.7-era checkout")
    ap.add_argument("--old-python", type=Path, default=Path("/work/venv-27-old/bin/python"))
    ap.add_argument("--only", help="run only the rows whose runtime contains this text (e.g. synchronous)")
    args = ap.parse_args()
    args.root = args.root.resolve()
    rows = []
    if args.model in ("tiny_gpt", "all"):
        rows += tiny_gpt(args)
    if args.model in ("deepseek3_tiny", "all"):
        rows += deepseek3_tiny(args)
    print(table(rows))
    (args.root / "results" / "table.md").write_text(table(rows) + "\n")


if __name__ == "__main__":
    main()
