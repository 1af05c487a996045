"""``python -m tools.debug.overhead``: what the debugger costs a job that does not use it right now.

Prints, on this machine: the import time of ``tools.debug`` (fresh interpreters, ``-X
importtime``), the cost of a ``breakpoint()`` in a rank that is not selected, of
``collective()`` with and without the agent, and of installing the agent. These are the numbers
quoted in docs/debugger.md.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import timeit
from pathlib import Path

from tools.debug.registry import REPO_ROOT


STDLIB_FIRST = "import json, dataclasses, pathlib, typing, socket, multiprocessing, pdb, hashlib, secrets, mmap; "


def import_time(module: str = "tools.debug", before: str = "", runs: int = 9) -> float:
    """Fastest cumulative import time of ``module`` in microseconds, over fresh interpreters
    (the fastest run is the least disturbed by other work on the machine)."""
    samples = []
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-X", "importtime", "-c", f"{before}import {module}"], env=env,
                              capture_output=True, text=True, check=True)
        for line in done.stderr.splitlines():
            parts = [p.strip() for p in line.split("|")]
            if len(parts) == 3 and parts[2] == module:
                samples.append(float(parts[1]))
    return min(samples)


def per_call(statement: str, setup: str, number: int = 20000) -> float:
    """Best-of-5 time of ``statement`` in microseconds."""
    return min(timeit.repeat(statement, setup, number=number, repeat=5)) / number * 1e6


def main() -> None:
    print(f"python {sys.version.split()[0]} on {os.cpu_count()} cpu(s)")
    print(f"import tools.debug: {import_time() / 1000:.1f} ms in a bare interpreter, "
          f"{import_time(before=STDLIB_FIRST) / 1000:.1f} ms once the standard library modules it uses are loaded "
          f"(as in a training process); the agent adds {import_time('tools.debug.agent', 'import tools.debug; ') / 1000:.1f} ms "
          "(fastest of 9, -X importtime)")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(MS_DEBUG_DIR=str(Path(tmp) / "dbg"), MS_DEBUG_JOB="overhead", RANK="3", MS_DEBUG_RANKS="0")
        base = per_call("f()", "def f(): pass")
        not_selected = per_call("set_trace()", "from tools.debug import set_trace")
        print(f"breakpoint() in a rank that is not selected: {not_selected:.2f} us per call "
              f"(an empty function call: {base:.2f} us)")
        idle = per_call("with collective('all_reduce', group='tp'): pass", "from tools.debug import collective")
        import time

        from tools.debug import agent

        started = time.perf_counter()
        agent.install()
        installed = (time.perf_counter() - started) * 1e3
        active = per_call("with collective('all_reduce', group='tp'): pass", "from tools.debug import collective")
        print(f"collective() without the agent: {idle:.2f} us; with the agent: {active:.2f} us per call")
        print(f"installing the agent (python -m tools.debug run): {installed:.1f} ms once")


if __name__ == "__main__":
    main()
