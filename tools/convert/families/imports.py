"""Import retargeting: ``torch`` -> ``mindtorch`` in every import form, keeping local names."""
from __future__ import annotations

import ast

from ..cstedit import rewrite_import
from ..edits import Edit
from ..model import Category, Use
from .context import FileContext


def _needs_change(node: ast.Import | ast.ImportFrom, ctx: FileContext) -> tuple[bool, str]:
    rules = ctx.rules
    if isinstance(node, ast.Import):
        hit = [a.name for a in node.names if rules.retarget(a.name) != a.name]
        return bool(hit), ", ".join(hit)
    module = node.module or ""
    names = [a.name for a in node.names if (r := rules.api_map.get(f"{module}.{a.name}")) and r.target]
    return rules.retarget(module) != module or bool(names), module


def _rule_for(name: str, ctx: FileContext) -> str:
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        for r in ctx.rules.imports:
            if r.module == ".".join(parts[:i]):
                return r.id
    return ""


def import_edits(ctx: FileContext) -> list[Edit]:
    edits: list[Edit] = []
    for node in ctx.analysis.imports:
        _record_uses(node, ctx)
        change, what = _needs_change(node, ctx)
        if not change:
            continue
        old = ctx.idx.text(node)
        new = rewrite_import(old, ctx.rules)
        if new == old:
            continue
        start, end = ctx.idx.span(node)
        split = isinstance(node, ast.ImportFrom) and "; " in new and "; " not in old
        rule = _rule_for(what.split(", ")[0], ctx) or "API"
        edits.append(Edit(start, end, new, node.lineno, node.end_lineno, "import-retarget",
                          f"`{' '.join(old.split())}` -> `{' '.join(new.split())}`"
                          + (" (API rule binds a mapped name)" if split else ""),
                          rule, family="import"))
    return edits


def _record_uses(node: ast.Import | ast.ImportFrom, ctx: FileContext) -> None:
    """An imported name is an API use: a name the target lacks fails at import time."""
    rules = ctx.rules
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names if "." in a.name]
    elif isinstance(node, ast.ImportFrom):
        names = [f"{node.module}.{a.name}" for a in node.names if a.name != "*"]
    for name in names:
        canon = rules.canonical(name)
        if canon.split(".")[0] not in rules.source_roots:
            continue
        rule = rules.api_map.get(canon)
        if rule is not None and rule.unsupported:
            ctx.uses.append(Use(canon, node.lineno, node.end_lineno, Category.UNSUPPORTED, rule.id, rule.hint))
        elif rule is not None:
            ctx.uses.append(Use(canon, node.lineno, node.end_lineno, Category.REWRITTEN, rule.id))
        else:
            ctx.uses.append(Use(canon, node.lineno, node.end_lineno, Category.RETARGETED))
