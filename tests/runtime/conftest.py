from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import testbed as _testbed  # noqa: E402


@pytest.fixture(scope="session")
def testbed(tmp_path_factory) -> _testbed.Testbed:
    return _testbed.build(tmp_path_factory.mktemp("runtime"))
