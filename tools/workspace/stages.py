"""Bring one repository through its stages: pinned -> patched -> converted, each a git commit.

The stages live on branch ``ms-workspace`` of the repository: the pin itself, then "patches
applied", then "converted (rules <hash>)" (a stage with nothing to change makes no commit). The
state file records each finished stage's commit and, before a stage starts, that it is in
progress, so a run stopped at any point leaves a record that tells the next one what was going on.

What to do next is decided by :func:`tools.workspace.plan.plan` (a pure function of the record,
the manifest's goal and what the repository looks like; the table is there). This module reads
those facts from git, carries out each action (fetch, adopt, move aside, roll back, patch,
convert) and keeps the record.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import git

from tools.workspace import envfile, sources
from tools.workspace.errors import RepoError, UserChangesError
from tools.workspace.gitutil import (
    BRANCH, changes, commit_tracked, head_branch, head_commit, is_ours, is_repo, keep_dirty_state, open_repo, reset_to,
    write_excludes,
)
from tools.workspace.manifest import GitSource, Manifest, PypiSource, RepoSpec
from tools.workspace.patches import apply_series
from tools.workspace.plan import (
    Action, Adopt, Convert, Done, Fetch, MoveAside, Patch, Refuse, Replace, RollBack, Want, plan,
)
from tools.workspace.record import Converted, Fetched, InProgress, Patched, RepoRecord, Stage, Target, TargetPrint
from tools.workspace.state import State, meta_dir, now

Status = Callable[[str], None]


@dataclass
class Context:
    """Everything a repository's stages need from the run."""

    workspace: Path
    state: State
    fetch: sources.FetchOptions
    force: bool
    jobs: int | None
    rules: dict[tuple[Path, ...], Any]  # loaded rule sets by their files (see cli.load_rule_sets)
    log: logging.Logger
    manifest: Manifest

    @property
    def meta(self) -> Path:
        return meta_dir(self.workspace)


@dataclass
class Outcome:
    """What happened to one repository, for the summary table."""

    name: str
    pin: str
    stage: str = "not started"
    action: str = ""
    files_changed: int | None = None
    unsupported: int | None = None
    files_failed: int | None = None
    seconds: float = 0.0
    error: str | None = None
    report_dir: str | None = None
    notes: list[str] = field(default_factory=list)


def _is_set_up(spec: RepoSpec, record: RepoRecord | None) -> bool:
    """The repository is at the manifest's pin with its current patch series, and finished."""
    return (record is not None and record.in_progress is None and record.source == spec.source.pin
            and record.converted is not None and record.patched is not None
            and record.patched.patches == spec.patches_hash())


def _target_specs(ctx: Context) -> tuple[RepoSpec, ...]:
    """The repositories that are not converted (no rules: mindtorch) and are set up, with their
    patches, in this workspace: the conversion's target (see target_path)."""
    return tuple(spec for spec in ctx.manifest.repos if not spec.rules and (ctx.workspace / spec.name).is_dir()
                 and _is_set_up(spec, ctx.state.repo(spec.name)))


def target_path(ctx: Context) -> list[Path]:
    """The folders whose packages the converted code runs against: the PYTHONPATH entries (in
    set_env.sh order) of the repositories that are not converted (no rules: mindtorch) and are set
    up, with their patches, in this workspace. The conversion checks which retargeted APIs exist
    against them instead of the installed mindtorch, which lacks what the patches add. Repositories
    run in manifest order, so a target listed before the converted repositories is ready in time."""
    ready = _target_specs(ctx)
    return [p for p in envfile.pythonpath_entries(ctx.workspace, dataclasses.replace(ctx.manifest, repos=ready))
            if p.is_dir()]


def target_fingerprint(ctx: Context) -> TargetPrint:
    """The state of the target a conversion runs against (target_path): each target repository's
    name, pin and patch series hash, as the state file already records them. The conversion's
    reports (unsupported_api.csv, summary.json) depend on that state (a new mindtorch patch adds
    APIs), so it is recorded with the converted stage and a different one converts again."""
    return tuple(Target(spec.name, spec.source.pin, spec.patches_hash()) for spec in _target_specs(ctx))


