"""Scoped structural rules: edits aimed at one module (glob) and optionally one class/function.

Matching is structural (``ast.dump`` equality, or a dotted name resolved through the file's
imports), so formatting and comments in upstream code do not break a rule, while a real upstream
change does and is reported as drift. A rule whose desired state is already present (the code was
converted before) counts as matched, so re-running on converted code reports no drift.
"""
from __future__ import annotations

import ast
import textwrap
from typing import Iterator

from ..analysis import analyse, dotted_parts
from ..edits import Edit
from ..model import ScopedRule
from .context import FileContext

_ATOMIC = (ast.Name, ast.Attribute, ast.Call, ast.Subscript, ast.Constant, ast.List, ast.Dict, ast.Set,
           ast.ListComp, ast.DictComp, ast.SetComp, ast.GeneratorExp, ast.JoinedStr)
_BODIES = ("body", "orelse", "finalbody")


def _scopes(tree: ast.Module, within: str | None) -> list[ast.AST]:
    if within is None:
        return [tree]
    found: list[ast.AST] = []

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}.{child.name}" if prefix else child.name
                if name == within:
                    found.append(child)
                walk(child, name)
            else:
                walk(child, prefix)

    walk(tree, "")
    return found


def _walk(scopes: list[ast.AST]) -> Iterator[ast.AST]:
    for scope in scopes:
        yield from ast.walk(scope)


def _statements(scopes: list[ast.AST]) -> Iterator[tuple[ast.stmt, list[ast.stmt]]]:
    for node in _walk(scopes):
        for name in _BODIES:
            body = getattr(node, name, None)
            if isinstance(body, list):
                for stmt in body:
                    if isinstance(stmt, ast.stmt):
                        yield stmt, body


def _dump(node: ast.AST) -> str:
    return ast.dump(node, annotate_fields=False, include_attributes=False)


class _Matcher:
    def __init__(self, ctx: FileContext) -> None:
        self.ctx = ctx
        self._bindings: dict[str, str] | None = None

    @property
    def bindings(self) -> dict[str, str]:
        if self._bindings is None:  # every import of the file, not only tracked modules
            self._bindings = analyse(self.ctx.tree, None, set()).bindings
        return self._bindings

    def resolves_to(self, node: ast.AST, dotted: str) -> bool:
        parts = dotted_parts(node)
        if parts is None:
            return False
        if ".".join(parts) == dotted:
            return True
        bound = self.bindings.get(parts[0])
        return bound is not None and ".".join([bound, *parts[1:]]) == dotted


def _whole_lines(ctx: FileContext, node: ast.AST, first_line: int | None = None) -> tuple[int, int] | None:
    """Byte range of the full lines ``node`` occupies, if nothing else shares them."""
    src, idx = ctx.src, ctx.idx
    first = first_line or node.lineno
    start = idx.line_start(first)
    begin = idx.offset(node.lineno, node.col_offset)
    if src[start:begin].strip() not in (b"", b"@"):
        return None
    stop = idx.offset(node.end_lineno, node.end_col_offset)
    line_end = idx.line_end(stop)
    rest = src[stop:line_end].strip()
    if rest and not rest.startswith(b"#"):
        return None
    return start, line_end


def _edit(ctx: FileContext, rule: ScopedRule, start: int, end: int, text: str, line: int, end_line: int,
          what: str) -> Edit:
    return Edit(start, end, text, line, end_line, f"scoped:{rule.action}", f"{rule.id}: {what}", rule.id,
                family="scoped")


def scoped_edits(ctx: FileContext, rules: list[ScopedRule]) -> tuple[list[Edit], set[str]]:
    """Edits of the scoped rules that apply to this file, and the ids of those that matched."""
    edits: list[Edit] = []
    matched: set[str] = set()
    m = _Matcher(ctx)
    for rule in rules:
        scopes = _scopes(ctx.tree, rule.within)
        if not scopes:
            continue
        found = _APPLY[rule.action](ctx, rule, scopes, m)
        if found is not None:
            matched.add(rule.id)
            edits.extend(found)
    return edits, matched


def _inline(source: str) -> tuple[ast.expr, str]:
    """An expression and the text that puts it in place of another one: parenthesized unless atomic,
    so ``a if b else c`` replacing a callee or an operand keeps its meaning."""
    expr = ast.parse(source, mode="eval").body
    return expr, source if isinstance(expr, _ATOMIC) else f"({source})"


def _replace_call(ctx, rule, scopes, m) -> list[Edit] | None:
    edits, applied = [], False
    replacement, text = _inline(rule.replace)
    done = _dump(replacement)
    for node in _walk(scopes):
        if isinstance(node, ast.Call):
            if m.resolves_to(node.func, rule.match):
                start, end = ctx.idx.span(node.func)
                edits.append(_edit(ctx, rule, start, end, text, node.lineno, node.end_lineno,
                                   f"call {rule.match} -> {rule.replace}"))
            elif _dump(node.func) == done:
                applied = True
    return edits if edits or applied else None


