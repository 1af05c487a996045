"""Run a training script in this process and clock each of its steps in wall and CPU time.

    python bench/stepclock.py --out T.json [--pattern REGEX] [--profile P.prof --profile-steps K:M]
                              [--launch-blocking] [--threads N] -- SCRIPT [ARGS...]

The script runs unchanged (``runpy``, as ``__main__``); a step ends where the script prints a
line matching ``--pattern`` (the tiny GPT's ``step N``, Megatron's ``iteration N/``). Each step's
wall time (``perf_counter``), process CPU time (all threads: ``process_time``) and main-thread CPU
time (``thread_time``) are the differences between two such lines, so a loaded machine shows up as
wall >> CPU instead of as a slower framework. ``--profile`` records a cProfile (timer: main-thread
CPU time, so waits on other threads count as nothing) from the K-th step line to the M-th.
``--launch-blocking`` calls ``mindspore.runtime.launch_blocking()`` first; ``--threads N`` sets
MindSpore's kernel threads (``runtime_num_threads``) or PyTorch's (``torch.set_num_threads``).
The JSON is written at exit, also when the script ends with ``sys.exit``.
"""
from __future__ import annotations

import argparse
import atexit
import cProfile
import json
import re
import runpy
import sys
import time
from pathlib import Path
from typing import TextIO

STEP_PATTERNS = {
    "tiny_gpt": r"^step\s+(\d+)\s+loss",
    "megatron": r"iteration\s+(\d+)/",
}


class StepClock:
    """Stamps (step, wall, process CPU, main-thread CPU) on every line of ``stream`` matching ``pattern``."""

    def __init__(self, stream: TextIO, pattern: str, profile: cProfile.Profile | None = None,
                 profile_steps: tuple[int, int] = (0, 0)) -> None:
        self._stream, self._pattern = stream, re.compile(pattern)
        self._pending = ""
        self.stamps: list[tuple[int, float, float, float]] = [(0, time.perf_counter(), time.process_time(),
                                                               time.thread_time())]
        self._profile, self._profile_steps = profile, profile_steps

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            match = self._pattern.search(line)
            if match:
                self._stamp(int(match.group(1)))
        return self._stream.write(text)

    def _stamp(self, step: int) -> None:
        self.stamps.append((step, time.perf_counter(), time.process_time(), time.thread_time()))
        if self._profile is not None:
            first, last = self._profile_steps
            if step == first:
                self._profile.enable()
            elif step == last:
                self._profile.disable()

    def steps(self) -> list[dict[str, float]]:
        """One row per step line after the first: that step's wall, CPU and main-thread CPU seconds."""
        return [{"step": b[0], "wall": b[1] - a[1], "cpu": b[2] - a[2], "main_cpu": b[3] - a[3]}
                for a, b in zip(self.stamps[1:], self.stamps[2:])]

    def __getattr__(self, name: str):     # flush, fileno, isatty, encoding ... of the real stream
        return getattr(self._stream, name)


def configure(framework_threads: int | None, launch_blocking: bool) -> None:
    """Runtime settings that must come before the script's first op."""
    if launch_blocking or framework_threads:
        try:
            import mindspore
        except ImportError:
            mindspore = None
        if mindspore is not None:
            if launch_blocking:
                mindspore.runtime.launch_blocking()
            if framework_threads:
                mindspore.set_context(runtime_num_threads=framework_threads)
        else:
            import torch
            if framework_threads:
                torch.set_num_threads(framework_threads)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="JSON: {steps: [{step, wall, cpu, main_cpu}], ...}")
    ap.add_argument("--pattern", default=STEP_PATTERNS["tiny_gpt"],
                    help=f"regex of a step's line, group 1 = step number; or one of {sorted(STEP_PATTERNS)}")
    ap.add_argument("--profile", type=Path, help="write a cProfile (main-thread CPU time) here")
    ap.add_argument("--profile-steps", default="3:8", help="K:M: profile from the K-th step line to the M-th")
    ap.add_argument("--launch-blocking", action="store_true")
    ap.add_argument("--threads", type=int)
    ap.add_argument("script")
    ap.add_argument("args", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    pattern = STEP_PATTERNS.get(args.pattern, args.pattern)
    first, last = (int(x) for x in args.profile_steps.split(":"))
    profile = cProfile.Profile(time.thread_time) if args.profile else None
    configure(args.threads, args.launch_blocking)
    clock = StepClock(sys.stdout, pattern, profile, (first, last))

    def dump() -> None:
        sys.stdout = clock._stream
        if profile is not None:
            profile.disable()
            profile.dump_stats(str(args.profile))
        args.out.write_text(json.dumps({"script": args.script, "args": args.args, "steps": clock.steps(),
                                        "profile_steps": [first, last] if profile else None}, indent=1))

    atexit.register(dump)
    sys.stdout = clock
    sys.argv = [args.script, *args.args]
    sys.path.insert(0, str(Path(args.script).resolve().parent))
    runpy.run_path(args.script, run_name="__main__")


if __name__ == "__main__":
    main()
