"""Which target-side APIs does the *installed* mindtorch (or other target module) provide?

Checked in a child Python process: importing mindtorch loads MindSpore, prints to stdout and may
crash; none of that may touch the engine. Results are cached per installed target (its path and
modification time), so a no-op re-run does not import MindSpore again.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

_CHILD = r"""
import importlib, json, os, sys
out = os.dup(1)
os.dup2(2, 1)              # whatever the imports print goes to stderr
modules, result, info = {}, {}, {}
def module(name):
    if name not in modules:
        try:
            modules[name] = importlib.import_module(name)
        except BaseException:
            modules[name] = None
    return modules[name]
for root in sys.argv[1:]:
    module(root)           # import the targets while the parent is still converting
names = json.load(sys.stdin)
for root in sorted({n.split('.')[0] for n in names}):
    m = module(root)
    info[root] = {"available": m is not None, "version": getattr(m, "__version__", None),
                  "path": getattr(m, "__file__", None)}
for name in names:
    parts = name.split('.')
    obj = module(parts[0])
    for i in range(1, len(parts)):
        if obj is None:
            break
        try:
            obj = getattr(obj, parts[i])
        except BaseException:
            obj = module('.'.join(parts[:i + 1]))  # a submodule not imported by its package
    result[name] = obj is not None
os.write(out, json.dumps({"names": result, "modules": info}).encode())
"""


def _stamp(root: str) -> str | None:
    try:
        spec = importlib.util.find_spec(root)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    try:
        return f"{spec.origin}:{os.stat(spec.origin).st_mtime_ns}"
    except OSError:
        return None


class Introspector:
    """Started before the conversion (the child imports the targets meanwhile), asked after it."""

    def __init__(self, roots: set[str], cache_file: Path | None) -> None:
        self.cache_file = cache_file
        self.stamps = {r: _stamp(r) for r in sorted(roots)}
        key = json.dumps(self.stamps, sort_keys=True)
        cached: dict = {}
        if cache_file is not None and cache_file.exists():
            try:
                cached = json.loads(cache_file.read_text())
            except (OSError, ValueError):
                cached = {}
        if cached.get("key") != key:
            cached = {"key": key, "names": {}, "modules": {}}
        self.cached = cached
        self.proc: subprocess.Popen | None = None
        if not cached["names"]:
            self._start()

    def _start(self) -> None:
        installed = [r for r, s in self.stamps.items() if s is not None]
        if installed and self.proc is None:
            self.proc = subprocess.Popen([sys.executable, "-c", _CHILD, *installed], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def provided(self, names: set[str], timeout: float = 600) -> tuple[dict[str, bool], dict]:
        """Map each target-side dotted name to whether it exists; plus per-root module info."""
        cached, stamps = self.cached, self.stamps
        roots = sorted({n.split(".")[0] for n in names} | set(stamps))
        for r in roots:
            stamps.setdefault(r, _stamp(r))
        missing = sorted(n for n in names if n not in cached["names"] and stamps.get(n.split(".")[0]))
        if missing:
            self._start()
        if missing and self.proc is not None:
            try:
                stdout, stderr = self.proc.communicate(json.dumps(missing), timeout=timeout)
            except subprocess.TimeoutExpired:
                self.close()
                stdout, stderr = "", f"no answer in {timeout} s"
            self.proc = None
            if stdout.strip():
                data = json.loads(stdout)
                cached["names"].update(data["names"])
                cached["modules"].update(data["modules"])
            else:
                err = (stderr.strip().splitlines() or ["no output"])[-1]
                for r in {n.split(".")[0] for n in missing}:
                    cached["modules"][r] = {"available": False, "error": f"introspection failed: {err}"}
        self.close()
        for r in roots:
            if stamps.get(r) is None:
                cached["modules"][r] = {"available": False, "error": f"{r} is not installed for {sys.executable}"}
        if self.cache_file is not None:
            from .fsio import atomic_write
            atomic_write(self.cache_file, json.dumps(cached, sort_keys=True).encode())
        avail = {r for r, info in cached["modules"].items() if info.get("available")}
        return ({n: cached["names"].get(n, False) for n in names if n.split(".")[0] in avail},
                {r: cached["modules"].get(r, {}) for r in roots if r in {n.split(".")[0] for n in names}})
