"""Reaching a rank on another node: the same command, run there through ssh.

Sockets are Unix sockets, so a session can only be reached on its own node; with a shared
``$MS_DEBUG_DIR`` every node sees every node's records (the host column of ``list``), and for a
record of another host the client runs the same sub-command on that host through
``$MS_DEBUG_SSH`` (default ``ssh``; a command line, e.g. ``ssh -J gateway``), with the Python
and the checkout the rank itself used and the job's base directory. Nothing listens on a network
address: ssh authenticates the user, the remote client then authenticates like a local one.
``MS_DEBUG_SSH=none`` only prints the command to run.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from tools.debug.settings import ENV_DIR, ENV_SSH, log

EXIT_NO_SESSION = 2


def remote_command(args: list[str], python: str, root: str, base_dir: Path) -> str:
    """The shell command line that runs ``python -m tools.debug ARGS`` on the other node."""
    env = [f"PYTHONPATH={root}", f"{ENV_DIR}={base_dir}"]
    return shlex.join(["env", *env, python or "python3", "-m", "tools.debug", *args])


def ssh_argv(host: str, command: str, tty: bool) -> list[str] | None:
    """``$MS_DEBUG_SSH`` (default ``ssh``) with ``-t`` for an interactive session, the host and the
    command; None when ``MS_DEBUG_SSH=none``."""
    raw = os.environ.get(ENV_SSH, "").strip() or "ssh"
    if raw.lower() in ("none", "off", "0"):
        return None
    return [*shlex.split(raw), *(["-t"] if tty else []), host, command]


def run_remote(
    host: str,
    args: list[str],
    python: str,
    root: str,
    base_dir: Path,
    *,
    tty: bool,
    print_only: bool = False,
    what: str = "the rank",
    capture: bool = False,
) -> int | subprocess.CompletedProcess:
    """Run ``python -m tools.debug ARGS`` on ``host``; returns its exit status (or, with
    ``capture``, the completed process with its stdout)."""
    command = remote_command(args, python, root, base_dir)
    argv = None if print_only else ssh_argv(host, command, tty)
    if argv is None:
        raw = os.environ.get(ENV_SSH, "").strip()
        ssh = "ssh" if not raw or raw.lower() in ("none", "off", "0") else raw
        log(f"{what} runs on {host}; run there: {shlex.join([*shlex.split(ssh), *(['-t'] if tty else []), host, command])}")
        return EXIT_NO_SESSION if not capture else subprocess.CompletedProcess([], EXIT_NO_SESSION, "", "")
    log(f"{what} runs on {host}: {shlex.join(argv)}")
    sys.stdout.flush()
    try:
        if capture:
            return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
        return subprocess.run(argv).returncode
    except (OSError, subprocess.TimeoutExpired) as exc:
        log(f"cannot reach {host} with {argv[0]}: {exc}")
        return 1 if not capture else subprocess.CompletedProcess(argv, 1, "", str(exc))


def remote_json(host: str, args: list[str], python: str, root: str, base_dir: Path, what: str) -> tuple[list[dict[str, Any]], str]:
    """Run ``python -m tools.debug ARGS --json --local-only`` on ``host``: its JSON lines, and a
    note on stderr's last words when it said something (for rows that got no answer)."""
    done = run_remote(host, [*args, "--json", "--local-only"], python, root, base_dir, tty=False, capture=True,
                      what=what)
    rows = []
    for line in done.stdout.splitlines():  # type: ignore[union-attr]
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    note = done.stderr.strip()[-200:] if done.stderr else ""  # type: ignore[union-attr]
    return rows, f"no answer from {host}" + (f": {note}" if note else "")
