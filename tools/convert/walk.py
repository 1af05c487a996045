"""Find the files of a tree: never following symlinks out of it, never looping."""
from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path

SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__", ".ms-convert-cache", ".ms-workspace"}
TMP_SUFFIX = ".ms-convert.tmp"


@dataclass
class Entry:
    relpath: str
    kind: str          # py | other | symlink | symlink-dir | stale-tmp
    size: int = 0


def walk_tree(root: Path, excludes: tuple[str, ...] = ()) -> list[Entry]:
    """All entries below ``root`` in sorted order (so every ``-j`` sees the same order)."""
    out: list[Entry] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        keep = []
        for d in sorted(dirnames):
            rel = rel_dir + d
            if d in SKIP_DIRS or _excluded(rel, excludes):
                continue
            if os.path.islink(os.path.join(dirpath, d)):
                out.append(Entry(rel, "symlink-dir"))
                continue
            keep.append(d)
        dirnames[:] = keep
        for f in sorted(filenames):
            rel = rel_dir + f
            full = os.path.join(dirpath, f)
            if f.endswith(TMP_SUFFIX):
                out.append(Entry(rel, "stale-tmp"))
            elif _excluded(rel, excludes):
                continue
            elif os.path.islink(full):
                out.append(Entry(rel, "symlink"))
            elif f.endswith(".py"):
                out.append(Entry(rel, "py", os.lstat(full).st_size))
            else:
                out.append(Entry(rel, "other", os.lstat(full).st_size))
    out.sort(key=lambda e: e.relpath)
    return out


def _excluded(rel: str, excludes: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(rel, pat) or fnmatch.fnmatchcase(rel + "/", pat) for pat in excludes)
