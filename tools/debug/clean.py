"""``python -m tools.debug clean``: remove job directories nobody uses any more.

Job directories hold a secret and small markers; a launcher other than ``tools.debug launch``
never removes them. A job directory is stale when no process of this node recorded in it
(sessions, rank registrations, barrier markers) is alive, no record comes from another node
(whose processes this node cannot see: ``--all-hosts`` removes those too), and nothing in it
changed for ``--older-than`` seconds. Sockets left in the short fallback directory by killed
processes are removed as well.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import TextIO

from tools.debug.registry import candidate_base_dirs, host_tag, job_dirs, pid_alive
from tools.debug.settings import hostname, log

DEFAULT_AGE = 60.0


def _records(job_dir: Path) -> list[dict]:
    found = []
    for path in job_dir.rglob("*.json"):
        try:
            found.append(json.loads(path.read_bytes()))
        except (OSError, ValueError):
            continue
    return found


def _newest(job_dir: Path) -> float:
    newest = job_dir.stat().st_mtime
    for path in job_dir.rglob("*"):
        try:
            newest = max(newest, path.lstat().st_mtime)
        except OSError:
            continue
    return newest


def stale_reason(job_dir: Path, older_than: float, all_hosts: bool) -> str | None:
    """Why ``job_dir`` must stay (None: it is stale)."""
    here = hostname()
    for record in _records(job_dir):
        host, pid = record.get("host"), record.get("pid")
        if not isinstance(pid, int):
            continue
        if host in (None, here):
            if pid_alive(pid):
                return f"process {pid} is alive"
        elif not all_hosts:
            return f"has records of {host} (--all-hosts to remove anyway)"
    age = time.time() - _newest(job_dir)
    if age < older_than:
        return f"changed {age:.0f} s ago"
    return None


def _orphan_sockets() -> list[Path]:
    directory = Path("/tmp") / f"ms-debug-{os.getuid()}" / "sockets"
    tag = host_tag()
    found = []
    try:
        for path in directory.iterdir():
            parts = path.name.split("-")  # <dir digest>-<host tag>-<pid>-<n>.sock
            if len(parts) >= 4 and parts[1] == tag and parts[2].isdigit() and not pid_alive(int(parts[2])):
                found.append(path)
    except OSError:
        pass
    return found


def clean(job: str | None = None, older_than: float = DEFAULT_AGE, all_hosts: bool = False, dry_run: bool = False,
          out: TextIO | None = None) -> int:
    """Remove stale job directories (and orphan sockets); prints what it removes or keeps."""
    out = out or sys.stdout
    errors: list[str] = []
    removed = 0
    for job_dir in job_dirs(candidate_base_dirs(), job, errors):
        if not job_dir.is_dir():
            continue
        why = stale_reason(job_dir, older_than, all_hosts)
        if why is not None:
            out.write(f"kept    {job_dir}: {why}\n")
            continue
        out.write(f"{'would remove' if dry_run else 'removed'} {job_dir}\n")
        removed += 1
        if not dry_run:
            shutil.rmtree(job_dir, ignore_errors=True)
    for path in _orphan_sockets():
        out.write(f"{'would remove' if dry_run else 'removed'} {path}\n")
        if not dry_run:
            try:
                path.unlink()
            except OSError:
                pass
    for error in errors:
        log(error)
    return 1 if errors else 0
