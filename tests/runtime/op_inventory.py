"""The torch ops and Tensor methods the converted Megatron-LM, MindSpeed and MindSpeed-LLM call, counted
from their converted trees: the inventory the differential op test (test_op_differential.py) must cover.

Functions are resolved exactly as the conversion engine resolves API uses (tools.convert.analysis: a
dotted name rooted at an import of ``mindtorch``/``torch``; ``mindtorch.x`` is reported as ``torch.x``),
counted where they are called, with the number of positional arguments and the keyword names of each
call site. Tensor methods cannot be resolved statically (the engine does not count them either): a
method is an attribute call ``<expr>.name(...)`` whose ``name`` is a public ``torch.Tensor`` method of
the running PyTorch and whose receiver is not a torch module name. That over-counts names other types
share (``str.split``, ``set.add``, ``list.sort``, ``nn.Module.to``/``cuda``/``float``): such entries carry
``shared_with`` (the types that have the name too) so their counts read as upper bounds.

Test files (paths with a ``tests``/``tests_extend``/``test`` folder, ``test_*.py``, ``*_test.py``) are
left out: the inventory is what training runs call.

Run with the PyTorch reference environment (it reads ``dir(torch.Tensor)``), on a workspace built by
``auto_convert_llm.sh``::

    .venv-torch/bin/python tests/runtime/op_inventory.py /tmp/ws -o tests/runtime/op_inventory.json
"""
from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from tools.convert.analysis import analyse, dotted_parts  # noqa: E402

REPOS = ("Megatron-LM", "MindSpeed", "MindSpeed-LLM")
TEST_DIRS = {"tests", "tests_extend", "test", "unit_tests", "functional_tests"}
# namespaces whose functions are ops (each entry must be covered or excluded with a reason); the calls
# into any other torch namespace (distributed, cuda, npu, utils, nn classes, autograd, ...) are counted
# per namespace only
OP_NAMESPACES = ("torch.nn.functional", "torch.nn.init", "torch.linalg", "torch.special", "torch.fft", "torch")
SITES_KEPT = 3
STORAGE_GETTERS = ("untyped_storage", "storage", "_typed_storage")


def is_test_file(path: str) -> bool:
    parts = path.split("/")
    name = parts[-1]
    return bool(TEST_DIRS & set(parts[:-1])) or name.startswith("test_") or name.endswith("_test.py")


def tensor_methods() -> tuple[set[str], dict[str, list[str]]]:
    """Public torch.Tensor methods, and for each the other common types that have the name too."""
    import numpy
    import torch
    names = {n for n in dir(torch.Tensor) if not n.startswith("_") and callable(getattr(torch.Tensor, n, None))}
    import logging
    import queue
    others = {"str": str, "list": list, "dict": dict, "set": set, "numpy.ndarray": numpy.ndarray,
              "nn.Module": torch.nn.Module, "queue.Queue": queue.Queue, "logging.Logger": logging.Logger}
    shared = {n: [k for k, cls in others.items() if hasattr(cls, n)] for n in names}
    return names, {n: v for n, v in shared.items() if v}


class _Entry:
    def __init__(self) -> None:
        self.calls = 0
        self.by_repo: Counter = Counter()
        self.positional: Counter = Counter()
        self.keywords: Counter = Counter()
        self.sites: list[str] = []

    def add(self, repo: str, site: str, call: ast.Call, extra_positional: int = 0) -> None:
        self.calls += 1
        self.by_repo[repo] += 1
        starred = any(isinstance(a, ast.Starred) for a in call.args)
        self.positional[f"{len(call.args) + extra_positional}{'+*' if starred else ''}"] += 1
        for kw in call.keywords:
            self.keywords[kw.arg or "**"] += 1
        if len(self.sites) < SITES_KEPT:
            self.sites.append(site)

    def as_json(self) -> dict:
        return {"calls": self.calls, "by_repo": dict(sorted(self.by_repo.items())),
                "positional": dict(self.positional.most_common()), "keywords": dict(self.keywords.most_common()),
                "sites": self.sites}


