"""A file the engine cannot parse fails with Python's own message and its line; the hint names a
cause only where that cause is plausible (Python 2, merge-conflict markers, newer syntax)."""
from __future__ import annotations

import sys

import pytest

from tools.convert.fileconv import convert_source
from tools.convert.ruleset import load_rules

PY = f"{sys.version_info.major}.{sys.version_info.minor}"
NEWER = "run the converter with a newer Python"
PY2 = "Python 2"
CONFLICT = "merge-conflict marker"

CASES = {
    "print statement": (b"import torch\nprint 'hello'\n", 2, "Missing parentheses", PY2),
    "except comma": (b"import torch\ntry:\n    pass\nexcept ValueError, e:\n    pass\n", 4,
                     "multiple exception types", PY2),
    "backticks": (b"import torch\nx = `torch`\n", 2, "invalid syntax", PY2),
    "octal": (b"import torch\nmode = 0755\n", 2, "leading zeros", PY2),
    "conflict": (b"import torch\n<<<<<<< HEAD\nx = 1\n=======\nx = 2\n>>>>>>> branch\n", 2, "invalid syntax",
                 CONFLICT + " at line 2"),
    "3.12 f-string": (b'import torch\nx = f"{torch.__dict__["cuda"]}"\n', 2, "a Python 3.12 f-string", NEWER),
    "3.12 type statement": (b"import torch\ntype Tensor = torch.Tensor\n", 2, "a Python 3.12 type statement", NEWER),
    "3.12 generic function": (b"import torch\ndef first[T](xs: list[T]) -> T:\n    return xs[0]\n", 2,
                              "Python 3.12 type parameters", NEWER),
    "conflict in a CR file": (b"import torch\r<<<<<<< HEAD\rx = 1\r=======\rx = 2\r>>>>>>> branch\r", 2,
                              "invalid syntax", CONFLICT + " at line 2"),
    "nesting deeper than Python allows": (b"import torch\nx = " + b"[" * 3000 + b"]" * 3000 + b"\n", 2,
                                          "too many nested parentheses", None),
    "form feed before the error": (b"import torch\n\x0c\nx = (\n", 3, "'(' was never closed", None),
    "unclosed paren": (b"import torch\nx = torch.zeros(\n", 2, "'(' was never closed", None),
    "bad indent": (b"import torch\nif True:\nx = 1\n", 3, "expected an indented block", None),
    "f-string error in every version": (b"import torch\nx = f'{}'\n", 2, "f-string: empty expression", None),
}
HINTS = (NEWER, PY2, CONFLICT)


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="the newer-syntax cases parse on 3.12")
@pytest.mark.parametrize("case", sorted(CASES))
def test_syntax_errors_name_the_line_and_a_plausible_hint_only(case):
    data, line, message, hint = CASES[case]
    result = convert_source("m.py", data, load_rules())
    assert result.status == "failed" and result.new_data is None
    reason = result.reason
    assert "\n" not in reason
    assert reason.startswith(f"syntax error at line {line}"), reason
    assert message in reason, reason
    for other in HINTS:
        if other != (hint or "").split(" at line")[0]:
            assert other not in reason, reason
    if hint is not None:
        assert hint in reason, reason
    if hint == NEWER:
        assert PY in reason


def test_an_expression_nested_deeper_than_the_engine_walks_fails_cleanly():
    """ast parses a 1500-term sum; walking it exceeded Python's recursion limit: an internal error."""
    data = b"import torch\ny = torch.empty(" + b"1+" * 1500 + b"1, pin_memory=True)\n"
    compile(data, "m.py", "exec")
    result = convert_source("m.py", data, load_rules())
    assert result.status == "failed" and result.reason.startswith("an expression is nested too deeply"), result.reason
