"""What every example launcher must do when it is run outside a workspace."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path


def assert_refused_outside_a_workspace(script: Path, command: str, run_dir: str, cwd: Path) -> None:
    """``bash script`` without a workspace in the environment stops with one line naming ``command``
    (the ``source auto_convert_*.sh`` that makes one) and leaves ``run_dir`` uncreated."""
    env = {k: v for k, v in os.environ.items() if k != "MS_CONVERT_WORKSPACE"}
    proc = subprocess.run(["bash", str(script)], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert command in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (cwd / run_dir).exists()
