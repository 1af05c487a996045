"""Small helpers shared by the engine tests."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from tools.corpora import REPO_ROOT


def cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``python -m tools.convert`` for real, as a user would."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run([sys.executable, "-m", "tools.convert", *args], cwd=cwd or REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def read_summary(report_dir: Path) -> dict:
    return json.loads((report_dir / "summary.json").read_text())


def snapshot(root: Path) -> dict[str, bytes]:
    """Every regular file below ``root`` (not our own state folder) by relative path."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if rel.startswith(".ms-convert") or p.is_symlink() or not p.is_file():
            continue
        out[rel] = p.read_bytes()
    return out
