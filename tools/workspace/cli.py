"""``python -m tools.workspace <llm|mm|rl> [options]``: set up (or complete) a workspace.

This is what ``auto_convert_{llm,mm,rl}.sh`` run. Everything the user reads goes to stderr; on
success the path of the generated ``set_env.sh`` is written to stdout (or, with ``--env-out FILE``
as the scripts use it, into FILE), and the scripts source it. Exit status: 0 done, 1 a repository failed (the others are done), 2 bad
usage, manifest, rules or workspace, 130 interrupted (run again to complete).
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Sequence

import git
from rich.console import Console
from rich.markup import escape

from tools.workspace import envfile
from tools.workspace.errors import RepoError, WorkspaceError
from tools.workspace.manifest import Manifest, load_manifest, manifest_path
from tools.workspace.progress import Reporter, close_log, open_log, summary_table
from tools.workspace.sources import FetchOptions
from tools.workspace.stages import Context, Outcome, RepoRunner
from tools.workspace.state import State, WorkspaceLock, meta_dir

KINDS = ("llm", "mm", "rl")
MIRROR_ENV = "MS_CONVERT_MIRROR"
RETRY_DELAY_ENV = "MS_CONVERT_RETRY_DELAY"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.workspace",
        description="Clone the pinned repositories of a workspace, apply patches, convert them to MindSpore "
        "(mindtorch) and write <workspace>/set_env.sh. Safe to run again: finished work is skipped, "
        "interrupted work is completed. See docs/workspace.md.",
    )
    parser.add_argument("kind", nargs="?", choices=KINDS, help="which shipped manifest: workspaces/<kind>.yaml")
    parser.add_argument("--manifest", type=Path, metavar="FILE",
                        help="use this manifest file instead of workspaces/<kind>.yaml (its relative patch and "
                        "rule paths are resolved against its own folder)")
    parser.add_argument("-w", "--workspace", type=Path, metavar="DIR",
                        help="the workspace folder (default: the current directory)")
    parser.add_argument("--mirror", type=Path, metavar="DIR",
                        help=f"clone git sources from DIR/<name> or DIR/<name>.git instead of the network "
                        f"(default: ${MIRROR_ENV}); pins are verified all the same")
    parser.add_argument("--force", action="store_true",
                        help="a repository changed by hand that needs work is moved to .ms-workspace/backup/ "
                        "and set up afresh, instead of stopping")
    parser.add_argument("-j", "--jobs", type=int, metavar="N", help="conversion processes (default: the engine's)")
    parser.add_argument("--retries", type=int, default=3, metavar="N",
                        help=f"attempts per clone or download (default 3; backoff from ${RETRY_DELAY_ENV}, default 2 s)")
    parser.add_argument("--status", action="store_true", help="show the workspace's table without changing anything")
    parser.add_argument("--env-out", type=Path, metavar="FILE",
                        help="on success, write the path of set_env.sh into FILE instead of to stdout "
                        "(used by auto_convert_*.sh)")
    return parser


def load_rule_sets(manifest: Manifest) -> dict[tuple[Path, ...], Any]:
    """Load every distinct rule set the manifest names, before any work (an invalid rule file
    stops the run at once with the engine's ``file:line: field: problem`` message)."""
    wanted = {spec.rules for spec in manifest.repos if spec.rules}
    if not wanted:
        return {}
    try:
        from tools.convert.api import RuleError, load_rules
    except ImportError as exc:
        raise WorkspaceError(f"the conversion engine cannot be loaded (tools.convert.api: {exc})") from None
    loaded: dict[tuple[Path, ...], Any] = {}
    for paths in sorted(wanted):
        try:
            loaded[paths] = load_rules(list(paths), select=None, ignore=None)
        except RuleError as exc:
            raise WorkspaceError(str(exc)) from None
    return loaded


def _on_signal(signum: int, frame: Any) -> None:
    """SIGTERM and SIGHUP (terminal closed) stop the run like Ctrl-C: state stays resumable."""
    raise KeyboardInterrupt


def _status_outcomes(manifest: Manifest, state: State) -> list[Outcome]:
    outcomes = []
    for spec in manifest.repos:
        outcome = Outcome(spec.name, spec.source.describe())
        record = state.repo(spec.name)
        if record is not None:
            outcome.stage = record.stage_label + (" (interrupted)" if record.in_progress else "")
            if record.converted is not None:
                outcome.files_changed, outcome.unsupported = record.converted.files_changed, record.converted.unsupported
            if record.source != spec.source.pin:
                outcome.stage += " (other pin)"
        outcome.action = "-"
        outcomes.append(outcome)
    return outcomes


def _run(args: argparse.Namespace, console: Console) -> tuple[int, Path | None]:
    if args.manifest is None and args.kind is None:
        raise WorkspaceError("name the workspace kind (llm, mm or rl) or give --manifest FILE")
    manifest = load_manifest(args.manifest if args.manifest is not None else manifest_path(args.kind))
    workspace = (args.workspace or Path.cwd()).expanduser().resolve()
    mirror_arg = args.mirror or (Path(os.environ[MIRROR_ENV]) if os.environ.get(MIRROR_ENV) else None)
    mirror = mirror_arg.expanduser().resolve() if mirror_arg else None
    if mirror is not None and not mirror.is_dir():
        raise WorkspaceError(f"the mirror {mirror} is not a directory")
    if args.retries < 1:
        raise WorkspaceError("--retries must be at least 1")
    try:
        delay = float(os.environ.get(RETRY_DELAY_ENV, "2"))
    except ValueError:
        raise WorkspaceError(f"${RETRY_DELAY_ENV} must be a number of seconds") from None
    if workspace.exists() and not workspace.is_dir():
        raise WorkspaceError(f"the workspace {workspace} is not a directory")
    try:
        str(workspace).encode("utf-8")
    except UnicodeEncodeError:  # gitpython reads git's messages, which name the path, as UTF-8 and fails
        shown = os.fsencode(workspace).decode("utf-8", "backslashreplace")
        raise WorkspaceError(f"the workspace path {shown} is not valid UTF-8, which git's messages about it must be; "
                             "use a folder whose path is") from None
    if os.pathsep in str(workspace):
        raise WorkspaceError(f"the workspace path {workspace} contains {os.pathsep!r}, which separates PYTHONPATH "
                             "entries, so its repositories could not be put on it; use a folder whose path has none")
    if args.status:  # read only: not even the folder is created
        state = State.load(workspace)
        console.print(summary_table(_status_outcomes(manifest, state), f"workspace {workspace} ({manifest.name})"))
        return 0, None
    if not meta_dir(workspace).exists() and not args.force:
        outer = next((p for p in workspace.parents if meta_dir(p).is_dir()), None)
        if outer is not None:
            raise WorkspaceError(
                f"{workspace} is inside the workspace {outer}; run from {outer} or pass --workspace {outer} "
                "(or --force to make a new workspace here)"
            )
    workspace.mkdir(parents=True, exist_ok=True)
    meta = meta_dir(workspace)

    log, log_path = open_log(meta / "logs", manifest.name)
    try:
        log.info("run: manifest %s, workspace %s, mirror %s, force %s, jobs %s, python %s",
                 manifest.path, workspace, mirror, args.force, args.jobs, sys.executable)
        with WorkspaceLock(workspace):
            state = State.load(workspace)
            if state.manifest not in (None, manifest.name) and not args.force:
                raise WorkspaceError(
                    f"{workspace} was set up with the {state.manifest} manifest, not {manifest.name}; "
                    "use a separate folder per workspace (or --force to switch this one)"
                )
            state.manifest = manifest.name
            state.save()
            scratch = meta / "tmp"
            shutil.rmtree(scratch, ignore_errors=True)  # what a killed run left; we hold the lock
            rules = load_rule_sets(manifest)
            ctx = Context(
                workspace=workspace, state=state, force=args.force, jobs=args.jobs, rules=rules, log=log,
                manifest=manifest,
                fetch=FetchOptions(mirror=mirror, retries=args.retries, delay=delay,
                                   downloads=meta / "downloads", scratch=scratch, log=log),
            )
            outcomes: list[Outcome] = []
            with Reporter(console, [spec.name for spec in manifest.repos], log) as reporter:
                for spec in manifest.repos:
                    runner = RepoRunner(spec, ctx, reporter.status_for(spec.name))
                    try:
                        runner.run()
                    except RepoError as exc:
                        runner.outcome.error = str(exc)
                        log.error("%s", exc)
                    except (git.GitCommandError, OSError) as exc:
                        runner.outcome.error = f"{spec.name}: {type(exc).__name__}: {exc}".replace("\n", " ")
                        log.error("%s\n%s", runner.outcome.error, traceback.format_exc())
                    outcomes.append(runner.outcome)
                    reporter.finish(runner.outcome)
            shutil.rmtree(scratch, ignore_errors=True)
        console.print(summary_table(outcomes, f"workspace {workspace} ({manifest.name})"))
        for outcome in outcomes:
            for note in outcome.notes:
                console.print(f"note: {outcome.name}: {escape(note)}", highlight=False, soft_wrap=True)
        if any(o.report_dir for o in outcomes):
            console.print(f"conversion reports: {meta / 'reports'}/<repository>/ "
                          "(change_list.csv, unsupported_api.csv, summary.json)", markup=False, highlight=False, soft_wrap=True)
        console.print(f"log: {log_path}", markup=False, highlight=False, soft_wrap=True)
        failed = [o for o in outcomes if o.error]
        if failed:
            for outcome in failed:
                console.print(f"[red]error:[/red] {escape(outcome.error or '')}", highlight=False, soft_wrap=True)
            console.print(f"[red]{len(failed)} of {len(outcomes)} repositories failed[/red]; the others are done. "
                          "Fix the cause and run the same command again: finished work is kept.",
                          highlight=False, soft_wrap=True)
            return 1, None
        env_path = envfile.write(workspace, manifest, envfile.python_bin_dir())
        log.info("wrote %s", env_path)
        return 0, env_path
    finally:
        close_log(log)


def _divert_stdout() -> int:
    """Send fd 1 to stderr for the run (git, pip, stray prints), keeping the real stdout."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    return saved


def _restore_stdout(saved: int) -> None:
    sys.stdout.flush()
    os.dup2(saved, 1)
    os.close(saved)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point (``python -m tools.workspace ...``)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["workspace"]:
        args_list = args_list[1:]
    console = Console(stderr=True)
    if not console.is_terminal:  # a log or CI: room for the table instead of 80 columns
        console = Console(stderr=True, width=max(console.width, 140))
    saved = _divert_stdout()
    env_path: Path | None = None
    env_out: Path | None = None
    old_handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}
    started = time.monotonic()
    try:
        try:
            args = build_parser().parse_args(args_list)
        except SystemExit as exc:
            return int(exc.code or 0)
        if threading.current_thread() is threading.main_thread():
            for sig in old_handlers:
                signal.signal(sig, _on_signal)
        env_out = args.env_out
        code, env_path = _run(args, console)
        if code == 0 and env_path is not None:
            console.print(f"done in {time.monotonic() - started:.1f}s; environment: source {env_path}",
                          markup=False, highlight=False, soft_wrap=True)
        return code
    except WorkspaceError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]: nothing is lost; run the same command again to complete the workspace",
                      highlight=False, soft_wrap=True)
        return 130
    finally:
        if threading.current_thread() is threading.main_thread():
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
        _restore_stdout(saved)
        if env_path is not None:
            if env_out is not None:
                env_out.write_text(f"{env_path}\n", encoding="utf-8")
            else:
                print(env_path, flush=True)
