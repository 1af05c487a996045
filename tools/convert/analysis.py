"""One fast ``ast`` pass over a file: what it imports, which dotted names it uses, where.

No scope analysis: bindings are collected file-wide (an import inside a function counts too),
which is what a porting tool needs and costs one walk. Positions are byte offsets into the
UTF-8 source, which is what :mod:`ast` reports and what the splicer needs.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field

DYNAMIC_IMPORT_CALLS = {
    "importlib.import_module", "import_module", "__import__", "importlib.__import__",
    "importlib.util.find_spec", "find_spec", "pkgutil.find_loader",
}


@dataclass
class Chain:
    """A maximal dotted name ``a.b.c`` rooted at a bound import name."""

    node: ast.expr
    parts: list[str]
    qualname: str          # resolved through the file's imports, as written (before conversion)
    root_binding: str      # the qualified name the root local name is bound to
    call: ast.Call | None  # the call whose ``func`` this chain is, if any


@dataclass
class DynamicImport:
    node: ast.Call
    module: str
    how: str


@dataclass
class Analysis:
    tree: ast.Module
    bindings: dict[str, str] = field(default_factory=dict)       # local name -> qualified name
    from_names: dict[str, str] = field(default_factory=dict)     # locals bound by ``from m import x``
    module_level: set[str] = field(default_factory=set)          # locals bound by module-level imports
    imports: list[ast.Import | ast.ImportFrom] = field(default_factory=list)  # imports of tracked modules
    chains: list[Chain] = field(default_factory=list)
    dynamic: list[DynamicImport] = field(default_factory=list)


def dotted_parts(node: ast.AST) -> list[str] | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return parts[::-1]
    return None


def subchain(node: ast.expr, drop: int) -> ast.expr:
    """The node of the chain with its last ``drop`` attributes removed."""
    for _ in range(drop):
        assert isinstance(node, ast.Attribute)
        node = node.value
    return node


class _Collector(ast.NodeVisitor):
    def __init__(self) -> None:
        self.raw_chains: list[tuple[ast.expr, list[str]]] = []
        self.call_of: dict[int, ast.Call] = {}
        self.calls: list[ast.Call] = []
        self.import_nodes: list[tuple[ast.Import | ast.ImportFrom, bool]] = []
        self._depth = 0

    def _scoped(self, node: ast.AST) -> None:
        self._depth += 1
        self.generic_visit(node)
        self._depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = visit_Lambda = _scoped

    def visit_Import(self, node: ast.Import) -> None:
        self.import_nodes.append((node, self._depth == 0))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self.import_nodes.append((node, self._depth == 0))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        parts = dotted_parts(node)
        if parts is None:
            self.generic_visit(node)
        else:
            self.raw_chains.append((node, parts))

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.raw_chains.append((node, [node.id]))

    def visit_Call(self, node: ast.Call) -> None:
        self.call_of[id(node.func)] = node
        self.calls.append(node)
        self.generic_visit(node)


def analyse(tree: ast.Module, tracked_roots: set[str] | None, dynamic_roots: set[str]) -> Analysis:
    """Collect the bindings of tracked modules (``None``: of every module) and every chain rooted at one."""
    col = _Collector()
    col.visit(tree)
    result = Analysis(tree)
    for node, top in col.import_nodes:
        if isinstance(node, ast.Import):
            tracked = False
            for alias in node.names:
                root = alias.name.split(".")[0]
                if tracked_roots is not None and root not in tracked_roots:
                    continue
                tracked = True
                local, qual = (alias.asname, alias.name) if alias.asname else (root, root)
                result.bindings.setdefault(local, qual) if not top else result.bindings.__setitem__(local, qual)
                if top:
                    result.module_level.add(local)
            if tracked:
                result.imports.append(node)
        elif node.level == 0 and node.module and (tracked_roots is None or node.module.split(".")[0] in tracked_roots):
            result.imports.append(node)
            for alias in node.names:
                if alias.name == "*":
                    continue
                local = alias.asname or alias.name
                qual = f"{node.module}.{alias.name}"
                if top or local not in result.bindings:
                    result.bindings[local] = qual
                    result.from_names[local] = qual
                if top:
                    result.module_level.add(local)
    if result.bindings:
        for node, parts in col.raw_chains:
            bound = result.bindings.get(parts[0])
            if bound is None:
                continue
            qual = ".".join([bound, *parts[1:]])
            result.chains.append(Chain(node, parts, qual, bound, col.call_of.get(id(node))))
    if dynamic_roots:
        for call in col.calls:
            parts = dotted_parts(call.func)
            if not parts or ".".join(parts) not in DYNAMIC_IMPORT_CALLS or not call.args:
                continue
            arg = call.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value.split(".")[0] in dynamic_roots:
                result.dynamic.append(DynamicImport(call, arg.value, ".".join(parts)))
    return result
