"""Environment variables the debugger reads, and how their values are parsed.

Everything a user can configure without editing code lives here, so docs/debugger.md, the
breakpoint side and the client agree on names and defaults. When a variable is set it overrides
the matching ``set_trace()`` argument: the person launching the job has the last word, without
editing (possibly converted) training code.
"""
from __future__ import annotations

import math
import os
import shlex
import signal
import socket
import sys
from typing import Mapping

ENV_DIR = "MS_DEBUG_DIR"  # base directory holding one sub-directory per job
ENV_JOB = "MS_DEBUG_JOB"  # job id (set by launchers; derived otherwise)
ENV_SECRET = "MS_DEBUG_SECRET"  # per-job secret; else generated into <job dir>/secret
ENV_RANKS = "MS_DEBUG_RANKS"  # which ranks stop: "1,3", "0-3", "all", "none"
ENV_RANK = "MS_DEBUG_THIS_RANK"  # explicit rank of this process (overrides RANK & co.)
ENV_RANKS_LEGACY = "MS_DEBUG_RANK"  # the earlier tools/debug_utils' name for "the rank that stops"
ENV_TIMEOUT = "MS_DEBUG_TIMEOUT"  # seconds to wait for a client; 0/none = forever
ENV_WAIT_OTHERS = "MS_DEBUG_WAIT_OTHERS"  # 1: non-selected ranks wait at the breakpoint
ENV_RANK_PID = "MS_DEBUG_RANK_PID"  # pid of the rank's main process, inherited by its children
ENV_HISTORY = "MS_DEBUG_HISTORY"  # client history file
ENV_POST_MORTEM = "MS_DEBUG_POST_MORTEM"  # 1: an uncaught exception opens a session where it was raised
ENV_HOSTNAME = "MS_DEBUG_HOSTNAME"  # this node's name in records (default: socket.gethostname())
ENV_SSH = "MS_DEBUG_SSH"  # how to reach another node: a command line, default "ssh"; "none" = only print
ENV_STACKS_SIGNAL = "MS_DEBUG_STACKS_SIGNAL"  # signal that makes a rank dump its threads' stacks
ENV_BREAK_SIGNAL = "MS_DEBUG_BREAK_SIGNAL"  # signal that opens a session where the rank's main thread is

DEFAULT_TIMEOUT = 600.0
"""Seconds a breakpoint waits for a client before the process continues on its own.

Long enough to notice the log line and attach by hand, short enough that a forgotten
``breakpoint()`` does not hold a cluster allocation forever."""

HANDSHAKE_TIMEOUT = 10.0
"""Seconds a connected client gets to answer the challenge; a silent peer cannot hold a session."""

_FOREVER = {"0", "none", "inf", "infinite", "never", "forever"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def log(message: str) -> None:
    """One line on stderr, prefixed so it stands out among the ranks' interleaved output."""
    try:
        sys.stderr.write(f"[ms-debug] {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # stderr closed: never let the debugger break the job
        pass


def attach_hint(rank: int, job: str, pid: int | None = None, env: Mapping[str, str] | None = None) -> str:
    """The exact command that attaches to ``rank``, with the ``$MS_DEBUG_DIR`` the client needs."""
    env = os.environ if env is None else env
    prefix = f"{ENV_DIR}={shlex.quote(env[ENV_DIR])} " if env.get(ENV_DIR, "").strip() else ""
    command = f"{prefix}python -m tools.debug attach {rank} --job {shlex.quote(job)}"
    return command + (f" --pid {pid}" if pid is not None else "")


def parse_timeout(value: float | int | str | None) -> float | None:
    """Seconds as a float, or None for "wait forever" (0, negative, inf, "none", "never")."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _FOREVER:
            return None
        value = float(text)
    seconds = float(value)
    if seconds <= 0 or math.isinf(seconds) or math.isnan(seconds):
        return None
    return seconds


def resolve_timeout(argument: float | int | str | None, env: Mapping[str, str] | None = None) -> float | None:
    """The timeout to use: ``$MS_DEBUG_TIMEOUT`` if set, else the argument, else the default."""
    env = os.environ if env is None else env
    raw = env.get(ENV_TIMEOUT, "").strip()
    if raw:
        try:
            return parse_timeout(raw)
        except ValueError:
            log(f"ignoring {ENV_TIMEOUT}={raw!r} (expected seconds, 0 or 'none'); using {DEFAULT_TIMEOUT:g} s")
            return DEFAULT_TIMEOUT
    if argument is None:
        return DEFAULT_TIMEOUT
    return parse_timeout(argument)


def hostname(env: Mapping[str, str] | None = None) -> str:
    """This node's name as records and ``list`` show it: ``$MS_DEBUG_HOSTNAME`` or the host name.

    The override exists for containers whose host names are not what ``ssh`` reaches, and is how
    the tests simulate a second node on one machine."""
    env = os.environ if env is None else env
    return env.get(ENV_HOSTNAME, "").strip() or socket.gethostname()


def resolve_flag(name: str, argument: bool | None, env: Mapping[str, str] | None = None) -> bool:
    """A boolean switch: the variable ``name`` if it is set to a yes/no word, else the argument."""
    env = os.environ if env is None else env
    raw = env.get(name)
    if raw is not None and raw.strip().lower() in _TRUE | (_FALSE - {""}):
        return raw.strip().lower() in _TRUE
    return bool(argument)


def resolve_wait_others(argument: bool | None, env: Mapping[str, str] | None = None) -> bool:
    """Whether non-selected ranks wait: ``$MS_DEBUG_WAIT_OTHERS`` if set, else the argument."""
    return resolve_flag(ENV_WAIT_OTHERS, argument, env)


# Real-time signals by default: programs and launchers claim SIGUSR1/SIGUSR2 (SLURM pre-emption,
# checkpoint-on-signal), real-time ones are practically never used by training code.
DEFAULT_STACKS_SIGNAL = signal.SIGRTMIN + 3 if hasattr(signal, "SIGRTMIN") else signal.SIGUSR2
DEFAULT_BREAK_SIGNAL = signal.SIGRTMIN + 4 if hasattr(signal, "SIGRTMIN") else signal.SIGUSR1


def resolve_signal(name: str, default: int, env: Mapping[str, str] | None = None) -> int | None:
    """A signal number from ``$name`` (a number, ``SIGUSR2``, ``RTMIN+3``; ``none`` disables)."""
    env = os.environ if env is None else env
    raw = env.get(name, "").strip().upper()
    if not raw:
        return int(default)
    if raw.lower() in _FOREVER | {"off", "no", "false"}:
        return None
    if raw.isdigit():
        return int(raw)
    text = raw[3:] if raw.startswith("SIG") else raw
    if text.startswith("RTMIN") and hasattr(signal, "SIGRTMIN"):
        offset = text[5:].lstrip("+") or "0"
        return int(signal.SIGRTMIN) + int(offset)
    number = getattr(signal, "SIG" + text, None)
    if number is None:
        raise ValueError(f"{name}={env.get(name)!r} is not a signal")
    return int(number)