def _replace_expr(ctx, rule, scopes, m) -> list[Edit] | None:
    pattern = ast.parse(rule.match, mode="eval").body
    replacement, text = _inline(rule.replace)
    want, done = _dump(pattern), _dump(replacement)
    edits, applied = [], False
    for node in _walk(scopes):
        if isinstance(node, ast.expr) and type(node) is type(pattern) and _dump(node) == want:
            start, end = ctx.idx.span(node)
            edits.append(_edit(ctx, rule, start, end, text, node.lineno, node.end_lineno,
                               f"`{rule.match}` -> `{rule.replace}`"))
        elif isinstance(node, ast.expr) and type(node) is type(replacement) and _dump(node) == done:
            applied = True
    return edits if edits or applied else None


def _removal(ctx, rule, stmt: ast.stmt, body: list[ast.stmt]) -> Edit:
    """Delete the statement's lines, or leave ``pass`` where the block would become empty."""
    lines = _whole_lines(ctx, stmt)
    if len(body) == 1 or lines is None:
        start, end = ctx.idx.span(stmt)
        return _edit(ctx, rule, start, end, "pass", stmt.lineno, stmt.end_lineno, "statement replaced by pass")
    return _edit(ctx, rule, lines[0], lines[1], "", stmt.lineno, stmt.end_lineno, "statement removed")


def _remove_stmt(ctx, rule, scopes, m) -> list[Edit] | None:
    patterns = [_dump(s) for s in ast.parse(rule.match).body]
    edits = []
    for stmt, body in _statements(scopes):
        if _dump(stmt) in patterns:
            edits.append(_removal(ctx, rule, stmt, body))
    return edits or None


def _remove_decorator(ctx, rule, scopes, m) -> list[Edit] | None:
    pattern = _dump(ast.parse(rule.match, mode="eval").body)
    dotted = all(p.isidentifier() for p in rule.match.split("."))
    edits = []
    for node in _walk(scopes):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for dec in node.decorator_list:
            target = dec.func if isinstance(dec, ast.Call) else dec
            if _dump(dec) == pattern or (dotted and m.resolves_to(target, rule.match)):
                lines = _whole_lines(ctx, dec)
                if lines is None:
                    continue
                edits.append(_edit(ctx, rule, lines[0], lines[1], "", dec.lineno, dec.end_lineno,
                                   f"decorator @{ctx.idx.text(dec)} removed"))
    return edits or None


def _insert_import(ctx, rule, scopes, m) -> list[Edit] | None:
    present = {_dump(s) for s in ctx.tree.body if isinstance(s, (ast.Import, ast.ImportFrom))}
    missing = [s for s in ast.parse(rule.replace).body if _dump(s) not in present]
    if not missing:
        return []
    text = ctx.idx.newline.join(ast.unparse(s) for s in missing)
    edit = ctx.import_edit(text, rule.id, "scoped")
    edit.op, edit.message = "scoped:insert_import", f"{rule.id}: inserted `{text}`"
    return [edit]


def body_fingerprint(fn: ast.FunctionDef | ast.AsyncFunctionDef, keep_docstring: bool = True) -> str:
    """A structural fingerprint of a function body (formatting and comments do not count)."""
    import hashlib
    keep = 1 if keep_docstring and _docstring(fn) else 0
    dump = "\n".join(_dump(s) for s in fn.body[keep:])
    return hashlib.sha256(dump.encode()).hexdigest()[:12]


def _docstring(fn: ast.AST) -> bool:
    body = fn.body
    return bool(body) and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
        and isinstance(body[0].value.value, str)


def _replace_body(ctx, rule, scopes, m) -> list[Edit] | None:
    new_body = ast.parse(rule.replace).body
    edits: list[Edit] = []
    functions = [fn for fn in scopes if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))]
    for fn in functions:
        keep = 1 if rule.keep_docstring and _docstring(fn) else 0
        old = fn.body[keep:]
        if [_dump(s) for s in old] == [_dump(s) for s in new_body]:
            continue  # already replaced
        if rule.expect_body and body_fingerprint(fn, rule.keep_docstring) != rule.expect_body:
            return None  # upstream changed the body this rule was written against: drift
        first = fn.body[0]
        if first.lineno == fn.lineno:
            raise ValueError(f"{rule.id}: cannot replace the one-line body of {rule.within}")
        line_start = ctx.idx.line_start(first.lineno)
        indent = ctx.src[line_start:ctx.idx.offset(first.lineno, first.col_offset)].decode()
        nl = ctx.idx.newline
        text = textwrap.indent(textwrap.dedent(rule.replace).strip("\n"), indent).replace("\n", nl) + nl
        if old:
            start = ctx.idx.line_start(old[0].lineno)
            end_line = fn.body[-1].end_lineno
        else:  # only a docstring: the new body goes after it
            start = ctx.idx.line_start(fn.body[0].end_lineno + 1)
            end_line = fn.body[0].end_lineno
        end = ctx.idx.line_end(ctx.idx.offset(fn.body[-1].end_lineno, fn.body[-1].end_col_offset))
        if not old:
            end = start
        edits.append(_edit(ctx, rule, start, end, text, old[0].lineno if old else end_line, end_line,
                           f"body of {rule.within} replaced"))
    return edits if functions else None


_APPLY = {
    "replace_call": _replace_call,
    "replace_expr": _replace_expr,
    "remove_stmt": _remove_stmt,
    "remove_decorator": _remove_decorator,
    "insert_import": _insert_import,
    "replace_body": _replace_body,
}
