"""API mapping: a fully qualified torch API -> a target, with argument edits.

Names are resolved through the file's imports (``F.gelu`` with ``import torch.nn.functional as
F`` is ``torch.nn.functional.gelu``). The target is written through a module-level alias when
one reaches it after retargeting (``torch.npu.x`` when ``torch`` now is ``mindtorch``), else
fully qualified with its import inserted once.
"""
from __future__ import annotations

import ast

from ..analysis import Chain, subchain
from ..edits import Edit
from ..model import ApiRule, Category, Use
from .context import FileContext


def _rule_for(qualname: str, ctx: FileContext) -> ApiRule | None:
    parts = qualname.split(".")
    api_map = ctx.rules.api_map
    for i in range(len(parts), 0, -1):
        rule = api_map.get(".".join(parts[:i]))
        if rule is not None:
            return rule
    return None


def _target_text(rule: ApiRule, chain: Chain, ctx: FileContext) -> tuple[str, bool]:
    """Source text for ``rule.target`` and whether its module must be imported."""
    target = rule.target or ""
    best: tuple[int, int, str] | None = None
    a = ctx.analysis
    for local in a.module_level:
        post = ctx.rules.retarget(a.bindings[local])
        if target == post or target.startswith(post + "."):
            key = (len(post), local == chain.parts[0], local)
            if best is None or key > best:
                best = key
    if best is not None:
        local = best[2]
        post = ctx.rules.retarget(a.bindings[local])
        return local + target[len(post):], False
    return target, True


def _unsupported_args(rule: ApiRule, call: ast.Call) -> list[str]:
    found = []
    given = {k.arg for k in call.keywords if k.arg}
    npos = 0
    for arg in call.args:
        if isinstance(arg, ast.Starred):
            break
        npos += 1
    for name, _hint in rule.unsupported_args:
        if name in given or (name in rule.args and rule.args.index(name) < npos):
            found.append(name)
    return found


def api_edits(ctx: FileContext) -> list[Edit]:
    edits: list[Edit] = []
    rules = ctx.rules
    inserted: set[str] = set()
    for chain in ctx.analysis.chains:
        if len(chain.parts) == 1 and chain.qualname == chain.root_binding and "." not in chain.qualname:
            continue  # the bare module object (``torch`` passed around), not an API
        canon = rules.canonical(chain.qualname)
        if canon.split(".")[0] not in rules.source_roots:
            continue
        node = chain.node
        rule = _rule_for(chain.qualname, ctx)
        if rule is None:
            ctx.uses.append(Use(canon, node.lineno, node.end_lineno, Category.RETARGETED))
            continue
        if rule.unsupported:
            ctx.uses.append(Use(canon, node.lineno, node.end_lineno, Category.UNSUPPORTED, rule.id, rule.hint))
            continue
        api_len = rule.api.count(".") + 1
        root_len = chain.root_binding.count(".") + 1
        qual_len = chain.qualname.count(".") + 1
        call = chain.call if api_len == qual_len else None
        if call is not None:
            for name in _unsupported_args(rule, call):
                hint = dict(rule.unsupported_args)[name]
                ctx.uses.append(Use(f"{rule.api}({name}=...)", call.lineno, call.end_lineno, Category.UNSUPPORTED,
                                    rule.id, hint))
        ctx.uses.append(Use(canon, node.lineno, node.end_lineno, Category.REWRITTEN, rule.id))
        if chain.root_binding == rule.api and chain.parts[0] in ctx.analysis.from_names:
            pass  # bound by ``from m import name``: the import statement is retargeted instead
        elif api_len >= root_len:
            sub = subchain(node, qual_len - api_len)
            text, needs_import = _target_text(rule, chain, ctx)
            start, end = ctx.idx.span(sub)
            edits.append(Edit(start, end, text, sub.lineno, sub.end_lineno, "api-rewrite",
                              f"{rule.api} -> {rule.target}", rule.id))
            if needs_import and rule.target_module not in inserted:
                inserted.add(rule.target_module)
                edits.append(ctx.import_edit(f"import {rule.target_module}", rule.id, "api"))
        else:
            continue  # the rule names something above this alias; nothing to rewrite here
        if call is not None and rule.edits_arguments:
            start, end = ctx.idx.span(call)
            edits.append(Edit(start, end, None, call.lineno, call.end_lineno, "api-arguments",
                              f"{rule.api}: argument edits", rule.id, call_rule=rule))
    return edits
