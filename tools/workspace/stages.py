"""Bring one repository through its stages: pinned -> patched -> converted, each a git commit.

The stages live on branch ``ms-workspace`` of the repository: the pin itself, then "patches
applied", then "converted (rules <hash>)" (a stage with nothing to change makes no commit). The
state file records each finished stage's commit and, before a stage starts, that it is in
progress. From that:

* a finished repository whose pin, patch series and rules (and, when it is converted, the
  state of its target: see target_fingerprint) are unchanged is skipped;
* a stage recorded as in progress was interrupted: its tracked changes are saved under
  ``refs/ms-workspace/interrupted-*`` and the repository is reset to the stage before;
* a changed patch series or rule set is redone from the stage before it (never converting
  converted code a second time);
* anything else in the repository (modified or untracked files, commits, another HEAD) is the
  user's: the run refuses to touch it, unless ``--force``, which moves the repository to
  ``.ms-workspace/backup/`` (nothing is deleted) and sets it up again.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import git

from tools.workspace import envfile, sources
from tools.workspace.errors import RepoError, UserChangesError
from tools.workspace.gitutil import (
    BRANCH, changes, head_branch, head_commit, is_ours, is_repo, keep_dirty_state, open_repo, reset_to, commit_tracked,
    write_excludes,
)
from tools.workspace.manifest import GitSource, Manifest, PypiSource, RepoSpec
from tools.workspace.patches import apply_series
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


def _describe_changes(lines: list[str]) -> str:
    modified = [line[3:] for line in lines if not line.startswith("??")]
    untracked = [line[3:] for line in lines if line.startswith("??")]
    parts = []
    if modified:
        parts.append(f"{len(modified)} changed file(s) ({', '.join(modified[:3])}{', ...' if len(modified) > 3 else ''})")
    if untracked:
        parts.append(f"{len(untracked)} untracked path(s) ({', '.join(untracked[:3])}{', ...' if len(untracked) > 3 else ''})")
    return " and ".join(parts)


def _user_changes(repo: git.Repo, expected: str) -> str | None:
    """Why the repository is not exactly our last stage, or None when it is."""
    head = head_commit(repo)
    reasons = []
    if head != expected:
        branch = head_branch(repo)
        where = f"branch {branch}" if branch else "a detached HEAD"
        reasons.append(f"HEAD is {head[:10] if head else 'unborn'} on {where}, the workspace left it at {expected[:10]} on {BRANCH}")
    lines = changes(repo)
    if lines:
        reasons.append(_describe_changes(lines))
    return "; ".join(reasons) or None


def _pin_text(spec: RepoSpec) -> str:
    return spec.source.describe()


def _last_stage(record: dict[str, Any]) -> str:
    stages = record["stages"]
    for name in ("converted", "patched", "fetched"):
        if name in stages:
            return stages[name]["commit"]
    raise AssertionError("a repository record always has its fetched stage")


def stage_label(record: dict[str, Any]) -> str:
    """The last finished stage, as the summary table shows it."""
    stages = record["stages"]
    converted, patched = stages.get("converted"), stages.get("patched")
    if converted and converted.get("rules"):
        return "converted"
    if patched and patched["commit"] != stages["fetched"]["commit"]:
        return "patched"
    return "pinned"


def _is_set_up(spec: RepoSpec, record: dict[str, Any] | None) -> bool:
    """The repository is at the manifest's pin with its current patch series, and finished."""
    if record is None or record.get("in_progress") or record.get("source") != spec.source.pin:
        return False
    stages = record["stages"]
    return "converted" in stages and stages.get("patched", {}).get("patches") == spec.patches_hash()


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


TargetPrint = list[dict[str, str]]


def target_fingerprint(ctx: Context) -> TargetPrint:
    """The state of the target a conversion runs against (target_path): each target repository's
    name, pin and patch series hash, as the state file already records them. The conversion's
    reports (unsupported_api.csv, summary.json) depend on that state (a new mindtorch patch adds
    APIs), so it is recorded with the converted stage and a different one converts again."""
    return [{"name": spec.name, "source": spec.source.pin, "patches": spec.patches_hash()}
            for spec in _target_specs(ctx)]


