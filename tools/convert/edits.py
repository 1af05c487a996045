"""Edits: what every rule family reports instead of mutating a tree, and how they are applied.

An edit replaces the bytes ``[start, end)`` of the UTF-8 source. Edits nest: an argument-list
edit on a call (``call_rule``) contains the edits of names inside it, which are applied first;
a plain replacement supersedes whatever it contains. Partially overlapping edits are a conflict
and fail the file (with both rule ids) rather than produce a guess.
"""
from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Callable

from .model import ApiRule

LINE_END = re.compile(rb"\r\n|\r|\n")
PRIORITY = {"scoped": 3, "transform": 2, "api": 1, "import": 1}


class EditConflict(Exception):
    pass


@dataclass
class Edit:
    start: int
    end: int
    text: str | None            # replacement; None for an argument-list edit (``call_rule``)
    line: int
    end_line: int
    op: str                     # Operation Type in change_list.csv
    message: str
    rule: str
    family: str = "api"
    call_rule: ApiRule | None = None
    insert: bool = False        # zero-width insertion at ``start``
    children: list["Edit"] = field(default_factory=list, repr=False)

    @property
    def priority(self) -> int:
        return PRIORITY[self.family]


class LineIndex:
    """Byte offset of (line, column) in a UTF-8 source, as :mod:`ast` positions count them."""

    def __init__(self, src: bytes) -> None:
        starts = [0]
        if b"\r" in src:   # Python ends a line at \r\n, \n and a lone \r (old Mac files) alike
            starts.extend(m.end() for m in LINE_END.finditer(src))
        else:
            find = src.find
            pos = find(b"\n")
            while pos != -1:
                starts.append(pos + 1)
                pos = find(b"\n", pos + 1)
        self.starts = starts
        self.src = src

    @property
    def newline(self) -> str:
        """The file's line break (that of its first line), for the lines an edit inserts."""
        if len(self.starts) < 2:
            return "\n"
        end = self.starts[1]
        return "\r\n" if self.src[end - 2:end] == b"\r\n" else self.src[end - 1:end].decode()

    def line_of(self, offset: int) -> int:
        """The 1-based line holding byte ``offset``."""
        return bisect_right(self.starts, offset)

    def line_end(self, offset: int) -> int:
        """The offset just past the end of the line holding ``offset`` (its line break included)."""
        line = self.line_of(offset)
        return self.starts[line] if line < len(self.starts) else len(self.src)

    def offset(self, line: int, col: int) -> int:
        return self.starts[line - 1] + col

    def span(self, node) -> tuple[int, int]:
        return self.offset(node.lineno, node.col_offset), self.offset(node.end_lineno, node.end_col_offset)

    def text(self, node) -> str:
        start, end = self.span(node)
        return self.src[start:end].decode("utf-8")

    def line_start(self, line: int) -> int:
        return self.starts[line - 1] if line - 1 < len(self.starts) else len(self.src)


def _nest(edits: list[Edit]) -> list[Edit]:
    """Build the containment forest; drop superseded edits; raise on partial overlap."""
    order = sorted(edits, key=lambda e: (e.start, 0 if e.insert else 1, -e.end, -e.priority))
    roots: list[Edit] = []
    stack: list[Edit] = []
    for e in order:
        e.children = []
        while stack and stack[-1].end <= e.start:
            stack.pop()
        parent = stack[-1] if stack else None
        if parent is not None and (e.end > parent.end or (e.insert and parent.call_rule is None)):
            raise EditConflict(f"rules {parent.rule} and {e.rule} edit overlapping code at line {e.line}")
        if parent is None:
            roots.append(e)
        elif parent.call_rule is not None:
            parent.children.append(e)
        else:
            continue  # contained in a plain replacement: superseded by it
        if not e.insert:
            stack.append(e)
    return roots


def _render(e: Edit, src: bytes, call_editor: Callable[[str, ApiRule], str], applied: list[Edit]) -> bytes:
    if e.insert:
        applied.append(e)
        return e.text.encode("utf-8")
    if e.call_rule is None:
        new = e.text.encode("utf-8")
        if new != src[e.start:e.end]:
            applied.append(e)
        return new
    body = _splice(src, e.start, e.end, e.children, call_editor, applied)
    old = body.decode("utf-8")
    new = call_editor(old, e.call_rule)
    if new != old:
        applied.append(e)
    return new.encode("utf-8")


def _splice(src: bytes, start: int, end: int, edits: list[Edit], call_editor, applied: list[Edit]) -> bytes:
    out: list[bytes] = []
    pos = start
    for e in edits:
        out.append(src[pos:e.start])
        out.append(_render(e, src, call_editor, applied))
        pos = e.end
    out.append(src[pos:end])
    return b"".join(out)


def apply_edits(src: bytes, edits: list[Edit], call_editor: Callable[[str, ApiRule], str]) -> tuple[bytes, list[Edit]]:
    """Apply ``edits`` to ``src``; return the new source and the edits that changed something."""
    applied: list[Edit] = []
    if not edits:
        return src, applied
    roots = _nest(edits)
    new = _splice(src, 0, len(src), roots, call_editor, applied)
    applied.sort(key=lambda e: (e.line, e.start))
    return new, applied
