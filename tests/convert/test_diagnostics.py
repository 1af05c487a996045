"""A file the engine cannot parse fails with Python's own message and its line; the hint names a
cause only where that cause is plausible (Python 2, merge-conflict markers, newer syntax)."""
from __future__ import annotations

import sys

import pytest

from tools.convert.fileconv import convert_source
from tools.convert.ruleset import load_rules

PY = f"{sys.version_info.major}.{sys.version_info.minor}"
NEWER = "valid syntax of a newer Python than the engine's"
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
    "3.12 f-string": (b'import torch\nx = f"{torch.__dict__["cuda"]}"\n', 2, "f-string", NEWER),
    "3.12 type statement": (b"import torch\ntype Tensor = torch.Tensor\n", 2, "invalid syntax", NEWER),
    "3.12 generic function": (b"import torch\ndef first[T](xs: list[T]) -> T:\n    return xs[0]\n", 2, "", NEWER),
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
