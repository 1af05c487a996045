"""Shared fixtures: real packages from PyPI (cached under .downloads/), real git repositories."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import LlmWorkspace, Result, bash, find_mirror

from tools.corpora import REPO_ROOT, downloads_dir, megatron_core, pypi_download, transformers, unpack  # noqa: F401


@pytest.fixture(scope="session")
def megatron_core_src() -> Path:
    """The ``megatron`` package folder of megatron-core 0.12.1's sdist (full megatron/core source)."""
    return megatron_core()


@pytest.fixture(scope="session")
def transformers_src() -> Path:
    """The ``transformers`` package folder of transformers 4.57.1 (wheel: pure Python source)."""
    return transformers()


# The llm workspace from ../shared/mirror, built once per session with the user's command and shared by
# tests/e2e and tests/examples: defined here, not imported into each test module (an imported fixture
# is a fixture of that module, so each importing module built its own workspace).
@pytest.fixture(scope="session")
def llm_mirror() -> Path:
    try:
        return find_mirror()
    except ValueError as exc:
        problem = str(exc)
    pytest.fail(problem, pytrace=False)


@pytest.fixture(scope="session")
def llm_workspace(llm_mirror: Path, tmp_path_factory) -> LlmWorkspace:
    root = tmp_path_factory.mktemp("llm")
    ws = LlmWorkspace(llm_mirror, root / "ws", Result(0, "", ""), 0.0)
    started = time.monotonic()
    result = bash(f'{ws.source_command()}\necho "SHELL_ALIVE $?"\necho "WS=${{MS_CONVERT_WORKSPACE:-unset}}"',
                  cwd=root, timeout=1800, interactive=True)
    ws.seconds = time.monotonic() - started
    ws.build = result
    if result.alive != 0 or f"WS={ws.path}" not in result.stdout:
        tail = "\n".join(result.stderr.splitlines()[-40:])
        pytest.fail(f"source auto_convert_llm.sh --mirror {llm_mirror} failed (status {result.alive}):\n{tail}",
                    pytrace=False)
    print(f"\nllm workspace from {llm_mirror}: {ws.seconds:.0f}s", file=sys.stderr)
    return ws
