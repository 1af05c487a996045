"""Real git repositories shaped like the upstream ones, a mirror, and the real scripts in real bash.

Every test gets a ``World``: upstream repositories (with torch code, tags, and a commit after the
tag, like upstream where the pin is not the branch head), a mirror folder made from them (one bare
``<name>.git`` and one plain ``<name>`` clone), a manifest folder of its own, and an empty
workspace. ``World.source(...)`` runs ``bash -i -c 'source ./auto_convert_llm.sh ...; echo
SHELL_ALIVE $?'`` exactly as a user types it.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
RULES = [str(REPO_ROOT / "rules" / "torch_imports.yaml"), str(REPO_ROOT / "rules" / "torch_api.yaml")]

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Upstream Dev", "GIT_AUTHOR_EMAIL": "dev@upstream.example",
    "GIT_COMMITTER_NAME": "Upstream Dev", "GIT_COMMITTER_EMAIL": "dev@upstream.example",
    "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1",
}

MEGATRON_FILES = {
    "README.md": "# Megatron-LM (test double)\n",
    "megatron/__init__.py": "",
    "megatron/core/__init__.py": (
        '"""Stands in for megatron.core: torch code that the conversion must rewrite."""\n'
        "import torch\n"
        "\n"
        "\n"
        "def add_one(values):\n"
        "    return torch.tensor(values).add(1).tolist()\n"
    ),
    "megatron/core/tensor_parallel/__init__.py": "from .layers import ColumnLinear\n",
    "megatron/core/tensor_parallel/layers.py": (
        "import torch\n"
        "import torch.nn.functional as F\n"
        "from torch import nn\n"
        "\n"
        "\n"
        "class ColumnLinear(nn.Module):\n"
        "    def __init__(self, n_in, n_out):\n"
        "        super().__init__()\n"
        "        self.weight = nn.Parameter(torch.empty(n_out, n_in))\n"
        "        nn.init.normal_(self.weight)\n"
        "\n"
        "    def forward(self, x):\n"
        "        return F.linear(x, self.weight)\n"
    ),
    "pretrain_gpt.py": (
        "import torch\n"
        "from megatron.core.tensor_parallel import ColumnLinear\n"
        "\n"
        "if __name__ == '__main__':\n"
        "    print(ColumnLinear(4, 2)(torch.ones(1, 4)).shape)\n"
    ),
}

MINDSPEED_LLM_FILES = {
    "README.md": "# MindSpeed-LLM (test double)\n",
    "mindspeed_llm/__init__.py": "import torch\n\nDEVICE = torch.device('cpu')\n",
    "mindspeed_llm/training/__init__.py": "",
    "mindspeed_llm/training/utils.py": (
        "import torch\n"
        "\n"
        "\n"
        "def average(xs):\n"
        "    return torch.stack(xs).mean(dim=0)\n"
    ),
}


def git(cwd: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                         env={**os.environ, **GIT_ENV})
    return out.stdout.strip()


def commit_files(repo: Path, files: dict[str, str], message: str) -> str:
    for rel, text in files.items():
        path = repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def make_upstream(path: Path, files: dict[str, str], tag: str) -> tuple[str, str]:
    """A repository with a tagged release and one later commit on main: (pin, later)."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    pin = commit_files(path, files, "release")
    git(path, "tag", tag)
    later = commit_files(path, {"README.md": files.get("README.md", "") + "\nwork after the release\n"}, "after the release")
    return pin, later


def make_patch(upstream: Path, commit: str, edits: dict[str, tuple[str, str]]) -> str:
    """A real ``git diff`` of ``edits`` ({path: (old, new)}) made on ``commit`` of ``upstream``."""
    scratch = upstream.parent / f".patch-scratch-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    git(upstream.parent, "clone", "-q", str(upstream), str(scratch))
    git(scratch, "checkout", "-q", commit)
    for rel, (old, new) in edits.items():
        path = scratch / rel
        text = path.read_text()
        assert old in text, f"{old!r} not in {rel}"
        path.write_text(text.replace(old, new, 1))
    diff = git(scratch, "diff") + "\n"
    shutil.rmtree(scratch)
    return diff


