"""Run the engine over a tree: discover, prefilter, convert in a process pool, write atomically,
cache, report. Output is identical for any ``-j``: files are processed independently and every
list is ordered by path."""
from __future__ import annotations

import difflib
import multiprocessing
import os
import resource
import shutil
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
from .fileconv import FileResult, convert_source, needs_parse, sha
from .fsio import atomic_write
from .introspect import Introspector, check_target_path
from .model import RuleSet
from .report import print_summary, summarize, unsupported_rows, write_reports
from .walk import walk_tree

STATE_DIR = ".ms-convert"
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


def _state_dir(base: Path) -> Path:
    folder = base / STATE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    ignore = folder / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# created by tools.convert (cache and reports): never committed\n*\n")
    return folder


def _check_paths(root: Path, output: Path | None) -> None:
    if not root.exists():
        raise UsageError(f"{root}: no such file or directory")
    if not root.is_dir():
        raise UsageError(f"{root}: give a directory (the root of the tree to convert)")
    if output is not None:
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
    target_path = check_target_path(opts.target_path)
    writes = not (opts.diff or opts.check)
    dest = opts.output if opts.output is not None else root
    jobs = opts.jobs or os.cpu_count() or 1
    cache_dir = opts.cache_dir
    if opts.use_cache and cache_dir is None and writes:
        cache_dir = _state_dir(dest) / "cache"
    cache = Cache(cache_dir if opts.use_cache else None, rules.hash)
    report_dir = opts.report_dir
    if report_dir is None and writes:
        report_dir = _state_dir(dest) / "report"

    introspector = None
    if opts.introspect:
        introspector = Introspector({t.split(".")[0] for t in rules.import_map.values()},
                                    (cache_dir / "introspect.json") if cache_dir and writes else None,
                                    target_path)
    try:
        return _run(root, rules, opts, started, writes, dest, jobs, cache, cache_dir, report_dir, introspector)
    finally:
        if introspector is not None:
            introspector.close()


