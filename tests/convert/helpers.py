"""Small helpers shared by the engine tests."""
from __future__ import annotations

import csv
import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path

from tools.corpora import REPO_ROOT

GOOD = b"import torch\n\nx = torch.zeros(3)\n"              # a file the default rules change
GOOD_OUT = b"import mindtorch as torch\n\nx = torch.zeros(3)\n"  # ... into this


def make_tree(root: Path, files: dict[str, bytes]) -> Path:
    """Write ``{relative path: bytes}`` under ``root`` and return ``root``."""
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def cli(*args: str, cwd: Path | None = None, timeout: float = 600,
        unprivileged: bool = False) -> subprocess.CompletedProcess:
    """Run ``python -m tools.convert`` for real, as a user would. ``unprivileged``: as a user
    bound by file modes (see :func:`without_file_powers`), to meet real permission errors."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run([sys.executable, "-m", "tools.convert", *args], cwd=cwd or REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout,
                          preexec_fn=without_file_powers if unprivileged else None)


_PR_CAPBSET_DROP = 24
_FILE_POWERS = (1, 2, 3)   # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER


def without_file_powers() -> None:
    """In a child before exec: drop the capabilities that let root ignore file modes, so the
    program (and its children) meet EACCES like any user. A no-op for a user without them."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in _FILE_POWERS:
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) is not permitted here")


def can_drop_file_powers() -> bool:
    """Whether :func:`without_file_powers` works here (it needs CAP_SETPCAP as root)."""
    try:
        subprocess.run(["true"], preexec_fn=without_file_powers, check=True)
    except (OSError, subprocess.SubprocessError):
        return False
    return True


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
