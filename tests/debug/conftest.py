"""Fixtures for the debugger tests: a private debugger directory and a process reaper."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from debug_testkit import Processes


@pytest.fixture
def procs() -> Iterator[Processes]:
    """Every process a test starts; whole process groups are SIGKILLed at teardown."""
    registry = Processes()
    try:
        yield registry
    finally:
        registry.kill_all()


@pytest.fixture
def debug_dir(tmp_path: Path) -> Path:
    """$MS_DEBUG_DIR for one test (created by the debugger itself, mode 0700)."""
    return tmp_path / "dbg"
