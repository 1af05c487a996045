"""Shared fixtures: real packages from PyPI, real git repositories.

Downloads are cached in ``$MS_CONVERT_DOWNLOADS`` (default ``<repo>/.downloads``, git-ignored)
so a second test session does not hit the network again.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def downloads_dir() -> Path:
    path = Path(os.environ.get("MS_CONVERT_DOWNLOADS", REPO_ROOT / ".downloads"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def pypi_download(requirement: str, *, sdist: bool) -> Path:
    """Download one distribution file of ``requirement`` (``name==version``) and return its path."""
    name, _, version = requirement.partition("==")
    dest = downloads_dir() / requirement.replace("==", "-")
    dest.mkdir(exist_ok=True)
    found = [p for p in dest.iterdir() if p.suffix in (".gz", ".whl", ".zip")]
    if not found:
        fmt = ["--no-binary", ":all:"] if sdist else ["--only-binary", ":all:"]
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", *fmt, "-d", str(dest), requirement],
            check=True,
        )
        found = [p for p in dest.iterdir() if p.suffix in (".gz", ".whl", ".zip")]
    assert len(found) == 1, f"expected one file for {requirement} in {dest}, found {found}"
    return found[0]


def unpack(archive: Path) -> Path:
    """Unpack an sdist or wheel next to it (once) and return the unpacked folder."""
    out = archive.parent / "unpacked"
    if not out.exists():
        tmp = archive.parent / "unpacked.tmp"
        if archive.name.endswith((".whl", ".zip")):
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(tmp)
        else:
            with tarfile.open(archive) as tf:
                tf.extractall(tmp, filter="data")
        tmp.rename(out)
    return out


@pytest.fixture(scope="session")
def megatron_core_src() -> Path:
    """The ``megatron`` package folder of megatron-core 0.12.1's sdist (full megatron/core source)."""
    root = unpack(pypi_download("megatron-core==0.12.1", sdist=True))
    (top,) = [p for p in root.iterdir() if p.is_dir()]
    return top / "megatron"


@pytest.fixture(scope="session")
def transformers_src() -> Path:
    """The ``transformers`` package folder of transformers 4.57.1 (wheel: pure Python source)."""
    root = unpack(pypi_download("transformers==4.57.1", sdist=False))
    return root / "transformers"
