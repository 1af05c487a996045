"""Convert one file: bytes in, a :class:`FileResult` out. Never raises for bad input.

Steps: prefilter on trigger tokens (most files stop here, unparsed); decode; ``ast.parse``;
collect edits from every selected family; splice them in; compile the result and re-analyse it
(the result must be a fixed point of the same rules, so a second run changes nothing). Any
failure leaves the file unchanged and says why.
"""
from __future__ import annotations

import ast
import codecs
import hashlib
import io
import tokenize
from dataclasses import asdict, dataclass, field

from .analysis import analyse
from .cstedit import edit_call
from .edits import Edit, EditConflict, LineIndex, apply_edits
from .families.apis import api_edits
from .families.context import FileContext, Use
from .families.imports import import_edits
from .families.scoped import scoped_edits
from .model import RuleSet
from .transforms import TRANSFORMS

OPT_OUT = b"ms-convert: skip"
OPT_OUT_FILE = b"ms-convert: skip-file"


@dataclass
class FileResult:
    """What happened to one file. Everything but ``new_data`` is JSON-able (it is cached)."""

    path: str
    status: str                       # changed | unchanged | skipped | failed
    reason: str = ""
    parsed: bool = False
    sha: str = ""
    new_sha: str = ""
    changes: list[list] = field(default_factory=list)      # [line, end_line, op, message, rule]
    uses: list[list] = field(default_factory=list)         # [api, line, end_line, category, rule, hint]
    scoped_considered: list[str] = field(default_factory=list)
    scoped_matched: list[str] = field(default_factory=list)
    opted_out: int = 0
    new_data: bytes | None = None
    fixed_point: dict | None = None   # the result of converting the output (cached under new_sha)
    worker_rss_kb: int = 0            # peak RSS of the process that converted it (not cached)

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("new_data")
        d.pop("fixed_point")
        d.pop("worker_rss_kb")
        return d

    @classmethod
    def from_json(cls, d: dict) -> "FileResult":
        return cls(**d)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def needs_parse(relpath: str, data: bytes, rules: RuleSet) -> bool:
    """The prefilter: a trigger token in the bytes, or a scoped/transform rule aimed at the path."""
    if any(tok in data for tok in rules.trigger_tokens):
        return True
    return any(r.applies_to(relpath) for r in rules.scoped)


def _decode(data: bytes) -> tuple[str, str]:
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    return data.decode(encoding), encoding


class _Outcome(Exception):
    def __init__(self, status: str, reason: str) -> None:
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
                                     "unsupported", "", "dynamic import of a retargeted module is not rewritten: "
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
            ctx.uses.append(Use(canon, chain.node.lineno, chain.node.end_lineno, "retargeted"))


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


def _drop_opted_out(edits: list[Edit], text: bytes, tree: ast.Module) -> tuple[list[Edit], int]:
    marks = {i + 1 for i, line in enumerate(text.split(b"\n")) if OPT_OUT in line}
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


def _convert(relpath: str, data: bytes, rules: RuleSet, result: FileResult) -> bytes | None:
    if b"\0" in data:
        raise _Outcome("failed", "binary file (contains NUL bytes); not Python source")
    if not needs_parse(relpath, data, rules):
        raise _Outcome("skipped", "no trigger token")
    if OPT_OUT_FILE in data[:4096]:
        raise _Outcome("skipped", "opted out with '# ms-convert: skip-file'")
    try:
        text, encoding = _decode(data)
    except (SyntaxError, UnicodeDecodeError, LookupError) as exc:
        raise _Outcome("failed", f"cannot decode: {exc}; save the file as UTF-8") from None
    src = text.encode("utf-8")
    try:
        tree = ast.parse(src, filename=relpath)
    except SyntaxError as exc:
        raise _Outcome("failed", f"syntax error at line {exc.lineno}: {exc.msg} (Python 2 code or a merge "
                       "conflict? fix the file or exclude it)") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise _Outcome("failed", f"cannot parse: {type(exc).__name__}: {exc}") from None
    result.parsed = True
    ctx = FileContext(relpath, src, LineIndex(src), tree, analyse(tree, rules.tracked_roots, rules.import_roots), rules)
    try:
        edits, result.scoped_considered, matched = _collect(ctx, rules, relpath)
        edits, result.opted_out = _drop_opted_out(edits, src, tree)
        new_src, applied = apply_edits(src, edits, edit_call)
    except (EditConflict, ValueError) as exc:
        raise _Outcome("failed", f"rules could not be applied: {exc}") from None
    result.scoped_matched = sorted(matched)
    result.uses = [[u.api, u.line, u.end_line, u.category, u.rule, u.hint] for u in ctx.uses + ctx.notes]
    result.changes = [[e.line, e.end_line, e.op, e.message, e.rule] for e in applied]
    if new_src == src:
        return None
    again = _verify(relpath, new_src, rules)
    again.scoped_matched = sorted(set(again.scoped_matched) | matched)
    result.fixed_point = again.to_json()
    out = new_src.decode("utf-8")
    return (codecs.BOM_UTF8 if data.startswith(codecs.BOM_UTF8) else b"") + out.encode(encoding.replace("-sig", ""))


def _verify(relpath: str, new_src: bytes, rules: RuleSet) -> FileResult:
    """The output must compile and be a fixed point: converting it again changes nothing."""
    try:
        tree = ast.parse(new_src, filename=relpath)
        compile(tree, relpath, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", "?")
        raise _Outcome("failed", f"conversion produced code that does not compile (line {line}: "
                       f"{getattr(exc, 'msg', exc)}); file left unchanged - please report this") from None
    again = FileResult(relpath, "unchanged", parsed=True, sha=sha(new_src))
    ctx = FileContext(relpath, new_src, LineIndex(new_src), tree,
                      analyse(tree, rules.tracked_roots, rules.import_roots), rules)
    try:
        edits, again.scoped_considered, matched = _collect(ctx, rules, relpath)
        edits, again.opted_out = _drop_opted_out(edits, new_src, tree)
        second, _ = apply_edits(new_src, edits, edit_call)
    except (EditConflict, ValueError) as exc:
        second, again.reason = b"", str(exc)
    if second != new_src:
        raise _Outcome("failed", "conversion is not idempotent here (a second pass would change the file "
                       f"again{': ' + again.reason if again.reason else ''}); file left unchanged - please report this")
    again.scoped_matched = sorted(matched)
    again.uses = [[u.api, u.line, u.end_line, u.category, u.rule, u.hint] for u in ctx.uses + ctx.notes]
    return again


def convert_source(relpath: str, data: bytes, rules: RuleSet) -> FileResult:
    """Convert the source of one file. Bad input yields a failed/skipped result, never an exception."""
    result = FileResult(relpath, "unchanged", sha=sha(data))
    try:
        new = _convert(relpath, data, rules, result)
    except _Outcome as outcome:
        result.status, result.reason = outcome.status, outcome.reason
        result.changes = [] if outcome.status == "failed" else result.changes
        return result
    except Exception as exc:  # an engine bug must not stop the run: report it for this file
        result.status, result.reason = "failed", f"internal error: {type(exc).__name__}: {exc} - please report this"
        result.changes = []
        return result
    if new is not None:
        result.status, result.new_data, result.new_sha = "changed", new, sha(new)
    return result
