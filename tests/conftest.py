"""Shared fixtures: real packages from PyPI (cached under .downloads/), real git repositories."""
from __future__ import annotations

from pathlib import Path

import pytest

from tools.corpora import REPO_ROOT, downloads_dir, megatron_core, pypi_download, transformers, unpack  # noqa: F401


@pytest.fixture(scope="session")
def megatron_core_src() -> Path:
    """The ``megatron`` package folder of megatron-core 0.12.1's sdist (full megatron/core source)."""
    return megatron_core()


@pytest.fixture(scope="session")
def transformers_src() -> Path:
    """The ``transformers`` package folder of transformers 4.57.1 (wheel: pure Python source)."""
    return transformers()
