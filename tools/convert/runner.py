"""Run the engine over a tree: discover, prefilter, convert in a process pool, write atomically,
cache, report. Output is identical for any ``-j``: files are processed independently and every
list is ordered by path."""
from __future__ import annotations

import dataclasses
import difflib
import multiprocessing
import os
import resource
import stat
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import libcst

from . import ENGINE_VERSION
from .cache import Cache
from .errors import UsageError
from .fileconv import convert_source, needs_parse, sha
from .fsio import (Refused, atomic_symlink, atomic_write, copy_if_newer, holds, read_regular, replace_converted,
                   write_if_different)
from .introspect import Introspector, check_target_path
from .model import Category, FileResult, RuleSet, SkipReason, Status
from .report import print_summary, shown, summarize, unsupported_rows, write_reports
from .walk import STATE_DIR, Entry, walk_tree

DEFAULT_MAX_FILE_SIZE = 8 * 1024 * 1024


@dataclass
class RunOptions:
    output: Path | None = None
    jobs: int | None = None
    report_dir: Path | None = None
    cache_dir: Path | None = None
    use_cache: bool = True
    diff: bool = False
    check: bool = False
    excludes: tuple[str, ...] = ()
    max_file_size: int = DEFAULT_MAX_FILE_SIZE
    progress: bool = False
    introspect: bool = True
    console: object | None = None
    # Folders put first on the PYTHONPATH of the introspection child: the target the converted code
    # will run against when it is not the installed one (a workspace's patched mindtorch).
    target_path: tuple[Path, ...] = ()


@dataclass
class RunResult:
    summary: dict
    report_dir: Path | None
    results: list[FileResult] = field(repr=False, default_factory=list)
    diff: str = ""

    @property
    def would_change(self) -> bool:
        return self.summary["files_changed"] > 0


_RULES: RuleSet | None = None


def _init_worker(rules: RuleSet, parent: int | None = None) -> None:
    global _RULES
    _RULES = rules
    if parent is not None:
        _die_with_parent(parent)


