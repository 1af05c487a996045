"""An llm-shaped workspace built by the real driver, for the runtime tests and benchmarks.

mindtorch comes from PyPI (mindnlp 0.5.1) with the project's patches; Megatron-LM is the
megatron-core 0.12.1 source from PyPI committed into a git repository served from a mirror,
converted with the project's rules. The example is converted into the workspace with the engine.
The PyTorch side uses the same unconverted source in the reference environment.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tools.corpora import REPO_ROOT, megatron_core

IMPORT_ALL = Path(__file__).with_name("import_all.py")


def tagged_json(proc: subprocess.CompletedProcess, tag: str = "RESULT") -> dict:
    """What a job printed last as ``TAG {json}`` (the jobs of tests/runtime report their results so, on
    both sides); fails with the job's output when it printed no such line."""
    lines = [line for line in proc.stdout.splitlines() if line.startswith(f"{tag} ")]
    assert lines, f"no {tag} line (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return json.loads(lines[-1][len(tag) + 1:])


MINDNLP_SHA256 = "655279b19944bdcd3dc301bdae28d7e24a9e846de23e2422404702d6686cc850"


@dataclass
class Testbed:
    __test__ = False          # not a test class, whatever pytest thinks of the name
    workspace: Path
    megatron_src: Path        # the unconverted source, for the PyTorch side
    reference_python: Path

    def ms_run(self, command: str, timeout: float = 1800, **env: str) -> subprocess.CompletedProcess:
        """Run ``command`` in bash after ``source <workspace>/set_env.sh`` (as a user would)."""
        script = f"source {self.workspace / 'set_env.sh'} && {command}"
        return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=timeout,
                              env=_clean_env(env), cwd=self.workspace)

    def check_megatron_imports(self) -> tuple[dict, dict]:
        """R1: every ``megatron.core`` module that imports on PyTorch imports here too (import_all.py
        on both sides); what fails on both fails for a missing optional package. Returns both
        reports (``{"ok": [...], "failed": {module: reason}}``), MindSpore's first."""
        ms = tagged_json(self.ms_run(f"python {IMPORT_ALL}"), "IMPORT_REPORT")
        pt = tagged_json(self.torch_run([str(IMPORT_ALL)]), "IMPORT_REPORT")
        assert set(ms["ok"]) | set(ms["failed"]) == set(pt["ok"]) | set(pt["failed"])
        assert len(pt["ok"]) > 200
        # transformers is in the reference environment (the HF tests' unconverted side); a workspace
        # that does not convert it (tests/runtime's testbed; the llm workspace does) cannot import
        # megatron.core.models.huggingface, for want of the package, not because of the conversion
        unshipped = [name for name in ("transformers",) if not (self.workspace / name).exists()]
        only_ms = {m: r for m, r in ms["failed"].items() if m not in pt["failed"] and not any(
            r.startswith(f"ModuleNotFoundError: No module named '{name}'") for name in unshipped)}
        assert not only_ms, f"fail on MindSpore only: {json.dumps(only_ms, indent=1)}"
        # what fails on both sides fails for a missing optional package (docs/megatron_changes.md): an
        # import error, or Megatron's own check of Retro's packages (faiss, h5py, transformers), which
        # raises a bare Exception once transformers is there and faiss is not
        for module, reason in pt["failed"].items():
            assert reason.startswith(("ModuleNotFoundError", "ImportError")) or reason.startswith(
                "Exception: Missing one or more packages required for Retro"), (module, reason)
        return ms, pt

    def convert(self, source: Path, name: str) -> Path:
        """``source`` converted into the workspace as ``name`` (once), as a user converts their own
        scripts: ``python -m tools.convert convert SOURCE -o DEST``."""
        dest = self.workspace / name
        if not dest.exists():
            proc = subprocess.run(
                [str(REPO_ROOT / ".venv" / "bin" / "python"), "-m", "tools.convert", "convert", str(source),
                 "-o", str(dest), "-q"],
                cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, env=_clean_env({"PYTHONPATH": str(REPO_ROOT)}))
            if proc.returncode != 0:
                raise RuntimeError(f"converting {source} failed: {proc.stderr[-3000:]}")
        return dest

    def torch_run(self, args: list[str], timeout: float = 1800, **env: str) -> subprocess.CompletedProcess:
        full = _clean_env(env)
        full["PYTHONPATH"] = str(self.megatron_src)
        return subprocess.run([str(self.reference_python), *args], capture_output=True, text=True,
                              timeout=timeout, env=full, cwd=self.workspace)