def _run(root, rules, opts, started, writes, dest, jobs, cache, cache_dir, report_dir, introspector) -> RunResult:
    entries = walk_tree(root, opts.excludes)
    results: dict[str, FileResult] = {}
    todo: list[tuple[str, bytes]] = []
    hits = 0
    for e in entries:
        src = root / e.relpath
        if e.kind == "stale-tmp":
            if writes and opts.output is None:
                src.unlink(missing_ok=True)  # left by an interrupted run of ours
            continue
        if e.kind in ("symlink", "symlink-dir"):
            if e.relpath.endswith(".py") or e.kind == "symlink-dir":
                results[e.relpath] = FileResult(e.relpath, "skipped", reason=f"{e.kind.replace('-', 'ed ')} (not followed)"
                                                if e.kind == "symlink-dir" else "symlink (not followed)")
            if writes and opts.output is not None:
                _copy_link(src, dest / e.relpath)
            continue
        if e.kind == "other":
            if writes and opts.output is not None:
                _copy_file(src, dest / e.relpath)
            continue
        if e.size > opts.max_file_size:
            results[e.relpath] = FileResult(e.relpath, "skipped",
                                            reason=f"too large ({e.size} bytes > --max-file-size {opts.max_file_size})")
            if writes and opts.output is not None:
                _copy_file(src, dest / e.relpath)
            continue
        try:
            data = src.read_bytes()
        except OSError as exc:
            results[e.relpath] = FileResult(e.relpath, "failed", reason=f"cannot read: {exc.strerror}")
            continue
        if not needs_parse(e.relpath, data, rules):
            results[e.relpath] = FileResult(e.relpath, "skipped", reason="no trigger token")
            if writes and opts.output is not None:
                _copy_bytes(data, dest / e.relpath, src)
            continue
        digest = sha(data)
        cached = cache.get(digest, e.relpath)
        if cached is not None and (cached.status != "changed" or
                                   (opts.output is not None and _has_sha(dest / e.relpath, cached.new_sha))):
            cache.keep(digest)
            if cached.new_sha:
                cache.keep(cached.new_sha)
            hits += 1
            results[e.relpath] = cached
            if writes and opts.output is not None and cached.status != "changed":
                _copy_bytes(data, dest / e.relpath, src)
            continue
        todo.append((e.relpath, data))

    console = opts.console
    progress = None
    if opts.progress and console is not None and todo:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
        progress = Progress(TextColumn("converting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            TextColumn("{task.fields[file]}"), console=console, transient=True)
        task = progress.add_task("convert", total=len(todo), file="")
        progress.start()
    diffs: list[str] = []
    originals = dict(todo)
    try:
        for res in _pool_results(todo, rules, jobs):
            results[res.path] = res
            cache.put(res)
            if res.fixed_point is not None:
                fp = FileResult.from_json(res.fixed_point)
                cache.put(fp)
            if res.status == "changed":
                if opts.diff:
                    diffs.append(_unified(res.path, originals[res.path], res.new_data))
                if writes:
                    atomic_write(dest / res.path, res.new_data, mode_from=root / res.path)
            elif writes and opts.output is not None:
                _copy_bytes(originals[res.path], dest / res.path, root / res.path)
            res.new_data = None
            if progress is not None:
                progress.update(task, advance=1, file=res.path[-60:])
    finally:
        if progress is not None:
            progress.stop()
        if writes:
            cache.save()

    ordered = [results[k] for k in sorted(results)]
    retarget = rules.retarget
    targets = {retarget(u[0]) for r in ordered for u in r.uses if u[3] == "retargeted"}
    available: dict[str, bool] = {}
    modules: dict = {}
    if introspector is not None and targets:
        available, modules = introspector.provided(targets)
    unsupported = unsupported_rows(ordered, available, retarget)
    unmatched = _unmatched(rules, ordered)
    summary = summarize(ordered, available, modules, retarget, unmatched=unmatched, unsupported_count=len(unsupported),
                        extra={"engine_version": ENGINE_VERSION, "rules_hash": rules.hash,
                               "rule_files": list(rules.files), "root": str(root),
                               "output": str(opts.output) if opts.output else None, "jobs": jobs,
                               "cache_hits": hits,
                               "worker_peak_rss_mb": round(max((r.worker_rss_kb for r in ordered), default=0) / 1024, 1)})
    summary = {**summary, "elapsed_s": round(time.perf_counter() - started, 3)}
    if report_dir is not None:
        write_reports(report_dir, ordered, unsupported, summary)
    if console is not None:
        print_summary(console, summary, report_dir)
    return RunResult(summary, report_dir, ordered, "".join(sorted(diffs)))


def _unmatched(rules: RuleSet, results: list[FileResult]) -> list[dict]:
    """Scoped rules that matched nowhere in their target: upstream drift, never silent."""
    considered: dict[str, list[str]] = {}
    matched: set[str] = set()
    for r in results:
        for rid in r.scoped_considered:
            considered.setdefault(rid, []).append(r.path)
        matched.update(r.scoped_matched)
    out = []
    for rule in rules.scoped:
        if rule.id in matched:
            continue
        what = f"{rule.action} {rule.match or ''}".strip()
        scope = f" in {rule.within}" if rule.within else ""
        where = ", ".join(considered.get(rule.id, [])) or f"{rule.path} (no such file)"
        hint = (" (its body is not the one the rule was written for: re-check the rule, then update "
                "expect_body with `rules fingerprint`)") if rule.expect_body and rule.id in considered else ""
        out.append({"rule": rule.id, "path": rule.path,
                    "message": f"rule {rule.id} ({what}{scope}) did not match in {where}{hint}"})
    return out


def _unified(path: str, old: bytes, new: bytes) -> str:
    a = old.decode("utf-8", "replace").splitlines(keepends=True)
    b = new.decode("utf-8", "replace").splitlines(keepends=True)
    return "".join(difflib.unified_diff(a, b, f"a/{path}", f"b/{path}"))


def _has_sha(path: Path, digest: str) -> bool:
    try:
        return sha(path.read_bytes()) == digest
    except OSError:
        return False


def _copy_bytes(data: bytes, target: Path, source: Path) -> None:
    try:
        if target.read_bytes() == data:
            return
    except OSError:
        pass
    atomic_write(target, data, mode_from=source)


def _copy_file(source: Path, target: Path) -> None:
    try:
        st_s, st_t = source.stat(), target.stat()
        if st_s.st_size == st_t.st_size and st_s.st_mtime_ns <= st_t.st_mtime_ns:
            return
    except OSError:
        pass
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.copy.ms-convert.tmp")
    shutil.copy2(source, tmp)
    os.replace(tmp, target)


def _copy_link(source: Path, target: Path) -> None:
    link = os.readlink(source)
    if target.is_symlink() and os.readlink(target) == link:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.exists():
        target.unlink()
    os.symlink(link, target)
