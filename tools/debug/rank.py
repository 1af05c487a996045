"""Which rank this process is, which ranks should stop, and whether we are a rank or its child.

Launchers announce ranks through environment variables; there is no common name, so we try the
usual ones in a fixed order. Children (data-loader workers, ``subprocess`` helpers) inherit the
variables, so they report their parent's rank; ``process_role`` tells them apart so the client
can label them and the barrier ignores them.
"""
from __future__ import annotations

import multiprocessing
import os
import sys
from dataclasses import dataclass
from typing import Iterable, Mapping

from tools.debug.settings import ENV_RANK, ENV_RANK_PID, ENV_RANKS, ENV_RANKS_LEGACY

RANK_VARS = (
    "RANK",  # torchrun, deepspeed, most PyTorch launchers
    "LOCAL_RANK",
    "RANK_ID",  # MindSpore / Ascend scripts
    "MS_NODE_ID",  # msrun (MindSpore dynamic cluster)
    "OMPI_COMM_WORLD_RANK",  # Open MPI
    "PMI_RANK",  # MPICH / Intel MPI
    "SLURM_PROCID",  # srun
)
WORLD_SIZE_VARS = ("WORLD_SIZE", "RANK_SIZE", "MS_WORKER_NUM", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS")


@dataclass(frozen=True)
class RankInfo:
    """The rank and the variable it came from ("default" when no launcher variable is set)."""

    rank: int
    source: str


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value.strip()) if value is not None else None
    except ValueError:
        return None


def _torch_distributed_rank() -> int | None:
    """The rank of an initialized ``torch.distributed`` (or mindtorch's), if already imported:
    ranks started by ``torch.multiprocessing.spawn`` often pass the rank only to
    ``init_process_group`` and set no variable."""
    dist = sys.modules.get("torch.distributed")
    try:
        if dist is not None and dist.is_available() and dist.is_initialized():
            return int(dist.get_rank())
    except Exception:  # noqa: BLE001 - a half-initialized backend must not break the debugger
        return None
    return None


def detect_rank(env: Mapping[str, str] | None = None) -> RankInfo:
    """Rank from ``$MS_DEBUG_THIS_RANK``, else the first integer among RANK_VARS, else (for this
    process's own environment) an initialized ``torch.distributed``'s rank, else 0."""
    own = env is None
    env = os.environ if env is None else env
    for name in (ENV_RANK, *RANK_VARS):
        value = _int_or_none(env.get(name))
        if value is not None and value >= 0:
            return RankInfo(value, name)
    if own and (value := _torch_distributed_rank()) is not None:
        return RankInfo(value, "torch.distributed")
    return RankInfo(0, "default")


def detect_world_size(env: Mapping[str, str] | None = None) -> int | None:
    """Number of ranks if a launcher told us, else None."""
    env = os.environ if env is None else env
    for name in WORLD_SIZE_VARS:
        value = _int_or_none(env.get(name))
        if value is not None and value > 0:
            return value
    return None


def parse_ranks(spec: str) -> frozenset[int] | None:
    """Parse "1,3", "0-3,7", "all"/"*" (None = every rank) or "none"/"off" (empty set)."""
    text = spec.strip().lower()
    if text in ("all", "*"):
        return None
    if text in ("none", "off", "-"):
        return frozenset()
    ranks: set[int] = set()
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        low, dash, high = part.partition("-")
        if dash:
            ranks.update(range(int(low), int(high) + 1))
        else:
            ranks.add(int(part))
    return frozenset(ranks)