def _clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "MS_CONVERT_")) and k != "PYTHONPATH"}
    env.update({"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"})
    env.update(extra)
    return env


def free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def reference_python() -> Path:
    path = Path(os.environ.get("MS_TORCH_REFERENCE_PYTHON", REPO_ROOT / ".venv-torch" / "bin" / "python"))
    if not path.exists():
        raise RuntimeError(f"no PyTorch reference environment at {path}: run bash tools/setup_env.sh --reference")
    return path


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env=_clean_env({})).stdout.strip()


def build(root: Path) -> Testbed:
    """Build (once per ``root``) the workspace with the real ``auto_convert_llm.sh``."""
    src = megatron_core()
    ws = root / "ws"
    if not (ws / "set_env.sh").exists():
        upstream = root / "upstream" / "Megatron-LM"
        if not upstream.exists():
            shutil.copytree(src.parent, upstream, ignore=shutil.ignore_patterns("*.egg-info"))
            _git(upstream, "init", "-q", "-b", "main")
            _git(upstream, "add", "-A")
            _git(upstream, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "megatron-core 0.12.1")
        pin = _git(upstream, "rev-parse", "HEAD")
        mirror = root / "mirror"
        if not mirror.exists():
            mirror.mkdir()
            _git(root, "clone", "-q", "--bare", str(upstream), str(mirror / "Megatron-LM.git"))
        rules = REPO_ROOT / "rules"
        manifest = root / "llm-testbed.yaml"
        manifest.write_text(json.dumps({
            "name": "llm-testbed",
            "description": "mindtorch + Megatron-LM (megatron-core 0.12.1 sdist) as in workspaces/llm.yaml",
            "repos": [
                {"name": "mindtorch",
                 "source": {"kind": "pypi", "requirement": "mindnlp==0.5.1", "sha256": MINDNLP_SHA256,
                            "take": ["mindtorch"]},
                 "patches": str(REPO_ROOT / "patches" / "mindtorch")},
                {"name": "Megatron-LM",
                 "source": {"kind": "git", "url": "https://github.com/NVIDIA/Megatron-LM.git", "ref": "core_v0.12.1",
                            "commit": pin},
                 "rules": [str(rules / "torch_imports.yaml"), str(rules / "torch_api.yaml"),
                           str(rules / "megatron_core.yaml")]},
            ],
        }))
        ws.mkdir(exist_ok=True)
        command = (f"source {REPO_ROOT / 'auto_convert_llm.sh'} --mirror {mirror} --workspace {ws} "
                   f"--manifest {manifest} -j 2 || echo WORKSPACE_FAILED")
        proc = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=1800,
                              env=_clean_env({}), cwd=root)
        if "WORKSPACE_FAILED" in proc.stdout or not (ws / "set_env.sh").exists():
            raise RuntimeError(f"workspace build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    testbed = Testbed(ws, src.parent, reference_python())
    testbed.convert(REPO_ROOT / "examples" / "tiny_gpt", "tiny_gpt")
    return testbed


def table_command(argv: list[str] | None, *, description: str, what: str, choices: list[str], steps: int,
                  run: Callable[[Testbed, Path, list[str], int], dict], table: Callable[[dict], str],
                  note: str) -> None:
    """The command line of a parity test run as a script: build (or reuse) a workspace under --root,
    run the chosen ``what`` (configurations, layouts) for --steps steps and print the test's table,
    then how long it took (``note``: how the runs were spread)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--root", type=Path, help="workspace and runs go here (default: a new temporary directory; "
                                              "a workspace already there is reused, its converted example too)")
    ap.add_argument("--steps", type=int, default=steps)
    ap.add_argument(f"--{what}", default=",".join(choices), help=f"comma-separated {what}s (default: all)")
    args = ap.parse_args(argv)
    root = args.root or Path(tempfile.mkdtemp(prefix=f"{what}s-"))
    bed = build(root)
    start = time.perf_counter()
    out = root / f"runs-{time.strftime('%Y%m%d-%H%M%S')}"
    results = run(bed, out, getattr(args, what).split(","), args.steps)
    print(table(results))
    print(f"\n{len(results)} {what}s, {args.steps} steps each: {time.perf_counter() - start:.0f} s wall "
          f"({note}); runs in {out}")
