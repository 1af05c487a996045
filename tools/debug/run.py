"""``python -m tools.debug run [--post-mortem] -- script.py args | -m module args``: run a program
as this process with the rank agent installed (stacks, break signal, post mortem).

This is how a job becomes inspectable without changing its code: put it in front of the
program in the launcher's command line (``torchrun ... -m tools.debug run -- train.py``,
``mpiexec -n 4 python -m tools.debug run -- train.py``); ``tools.debug launch`` does it for
every rank. The program runs as ``__main__`` exactly as ``python script.py`` would run it (its
``sys.argv``, its directory first on ``sys.path``), so multiprocessing's spawn still finds it.
"""
from __future__ import annotations

import os
import runpy
import sys

from tools.debug.agent import install

_OWN = {os.path.join(os.path.dirname(os.path.abspath(__file__)), name) for name in ("run.py", "__main__.py")}


def is_wrapper_frame(filename: str) -> bool:
    """Whether a frame's file is this wrapper's or runpy's: the frames above the program's own
    ``<module>`` that tracebacks, stacks and ``w`` should not show."""
    return "runpy" in os.path.basename(filename) or os.path.abspath(filename) in _OWN


def program_error(program: list[str]) -> str | None:
    """Why ``program`` cannot be run (one line, as python itself would say), or None."""
    if not program or (program[0] == "-m" and len(program) < 2):
        return "run needs a program: -- script.py args, or -- -m module args"
    if program[0] != "-m" and not os.path.isfile(program[0]):
        return f"can't open file {os.path.abspath(program[0])!r}: no such file"
    return None


def run(program: list[str], post_mortem: bool | None = None) -> int:
    """Install the agent and run ``program`` (``script.py args`` or ``-m module args``) here."""
    why = program_error(program)
    if why is not None:
        raise ValueError(why)
    if program[0] == "-m":
        sys.argv = [program[1], *program[2:]]
        sys.path[0] = os.getcwd()
        install(post_mortem)
        runpy.run_module(program[1], run_name="__main__", alter_sys=True)
        return 0
    script = program[0]
    sys.argv = list(program)
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    install(post_mortem)
    runpy.run_path(script, run_name="__main__")
    return 0
