"""The workspace's state file and lock: what is done, and what a run was doing when it stopped.

``<ws>/.ms-workspace/state.json`` records, per repository, the commit of each finished stage and,
*before* a stage starts, that it is in progress. A run killed in the middle therefore leaves a
record that tells the next run "this dirty tree is ours, roll it back", which is how our own
interrupted work is told apart from a user's edits. The file is replaced atomically (the engine's
``fsio.atomic_write``: temp file, fsync, ``os.replace``), so it is always either the old or the new
version, never half written.

One run at a time holds ``<ws>/.ms-workspace/lock`` (``flock``); the kernel releases it when the
process dies, even by SIGKILL, so a crashed run never blocks the next.
"""
from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

from tools.convert.fsio import atomic_write
from tools.workspace.errors import WorkspaceError
from tools.workspace.record import RecordError, RepoRecord

STATE_VERSION = 1


def meta_dir(workspace: Path) -> Path:
    """``<ws>/.ms-workspace``: state, lock, logs, reports, downloads, temporary clones."""
    return workspace / ".ms-workspace"


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class State:
    """The parsed state file: the manifest that made the workspace and a record per repository.
    Every change is written at once (:meth:`set_repo` saves; it is cheap and atomic)."""

    def __init__(self, path: Path, manifest: str | None = None, repos: dict[str, RepoRecord] | None = None) -> None:
        self.path = path
        self.manifest = manifest
        self.repos: dict[str, RepoRecord] = dict(repos or {})

    @classmethod
    def load(cls, workspace: Path) -> "State":
        path = meta_dir(workspace) / "state.json"
        if not path.exists():
            return cls(path)
        afresh = "move it away to start the bookkeeping afresh (the repositories are kept and checked again)"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise WorkspaceError(f"{path}: the workspace state file is unreadable ({exc}); {afresh}") from None
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            version = data.get("version") if isinstance(data, dict) else None
            raise WorkspaceError(f"{path}: state version {version!r} is not {STATE_VERSION}; this tool is older or newer than the workspace")
        manifest, entries = data.get("manifest"), data.get("repos", {})
        if not isinstance(entries, dict) or not (manifest is None or isinstance(manifest, str)):
            raise WorkspaceError(f"{path}: the workspace state file has no valid 'manifest' and 'repos'; {afresh}")
        repos = {}
        for name, entry in entries.items():
            try:
                repos[name] = RepoRecord.from_json(entry)
            except RecordError as exc:
                raise WorkspaceError(f"{path}: repos.{name}: {exc}; {afresh}") from None
        return cls(path, manifest, repos)

    def repo(self, name: str) -> RepoRecord | None:
        return self.repos.get(name)

    def set_repo(self, name: str, record: RepoRecord | None) -> None:
        if record is None:
            self.repos.pop(name, None)
        else:
            self.repos[name] = record
        self.save()

    def save(self) -> None:
        data = {"version": STATE_VERSION, "manifest": self.manifest,
                "repos": {name: record.to_json() for name, record in self.repos.items()}}
        atomic_write(self.path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8"))


class WorkspaceLock:
    """An exclusive, non-blocking lock on the workspace for the duration of a run."""

    def __init__(self, workspace: Path) -> None:
        self.path = meta_dir(workspace) / "lock"
        self._fh: Any = None

    def __enter__(self) -> "WorkspaceLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise WorkspaceError(
                f"another run is working in {self.path.parent.parent} (pid {holder}); wait for it to finish"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
