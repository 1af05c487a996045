"""What the user sees: a live line per repository while it runs, then one summary table.

Everything goes to stderr (stdout carries only the path of ``set_env.sh`` for the shell
script), and everything is also written to the run's log file in ``.ms-workspace/logs/``.
When stderr is not a terminal (CI, a log), the live display is replaced by plain lines.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Callable, Sequence

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from tools.workspace.stages import Outcome

KEEP_LOGS = 30


def open_log(logs: Path, manifest: str) -> tuple[logging.Logger, Path]:
    """A logger writing to a new file per run (the oldest beyond :data:`KEEP_LOGS` are removed)."""
    logs.mkdir(parents=True, exist_ok=True)
    path = logs / f"{time.strftime('%Y%m%d-%H%M%S')}-{manifest}-{os.getpid()}.log"
    for old in sorted(logs.glob("*.log"))[:-KEEP_LOGS]:
        old.unlink(missing_ok=True)
    logger = logging.getLogger(f"ms-workspace.{path.stem}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    return logger, path


def close_log(logger: logging.Logger) -> None:
    for handler in list(logger.handlers):
        handler.close()
        logger.removeHandler(handler)


class Reporter:
    """Live status per repository (``with Reporter(...) as r: r.status_for(name)("cloning")``)."""

    def __init__(self, console: Console, names: Sequence[str], log: logging.Logger) -> None:
        self.console = console
        self.log = log
        self.live = console.is_terminal
        self.progress = Progress(
            SpinnerColumn(finished_text="[green]✓"),
            TextColumn("[bold]{task.fields[repo]}"),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            disable=not self.live,
        )
        self.tasks: dict[str, TaskID] = {}
        self.names = list(names)

    def __enter__(self) -> "Reporter":
        width = max((len(n) for n in self.names), default=0)
        for name in self.names:
            self.tasks[name] = self.progress.add_task("waiting", repo=name.ljust(width), start=False)
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def status_for(self, name: str) -> Callable[[str], None]:
        task = self.tasks[name]
        started = False

        def status(text: str) -> None:
            nonlocal started
            if not started:
                self.progress.start_task(task)
                started = True
            self.progress.update(task, description=escape(text))
            if "%" not in text:
                self.log.info("%s: %s", name, text)
                if not self.live:
                    self.console.print(f"{name}: {text}", markup=False, highlight=False, soft_wrap=True)

        return status

    def finish(self, outcome: Outcome) -> None:
        task = self.tasks[outcome.name]
        text = "[red]failed[/red]" if outcome.error else escape(f"{outcome.stage} ({outcome.action})")
        self.progress.start_task(task)
        self.progress.update(task, description=text, completed=1, total=1)
        self.progress.stop_task(task)
        if not self.live:
            plain = "failed" if outcome.error else f"{outcome.stage} ({outcome.action})"
            self.console.print(f"{outcome.name}: {plain} in {outcome.seconds:.1f}s", markup=False, highlight=False, soft_wrap=True)


def _num(value: int | None) -> str:
    return "-" if value is None else str(value)


def summary_table(outcomes: Sequence[Outcome], title: str) -> Table:
    table = Table(title=escape(title), title_justify="left")
    table.add_column("repository", style="bold")
    table.add_column("pin")
    table.add_column("stage")
    table.add_column("this run")
    table.add_column("files converted", justify="right")
    table.add_column("unsupported APIs", justify="right")
    table.add_column("time", justify="right")
    for o in outcomes:
        stage = escape(o.stage) + (" [red](failed)[/red]" if o.error else "")
        table.add_row(escape(o.name), escape(o.pin), stage, "failed" if o.error else escape(o.action), _num(o.files_changed),
                      _num(o.unsupported), f"{o.seconds:.1f}s")
    return table