def script_env(**extra: str) -> dict[str, str]:
    """The environment the scripts run in: the user's, without this test run's own settings and
    without any git identity (the driver must not need one); fast retries."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MS_CONVERT_", "PYTEST_", "GIT_AUTHOR_", "GIT_COMMITTER_"))
           and k not in ("PYTHONPATH", "COLUMNS")}
    env.update({"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1", "MS_CONVERT_RETRY_DELAY": "0.05"})
    env.update(extra)
    return env


class _PlainDumper(yaml.SafeDumper):
    """safe_dump without anchors: a list shared by two repositories (RULES) is written out twice,
    as a person writes a manifest; the manifest loader refuses aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def alive(self) -> int | None:
        """The status ``source`` returned, as the surviving shell echoed it (None: shell gone)."""
        found = re.findall(r"^SHELL_ALIVE (\d+)$", self.stdout, re.M)
        return int(found[-1]) if found else None

    def after(self, marker: str) -> str:
        """The stdout lines printed after ``echo MARKER``."""
        return self.stdout.split(f"{marker}\n", 1)[1] if f"{marker}\n" in self.stdout else ""

    def __str__(self) -> str:
        return f"status {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


@dataclass
class World:
    root: Path
    upstream: Path
    mirror: Path
    ws: Path
    manifest_dir: Path
    pins: dict[str, str] = field(default_factory=dict)
    later: dict[str, str] = field(default_factory=dict)

    def url(self, name: str) -> str:
        return f"https://example.invalid/upstream/{name}.git"

    def git_repo(self, name: str, *, rules: bool = False, patches: Any = None, commit: str | None = None,
                 url: str | None = None, abbrev: str | None = None, pythonpath: list[str] | None = None) -> dict:
        source: dict[str, Any] = {"kind": "git", "url": url or self.url(name), "ref": "release"}
        if abbrev:
            source["commit_abbrev"] = abbrev
        else:
            source["commit"] = commit or self.pins[name]
        entry: dict[str, Any] = {"name": name, "source": source}
        if rules:
            entry["rules"] = RULES
        if patches is not None:
            entry["patches"] = patches
        if pythonpath is not None:
            entry["pythonpath"] = pythonpath
        return entry

    @staticmethod
    def six(**extra: Any) -> dict:
        return {"name": "six", "source": {"kind": "pypi", "requirement": "six==1.17.0", "take": ["six.py"],
                                          "dist_info": True, **extra}}

    def write_manifest(self, repos: list[dict], name: str = "testws", file: str = "ws.yaml") -> Path:
        path = self.manifest_dir / file
        path.write_text(yaml.dump({"name": name, "description": "test workspace", "repos": repos}, Dumper=_PlainDumper,
                                  sort_keys=False))
        return path

    def default_manifest(self, *, rules: bool = False, patches: Any = None) -> Path:
        return self.write_manifest([
            self.six(),
            self.git_repo("Megatron-LM", rules=rules, patches=patches),
            self.git_repo("MindSpeed-LLM", rules=rules),
        ])

    def add_patch(self, repo: str, name: str, text: str) -> Path:
        folder = self.manifest_dir / "patches" / repo
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        path.write_text(text)
        return path

    def env(self, **extra: str) -> dict[str, str]:
        return script_env(**extra)

    def source(self, args: str, *, script: str = "auto_convert_llm.sh", cwd: Path | None = None, pre: str = "",
               post: str = "", env: dict[str, str] | None = None, timeout: float = 300) -> Result:
        """``source`` the real script in an interactive bash, then run ``post`` in the same shell."""
        command = f"{pre}\nsource {REPO_ROOT / script} {args}\necho \"SHELL_ALIVE $?\"\n{post}\n"
        proc = subprocess.run(["bash", "-i", "-c", command], cwd=cwd or self.root, env=env or self.env(),
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def state(self) -> dict:
        return json.loads((self.ws / ".ms-workspace" / "state.json").read_text())

    def std_args(self, manifest: Path, extra: str = "") -> str:
        return f"--mirror {self.mirror} --workspace {self.ws} --manifest {manifest} -j 2 {extra}".strip()


@pytest.fixture
def world(tmp_path: Path) -> World:
    upstream = tmp_path / "upstream"
    w = World(root=tmp_path, upstream=upstream, mirror=tmp_path / "mirror", ws=tmp_path / "ws",
              manifest_dir=tmp_path / "manifests")
    w.manifest_dir.mkdir()
    w.pins["Megatron-LM"], w.later["Megatron-LM"] = make_upstream(upstream / "Megatron-LM", MEGATRON_FILES, "core_v0.12.1")
    w.pins["MindSpeed-LLM"], w.later["MindSpeed-LLM"] = make_upstream(upstream / "MindSpeed-LLM", MINDSPEED_LLM_FILES, "v2.2.0")
    w.mirror.mkdir()
    git(tmp_path, "clone", "-q", "--bare", str(upstream / "Megatron-LM"), str(w.mirror / "Megatron-LM.git"))
    git(tmp_path, "clone", "-q", str(upstream / "MindSpeed-LLM"), str(w.mirror / "MindSpeed-LLM"))
    return w
