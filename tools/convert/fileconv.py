"""Convert one file: bytes in, a :class:`FileResult` out. Never raises for bad input.

Steps: prefilter on trigger tokens (most files stop here, unparsed); decode once
(:mod:`sourcetext`); one *edit pass* (``ast.parse`` of the text, collect edits from every selected
family, splice them into the text's UTF-8 form); compile the result and run the same edit pass on
it (the result must be a fixed point of the same rules, so a second run changes nothing); encode
it in the file's own encoding. Any failure leaves the file unchanged and says why.
"""
from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass

from .analysis import analyse
from .cstedit import edit_call
from .edits import Edit, EditConflict, LineIndex, apply_edits
from .families.apis import api_edits
from .families.context import FileContext
from .families.imports import import_edits
from .families.scoped import scoped_edits
from .model import Category, Change, FileResult, RuleSet, SkipReason, Status, Use
from .sourcetext import SourceError, SourceText, decode, explain_syntax_error
from .transforms import TRANSFORMS

__all__ = ["FileResult", "convert_source", "needs_parse", "sha"]

OPT_OUT = b"ms-convert: skip"
OPT_OUT_FILE = b"ms-convert: skip-file"
_TOO_DEEP = ("an expression is nested too deeply for the engine (Python's recursion limit; Python itself parses "
             "it): convert the file by hand or exclude it")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def needs_parse(relpath: str, data: bytes, rules: RuleSet) -> bool:
    """The prefilter: a trigger token in the bytes, or a scoped/transform rule aimed at the path."""
    if any(tok in data for tok in rules.trigger_tokens):
        return True
    return any(r.applies_to(relpath) for r in rules.scoped)


class _Outcome(Exception):
    def __init__(self, status: Status, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def _collect(ctx: FileContext, rules: RuleSet, relpath: str) -> tuple[list[Edit], list[str], set[str]]:
    edits: list[Edit] = []
    if rules.imports or rules.apis:
        edits += import_edits(ctx)
    if rules.apis:
        edits += api_edits(ctx)
    else:
        _record_plain_uses(ctx)
    transformed = False
    for t in rules.transforms:
        if t.applies_to(relpath):
            for e in TRANSFORMS[t.transform](ctx):
                e.rule = t.id
                edits.append(e)
            transformed = transformed or t.transform == "retarget_dynamic_imports"
    if not transformed:
        for dyn in ctx.analysis.dynamic:
            if rules.retarget(dyn.module) != dyn.module:
                ctx.notes.append(Use(f"{dyn.how}({dyn.module!r})", dyn.node.lineno, dyn.node.end_lineno,
                                     Category.UNSUPPORTED, "", "dynamic import of a retargeted module is not rewritten: "
                                     "convert it by hand or select the retarget_dynamic_imports transform"))
    considered = [r for r in rules.scoped if r.applies_to(relpath)]
    matched: set[str] = set()
    if considered:
        scoped, matched = scoped_edits(ctx, considered)
        edits += scoped
    return edits, [r.id for r in considered], matched


def _record_plain_uses(ctx: FileContext) -> None:
    for chain in ctx.analysis.chains:
        canon = ctx.rules.canonical(chain.qualname)
        if "." in canon and canon.split(".")[0] in ctx.rules.import_roots:
            ctx.uses.append(Use(canon, chain.node.lineno, chain.node.end_lineno, Category.RETARGETED))


def _statement_spans(tree: ast.Module) -> list[tuple[int, int]]:
    spans = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.stmt):
            continue
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.stmt):
            spans.append((first, max(first, body[0].lineno - 1)))   # the header of a compound statement
        else:
            spans.append((first, node.end_lineno))
    return spans


def _drop_opted_out(edits: list[Edit], idx: LineIndex, tree: ast.Module) -> tuple[list[Edit], int]:
    src = idx.src
    marks: set[int] = set()
    pos = src.find(OPT_OUT)
    while pos != -1:
        marks.add(idx.line_of(pos))
        pos = src.find(OPT_OUT, pos + 1)
    if not marks:
        return edits, 0
    spans = _statement_spans(tree)
    kept: list[Edit] = []
    for e in edits:
        around = [s for s in spans if s[0] <= e.line <= s[1]]
        span = min(around, key=lambda s: s[1] - s[0]) if around else (e.line, e.end_line)
        if not e.insert and any(span[0] <= m <= span[1] for m in marks):
            continue
        kept.append(e)
    return kept, len(edits) - len(kept)


@dataclass
class _Pass:
    """One edit pass over a source text: what the rules found and what applying them gives."""

    src: bytes                    # the UTF-8 form of the text
    new_src: bytes
    applied: list[Edit]
    uses: list[Use]
    considered: list[str]
    matched: set[str]
    opted_out: int


