"""The incremental cache: results keyed by (file content, rule set hash, engine version).

One JSON file per rule-set hash (the hash already covers the engine version) in the cache
folder, which carries its own ``.gitignore`` so it never lands in a repository.
"""
from __future__ import annotations

import json
from pathlib import Path

from .fileconv import FileResult
from .fsio import atomic_write


class Cache:
    def __init__(self, folder: Path | None, rules_hash: str) -> None:
        self.folder = folder
        self.path = folder / f"rules-{rules_hash}.json" if folder else None
        self.entries: dict[str, dict] = {}
        self.used: dict[str, dict] = {}
        if self.path and self.path.exists():
            try:
                self.entries = json.loads(self.path.read_text())
            except (OSError, ValueError):
                self.entries = {}  # a damaged cache is only a slower run

    def get(self, digest: str, relpath: str) -> FileResult | None:
        entry = self.entries.get(digest)
        if entry is None:
            return None
        entry = dict(entry, path=relpath)
        return FileResult.from_json(entry)

    def put(self, result: FileResult) -> None:
        if self.path is None or result.status == "failed" and result.reason.startswith("internal error"):
            return
        self.used[result.sha] = result.to_json()

    def keep(self, digest: str) -> None:
        if digest in self.entries:
            self.used[digest] = self.entries[digest]

    def save(self) -> None:
        """Keep only what this run saw, so the cache does not grow without bound."""
        if self.path is None or self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        ignore = self.folder / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# created by tools.convert: the conversion cache is never committed\n*\n")
        for old in self.folder.glob("rules-*.json"):
            if old != self.path:
                old.unlink(missing_ok=True)
        atomic_write(self.path, json.dumps(self.used, sort_keys=True).encode())