class RepoFacts:
    """What :func:`plan` may ask about the repository at ``path``, each read from git the first
    time it is asked (a finished repository costs one ``git status``)."""

    def __init__(self, path: Path, spec: RepoSpec) -> None:
        self.path = path
        self.spec = spec

    @cached_property
    def exists(self) -> bool:
        return self.path.exists()

    @cached_property
    def is_repo(self) -> bool:
        return is_repo(self.path)

    @cached_property
    def repo(self) -> git.Repo:
        return open_repo(self.path)

    @cached_property
    def head(self) -> str | None:
        return head_commit(self.repo)

    @cached_property
    def branch(self) -> str | None:
        return head_branch(self.repo)

    @cached_property
    def changes(self) -> tuple[str, ...]:
        return tuple(changes(self.repo))

    @cached_property
    def pin_commit(self) -> str | None:
        if self.head is None or self.changes:
            return None
        commit = self.repo.commit(self.head)
        while is_ours(self.repo, commit.hexsha) and len(commit.parents) == 1:
            commit = commit.parents[0]  # our stage commits: reproducible, redone from the pin
        src = self.spec.source
        if isinstance(src, GitSource):
            return commit.hexsha if commit.hexsha.startswith(src.pin) else None
        assert isinstance(src, PypiSource)
        return commit.hexsha if sources.is_pypi_import(self.repo, src, commit.hexsha) else None

    @cached_property
    def ours_parent(self) -> str | None:
        if self.head is None:
            return None
        commit = self.repo.commit(self.head)
        return commit.parents[0].hexsha if commit.parents and is_ours(self.repo, self.head) else None


# Enough for the longest path: move aside, fetch, patch, convert, done.
MAX_STEPS = 8


