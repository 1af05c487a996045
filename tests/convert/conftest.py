"""Fixtures of the engine tests: the default rules, and a target other than the installed one."""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from tools.convert.api import load_rules

ACL_MODULE = '''"""Stands in for patches/mindtorch's mindtorch.npu.acl (absent from the PyPI release)."""


def get_soc_name() -> str:
    return ""
'''


@pytest.fixture(scope="session")
def patched_mindtorch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a copy of the installed mindtorch package (17 MB with its bytecode, so a
    plain copy; ``copy2`` keeps the mtimes, so the copied ``__pycache__`` stays valid and the
    import is as fast as the installed one) plus ``mindtorch/npu/acl.py``, which only the
    workspace's patched mindtorch has. Pass the folder as a target path."""
    spec = importlib.util.find_spec("mindtorch")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("mindtorch is not installed")
    installed = Path(next(iter(spec.submodule_search_locations)))
    root = tmp_path_factory.mktemp("patched-mindtorch")
    shutil.copytree(installed, root / "mindtorch", symlinks=False)
    assert not any(p.is_symlink() for p in (root / "mindtorch").rglob("*"))
    (root / "mindtorch" / "npu" / "acl.py").write_text(ACL_MODULE)
    return root


@pytest.fixture
def rules():
    """The shipped default rules."""
    return load_rules()