def resolve_selection(
    argument: int | Iterable[int] | str | None, env: Mapping[str, str] | None = None
) -> frozenset[int] | None:
    """The ranks that stop: ``$MS_DEBUG_RANKS`` if set, else the argument; None means all.

    ``$MS_DEBUG_RANK`` (one rank, the variable of the earlier ``tools/debug_utils`` helper) is
    accepted as a fallback for ``$MS_DEBUG_RANKS``, so old habits select rather than mislabel."""
    env = os.environ if env is None else env
    raw = env.get(ENV_RANKS, "").strip() or env.get(ENV_RANKS_LEGACY, "").strip()
    if raw:
        return parse_ranks(raw)
    if argument is None:
        return None
    if isinstance(argument, str):
        return parse_ranks(argument)
    if isinstance(argument, int):
        return frozenset([argument])
    return frozenset(int(r) for r in argument)


def _is_launcher(argv: list[bytes]) -> bool:
    """Whether a Python command line is a known launcher (msrun, torchrun, deepspeed, ours)."""
    names = [os.path.basename(a).decode(errors="replace") for a in argv[:4]]
    for i, name in enumerate(names):
        if name in ("msrun", "torchrun", "deepspeed") or name.startswith(("torch.distributed.", "deepspeed.")):
            return True
        if name == "tools.debug" and names[i + 1 : i + 2] == ["launch"]:
            return True
    return False


def _parent_has_same_rank(info: RankInfo) -> bool:
    """Linux: is our parent a Python process started with the same rank variable and value?

    That is what a ``subprocess``-started helper of a rank looks like; a rank's own parent is the
    launcher (torchrun agent, msrun, mpirun, a shell), which does not carry the rank variable.
    """
    if info.source == "default":
        return False
    ppid = os.getppid()
    try:
        exe = os.path.basename(os.readlink(f"/proc/{ppid}/exe"))
        with open(f"/proc/{ppid}/cmdline", "rb") as handle:
            argv = handle.read().split(b"\0")
        with open(f"/proc/{ppid}/environ", "rb") as handle:
            entries = handle.read().split(b"\0")
    except OSError:
        return False
    if not exe.startswith("python") or _is_launcher(argv):
        return False  # e.g. msrun started from a shell that still exports an old RANK_ID
    return f"{info.source}={os.environ.get(info.source, '')}".encode() in entries


_inherited: RankInfo | None = None


def _capture_inherited() -> None:
    """In a forked child: the rank the parent's environment had at the fork."""
    global _inherited
    _inherited = detect_rank(dict(os.environ))


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_capture_inherited)


def inherited_rank() -> RankInfo:
    """The rank this process's environment had when it started: captured at fork, else the
    environment it was executed with (Linux ``/proc/self/environ``), else the current one."""
    global _inherited
    if _inherited is not None:
        return _inherited
    _inherited = _executed_with()
    return _inherited


def _executed_with() -> RankInfo:
    try:
        with open("/proc/self/environ", "rb") as handle:
            entries = handle.read().split(b"\0")
    except OSError:
        return detect_rank(dict(os.environ))
    env = {}
    for entry in entries:
        name, sep, value = entry.partition(b"=")
        if sep:
            env[name.decode(errors="replace")] = value.decode(errors="replace")
    return detect_rank(env)


def process_role(info: RankInfo) -> str:
    """ "main" for the rank's own process, "subprocess" for a child that inherited its rank.

    A process whose rank differs from the one it inherited (a ``multiprocessing`` /
    ``torch.multiprocessing.spawn`` child that set ``RANK`` or initialized ``torch.distributed``
    itself) is a rank of its own. Otherwise, strongest first: ``$MS_DEBUG_RANK_PID`` (exported
    by the rank at its first breakpoint, or by the agent), a multiprocessing parent, and (Linux)
    a Python parent with the same rank variable.
    """
    inherited = inherited_rank()
    if info.rank != inherited.rank or (inherited.source == "default" and info.source != "default"):
        return "main"
    rank_pid = _int_or_none(os.environ.get(ENV_RANK_PID))
    if rank_pid is not None:
        return "main" if rank_pid == os.getpid() else "subprocess"
    if multiprocessing.parent_process() is not None:
        return "subprocess"
    if _parent_has_same_rank(info):
        return "subprocess"
    return "main"
