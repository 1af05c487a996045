"""Find the files of a tree: never following symlinks out of it, never looping, never losing a
folder silently (one that cannot be listed is an entry of its own, with the reason)."""
from __future__ import annotations

import fnmatch
import os
import stat
from dataclasses import dataclass
from pathlib import Path

STATE_DIR = ".ms-convert"   # the engine's own cache and reports: never converted, never copied
SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__", STATE_DIR, ".ms-workspace"}
TMP_SUFFIX = ".ms-convert.tmp"


@dataclass
class Entry:
    relpath: str
    kind: str          # py | other | symlink | symlink-dir | special | unreadable-dir | stale-tmp (dir: internal)
    size: int = 0
    reason: str = ""   # special: what it is; unreadable-dir: why it could not be listed


def walk_tree(root: Path, excludes: tuple[str, ...] = ()) -> list[Entry]:
    """All entries below ``root`` in sorted order (so every ``-j`` sees the same order).

    Iterative (an explicit stack, not recursion like ``os.walk`` here), so a hostile tree nested a
    thousand folders deep is walked like any other."""
    out: list[Entry] = []
    pending = [""]                       # folders to list, relative to root ("" or "a/b/")
    while pending:
        rel_dir = pending.pop()
        try:
            with os.scandir(os.path.join(root, rel_dir)) as it:
                listing = list(it)
        except OSError as exc:
            out.append(Entry(rel_dir.rstrip("/") or ".", "unreadable-dir",
                             reason=f"cannot read directory: {exc.strerror}"))
            continue
        for de in listing:
            entry = _classify(de, rel_dir + de.name, excludes)
            if entry is None:
                continue
            if entry.kind == "dir":
                pending.append(entry.relpath + "/")
            else:
                out.append(entry)
    out.sort(key=lambda e: e.relpath)
    return out


def _classify(de: os.DirEntry, rel: str, excludes: tuple[str, ...]) -> Entry | None:
    """What one directory entry is (``dir``: a folder to walk); None: not part of the tree."""
    try:
        st = de.stat(follow_symlinks=False)
    except FileNotFoundError:
        return None                      # removed since the folder was listed
    except OSError as exc:
        return Entry(rel, "special", reason=f"cannot stat: {exc.strerror}")
    is_dir = stat.S_ISDIR(st.st_mode) or (stat.S_ISLNK(st.st_mode) and _points_to_dir(de))
    if is_dir:
        if de.name in SKIP_DIRS or _excluded(rel, excludes):
            return None
        return Entry(rel, "symlink-dir" if stat.S_ISLNK(st.st_mode) else "dir")
    if de.name.endswith(TMP_SUFFIX):
        return Entry(rel, "stale-tmp")
    if _excluded(rel, excludes):
        return None
    if stat.S_ISLNK(st.st_mode):
        return Entry(rel, "symlink")
    if not stat.S_ISREG(st.st_mode):
        return Entry(rel, "special", reason=file_kind(st.st_mode))
    return Entry(rel, "py" if de.name.endswith(".py") else "other", st.st_size)


def _points_to_dir(de: os.DirEntry) -> bool:
    try:
        return de.is_dir(follow_symlinks=True)
    except OSError:
        return False


_KINDS = {stat.S_IFIFO: "named pipe", stat.S_IFSOCK: "socket", stat.S_IFCHR: "character device",
          stat.S_IFBLK: "block device", stat.S_IFDIR: "directory", stat.S_IFLNK: "symlink"}


def file_kind(mode: int) -> str:
    """What a non-regular file is (``'named pipe'``, ``'socket'``, ...), for the reports."""
    return _KINDS.get(stat.S_IFMT(mode), "special file")


def _excluded(rel: str, excludes: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(rel, pat) or fnmatch.fnmatchcase(rel + "/", pat) for pat in excludes)