def _target_change(old: TargetPrint | None, new: TargetPrint) -> str | None:
    """Why the target differs from the one the last conversion used, or None when it does not."""
    if old == new:
        return None
    if old is None:
        return "the last conversion did not record its target"
    before, after = {t["name"]: t for t in old}, {t["name"]: t for t in new}
    parts = [f"target {name} is now set up" for name in after if name not in before]
    parts += [f"target {name} changed ({'pin' if before[name]['source'] != t['source'] else 'patches'})"
              for name, t in after.items() if name in before and before[name] != t]
    parts += [f"target {name} is no longer set up" for name in before if name not in after]
    return ", ".join(parts) or "the target's order changed"


class RepoRunner:
    """Runs the stages of one repository; one instance per repository per run."""

    def __init__(self, spec: RepoSpec, ctx: Context, status: Status) -> None:
        self.spec = spec
        self.ctx = ctx
        self.status = status
        self.path = ctx.workspace / spec.name
        self.log = ctx.log
        self.outcome = Outcome(spec.name, _pin_text(spec))

    # -- bookkeeping -------------------------------------------------------------------------
    def _record(self) -> dict[str, Any] | None:
        return self.ctx.state.repo(self.spec.name)

    def _save(self, record: dict[str, Any] | None) -> None:
        self.ctx.state.set_repo(self.spec.name, record)

    def _refuse(self, why: str, what: str = "was changed by hand") -> UserChangesError:
        return UserChangesError(
            self.spec.name,
            f"{self.path} {what} ({why}); nothing was written to it. Undo the changes "
            f"(git -C {self.path} status), or pass --force to move it to {self.ctx.meta / 'backup'}/ and set it up afresh",
        )

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
    def _fetch_into_place(self, replace: bool = False) -> dict[str, Any]:
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
        else:
            os.rename(tmp, self.path)
        record = {
            "source": self.spec.source.pin,
            "origin": fetched.origin,
            "stages": {"fetched": {"commit": fetched.commit, "at": now(), "detail": fetched.detail}},
        }
        self._save(record)
        self.outcome.action = "set up"
        src = self.spec.source
        if isinstance(src, GitSource) and src.commit_abbrev:
            self.outcome.notes.append(f"the abbreviated pin {src.commit_abbrev} is {fetched.commit} "
                                      f"(write `commit: {fetched.commit}` in the manifest to fetch it without a mirror)")
        self.log.info("%s: fetched %s from %s in %.1fs", self.spec.name, fetched.commit, fetched.origin, time.monotonic() - started)
        return record

    def _matches_pin(self, repo: git.Repo) -> str | None:
        """The pin's commit when the repository is the manifest's pin, possibly with stage commits
        of this driver on top (a workspace whose state file was lost), and nothing else; else None."""
        head = head_commit(repo)
        if head is None or changes(repo):
            return None
        commit = repo.commit(head)
        while is_ours(repo, commit.hexsha) and len(commit.parents) == 1:
            commit = commit.parents[0]  # our stage commits: reproducible, redone from the pin
        src = self.spec.source
        if isinstance(src, GitSource):
            return commit.hexsha if commit.hexsha.startswith(src.pin) else None
        assert isinstance(src, PypiSource)
        return commit.hexsha if sources.is_pypi_import(repo, src, commit.hexsha) else None

    def _existing(self, record: dict[str, Any] | None) -> dict[str, Any]:
        """The path exists but the state has no record for it, or records another pin."""
        if not is_repo(self.path):
            why = "it is not a git repository"
            if not self.ctx.force:
                raise UserChangesError(
                    self.spec.name,
                    f"{self.path} exists and is not a git repository made by this workspace; nothing was written to it. "
                    f"Move it away, or pass --force to move it to {self.ctx.meta / 'backup'}/",
                )
            self._move_aside(why)
            return self._fetch_into_place()
        repo = open_repo(self.path)
        adopt = self._matches_pin(repo)
        if adopt:
            if head_commit(repo) != adopt or head_branch(repo) != BRANCH:
                reset_to(repo, adopt)
            write_excludes(repo)
            record = {
                "source": self.spec.source.pin,
                "origin": str(self.path),
                "stages": {"fetched": {"commit": adopt, "at": now(), "detail": "found in place at the pin"}},
            }
            self._save(record)
            self.outcome.action = "adopted"
            self.log.info("%s: %s is already at the pin %s: adopted", self.spec.name, self.path, adopt)
            return record
        if record is not None:
            # Ours, at another pin (the manifest changed). Replace it only if it is exactly ours.
            why = _user_changes(repo, _last_stage(record))
            if why is None:
                self.log.info("%s: the pin changed from %s to %s: replacing our copy", self.spec.name, record["source"], self.spec.source.pin)
                return self._fetch_into_place(replace=True)
            why = f"the manifest's pin changed to {_pin_text(self.spec)} and {why}"
        else:
            head = head_commit(repo)
            why = f"HEAD {head[:10] if head else 'unborn'}, pin {_pin_text(self.spec)}"
            lines = changes(repo)
            if lines:
                why += f", {_describe_changes(lines)}"
            if not self.ctx.force:
                raise self._refuse(why, "is in the way: it was not made by this workspace")
        if not self.ctx.force:
            raise self._refuse(why)
        self._move_aside(why)
        return self._fetch_into_place()

    # -- interrupted stages ------------------------------------------------------------------
    def _roll_back(self, repo: git.Repo, record: dict[str, Any]) -> None:
        """Undo our own stage that a previous run started and did not finish."""
        progress = record["in_progress"]
        start = progress["from"]
        lock = Path(repo.git_dir) / "index.lock"
        if lock.exists():  # a git command of ours was killed; we hold the workspace lock
            lock.unlink()
        head = head_commit(repo)
        ours_child = False
        if head and head != start:
            commit = repo.commit(head)
            ours_child = bool(commit.parents) and commit.parents[0].hexsha == start and is_ours(repo, head)
        if head != start and not ours_child:
            why = f"a {progress['stage']} stage was interrupted and HEAD has since moved to {head[:10] if head else 'unborn'}"
            if not self.ctx.force:
                raise self._refuse(why)
            self._move_aside(why)
            raise _Restart()
        kept = keep_dirty_state(repo, f"interrupted-{progress['stage']}")
        reset_to(repo, start)
        stages = record["stages"]
        if progress["stage"] == "patch":
            stages.pop("patched", None)
        stages.pop("converted", None)
        record.pop("in_progress")
        self._save(record)
        note = f"rolled back the interrupted {progress['stage']} stage to {start[:10]}"
        if kept:
            note += f" (its partial changes are kept as {kept})"
        self.log.info("%s: %s", self.spec.name, note)
        self.outcome.notes.append(note)
        self.outcome.action = self.outcome.action or "resumed"

    def _begin(self, record: dict[str, Any], stage: str, start: str) -> None:
        record["in_progress"] = {"stage": stage, "from": start, "at": now(), "pid": os.getpid()}
        self._save(record)

    # -- stage 2: patches --------------------------------------------------------------------
    def _patch(self, repo: git.Repo, record: dict[str, Any], patches_hash: str) -> None:
        start = record["stages"]["fetched"]["commit"]
        self._begin(record, "patch", start)
        if head_commit(repo) != start or head_branch(repo) != BRANCH:
            reset_to(repo, start)
        record["stages"].pop("patched", None)
        record["stages"].pop("converted", None)
        commit = start
        if self.spec.patches:
            self.status(f"apply {len(self.spec.patches)} patch(es)")
            try:
                apply_series(repo, self.spec.patches, self.spec.name)
            except Exception:  # on Ctrl-C the record keeps "in progress": the next run rolls back
                reset_to(repo, start)
                record.pop("in_progress", None)
                self._save(record)
                raise
            listing = "\n".join(f"  {p.name}" for p in self.spec.patches)
            commit = commit_tracked(repo, f"ms-workspace: patches applied ({len(self.spec.patches)})\n\n{listing}") or start
        record["stages"]["patched"] = {"commit": commit, "patches": patches_hash, "count": len(self.spec.patches), "at": now()}
        record.pop("in_progress")
        self._save(record)
        self.log.info("%s: patched stage at %s (%d patches)", self.spec.name, commit, len(self.spec.patches))

    # -- stage 3: conversion -----------------------------------------------------------------
    def _convert(self, repo: git.Repo, record: dict[str, Any], rules: Any) -> None:
        start = record["stages"]["patched"]["commit"]
        self._begin(record, "convert", start)
        if head_commit(repo) != start or head_branch(repo) != BRANCH:
            reset_to(repo, start)
        record["stages"].pop("converted", None)
        entry: dict[str, Any] = {"commit": start, "rules": None, "at": now()}
        if rules is not None:
            from tools.convert.api import convert_tree  # the engine; loaded only when there is work

            report_dir = self.ctx.meta / "reports" / self.spec.name
            report_dir.mkdir(parents=True, exist_ok=True)
            self.status(f"convert (rules {rules.hash})")
            targets, fingerprint = target_path(self.ctx), target_fingerprint(self.ctx)
            self.log.info("%s: target path %s", self.spec.name,
                          [str(p) for p in targets] or "none (the installed packages)")
            try:
                result = convert_tree(self.path, rules, jobs=self.ctx.jobs, report_dir=report_dir,
                                      cache_dir=self.ctx.meta / "cache" / self.spec.name, progress=False,
                                      target_path=targets)
            except Exception as exc:  # on Ctrl-C the record keeps "in progress": the next run rolls back
                reset_to(repo, start)
                record.pop("in_progress", None)
                self._save(record)
                raise RepoError(self.spec.name, f"conversion failed: {type(exc).__name__}: {exc}") from exc
            summary = dict(result.summary)
            files_changed = int(summary.get("files_changed", 0))
            unsupported = int(summary.get("unsupported_api_uses", 0))
            failed = int(summary.get("files_failed", 0))
            message = (f"ms-workspace: converted (rules {rules.hash})\n\n"
                       f"files changed: {files_changed}\nunsupported API uses: {unsupported}\n"
                       f"files that failed to parse: {failed}\nreports: {result.report_dir}")
            commit = commit_tracked(repo, message) or start
            entry = {"commit": commit, "rules": rules.hash, "files_changed": files_changed, "unsupported": unsupported,
                     "files_failed": failed, "report_dir": str(result.report_dir), "targets": fingerprint,
                     "at": now()}
            self.log.info("%s: converted at %s: %s", self.spec.name, commit, summary)
        record["stages"]["converted"] = entry
        record.pop("in_progress")
        self._save(record)

    # -- the whole repository ----------------------------------------------------------------
    def run(self) -> Outcome:
        started = time.monotonic()
        try:
            for _ in range(3):
                try:
                    self._run()
                    break
                except _Restart:
                    continue
        finally:
            self.outcome.seconds = time.monotonic() - started
            record = self._record()
            if record is not None:
                self.outcome.stage = stage_label(record)
                conv = record["stages"].get("converted") or {}
                self.outcome.files_changed = conv.get("files_changed")
                self.outcome.unsupported = conv.get("unsupported")
                self.outcome.files_failed = conv.get("files_failed")
                self.outcome.report_dir = conv.get("report_dir")
        return self.outcome

    def _run(self) -> None:
        spec = self.spec
        rules = self.ctx.rules.get(spec.rules) if spec.rules else None
        want_rules = rules.hash if rules is not None else None
        want_patches = spec.patches_hash()
        record = self._record()
        if record is not None and not self.path.exists():
            self.log.info("%s: %s is gone: fetching it again", spec.name, self.path)
            self._save(None)
            record = None
        if not self.path.exists():
            record = self._fetch_into_place()
        elif record is None or record.get("source") != spec.source.pin:
            record = self._existing(record)
        repo = open_repo(self.path)
        write_excludes(repo)
        if record.get("in_progress"):
            self._roll_back(repo, record)
        stages = record["stages"]
        need_patch = stages.get("patched", {}).get("patches") != want_patches
        converted = stages.get("converted")
        # A record without "targets" (made before they were recorded) converts once more: it may have
        # been checked against the installed mindtorch, and nothing in it says otherwise.
        target_change = (_target_change(converted.get("targets"), target_fingerprint(self.ctx))
                         if rules is not None and converted is not None and converted.get("rules") == want_rules
                         else None)
        need_convert = need_patch or converted is None or converted.get("rules") != want_rules or target_change is not None
        last = _last_stage(record)
        if not need_patch and not need_convert:
            why = _user_changes(repo, last)
            if why:
                self.outcome.notes.append(f"changed by hand since the run that set it up, kept as it is: {why}")
            self.outcome.action = self.outcome.action or "up to date"
            return
        why = _user_changes(repo, last)
        if why:
            if not self.ctx.force:
                raise self._refuse(why)
            self._move_aside(why)
            raise _Restart()
        was_complete = "converted" in stages
        if target_change and not need_patch:
            self.log.info("%s: converting again: %s", spec.name, target_change)
            self.outcome.notes.append(f"converted again: {target_change}")
        if need_patch:
            self._patch(repo, record, want_patches)
        self._convert(repo, record, rules)
        self.outcome.action = self.outcome.action or ("updated" if was_complete else "resumed")


class _Restart(Exception):
    """The repository was moved aside (``--force``): start again from fetching it."""
