"""Which target-side APIs does the target mindtorch (or other target module) provide?

Checked in a child Python process: importing mindtorch loads MindSpore, prints to stdout and may
crash; none of that may touch the engine. The target is the *installed* one unless a target path
is given: folders put first on the child's PYTHONPATH, because the code being converted may run
against another copy than the installed one (a workspace's patched mindtorch, which provides
modules the PyPI release lacks). Results are cached per target: the path list, and per root its
file and a digest of its package folder, so a no-op re-run does not import MindSpore again and a
patched and an unpatched mindtorch (at the same or another place) are never confused.
"""
from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Sequence

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


def check_target_path(target_path: Sequence[Path]) -> tuple[Path, ...]:
    """The target path as absolute folders; a missing one is a usage error, not a silent fallback
    to the installed target (which would report the wrong APIs as missing)."""
    from .errors import UsageError

    for p in target_path:
        if not Path(p).is_dir():
            raise UsageError(f"target path {p}: not a directory (give the folder that contains the target package)")
    return tuple(Path(p).absolute() for p in target_path)


def child_env(target_path: Sequence[Path]) -> dict[str, str] | None:
    """The environment of a child that imports the targets: ``target_path`` first on PYTHONPATH
    (then the inherited entries), or None (inherit as it is) without a target path."""
    if not target_path:
        return None
    entries = [str(p) for p in target_path]
    if os.environ.get("PYTHONPATH"):
        entries.append(os.environ["PYTHONPATH"])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(entries)}


def _find(root: str, target_path: Sequence[Path]) -> importlib.machinery.ModuleSpec | None:
    """Where the child will import ``root`` from: the target path first, as its PYTHONPATH does."""
    if target_path:
        spec = importlib.machinery.PathFinder.find_spec(root, [str(p) for p in target_path])
        if spec is not None and spec.origin:  # a namespace portion alone is not the package
            return spec
    try:
        return importlib.util.find_spec(root)
    except (ImportError, ValueError):
        return None


def _tree_digest(folders: Sequence[str]) -> str:
    """Every file below a package folder, by name, size and mtime: a patch that only adds a module
    (mindtorch/npu/acl.py) leaves ``__init__.py`` untouched. ~500 stats for mindtorch: milliseconds."""
    h = hashlib.sha256()
    for folder in folders:
        for base, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                path = os.path.join(base, name)
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                h.update(f"{os.path.relpath(path, folder)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _stamp(root: str, target_path: Sequence[Path] = ()) -> str | None:
    spec = _find(root, target_path)
    if spec is None or not spec.origin:
        return None
    try:
        stamp = f"{spec.origin}:{os.stat(spec.origin).st_mtime_ns}"
    except OSError:
        return None
    if spec.submodule_search_locations:
        stamp += f":{_tree_digest(list(spec.submodule_search_locations))}"
    return stamp


class Introspector:
    """Started before the conversion (the child imports the targets meanwhile), asked after it."""

    def __init__(self, roots: set[str], cache_file: Path | None, target_path: Sequence[Path] = ()) -> None:
        self.cache_file = cache_file
        self.target_path = tuple(Path(p).absolute() for p in target_path)
        self.stamps = {r: _stamp(r, self.target_path) for r in sorted(roots)}
        key = json.dumps({"target_path": [str(p) for p in self.target_path], "stamps": self.stamps}, sort_keys=True)
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
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                         env=child_env(self.target_path))

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
            if r not in stamps:
                stamps[r] = _stamp(r, self.target_path)
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
        where = f" nor in the target path {os.pathsep.join(map(str, self.target_path))}" if self.target_path else ""
        for r in roots:
            if stamps.get(r) is None:
                error = f"{r} is not installed for {sys.executable}{where}"
                cached["modules"][r] = {"available": False, "error": error}
        if self.cache_file is not None:
            from .fsio import atomic_write
            try:
                atomic_write(self.cache_file, json.dumps(cached, sort_keys=True).encode())
            except OSError:
                pass   # only a cache: the next run asks again (the runner warns about the cache folder)
        avail = {r for r, info in cached["modules"].items() if info.get("available")}
        return ({n: cached["names"].get(n, False) for n in names if n.split(".")[0] in avail},
                {r: cached["modules"].get(r, {}) for r in roots if r in {n.split(".")[0] for n in names}})
