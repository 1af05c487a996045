"""Fixtures of the engine tests: the default rules, and a target other than the installed one."""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from tools.convert.api import load_rules

@pytest.fixture(scope="session")
def mindtorch_without_acl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a copy of the installed mindtorch package without ``mindtorch/npu/acl.py``,
    which the project's patch series adds (tools/setup_env.sh applies the series to the venv's
    mindtorch; mindnlp's release lacks the module): a target that differs from the installed one in
    one known API. A plain copy (17 MB with its bytecode); ``copy2`` keeps the mtimes, so the copied
    ``__pycache__`` stays valid and the import is as fast as the installed one. Pass the folder as a
    target path."""
    spec = importlib.util.find_spec("mindtorch")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("mindtorch is not installed")
    installed = Path(next(iter(spec.submodule_search_locations)))
    assert (installed / "npu" / "acl.py").is_file(), f"{installed} lacks npu/acl.py: run bash tools/setup_env.sh"
    root = tmp_path_factory.mktemp("mindtorch-without-acl")
    shutil.copytree(installed, root / "mindtorch", symlinks=False)
    assert not any(p.is_symlink() for p in (root / "mindtorch").rglob("*"))
    (root / "mindtorch" / "npu" / "acl.py").unlink()
    for cached in (root / "mindtorch" / "npu" / "__pycache__").glob("acl.*.pyc"):
        cached.unlink()
    return root


@pytest.fixture
def rules():
    """The shipped default rules."""
    return load_rules()
