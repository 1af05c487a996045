"""Distributed debugger: pdb breakpoints in any rank of a multi-process job, served over private
Unix sockets, attached with ``python -m tools.debug attach RANK``.

In code::

    import tools.debug; tools.debug.set_trace(ranks=[1, 3])
    # or, with PYTHONBREAKPOINT=tools.debug.set_trace in the job's environment:
    breakpoint()

See docs/debugger.md. The breakpoint side uses the standard library only, so it runs inside any
training environment (PyTorch, MindSpore with mindtorch) that can import this package.
"""
from __future__ import annotations

import sys
from typing import Any

from tools.debug.trace import set_trace

__all__ = ["collective", "install", "install_agent", "set_trace"]


def __getattr__(name: str) -> Any:
    """``collective`` and ``install_agent`` are imported on first use: a job that only routes
    ``breakpoint()`` here does not pay for the agent's imports."""
    if name == "collective":
        from tools.debug.collectives import collective

        return collective
    if name == "install_agent":
        from tools.debug.agent import install

        return install
    raise AttributeError(f"module 'tools.debug' has no attribute {name!r}")


def install() -> None:
    """Route ``breakpoint()`` to ``set_trace`` for this process (the in-code form of
    ``PYTHONBREAKPOINT=tools.debug.set_trace``; that variable also reaches child processes)."""
    sys.breakpointhook = set_trace