def _namespace(qual: str) -> str | None:
    for ns in OP_NAMESPACES:
        if qual.startswith(ns + ".") and "." not in qual[len(ns) + 1:]:
            return ns
    return None


def scan(workspace: Path) -> dict:
    methods, shared = tensor_methods()
    functions: dict[str, _Entry] = defaultdict(_Entry)
    method_entries: dict[str, _Entry] = defaultdict(_Entry)
    other: Counter = Counter()
    repos = {}
    for repo in REPOS:
        root = workspace / repo
        files = subprocess.run(["git", "ls-files", "*.py"], cwd=root, check=True, capture_output=True,
                               text=True).stdout.split()
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, check=True, capture_output=True,
                              text=True).stdout.strip()
        kept = [f for f in files if not is_test_file(f)]
        unparsable = 0
        for rel in kept:
            try:
                tree = ast.parse((root / rel).read_bytes())
            except (SyntaxError, ValueError):
                unparsable += 1
                continue
            found = analyse(tree, None, set())   # every import's bindings: `math.ceil` is no method call
            chained = set()
            for chain in found.chains:
                if chain.call is None:
                    continue
                chained.add(id(chain.call))
                qual = chain.qualname
                if qual.split(".")[0] not in ("torch", "mindtorch"):
                    continue
                if qual.startswith("mindtorch."):
                    qual = "torch." + qual[len("mindtorch."):]
                site = f"{repo}/{rel}:{chain.call.lineno}"
                if qual.startswith("torch.Tensor.") and qual.count(".") == 2 and qual.split(".")[2] in methods:
                    method_entries[qual.split(".")[2]].add(repo, site, chain.call, extra_positional=-1)
                elif _namespace(qual):
                    functions[qual].add(repo, site, chain.call)
                else:
                    other[".".join(qual.split(".")[:2])] += 1
            for node in ast.walk(tree):
                if (isinstance(node, ast.Call) and id(node) not in chained and isinstance(node.func, ast.Attribute)
                        and node.func.attr in methods):
                    receiver = dotted_parts(node.func.value)
                    if receiver and receiver[0] in found.bindings:
                        continue   # a module's function (`math.ceil`; torch's are counted above), not a method
                    name = node.func.attr
                    value = node.func.value
                    if (isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute)
                            and value.func.attr in STORAGE_GETTERS):
                        name = "untyped_storage()." + name   # x.untyped_storage().resize_(0): a storage's method
                    method_entries[name].add(repo, f"{repo}/{rel}:{node.lineno}", node)
        repos[repo] = {"commit": head, "python_files": len(files), "test_files_left_out": len(files) - len(kept),
                       "unparsable": unparsable}

    def table(entries: dict[str, _Entry], with_shared: bool) -> dict:
        out = {}
        for name, e in sorted(entries.items(), key=lambda kv: (-kv[1].calls, kv[0])):
            out[name] = e.as_json()
            if with_shared and name in shared:
                out[name]["shared_with"] = shared[name]
        return out

    import torch
    return {"generated_by": "tests/runtime/op_inventory.py (PyTorch " + torch.__version__.split("+")[0] + ")",
            "repos": repos, "functions": table(functions, False), "methods": table(method_entries, True),
            "other_namespaces": dict(other.most_common())}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("workspace", type=Path, help="a workspace built by auto_convert_llm.sh")
    ap.add_argument("-o", "--out", type=Path, help="write the inventory here (default: print it)")
    args = ap.parse_args(argv)
    inventory = scan(args.workspace)
    text = json.dumps(inventory, indent=1) + "\n"
    if args.out:
        args.out.write_text(text)
        f, m = inventory["functions"], inventory["methods"]
        print(f"{len(f)} functions ({sum(e['calls'] for e in f.values())} calls), "
              f"{len(m)} methods ({sum(e['calls'] for e in m.values())} calls) -> {args.out}")
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
