"""Stands in for ``ssh`` in the tests (one machine, no sshd): appends its arguments to LOG as a
JSON line, then runs the command the way the named node would, i.e. with
``MS_DEBUG_HOSTNAME=<host>``. Usage (as ``MS_DEBUG_SSH``): ``python fake_ssh.py LOG [-t] HOST COMMAND``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

log, args = sys.argv[1], sys.argv[2:]
with open(log, "a") as handle:
    handle.write(json.dumps(args) + "\n")
host, command = args[-2:]
sys.exit(subprocess.call(["sh", "-c", command], env=dict(os.environ, MS_DEBUG_HOSTNAME=host)))
