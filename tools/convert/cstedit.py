"""The libcst half of the engine: regenerate the few regions whose formatting must be kept.

Import statements and call argument lists are parsed as small snippets (never the whole file),
edited as libcst nodes, and printed back: comments, parentheses and trailing commas survive.
"""
from __future__ import annotations

from typing import Callable

import libcst as cst
from libcst.helpers import get_full_name_for_node

from .model import ApiRule, RuleSet

_COMMA = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
_EQ = cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace(""))
_EMPTY = cst.Module(body=[])


def _name_node(dotted: str) -> cst.Attribute | cst.Name:
    node: cst.Attribute | cst.Name = cst.Name(dotted.split(".")[0])
    for part in dotted.split(".")[1:]:
        node = cst.Attribute(value=node, attr=cst.Name(part))
    return node


def _with_commas(items: list, keep_trailing: bool) -> list:
    out = []
    for i, item in enumerate(items):
        last = i == len(items) - 1
        if not last and item.comma is cst.MaybeSentinel.DEFAULT:
            item = item.with_changes(comma=_COMMA)
        elif last and not keep_trailing and item.comma is not cst.MaybeSentinel.DEFAULT:
            item = item.with_changes(comma=cst.MaybeSentinel.DEFAULT)
        out.append(item)
    return out


def _alias(dotted: str, asname: str | None) -> cst.ImportAlias:
    return cst.ImportAlias(
        name=_name_node(dotted),
        asname=cst.AsName(name=cst.Name(asname)) if asname else None,
    )


def _newline_of(snippet: str) -> str:
    return "\r\n" if "\r\n" in snippet else "\r" if "\r" in snippet else "\n"


def _keeping_newlines(edit: Callable[[str], str], snippet: str) -> str:
    """``edit(snippet)`` with the snippet's own line breaks: libcst prints every one as ``\n``, which
    would leave a CRLF file with mixed line endings."""
    nl = _newline_of(snippet)
    if nl == "\n":
        return edit(snippet)
    plain = snippet.replace(nl, "\n")
    new = edit(plain)
    return snippet if new == plain else new.replace("\n", nl)


def rewrite_import(snippet: str, rules: RuleSet) -> str:
    """Retarget one ``import``/``from ... import`` statement; return its new source.

    ``import torch.distributed`` binds ``torch`` and loads the submodule, so it becomes
    ``import mindtorch.distributed, mindtorch as torch``: the body keeps using ``torch``.
    A from-imported name that an API rule maps elsewhere is split into its own statement,
    ``from <target module> import <target> as <local name>``, so uses need no edit.
    """
    return _keeping_newlines(lambda text: _rewrite_import(text, rules), snippet)


def _rewrite_import(snippet: str, rules: RuleSet) -> str:
    stmt = cst.parse_statement(snippet)
    assert isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1
    node = stmt.body[0]
    if isinstance(node, cst.Import):
        return _EMPTY.code_for_node(_rewrite_plain(node, rules))
    assert isinstance(node, cst.ImportFrom)
    return "; ".join(_EMPTY.code_for_node(n) for n in _rewrite_from(node, rules))


def _rewrite_plain(node: cst.Import, rules: RuleSet) -> cst.Import:
    names: list[cst.ImportAlias] = []
    seen: set[tuple[str, str | None]] = set()

    def add(alias: cst.ImportAlias, key: tuple[str, str | None]) -> None:
        if key not in seen:
            seen.add(key)
            names.append(alias)

    for alias in node.names:
        dotted = get_full_name_for_node(alias.name)
        asname = alias.asname.name.value if alias.asname else None  # type: ignore[union-attr]
        new = rules.retarget(dotted)
        if new == dotted:
            add(alias, (dotted, asname))
        elif asname:
            add(alias.with_changes(name=_name_node(new)), (new, asname))
        else:
            root = dotted.split(".")[0]
            new_root = rules.retarget(root)
            if "." in dotted:
                add(_alias(new, None), (new, None))
            if new.split(".")[0] != root:
                add(_alias(new_root, root if new_root != root else None), (new_root, root))
    return node.with_changes(names=_with_commas(names, keep_trailing=False))


def _rewrite_from(node: cst.ImportFrom, rules: RuleSet) -> list[cst.ImportFrom]:
    module = get_full_name_for_node(node.module)
    new_module = rules.retarget(module)
    if isinstance(node.names, cst.ImportStar):
        return [node.with_changes(module=_name_node(new_module))]
    kept: list[cst.ImportAlias] = []
    split: list[cst.ImportFrom] = []
    for alias in node.names:
        name = get_full_name_for_node(alias.name)
        rule = rules.api_map.get(f"{module}.{name}")
        if rule is None or rule.target is None:
            kept.append(alias)
            continue
        local = alias.asname.name.value if alias.asname else name  # type: ignore[union-attr]
        attr = rule.target_attr
        split.append(cst.ImportFrom(
            module=_name_node(rule.target_module),
            names=[_alias(attr, local if local != attr else None)],
        ))
    out: list[cst.ImportFrom] = []
    if kept:
        parens = node.lpar is not None
        out.append(node.with_changes(module=_name_node(new_module),
                                     names=_with_commas(kept, keep_trailing=parens and kept[-1] is node.names[-1])))
    return out + split


def edit_call(snippet: str, rule: ApiRule) -> str:
    """Apply ``rule``'s argument edits (rename, drop, add default) to the call in ``snippet``."""
    return _keeping_newlines(lambda text: _edit_call(text, rule), snippet)


def _edit_call(snippet: str, rule: ApiRule) -> str:
    call = cst.parse_expression(snippet)
    if not isinstance(call, cst.Call):
        raise ValueError(f"expected a call, got: {snippet[:60]!r}")
    args = list(call.args)
    had_trailing = bool(args) and args[-1].comma is not cst.MaybeSentinel.DEFAULT
    positional = 0
    for a in args:
        if a.keyword is not None or a.star:
            break
        positional += 1
    rename = dict(rule.kwargs_rename)
    drop = set(rule.kwargs_drop)
    drop_positions = {rule.args.index(n) for n in drop if n in rule.args and rule.args.index(n) < positional}
    present = {a.keyword.value for a in args if a.keyword is not None}
    present |= {rule.args[i] for i in range(min(positional, len(rule.args)))}
    new_args: list[cst.Arg] = []
    last_kept = False
    for i, a in enumerate(args):
        if i in drop_positions:
            continue
        if a.keyword is not None:
            key = a.keyword.value
            if key in drop:
                continue
            if key in rename:
                a = a.with_changes(keyword=cst.Name(rename[key]))
        new_args.append(a)
        last_kept = i == len(args) - 1
    if drop_positions and any(i > min(drop_positions) for i in range(positional) if i not in drop_positions):
        raise ValueError(f"{rule.id}: cannot drop a positional argument that is followed by others")
    for key, value in rule.defaults:
        if key not in present and rename.get(key, key) not in present:
            new_args.append(cst.Arg(keyword=cst.Name(key), value=cst.parse_expression(value), equal=_EQ))
            last_kept = False
    if new_args == args:
        return snippet
    new_args = _with_commas(new_args, keep_trailing=had_trailing and last_kept)
    return _EMPTY.code_for_node(call.with_changes(args=new_args))