class RepoRunner:
    """Brings one repository to its goal: asks :func:`plan` for the next step and carries it out
    (git and files), until it is done or refused; one instance per repository per run."""

    def __init__(self, spec: RepoSpec, ctx: Context, status: Status) -> None:
        self.spec = spec
        self.ctx = ctx
        self.status = status
        self.path = ctx.workspace / spec.name
        self.log = ctx.log
        self.outcome = Outcome(spec.name, spec.source.describe())

    # -- bookkeeping -------------------------------------------------------------------------
    def _record(self) -> RepoRecord | None:
        return self.ctx.state.repo(self.spec.name)

    def _save(self, record: RepoRecord | None) -> None:
        self.ctx.state.set_repo(self.spec.name, record)

    def _did(self, action: str) -> None:
        """The table's "this run" column: the first thing the run did to the repository."""
        self.outcome.action = self.outcome.action or action

    def _want(self) -> Want:
        rules = self.ctx.rules.get(self.spec.rules) if self.spec.rules else None
        return Want(path=self.path, backup=self.ctx.meta / "backup", pin=self.spec.source.pin,
                    pin_text=self.spec.source.describe(), patches=self.spec.patches_hash(),
                    rules=rules.hash if rules is not None else None,
                    target=target_fingerprint(self.ctx) if rules is not None else (), force=self.ctx.force)

    # -- the whole repository ----------------------------------------------------------------
    def run(self) -> Outcome:
        started = time.monotonic()
        try:
            self._run()
        finally:
            self.outcome.seconds = time.monotonic() - started
            record = self._record()
            if record is not None:
                self.outcome.stage = record.stage_label
                if record.converted is not None:
                    conv = record.converted
                    self.outcome.files_changed, self.outcome.unsupported = conv.files_changed, conv.unsupported
                    self.outcome.files_failed, self.outcome.report_dir = conv.files_failed, conv.report_dir
                    if conv.files_failed:  # said on every run: the table's "converted" is not the whole story
                        self.outcome.notes.append(
                            f"{conv.files_failed} file(s) could not be converted and are as upstream wrote them; "
                            f"which and why: {conv.report_dir}/summary.json (failures)")
        return self.outcome

    def _run(self) -> None:
        want = self._want()
        for _ in range(MAX_STEPS):
            record = self._record()
            if record is not None and record.source == want.pin and is_repo(self.path):
                # ours: what running its code leaves (__pycache__, ...) is not a change
                write_excludes(open_repo(self.path))
            action = plan(record, want, RepoFacts(self.path, self.spec))
            self.log.debug("%s: %s", self.spec.name, action)
            if isinstance(action, Done):
                if action.note:
                    self.outcome.notes.append(action.note)
                self._did("up to date")
                return
            if isinstance(action, Refuse):
                raise UserChangesError(self.spec.name, action.message)
            self._do(action, record)
        raise RepoError(self.spec.name, f"not done after {MAX_STEPS} steps (the last: {action}); please report this")

    def _do(self, action: Action, record: RepoRecord | None) -> None:
        if isinstance(action, Fetch):
            if record is not None:
                self.log.info("%s: %s is gone: fetching it again", self.spec.name, self.path)
                self._save(None)
            self._fetch_into_place()
        elif isinstance(action, Replace):
            assert record is not None
            self.log.info("%s: the pin changed from %s to %s: replacing our copy", self.spec.name, record.source,
                          self.spec.source.pin)
            self._fetch_into_place(replace=True)
        elif isinstance(action, Adopt):
            self._adopt(action.commit)
        elif isinstance(action, MoveAside):
            self._move_aside(action.why)
        else:
            assert record is not None
            repo = open_repo(self.path)
            if isinstance(action, RollBack):
                self._roll_back(repo, record)
            elif isinstance(action, Patch):
                self._patch(repo, record)
                self._did("updated" if record.converted is not None else "resumed")
            elif isinstance(action, Convert):
                if action.note:
                    self.log.info("%s: %s", self.spec.name, action.note)
                    self.outcome.notes.append(action.note)
                self._convert(repo, record)
                self._did("updated" if record.converted is not None else "resumed")
            else:
                raise AssertionError(f"unknown action {action!r}")

    def _move_aside(self, why: str, forced: bool = True) -> None:
        backup = self.ctx.meta / "backup" / f"{self.spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        n = 1
        while backup.exists():
            n += 1
            backup = backup.with_name(f"{self.spec.name}-{time.strftime('%Y%m%d-%H%M%S')}-{n}")
        backup.parent.mkdir(parents=True, exist_ok=True)
        os.rename(self.path, backup)
        self._save(None)
        note = f"{'--force: ' if forced else ''}moved {self.path} ({why}) to {backup}"
        self.log.warning("%s: %s", self.spec.name, note)
        self.outcome.notes.append(note)

    # -- stage 1: the pin --------------------------------------------------------------------
    def _fetch_into_place(self, replace: bool = False) -> None:
        """Fetch into a temporary sibling, then rename it into place (replacing our own old copy)."""
        scratch = self.ctx.fetch.scratch
        scratch.mkdir(parents=True, exist_ok=True)
        tmp = scratch / f"{self.spec.name}.fetch-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        started = time.monotonic()
        try:
            fetched = sources.fetch(self.spec, tmp, self.ctx.fetch, self.status)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if replace:  # the old copy may hold ignored files (data, checkpoints): kept, not deleted
            self._move_aside("the manifest's pin changed", forced=False)
        os.rename(tmp, self.path)
        self._save(RepoRecord(self.spec.source.pin, fetched.origin, Fetched(fetched.commit, now(), fetched.detail)))
        self._did("set up")
        src = self.spec.source
        if isinstance(src, GitSource) and src.commit_abbrev:
            self.outcome.notes.append(f"the abbreviated pin {src.commit_abbrev} is {fetched.commit} "
                                      f"(write `commit: {fetched.commit}` in the manifest to fetch it without a mirror)")
        self.log.info("%s: fetched %s from %s in %.1fs", self.spec.name, fetched.commit, fetched.origin, time.monotonic() - started)

    def _adopt(self, commit: str) -> None:
        repo = open_repo(self.path)
        if head_commit(repo) != commit or head_branch(repo) != BRANCH:
            reset_to(repo, commit)
        write_excludes(repo)
        self._save(RepoRecord(self.spec.source.pin, str(self.path), Fetched(commit, now(), "found in place at the pin")))
        self._did("adopted")
        self.log.info("%s: %s is already at the pin %s: adopted", self.spec.name, self.path, commit)

    # -- interrupted stages ------------------------------------------------------------------
    def _roll_back(self, repo: git.Repo, record: RepoRecord) -> None:
        """Undo our own stage that a previous run started and did not finish."""
        progress = record.in_progress
        assert progress is not None
        lock = Path(repo.git_dir) / "index.lock"
        if lock.exists():  # a git command of ours was killed; we hold the workspace lock
            lock.unlink()
        kept = keep_dirty_state(repo, f"interrupted-{progress.stage}")
        reset_to(repo, progress.start)
        self._save(dataclasses.replace(record, in_progress=None, converted=None,
                                       patched=None if progress.stage == "patch" else record.patched))
        note = f"rolled back the interrupted {progress.stage} stage to {progress.start[:10]}"
        if kept:
            note += f" (its partial changes are kept as {kept})"
        self.log.info("%s: %s", self.spec.name, note)
        self.outcome.notes.append(note)
        self._did("resumed")

    def _begin(self, record: RepoRecord, stage: Stage, start: str, repo: git.Repo) -> RepoRecord:
        """Record the stage as in progress from ``start`` (before touching anything), then put the
        repository at ``start``; the stage and the ones after it are no longer done."""
        record = dataclasses.replace(record, converted=None, patched=record.patched if stage == "convert" else None,
                                     in_progress=InProgress(stage, start, now(), os.getpid()))
        self._save(record)
        if head_commit(repo) != start or head_branch(repo) != BRANCH:
            reset_to(repo, start)
        return record

    def _abandon(self, repo: git.Repo, record: RepoRecord) -> None:
        """A stage failed (not interrupted): back to where it started, recorded as not done."""
        assert record.in_progress is not None
        reset_to(repo, record.in_progress.start)
        self._save(dataclasses.replace(record, in_progress=None))

    # -- stage 2: patches --------------------------------------------------------------------
    def _patch(self, repo: git.Repo, record: RepoRecord) -> None:
        start = record.fetched.commit
        record = self._begin(record, "patch", start, repo)
        patches = self.spec.patches
        commit = start
        if patches:
            self.status(f"apply {len(patches)} patch(es)")
            try:
                apply_series(repo, patches, self.spec.name)
            except Exception:  # on Ctrl-C the record keeps "in progress": the next run rolls back
                self._abandon(repo, record)
                raise
            listing = "\n".join(f"  {p.name}" for p in patches)
            commit = commit_tracked(repo, f"ms-workspace: patches applied ({len(patches)})\n\n{listing}") or start
        self._save(dataclasses.replace(record, in_progress=None,
                                       patched=Patched(commit, self.spec.patches_hash(), len(patches), now())))
        self.log.info("%s: patched stage at %s (%d patches)", self.spec.name, commit, len(patches))

    # -- stage 3: conversion -----------------------------------------------------------------
    def _convert(self, repo: git.Repo, record: RepoRecord) -> None:
        assert record.patched is not None
        start = record.patched.commit
        record = self._begin(record, "convert", start, repo)
        rules = self.ctx.rules.get(self.spec.rules) if self.spec.rules else None
        if rules is None:
            self._save(dataclasses.replace(record, in_progress=None, converted=Converted(start, None, now())))
            return
        from tools.convert.api import convert_tree  # the engine; loaded only when there is work

        report_dir = self.ctx.meta / "reports" / self.spec.name
        report_dir.mkdir(parents=True, exist_ok=True)
        self.status(f"convert (rules {rules.hash})")
        targets, fingerprint = target_path(self.ctx), target_fingerprint(self.ctx)
        self.log.info("%s: target path %s", self.spec.name, [str(p) for p in targets] or "none (the installed packages)")
        try:
            result = convert_tree(self.path, rules, jobs=self.ctx.jobs, report_dir=report_dir,
                                  cache_dir=self.ctx.meta / "cache" / self.spec.name, progress=False,
                                  target_path=targets)
        except Exception as exc:  # on Ctrl-C the record keeps "in progress": the next run rolls back
            self._abandon(repo, record)
            raise RepoError(self.spec.name, f"conversion failed: {type(exc).__name__}: {exc}") from exc
        summary = dict(result.summary)
        files_changed = int(summary.get("files_changed", 0))
        unsupported = int(summary.get("unsupported_api_uses", 0))
        failed = int(summary.get("files_failed", 0))
        message = (f"ms-workspace: converted (rules {rules.hash})\n\n"
                   f"files changed: {files_changed}\nunsupported API uses: {unsupported}\n"
                   f"files that failed to parse: {failed}\nreports: {result.report_dir}")
        commit = commit_tracked(repo, message) or start
        self._save(dataclasses.replace(record, in_progress=None, converted=Converted(
            commit, rules.hash, now(), files_changed, unsupported, failed, str(result.report_dir), fingerprint)))
        self.log.info("%s: converted at %s: %s", self.spec.name, commit, summary)
