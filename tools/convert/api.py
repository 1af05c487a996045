"""The engine's stable Python API (used by the workspace driver and by tests)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .errors import RuleError, UsageError
from .model import RuleSet
from .ruleset import load_rules
from .runner import RunOptions, RunResult, run
from .walk import TMP_SUFFIX

__all__ = ["RuleError", "UsageError", "RuleSet", "RunResult", "load_rules", "convert_tree", "TMP_SUFFIX"]


def convert_tree(root: Path, rules: RuleSet, *, output: Path | None = None, jobs: int | None = None,
                 report_dir: Path | None = None, cache_dir: Path | None = None, use_cache: bool = True,
                 progress: bool = False, introspect: bool = True, excludes: Sequence[str] = (),
                 target_path: Sequence[Path] = (), console=None) -> RunResult:
    """Convert ``root`` in place (or into ``output``); write reports to ``report_dir``.

    ``target_path``: folders searched first (like PYTHONPATH entries, in order) when checking which
    retargeted APIs the target provides, for code that will run against another mindtorch than the
    installed one (a workspace's patched copy); the introspection cache is keyed by them too.

    Never raises for a bad file, nor for one that cannot be read or written (each is reported in
    ``result.summary['failures']``); a cache or report that cannot be written is a line in
    ``result.summary['warnings']``. Raises :class:`UsageError` for impossible arguments.
    """
    if progress and console is None:
        from rich.console import Console
        console = Console(stderr=True, soft_wrap=True)
    return run(Path(root), rules, RunOptions(output=output, jobs=jobs, report_dir=report_dir, cache_dir=cache_dir,
                                             use_cache=use_cache, progress=progress, introspect=introspect,
                                             excludes=tuple(excludes), console=console,
                                             target_path=tuple(Path(p) for p in target_path)))
