"""The real llm workspace, built from the mirror of the pinned upstream repositories with the user's
own command (``source auto_convert_llm.sh --mirror MIRROR --workspace WS``) in a real bash, once per
test session: the R1 import check and the DeepSeek-V3 example run on it.

The mirror: ``$MS_CONVERT_MIRROR``, else ``../shared/mirror`` beside this checkout (where CI lays
it). Without one these tests fail, saying how to point at one: they are the only tests that run
Megatron-LM, MindSpeed and MindSpeed-LLM as pinned, so they are never skipped.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.workspace.conftest import Result, script_env
from tools.workspace.manifest import GitSource, load_manifest

REPO_ROOT = Path(__file__).resolve().parents[2]
MIRROR_ENV = "MS_CONVERT_MIRROR"
MANIFEST = REPO_ROOT / "workspaces" / "llm.yaml"


def git_pins(manifest: Path = MANIFEST) -> dict[str, str]:
    """{repository: pinned commit} of the manifest's git repositories (read by the driver's loader)."""
    return {r.name: r.source.commit for r in load_manifest(manifest).repos if isinstance(r.source, GitSource)}


def find_mirror(environ: dict[str, str] | os._Environ = os.environ, checkout: Path = REPO_ROOT) -> Path:
    """The mirror to build from; raises ValueError with one line saying how to point at one."""
    given = environ.get(MIRROR_ENV)
    mirror = Path(given).expanduser() if given else checkout.parent / "shared" / "mirror"
    where = f"${MIRROR_ENV}={given}" if given else f"{mirror} (../shared/mirror beside the checkout)"
    missing = [f"{name}.git" for name in git_pins() if not (mirror / f"{name}.git").is_dir()]
    if missing:
        raise ValueError(f"no mirror of the pinned upstream repositories at {where} (missing {', '.join(missing)}): "
                         f"set {MIRROR_ENV} to a folder holding {', '.join(f'{n}.git' for n in git_pins())}")
    return mirror.resolve()


def bash(command: str, *, cwd: Path, timeout: float, interactive: bool = False, **env: str) -> Result:
    """``command`` in a real bash (interactive, as a user types it, when asked), in the user's
    environment as tests/workspace makes it (none of this run's MS_CONVERT_*, PYTHONPATH or PYTEST_*).
    The scripts pick their Python as they do for a user: python3 on PATH (after ~/.bashrc in an
    interactive shell) when it has the project's dependencies, else the project's .venv, which
    tools/setup_env.sh creates or completes."""
    proc = subprocess.run(["bash", "-i", "-c", command] if interactive else ["bash", "-c", command], cwd=cwd,
                          env=script_env(**env), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    return Result(proc.returncode, proc.stdout, proc.stderr)


@dataclass
class LlmWorkspace:
    mirror: Path
    path: Path
    build: Result
    seconds: float

    def source_command(self) -> str:
        """The README's command for this workspace."""
        return f"source {REPO_ROOT / 'auto_convert_llm.sh'} --mirror {self.mirror} --workspace {self.path} -j 2"


def iteration_steps(log: Path) -> list[int]:
    return [int(m) for m in re.findall(r"iteration\s+(\d+)/\s*\d+ \|", log.read_text(errors="replace"))]
