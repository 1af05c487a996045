"""Atomic file writes: a run interrupted at any point leaves every file either old or new."""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from .walk import TMP_SUFFIX


def atomic_write(path: Path, data: bytes, mode_from: Path | None = None) -> None:
    """Write ``data`` to ``path`` through a temp file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        source = mode_from if mode_from is not None and mode_from.exists() else (path if path.exists() else None)
        if source is not None:
            os.chmod(tmp, stat.S_IMODE(os.stat(source).st_mode))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