def _edit_pass(relpath: str, text: str, tree: ast.Module, rules: RuleSet) -> _Pass:
    """Collect every family's edits on ``tree`` (parsed from ``text``) and apply them. Positions are
    UTF-8 byte offsets of ``text``, as :mod:`ast` reports them for a ``str``. Raises EditConflict or
    ValueError when the rules cannot be applied."""
    src = text.encode("utf-8")
    idx = LineIndex(src)
    ctx = FileContext(relpath, src, idx, tree, analyse(tree, rules.tracked_roots, rules.import_roots), rules)
    edits, considered, matched = _collect(ctx, rules, relpath)
    edits, opted_out = _drop_opted_out(edits, idx, tree)
    new_src, applied = apply_edits(src, edits, edit_call)
    return _Pass(src, new_src, applied, ctx.uses + ctx.notes, considered, matched, opted_out)


def _fill(result: FileResult, p: _Pass) -> None:
    result.parsed = True
    result.scoped_considered = p.considered
    result.scoped_matched = sorted(p.matched)
    result.opted_out = p.opted_out
    result.uses = list(p.uses)
    result.changes = [Change(e.line, e.end_line, e.op, e.message, e.rule) for e in p.applied]


def _convert(relpath: str, data: bytes, rules: RuleSet, result: FileResult) -> bytes | None:
    if b"\0" in data:
        raise _Outcome(Status.FAILED, "binary file (contains NUL bytes); not Python source")
    if not needs_parse(relpath, data, rules):
        raise _Outcome(Status.SKIPPED, SkipReason.NO_TRIGGER)
    if OPT_OUT_FILE in data[:4096]:
        raise _Outcome(Status.SKIPPED, SkipReason.OPTED_OUT)
    try:
        source = decode(data)
    except SourceError as exc:
        raise _Outcome(Status.FAILED, str(exc)) from None
    try:
        tree = ast.parse(source.text, filename=relpath)   # the text: a cookie must not re-decode it
    except SyntaxError as exc:
        raise _Outcome(Status.FAILED, explain_syntax_error(source.text, exc)) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise _Outcome(Status.FAILED, f"cannot parse: {type(exc).__name__}: {exc}") from None
    result.parsed = True
    try:
        first = _edit_pass(relpath, source.text, tree, rules)
    except (EditConflict, ValueError) as exc:
        raise _Outcome(Status.FAILED, f"rules could not be applied: {exc}") from None
    except RecursionError:
        raise _Outcome(Status.FAILED, _TOO_DEEP) from None
    _fill(result, first)
    if first.new_src == first.src:
        return None
    new_data = _encode(source, first.new_src)
    result.fixed_point = _verify(relpath, first, rules, new_data).to_json()
    return new_data


def _encode(source: SourceText, new_src: bytes) -> bytes:
    try:
        return source.encode(new_src)
    except SourceError as exc:
        raise _Outcome(Status.FAILED, f"{exc}; file left unchanged") from None


def _verify(relpath: str, first: _Pass, rules: RuleSet, new_data: bytes) -> FileResult:
    """The output must compile and be a fixed point: the same edit pass on it changes nothing.
    Returns the result of converting ``new_data`` (cached under its sha)."""
    text = first.new_src.decode("utf-8")
    try:
        tree = ast.parse(text, filename=relpath)
        compile(tree, relpath, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", "?")
        raise _Outcome(Status.FAILED, f"conversion produced code that does not compile (line {line}: "
                       f"{getattr(exc, 'msg', exc)}); file left unchanged - please report this") from None
    try:
        second = _edit_pass(relpath, text, tree, rules)
    except (EditConflict, ValueError) as exc:
        second, reason = None, f": {exc}"
    except RecursionError:
        raise _Outcome(Status.FAILED, _TOO_DEEP) from None
    else:
        reason = ""
    if second is None or second.new_src != second.src:
        raise _Outcome(Status.FAILED, "conversion is not idempotent here (a second pass would change the file "
                       f"again{reason}); file left unchanged - please report this")
    again = FileResult(relpath, Status.UNCHANGED, sha=sha(new_data))
    _fill(again, second)
    # a rule applied by the first pass (a removed statement) finds nothing left to do in the output:
    # it still counts as matched there, so a re-run on converted code reports no drift
    again.scoped_matched = sorted(second.matched | first.matched)
    return again


def convert_source(relpath: str, data: bytes, rules: RuleSet) -> FileResult:
    """Convert the source of one file. Bad input yields a failed/skipped result, never an exception."""
    result = FileResult(relpath, Status.UNCHANGED, sha=sha(data))
    try:
        new = _convert(relpath, data, rules, result)
    except _Outcome as outcome:
        result.status, result.reason = outcome.status, str(outcome.reason)
        result.changes = [] if outcome.status == Status.FAILED else result.changes
        return result
    except Exception as exc:  # an engine bug must not stop the run: report it for this file
        result.status = Status.FAILED
        detail = " ".join(str(exc).split())   # one line, bounded: libcst's messages span lines
        detail = detail if len(detail) <= 300 else detail[:300] + "..."
        result.reason = f"internal error: {type(exc).__name__}: {detail} - please report this"
        result.changes = []
        return result
    if new is not None:
        result.status, result.new_data, result.new_sha = Status.CHANGED, new, sha(new)
    return result
