"""The incremental cache: results keyed by (path in the tree, file content), per rule set.

The path is part of the key because the result depends on it: scoped rules and transforms aim
at paths (``*megatron/core/utils.py``), so the same bytes at another path convert differently.
One JSON file per rule-set hash (the hash already covers the engine version) in the cache
folder, which carries its own ``.gitignore`` so it never lands in a repository.

Next to it, a journal (one JSON line per file, appended *before* the file is written) records
what an unfinished run wrote. A run killed or interrupted part-way leaves it behind; the next run
finds each such file already converted and reports the conversion that produced it, so the reports
of a resumed run describe the whole conversion, not only its last part. A finished run removes it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import IO

from .model import FileResult, Status
from .fsio import atomic_write

_FORMAT = "k2"   # key = path + content; files of another format are simply not read


def _key(relpath: str, digest: str) -> str:
    return f"{digest}\0{relpath}"   # NUL never occurs in a path


class Cache:
    def __init__(self, folder: Path | None, rules_hash: str) -> None:
        self.folder = folder
        self.path = folder / f"rules-{rules_hash}-{_FORMAT}.json" if folder else None
        self.journal_path = folder / f"journal-{rules_hash}-{_FORMAT}.jsonl" if folder else None
        self.entries: dict[str, dict] = {}
        self.used: dict[str, dict] = {}
        self._written: dict[str, dict] = {}   # path -> the changed result an unfinished run wrote there
        self._journal: IO[str] | None = None
        if self.path is None:
            return
        try:
            self.entries = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.entries = {}  # missing or damaged: only a slower run
        self._read_journal()

    def _read_journal(self) -> None:
        assert self.journal_path is not None
        try:
            lines = self.journal_path.read_text().splitlines()
        except (OSError, UnicodeDecodeError):
            return
        for line in lines:
            try:
                entry = json.loads(line)
                result, fixed = entry["result"], entry["fixed_point"]
                self.entries[_key(result["path"], result["sha"])] = result
                if fixed is not None:
                    self.entries[_key(fixed["path"], fixed["sha"])] = fixed
                self._written[result["path"]] = result
            except (ValueError, KeyError, TypeError):
                continue  # the last line of a killed run may be cut short

    def get(self, relpath: str, digest: str) -> FileResult | None:
        entry = self.entries.get(_key(relpath, digest))
        return FileResult.from_json(entry) if entry is not None else None

    def written(self, relpath: str, digest: str) -> FileResult | None:
        """The conversion an unfinished earlier run wrote at ``relpath``, if the file still holds
        its output (``digest``)."""
        entry = self._written.get(relpath)
        if entry is None or entry["new_sha"] != digest:
            return None
        self.keep(relpath, entry["sha"])
        self.keep(relpath, digest)
        return FileResult.from_json(entry)

    def put(self, result: FileResult) -> None:
        if self.path is None or result.status == Status.FAILED and result.reason.startswith("internal error"):
            return
        self.used[_key(result.path, result.sha)] = result.to_json()

    def keep(self, relpath: str, digest: str) -> None:
        key = _key(relpath, digest)
        if key in self.entries:
            self.used[key] = self.entries[key]

    def record_write(self, result: FileResult, fixed_point: dict | None) -> None:
        """Append ``result`` (a changed file, about to be written) to the journal. Raises OSError
        once: then the journal is given up for this run (it only makes resumed reports complete)."""
        if self.journal_path is None:
            return
        try:
            if self._journal is None:
                self._ensure_folder()
                self._journal = self.journal_path.open("a", encoding="utf-8")
            self._journal.write(json.dumps({"result": result.to_json(), "fixed_point": fixed_point}) + "\n")
            self._journal.flush()   # in the kernel's hands: survives a SIGKILL of this process
        except OSError:
            self.journal_path = None
            raise

    def save(self, finished: bool) -> None:
        """Keep only what this run saw, so the cache does not grow without bound. ``finished``: the
        run went through every file, so its reports are complete and the journal is done with.
        Raises OSError (the caller warns: a cache is only ever an optimisation)."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        if self.path is None or self.folder is None:
            return
        self._ensure_folder()
        for old in [*self.folder.glob("rules-*.json"), *self.folder.glob("journal-*.jsonl")]:
            if old not in (self.path, self.journal_path):
                old.unlink(missing_ok=True)
        atomic_write(self.path, json.dumps(self.used, sort_keys=True).encode())
        if finished and self.journal_path is not None:
            self.journal_path.unlink(missing_ok=True)

    def _ensure_folder(self) -> None:
        assert self.folder is not None
        self.folder.mkdir(parents=True, exist_ok=True)
        ignore = self.folder / ".gitignore"
        if not ignore.exists():
            atomic_write(ignore, b"# created by tools.convert: the conversion cache is never committed\n*\n")
