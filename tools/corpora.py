"""Real third-party source trees from PyPI, for tests and benchmarks (never for conversion runs).

Downloads are cached in ``$MS_CONVERT_DOWNLOADS`` (default ``<repo>/.downloads``, git-ignored).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def downloads_dir() -> Path:
    path = Path(os.environ.get("MS_CONVERT_DOWNLOADS", REPO_ROOT / ".downloads"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def pypi_download(requirement: str, *, sdist: bool) -> Path:
    """Download one distribution file of ``requirement`` (``name==version``) and return its path."""
    dest = downloads_dir() / requirement.replace("==", "-")
    dest.mkdir(exist_ok=True)
    found = [p for p in dest.iterdir() if p.name.endswith((".tar.gz", ".whl", ".zip"))]
    if not found:
        fmt = ["--no-binary", ":all:"] if sdist else ["--only-binary", ":all:"]
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", *fmt, "-d", str(dest),
                        requirement], check=True)
        found = [p for p in dest.iterdir() if p.name.endswith((".tar.gz", ".whl", ".zip"))]
    if len(found) != 1:
        raise RuntimeError(f"expected one file for {requirement} in {dest}, found {found}")
    return found[0]


def unpack(archive: Path) -> Path:
    """Unpack an sdist or wheel next to it (once, atomically) and return the unpacked folder.

    It is unpacked into a fresh temp folder renamed into place: an interrupted unpack removes its
    temp folder, and when another process unpacked the same archive meanwhile, its copy is used."""
    out = archive.parent / "unpacked"
    if out.exists():
        return out
    tmp = Path(tempfile.mkdtemp(prefix="unpacked.", suffix=".tmp", dir=archive.parent))
    try:
        if archive.name.endswith((".whl", ".zip")):
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(tmp)
        else:
            with tarfile.open(archive) as tf:
                tf.extractall(tmp, filter="data")
        try:
            os.replace(tmp, out)
        except OSError:
            if not out.is_dir():   # not a concurrent unpack that won the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def megatron_core() -> Path:
    """The ``megatron`` package folder of megatron-core 0.12.1's sdist (the full megatron/core source)."""
    root = unpack(pypi_download("megatron-core==0.12.1", sdist=True))
    (top,) = [p for p in root.iterdir() if p.is_dir()]
    return top / "megatron"


def transformers() -> Path:
    """The ``transformers`` package folder of transformers 4.57.1 (its wheel is pure Python source)."""
    return unpack(pypi_download("transformers==4.57.1", sdist=False)) / "transformers"
