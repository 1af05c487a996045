"""``rules check`` / ``rules list``: validate rule files; check mapping targets against the
installed mindtorch, or the one found first in ``--target-path`` (the target exists; renamed and
added keywords exist in its signature)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from .introspect import check_target_path, child_env
from .ruleset import load_rules

_CHILD = r"""
import importlib, inspect, json, os, sys
req = json.load(sys.stdin)
out = os.dup(1); os.dup2(2, 1)
def resolve(name):
    parts = name.split('.')
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module('.'.join(parts[:i]))
        except BaseException:
            continue
        try:
            for p in parts[i:]:
                obj = getattr(obj, p)
            return True, obj
        except AttributeError:
            return False, None
    return False, None
res = {}
for name, keywords in req.items():
    ok, obj = resolve(name)
    params = None
    if ok:
        try:
            sig = inspect.signature(obj)
            if not any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
                params = list(sig.parameters)
        except (TypeError, ValueError):
            params = None
    res[name] = {"exists": ok, "missing_keywords": [k for k in keywords if params is not None and k not in params],
                 "introspected": params is not None}
os.write(out, json.dumps(res).encode())
"""


def check_rules(paths, select, ignore, introspect: bool, console, target_path: Sequence[Path] = ()) -> int:
    """Validate the rule files; with ``introspect``, import every target in a child process whose
    PYTHONPATH starts with ``target_path`` (a workspace's patched mindtorch provides targets that
    the installed release lacks). 0: no problem, 1: problems (printed), 2: the child failed."""
    rules = load_rules(paths, select, ignore)
    target_path = check_target_path(target_path)
    console.print(f"{len(rules.all_rules())} rules in {len(rules.files)} files are valid (rules hash {rules.hash})")
    if not introspect:
        return 0
    request: dict[str, list[str]] = {}
    for r in rules.imports:
        request.setdefault(r.target, [])
    for r in rules.apis:
        if r.target:
            request.setdefault(r.target, []).extend([new for _old, new in r.kwargs_rename] + [k for k, _ in r.defaults])
    proc = subprocess.run([sys.executable, "-c", _CHILD], input=json.dumps(request), capture_output=True,
                          text=True, timeout=600, env=child_env(target_path))
    if proc.returncode != 0:
        console.print(f"error: could not introspect the targets: {proc.stderr.strip().splitlines()[-1:]}")
        return 2
    result = json.loads(proc.stdout)
    where = "the installed packages"
    if target_path:
        where = f"the target path {os.pathsep.join(str(p) for p in target_path)} and {where}"
    problems = 0
    for r in [*rules.imports, *rules.apis]:
        target = getattr(r, "target", None)
        if not target:
            continue
        info = result[target]
        if not info["exists"]:
            problems += 1
            console.print(f"{r.origin}: {r.id}: target {target} does not exist in {where}",
                          markup=False, highlight=False)
        elif info["missing_keywords"]:
            problems += 1
            console.print(f"{r.origin}: {r.id}: {target} has no parameter(s) {', '.join(info['missing_keywords'])}",
                          markup=False, highlight=False)
    console.print(f"{len(request)} targets checked against {where}: {problems} problem(s)", markup=False, highlight=False)
    return 1 if problems else 0


def fingerprint(path: Path, within: str, keep_docstring: bool) -> int:
    """Print the fingerprint of ``within``'s body in ``path``, for a replace_body rule's expect_body."""
    import ast

    from .errors import UsageError
    from .families.scoped import _scopes, body_fingerprint

    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError) as exc:
        raise UsageError(f"{path}: cannot read or parse: {exc}") from None
    functions = [f for f in _scopes(tree, within) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if not functions:
        raise UsageError(f"{path}: no function {within}")
    print(body_fingerprint(functions[0], keep_docstring))
    return 0


def list_rules(paths, select, ignore, console) -> int:
    from rich.table import Table

    rules = load_rules(paths, select, ignore)
    table = Table("id", "family", "from", "to / action", "where")
    for r in rules.imports:
        table.add_row(r.id, "imports", r.module, r.target, Path(r.origin).name)
    for r in rules.apis:
        table.add_row(r.id, "apis", r.api, r.target or f"unsupported: {r.hint}", Path(r.origin).name)
    for r in rules.scoped:
        table.add_row(r.id, "scoped", r.match or r.within or "", r.action, r.path)
    for r in rules.transforms:
        table.add_row(r.id, "transforms", r.transform, r.reason, r.path)
    console.print(table)
    return 0
