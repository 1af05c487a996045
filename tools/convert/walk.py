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
    kind: str          # py | other | symlink | symlink-dir | special | unreadable-dir | stale-tmp
    size: int = 0
    reason: str = ""   # special: what it is; unreadable-dir: why it could not be listed


def walk_tree(root: Path, excludes: tuple[str, ...] = ()) -> list[Entry]:
    """All entries below ``root`` in sorted order (so every ``-j`` sees the same order)."""
    out: list[Entry] = []

    def unreadable(exc: OSError) -> None:
        rel = os.path.relpath(exc.filename, root).replace(os.sep, "/") if exc.filename else "."
        out.append(Entry(rel, "unreadable-dir", reason=f"cannot read directory: {exc.strerror}"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable, followlinks=False):
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
            if f.endswith(TMP_SUFFIX):
                out.append(Entry(rel, "stale-tmp"))
                continue
            if _excluded(rel, excludes):
                continue
            try:
                st = os.lstat(os.path.join(dirpath, f))
            except FileNotFoundError:
                continue          # removed since the folder was listed
            except OSError as exc:
                out.append(Entry(rel, "special", reason=f"cannot stat: {exc.strerror}"))
                continue
            if stat.S_ISLNK(st.st_mode):
                out.append(Entry(rel, "symlink"))
            elif not stat.S_ISREG(st.st_mode):
                out.append(Entry(rel, "special", reason=file_kind(st.st_mode)))
            else:
                out.append(Entry(rel, "py" if f.endswith(".py") else "other", st.st_size))
    out.sort(key=lambda e: e.relpath)
    return out


_KINDS = {stat.S_IFIFO: "named pipe", stat.S_IFSOCK: "socket", stat.S_IFCHR: "character device",
          stat.S_IFBLK: "block device", stat.S_IFDIR: "directory", stat.S_IFLNK: "symlink"}


def file_kind(mode: int) -> str:
    """What a non-regular file is (``'named pipe'``, ``'socket'``, ...), for the reports."""
    return _KINDS.get(stat.S_IFMT(mode), "special file")


def _excluded(rel: str, excludes: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(rel, pat) or fnmatch.fnmatchcase(rel + "/", pat) for pat in excludes)
