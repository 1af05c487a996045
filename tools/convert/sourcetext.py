"""A file's bytes as text, and back: decode once, edit in one coordinate system, re-encode.

The engine finds and applies edits on the UTF-8 form of the decoded text, which is what
:mod:`ast` positions count when it parses a ``str`` (a ``str`` has no coding cookie to obey).
The result is encoded again in the file's own encoding, behind its own BOM, so a latin-1,
cp1252, GBK or Shift-JIS file keeps its cookie and every byte outside the edits. Parsing the
re-encoded UTF-8 *bytes* instead would let a cookie that says ``latin-1`` re-decode them and
shift every column after a non-ASCII character.

Also here: the one-line explanation of a syntax error, with a hint only where it is plausible
(Python 2, merge-conflict markers, syntax of a newer Python, recognised from the failing line).
"""
from __future__ import annotations

import codecs
import re
import sys
import tokenize
from dataclasses import dataclass

from .edits import LINE_END, LineIndex


class SourceError(Exception):
    """The file cannot be read as Python source text; the message says why and what to do."""


@dataclass(frozen=True)
class SourceText:
    """A decoded source file. ``utf8`` is the coordinate system of every edit."""

    text: str
    encoding: str        # the codec the bytes were decoded with (without ``-sig``)
    bom: bytes           # the UTF-8 BOM the file starts with, or b""
    declared: bool       # the encoding comes from a PEP 263 cookie

    @property
    def utf8(self) -> bytes:
        return self.text.encode("utf-8")

    def encode(self, new_utf8: bytes) -> bytes:
        """The file's bytes for an edited ``utf8``: same encoding, same BOM."""
        text = new_utf8.decode("utf-8")
        try:
            return self.bom + text.encode(self.encoding)
        except UnicodeEncodeError as exc:
            line = text.count("\n", 0, exc.start) + 1
            raise SourceError(f"the converted line {line} has {text[exc.start:exc.end]!r}, which the file's "
                              f"encoding {self.encoding} cannot represent: fix the rule's replacement text, "
                              "or save the file as UTF-8") from None


_COOKIE = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*[-\w.]+")   # PEP 263


def decode(data: bytes) -> SourceText:
    """Decode ``data`` as Python does (PEP 263 cookie, UTF-8 BOM, else UTF-8).

    Refuses, with one line, bytes that do not decode in that encoding, an encoding Python does
    not know, and bytes that would not come back unchanged from encoding the text again (so a
    converted file never differs outside its edits).
    """
    # Python ends a line at \r too (tokenize.detect_encoding does not): look at the first two lines
    # as the interpreter sees them
    first_lines = iter([line + b"\n" for line in LINE_END.split(data, 2)[:2]])
    try:
        encoding, cookie_lines = tokenize.detect_encoding(lambda: next(first_lines, b""))
    except SyntaxError as exc:   # unknown codec, a cookie that contradicts the BOM, bad first lines
        raise SourceError(f"cannot decode: {exc.msg if hasattr(exc, 'msg') else exc}; fix the coding cookie "
                          "(PEP 263) or save the file as UTF-8") from None
    bom = codecs.BOM_UTF8 if data.startswith(codecs.BOM_UTF8) else b""
    body = data[len(bom):]
    codec = "utf-8" if encoding == "utf-8-sig" else encoding
    declared = any(_COOKIE.match(line) for line in cookie_lines)
    try:
        text = body.decode(codec)
    except UnicodeDecodeError as exc:
        line = LineIndex(data).line_of(exc.start + len(bom))
        bad = body[exc.start:exc.end][:4].hex(" ")
        if declared:
            raise SourceError(f"cannot decode line {line} as {codec}, the encoding its coding cookie declares "
                              f"(byte(s) {bad}: {exc.reason}): fix the cookie or the bytes") from None
        raise SourceError(f"cannot decode line {line} as UTF-8 (byte(s) {bad}: {exc.reason}) and the file has "
                          "no coding cookie: add one (# -*- coding: latin-1 -*-) or save the file as UTF-8") from None
    except LookupError as exc:
        raise SourceError(f"cannot decode: {exc}; fix the coding cookie (PEP 263)") from None
    if codec != "utf-8" and text.encode(codec) != body:
        raise SourceError(f"its {codec} bytes do not come back unchanged from decoding and encoding them, so the "
                          "converted file could differ outside the edits: save the file as UTF-8") from None
    return SourceText(text, codec, bom, declared)


_CONFLICT = re.compile(r"<{7} |={7}$|>{7} ")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_PY2_MESSAGES = ("Missing parentheses in call to", "leading zeros in decimal integer literals",
                 "multiple exception types must be parenthesized")
_PY2_LINE = re.compile(r"`|<>|\b(ur|UR|uR|Ur)['\"]|\b\d+[lL]\b|^\s*raise\s+[\w.]+\s*,|^\s*exec\s+['\"]|^\s*print\s+[^\s(=]")


def explain_syntax_error(text: str, exc: SyntaxError) -> str:
    """One line for a file :mod:`ast` cannot parse: where, Python's message, and a hint only where
    one is plausible (merge-conflict markers, Python 2, syntax of a newer Python than this one)."""
    line = exc.lineno or 0
    where = f"syntax error at line {line}" + (f", column {exc.offset}" if exc.offset else "")
    message = f"{where}: {exc.msg}"
    lines = _LINE_BREAK.split(text)     # as Python numbers lines (str.splitlines also splits at \f, \x1c...)
    marker = next((i for i, text_line in enumerate(lines, 1) if _CONFLICT.match(text_line)), None)
    if marker is not None:
        return f"{message} (merge-conflict marker at line {marker}: resolve the conflict)"
    source_line = lines[line - 1] if 0 < line <= len(lines) else ""
    if exc.msg.startswith(_PY2_MESSAGES) or _PY2_LINE.search(source_line):
        return f"{message} (this looks like Python 2 code: port it to Python 3 or exclude the file)"
    newer = _newer_syntax(exc.msg, source_line)
    if newer:
        running = f"{sys.version_info.major}.{sys.version_info.minor}"
        return (f"{message} (this looks like {newer}, which the engine's Python {running} cannot parse: "
                "run the converter with a newer Python, or exclude the file)")
    return message


# f-string errors that Python 3.12's f-strings (PEP 701) make valid: reused quotes, backslashes and
# comments inside the replacement fields. Empty expressions, bad conversions and a lone '}' stay errors.
_FSTRING_312 = ("f-string: unmatched", "f-string: expecting '}'", "f-string expression part cannot include",
                "f-string: unterminated string", "f-string: invalid syntax")
_FSTRING_PREFIX = re.compile(r"(?<![\w])(?:[rRbBuU]?[fF]|[fF][rR])['\"]")
_TYPE_STATEMENT = re.compile(r"^\s*type\s+[A-Za-z_]\w*\s*(\[.*\])?\s*=")
_TYPE_PARAMETERS = re.compile(r"^\s*(async\s+def|def|class)\s+[A-Za-z_]\w*\s*\[")


def _newer_syntax(msg: str, line: str) -> str:
    """What newer-Python syntax the failing line plausibly uses, or "" (guessed from the line alone:
    no second parser, which could crash or crawl on the hostile input that fails most often)."""
    if _TYPE_STATEMENT.match(line):
        return "a Python 3.12 type statement"
    if _TYPE_PARAMETERS.match(line):
        return "Python 3.12 type parameters"
    if msg.startswith(_FSTRING_312) and _FSTRING_PREFIX.search(line):
        return "a Python 3.12 f-string (quotes reused, or a backslash or comment inside {...})"
    return ""


