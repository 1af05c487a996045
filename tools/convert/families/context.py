"""What a rule family gets to look at for one file. ``src`` is the UTF-8 form of the decoded text
(see sourcetext.py): every position and every edit is a byte offset into it."""
from __future__ import annotations

import ast
from dataclasses import dataclass, field

from ..analysis import Analysis
from ..edits import Edit, LineIndex
from ..model import RuleSet, Use


@dataclass
class FileContext:
    relpath: str
    src: bytes
    idx: LineIndex
    tree: ast.Module
    analysis: Analysis
    rules: RuleSet
    uses: list[Use] = field(default_factory=list)
    notes: list[Use] = field(default_factory=list)   # unsupported findings that are not API uses

    def insertion_point(self) -> tuple[int, int]:
        """Offset and line where module-level imports can go: after docstring and __future__."""
        body = self.tree.body
        i = 0
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            i = 1
        while i < len(body) and isinstance(body[i], ast.ImportFrom) and body[i].module == "__future__":
            i += 1
        if i < len(body):
            return self.idx.line_start(body[i].lineno), body[i].lineno
        return len(self.src), len(self.idx.starts)

    def import_edit(self, statement: str, rule: str, family: str) -> Edit:
        offset, line = self.insertion_point()
        nl = self.idx.newline
        prefix = "" if offset == 0 or self.src[offset - 1:offset] in (b"\n", b"\r") else nl
        return Edit(offset, offset, f"{prefix}{statement}{nl}", line, line, f"{family}:insert-import",
                    f"inserted `{statement}`", rule, family=family, insert=True)