def _die_with_parent(parent: int) -> None:
    """A worker only computes (the parent writes every file), so when the parent is killed
    (SIGKILL skips the pool's shutdown) it must not linger: ask Linux to signal it then."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal
    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def _work(item: tuple[str, bytes]) -> FileResult:
    assert _RULES is not None
    result = convert_source(item[0], item[1], _RULES)
    result.worker_rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return result


def _check_paths(root: Path, output: Path | None) -> None:
    if not root.exists():
        raise UsageError(f"{root}: no such file or directory")
    if not root.is_dir():
        raise UsageError(f"{root}: give a directory (the root of the tree to convert)")
    if output is not None:
        if output.exists() and not output.is_dir():
            raise UsageError(f"output {output} exists and is not a directory: choose a folder")
        r, o = root.resolve(), output.resolve()
        if o == r or o.is_relative_to(r):
            raise UsageError(f"output {output} is inside the input {root}: choose a folder outside it, "
                             "or convert in place by leaving out --output")
        if r.is_relative_to(o):
            raise UsageError(f"the input {root} is inside the output {output}: choose another output folder")


def _pool_results(items: list[tuple[str, bytes]], rules: RuleSet, jobs: int) -> Iterator[FileResult]:
    if jobs <= 1 or len(items) < 2:
        _init_worker(rules)
        for item in items:
            yield _work(item)
        return
    libcst.parse_module("import x\n")  # warm the parser before the pool forks
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker,
                             initargs=(rules, os.getpid())) as pool:
        try:
            yield from pool.map(_work, items, chunksize=max(1, min(16, len(items) // (jobs * 8) or 1)))
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def run(root: Path, rules: RuleSet, opts: RunOptions) -> RunResult:
    """Convert ``root`` (in place, or into ``opts.output``) and write the reports."""
    started = time.perf_counter()
    root = Path(root)
    _check_paths(root, opts.output)
    conversion = _Conversion(root, rules, opts, check_target_path(opts.target_path))
    try:
        conversion.plan()
        conversion.execute()
        return conversion.finish(started)
    finally:
        conversion.close()


class _Conversion:
    """One run in three steps. ``plan``: walk the tree, read each file, settle what needs no
    conversion (skipped, unreadable, cached). ``execute``: convert the rest in the pool and write
    each result. ``finish``: check the targets, write the reports. Every problem with one file
    becomes that file's result; a cache or report that cannot be written is a warning."""

    def __init__(self, root: Path, rules: RuleSet, opts: RunOptions, target_path: tuple[Path, ...]) -> None:
        self.root, self.rules, self.opts = root, rules, opts
        self.writes = not (opts.diff or opts.check)
        self.in_place = self.writes and opts.output is None
        self.copies = self.writes and opts.output is not None
        self.dest = opts.output if opts.output is not None else root
        self.jobs = opts.jobs or os.cpu_count() or 1
        self.warnings: list[str] = []
        self.results: dict[str, FileResult] = {}
        self.todo: list[tuple[str, bytes]] = []
        self.read_stats: dict[str, os.stat_result] = {}
        self.hits = 0
        self.diffs: list[str] = []
        cache_dir, self.report_dir = opts.cache_dir, opts.report_dir
        if self.writes and ((opts.use_cache and cache_dir is None) or self.report_dir is None):
            state = self._state_dir()
            if opts.use_cache and cache_dir is None and state is not None:
                cache_dir = state / "cache"
            if self.report_dir is None and state is not None:
                self.report_dir = state / "report"
        self.cache = Cache(cache_dir if opts.use_cache else None, rules.hash)
        self.introspector = None
        if opts.introspect:
            self.introspector = Introspector({t.split(".")[0] for t in rules.import_map.values()},
                                             (cache_dir / "introspect.json") if cache_dir and self.writes else None,
                                             target_path)

    def close(self) -> None:
        if self.introspector is not None:
            self.introspector.close()

    def _state_dir(self) -> Path | None:
        folder = self.dest / STATE_DIR
        try:
            folder.mkdir(parents=True, exist_ok=True)
            ignore = folder / ".gitignore"
            if not ignore.exists():
                atomic_write(ignore, b"# created by tools.convert (cache and reports): never committed\n*\n")
        except OSError as exc:
            self.warnings.append(f"cannot create {folder}: {_why(exc)}: no cache and no reports in this run "
                                 "(give --cache-dir and --report-dir elsewhere)")
            return None
        return folder

    # -- plan -----------------------------------------------------------------------------------
    def plan(self) -> None:
        if self.copies:
            self._remove_stale_temps(self.dest)
        for e in walk_tree(self.root, self.opts.excludes):
            self._plan_entry(e)

    def _remove_stale_temps(self, tree: Path) -> None:
        """Temp files an interrupted run of ours left in ``tree`` (only ours: TMP_SUFFIX)."""
        if not tree.is_dir():
            return
        for e in walk_tree(tree):
            if e.kind == "stale-tmp":
                try:
                    (tree / e.relpath).unlink(missing_ok=True)
                except OSError:
                    pass   # reported as failed writes if it is in the way

    def _plan_entry(self, e: Entry) -> None:
        src = self.root / e.relpath
        rel = e.relpath
        if e.kind == "stale-tmp":
            if self.in_place:
                try:
                    src.unlink(missing_ok=True)   # left by an interrupted run of ours
                except OSError:
                    pass
        elif e.kind == "unreadable-dir":
            self._set(FileResult(rel, Status.FAILED, reason=e.reason))
        elif e.kind in ("symlink", "symlink-dir"):
            if rel.endswith(".py") or e.kind == "symlink-dir":
                why = SkipReason.SYMLINKED_DIR if e.kind == "symlink-dir" else SkipReason.SYMLINK
                self._set(FileResult(rel, Status.SKIPPED, reason=why))
            if self.copies:
                self._copy(rel, lambda: atomic_symlink(os.readlink(src), self.dest / rel))
        elif e.kind == "special":
            if rel.endswith(".py") or self.copies:
                copied = " or copied" if self.copies else ""
                self._set(FileResult(rel, Status.SKIPPED, reason=f"not a regular file ({e.reason}): not read{copied}"))
        elif e.kind == "other":
            if self.copies:
                self._copy(rel, lambda: copy_if_newer(src, self.dest / rel))
        elif e.size > self.opts.max_file_size:
            self._set(FileResult(rel, Status.SKIPPED,
                                 reason=f"too large ({e.size} bytes > --max-file-size {self.opts.max_file_size})"))
            if self.copies:
                self._copy(rel, lambda: copy_if_newer(src, self.dest / rel))
        else:
            self._plan_source(rel, src)

    def _plan_source(self, rel: str, src: Path) -> None:
        try:
            data, st = read_regular(src)
        except Refused as why:
            self._set(FileResult(rel, Status.SKIPPED, reason=str(why)))
            return
        except OSError as exc:
            self._set(FileResult(rel, Status.FAILED, reason=f"cannot read: {_why(exc)}"))
            return
        mode = stat.S_IMODE(st.st_mode)
        if not needs_parse(rel, data, self.rules):
            self._set(FileResult(rel, Status.SKIPPED, reason=SkipReason.NO_TRIGGER))
            if self.copies:
                self._copy(rel, lambda: write_if_different(self.dest / rel, data, mode))
            return
        digest = sha(data)
        earlier = self.cache.written(rel, digest) if self.in_place else None
        if earlier is not None:            # converted by an interrupted run of ours: report it
            self.hits += 1
            self._set(earlier)
            return
        cached = self.cache.get(rel, digest)
        if cached is not None and (cached.status != Status.CHANGED or
                                   (self.copies and holds(self.dest / rel, cached.new_sha))):
            self.cache.keep(rel, digest)
            if cached.new_sha:
                self.cache.keep(rel, cached.new_sha)
            self.hits += 1
            self._set(cached)
            if self.copies and cached.status != Status.CHANGED:
                self._copy(rel, lambda: write_if_different(self.dest / rel, data, mode))
            return
        self.read_stats[rel] = st
        self.todo.append((rel, data))

    def _set(self, result: FileResult) -> None:
        self.results[result.path] = result

    def _copy(self, rel: str, copy) -> None:
        """A copy into the output tree; a failure makes ``rel`` a failed file."""
        try:
            copy()
        except Refused as why:
            self._set(FileResult(rel, Status.SKIPPED, reason=str(why)))
        except OSError as exc:
            self._fail(self.results.get(rel) or FileResult(rel, Status.FAILED), f"cannot copy: {_why(exc)}")

    def _fail(self, result: FileResult, reason: str) -> None:
        self._set(dataclasses.replace(result, status=Status.FAILED, reason=reason, changes=[], new_sha="",
                                      new_data=None, fixed_point=None))

    # -- execute --------------------------------------------------------------------------------
    def execute(self) -> None:
        finished = False
        progress = task = None
        if self.opts.progress and self.opts.console is not None and self.todo:
            from rich.markup import escape
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
            progress = Progress(TextColumn("converting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                TextColumn("{task.fields[file]}"), console=self.opts.console, transient=True)
            task = progress.add_task("convert", total=len(self.todo), file="")
            progress.start()
        originals = dict(self.todo)
        try:
            for res in _pool_results(self.todo, self.rules, self.jobs):
                self._settle(res, originals[res.path])
                if progress is not None:
                    progress.update(task, advance=1, file=escape(shown(res.path)[-60:]))
            finished = True
        finally:
            if progress is not None:
                progress.stop()
            if self.writes:
                try:
                    self.cache.save(finished)
                except OSError as exc:
                    self.warnings.append(f"cannot save the cache in {self.cache.folder}: {_why(exc)} "
                                         "(the next run converts everything again)")

    def _settle(self, res: FileResult, original: bytes) -> None:
        """Record, cache and write the result of one conversion."""
        self._set(res)
        self.cache.put(res)
        fixed = res.fixed_point
        if fixed is not None:
            self.cache.put(FileResult.from_json(fixed))
        data, res.new_data = res.new_data, None
        target = self.dest / res.path
        try:
            if res.status == Status.CHANGED:
                if self.opts.diff:
                    self.diffs.append(_unified(res.path, original, data))
                if self.writes:
                    self._record(res, fixed)
                    st = self.read_stats[res.path]
                    if self.in_place:
                        replace_converted(target, data, read_stat=st, read_sha=res.sha)
                    else:
                        atomic_write(target, data, mode=stat.S_IMODE(st.st_mode))
            elif self.copies:
                write_if_different(target, original, stat.S_IMODE(self.read_stats[res.path].st_mode))
        except Refused as why:
            self._fail(res, str(why))
        except OSError as exc:
            self._fail(res, f"cannot write: {_why(exc)}")

    def _record(self, res: FileResult, fixed: dict | None) -> None:
        try:
            self.cache.record_write(res, fixed)
        except OSError as exc:
            self.warnings.append(f"cannot record progress in the cache folder {self.cache.folder}: {_why(exc)} "
                                 "(if this run is interrupted, the next one reports only its own changes)")

    # -- finish ---------------------------------------------------------------------------------
    def finish(self, started: float) -> RunResult:
        ordered = [self.results[k] for k in sorted(self.results)]
        rules = self.rules
        retarget = rules.retarget
        targets = {retarget(u.api) for r in ordered for u in r.uses if u.category == Category.RETARGETED}
        available: dict[str, bool] = {}
        modules: dict = {}
        if self.introspector is not None and targets:
            available, modules = self.introspector.provided(targets)
        unsupported = unsupported_rows(ordered, available, retarget)
        opts = self.opts
        summary = summarize(ordered, available, modules, retarget, unmatched=_unmatched(rules, ordered),
                            unsupported_count=len(unsupported),
                            extra={"engine_version": ENGINE_VERSION, "rules_hash": rules.hash,
                                   "rule_files": list(rules.files), "root": str(self.root),
                                   "output": str(opts.output) if opts.output else None, "jobs": self.jobs,
                                   "cache_hits": self.hits,
                                   "worker_peak_rss_mb": round(max((r.worker_rss_kb for r in ordered), default=0)
                                                               / 1024, 1)})
        summary = {**summary, "elapsed_s": round(time.perf_counter() - started, 3)}
        report_dir = self.report_dir
        if report_dir is not None:
            try:
                write_reports(report_dir, ordered, unsupported, {**summary, "warnings": self.warnings})
            except OSError as exc:
                self.warnings.append(f"cannot write the reports to {report_dir}: {_why(exc)}")
                report_dir = None
        summary["warnings"] = self.warnings
        if opts.console is not None:
            print_summary(opts.console, summary, report_dir)
        return RunResult(summary, report_dir, ordered, "".join(sorted(self.diffs)))


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _unmatched(rules: RuleSet, results: list[FileResult]) -> list[dict]:
    """Scoped rules that did not match in their target: upstream drift, never silent.

    A rule file is written for one upstream (megatron_core.yaml: Megatron-LM). When the tree has no
    target file of any scoped rule of that file, it is not that upstream and nothing drifted (the
    default rules convert any tree). Once one target exists, a rule whose file is missing (moved or
    renamed upstream) or where the rule did not match is drift."""
    considered: dict[str, list[str]] = {}
    matched: set[str] = set()
    for r in results:
        for rid in r.scoped_considered:
            considered.setdefault(rid, []).append(r.path)
        matched.update(r.scoped_matched)
    by_path = {r.path: r for r in results}
    targets = {rule.id: [p for p in by_path if rule.applies_to(p)] for rule in rules.scoped}
    present = {_rule_file(rule) for rule in rules.scoped if targets[rule.id]}
    out = []
    for rule in rules.scoped:
        if rule.id in matched or _rule_file(rule) not in present:
            continue
        what = f"{rule.action} {rule.match or ''}".strip()
        scope = f" in {rule.within}" if rule.within else ""
        where = ", ".join(considered.get(rule.id, []))
        if not where:
            where = ", ".join(f"{p} ({by_path[p].status}: {by_path[p].reason})" for p in targets[rule.id])
        where = where or f"{rule.path} (no such file)"
        hint = (" (its body is not the one the rule was written for: re-check the rule, then update "
                "expect_body with `rules fingerprint`)") if rule.expect_body and rule.id in considered else ""
        out.append({"rule": rule.id, "path": rule.path,
                    "message": f"rule {rule.id} ({what}{scope}) did not match in {where}{hint}"})
    return out


def _rule_file(rule) -> str:
    """The rule file a rule comes from (its origin is ``<file>:scoped[<i>]``)."""
    return rule.origin.rsplit(":", 1)[0]


def _unified(path: str, old: bytes, new: bytes) -> str:
    a = old.decode("utf-8", "replace").splitlines(keepends=True)
    b = new.decode("utf-8", "replace").splitlines(keepends=True)
    return "".join(difflib.unified_diff(a, b, shown(f"a/{path}"), shown(f"b/{path}")))
