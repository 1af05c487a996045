"""Source encodings: a file is decoded once, edited on one coordinate system and written back in
its own encoding, with its cookie and BOM; every byte outside the edits stays as it was.

Each case converts real bytes with real rules (an import retarget, an API rewrite with argument
edits, a scoped rule) and asserts the exact output bytes, that Python compiles them, and that the
result is recorded as a fixed point under the sha of the bytes written."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tools.convert.fileconv import convert_source, sha
from tools.convert.ruleset import load_rules

RULES = """\
version: 1
imports:
  - {id: TIM001, module: torch, target: mindtorch}
apis:
  - {id: TAP001, api: torch.cuda.current_device, target: mindtorch.npu.current_device}
  - {id: TAP002, api: torch.nn.functional.gelu, target: "mindspore.mint.nn.functional:gelu"}
  - id: TAP003
    api: torch.empty
    target: mindtorch.empty
    args: [size]
    kwargs_drop: [pin_memory]
    defaults: {device: "'cpu'"}
scoped:
  - id: TSC001
    path: m.py
    action: replace_expr
    match: torch.cuda.is_available()
    replace: "False"
    reason: test
  - id: TSC002
    path: m.py
    within: f
    action: remove_stmt
    match: torch.cuda.synchronize()
    reason: test
  - id: TSC003
    path: m.py
    within: g
    action: replace_body
    replace: |
      return 'done'
    reason: test
transforms:
  - {id: TTR001, transform: retarget_dynamic_imports, reason: test}
"""

# A line of non-ASCII text before each edit on the same line: a shifted column corrupts the output.
SOURCE = """\
{cookie}import importlib
import torch
a = '{s}'; b = torch.cuda.current_device(); c = [1]
t = '{s}{s}'; x = torch.empty(2, pin_memory=True); ok = torch.cuda.is_available()
u = '{s}'; y = torch.nn.functional.gelu(x)
v = '{s}'; m = importlib.import_module('torch.nn')


def f():
    s = '{s}'
    torch.cuda.synchronize()
    return s


def g():
    '{s}'
    return torch.cuda.current_device() + len('{s}')
"""
EXPECTED = """\
{cookie}import mindspore.mint.nn.functional
import importlib
import mindtorch as torch
a = '{s}'; b = torch.npu.current_device(); c = [1]
t = '{s}{s}'; x = torch.empty(2, device='cpu'); ok = False
u = '{s}'; y = mindspore.mint.nn.functional.gelu(x)
v = '{s}'; m = importlib.import_module('mindtorch.nn')


def f():
    s = '{s}'
    return s


def g():
    '{s}'
    return 'done'
"""


@pytest.fixture(scope="module")
def rules(tmp_path_factory):
    path = tmp_path_factory.mktemp("rules") / "r.yaml"
    path.write_text(RULES)
    return load_rules([path])


def _check(data: bytes, expected: bytes, rules, ops: set[str] | None = None) -> None:
    result = convert_source("m.py", data, rules)
    assert result.status == "changed", result.reason
    assert result.new_data == expected
    compile(result.new_data, "m.py", "exec")          # Python reads the bytes with their cookie
    assert result.fixed_point["sha"] == sha(result.new_data) == result.new_sha
    again = convert_source("m.py", result.new_data, rules)
    assert again.status == "unchanged", again.reason
    assert ops is None or {c[2] for c in result.changes} == ops


EVERY_FAMILY = {"import-retarget", "api-rewrite", "api-arguments", "api:insert-import", "scoped:replace_expr",
                "scoped:remove_stmt", "scoped:replace_body", "transform:retarget_dynamic_imports"}


@pytest.mark.parametrize("encoding, s", [
    ("latin-1", "\xe9t\xe9 \xe0 l\xe9cole"),
    ("cp1252", "\u20ac \u201cquoted\u201d \u2014 na\xefve"),
    ("gbk", "\u4e2d\u6587\u6ce8\u91ca"),
    ("shift_jis", "\u30bd\u8868\u80fd \u65e5\u672c\u8a9e"),
    ("euc-kr", "\ud55c\uad6d\uc5b4"),
    ("iso8859-7", "\u03b5\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac"),
])
def test_a_declared_encoding_is_kept_and_edits_land_where_they_belong(encoding, s, rules):
    cookie = f"# -*- coding: {encoding} -*-\n"
    data = SOURCE.format(cookie=cookie, s=s).encode(encoding)
    expected = EXPECTED.format(cookie=cookie, s=s).encode(encoding)
    assert data.decode(encoding).encode(encoding) == data and not data.isascii()
    _check(data, expected, rules, EVERY_FAMILY)


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"], ids=["plain", "bom"])
def test_multibyte_utf8_lines(bom, rules):
    s = "\u4e2d\u6587 \U0001f600 \xe9"
    _check(bom + SOURCE.format(cookie="", s=s).encode(), bom + EXPECTED.format(cookie="", s=s).encode(), rules,
           EVERY_FAMILY)


def test_the_exact_reported_corruption(rules):
    """The probe that found it: ``torch.cuda.current_device()`` after two latin-1 characters on the
    same line became ``torctorch.npu.current_devicec = [...]``."""
    data = b"# -*- coding: latin-1 -*-\nimport torch\na = '\xe9\xe9'; b = torch.cuda.current_device(); c = [1]\n"
    _check(data, b"# -*- coding: latin-1 -*-\nimport mindtorch as torch\n"
                 b"a = '\xe9\xe9'; b = torch.npu.current_device(); c = [1]\n", rules)


@pytest.mark.parametrize("newline", ["\r\n", "\r"], ids=["crlf", "cr"])
def test_line_endings_python_accepts(newline, rules):
    s = "\xe9\xe9"
    data = SOURCE.format(cookie="# coding: latin-1\n", s=s).replace("\n", newline).encode("latin-1")
    expected = EXPECTED.format(cookie="# coding: latin-1\n", s=s).replace("\n", newline).encode("latin-1")
    _check(data, expected, rules, EVERY_FAMILY)


def test_shipped_rules_on_a_latin1_file():
    """With the shipped rules the same class of file failed as an internal error (libcst was handed
    an import statement cut at the wrong bytes)."""
    data = b"# -*- coding: latin-1 -*-\nimport torch\nd = '\xe9\xe9'; import torch_npu\ne = '\xe9'; import acl\n"
    result = convert_source("x.py", data, load_rules())
    assert result.status == "changed", result.reason
    assert result.new_data == (b"# -*- coding: latin-1 -*-\nimport mindtorch as torch\n"
                               b"d = '\xe9\xe9'; import mindtorch.npu as torch_npu\n"
                               b"e = '\xe9'; import mindtorch.npu.acl as acl\n")


BAD = {
    "declared but not decodable": (b"# -*- coding: ascii -*-\nimport torch\ns = '\xe9'\n",
                                   "cannot decode line 3 as ascii, the encoding its coding cookie declares"),
    "undeclared latin-1": (b"import torch\n\ns = '\xe9t\xe9'\n",
                           "cannot decode line 3 as UTF-8 (byte(s) e9: invalid continuation byte) and the file has "
                           "no coding cookie"),
    "undeclared, with a comment about coding": (b"# coding style: PEP 8\nimport torch\ns = '\xe9'\n",
                                                "cannot decode line 3 as UTF-8 (byte(s) e9: invalid continuation byte) "
                                                "and the file has no coding cookie"),
    "unknown codec": (b"# coding: klingon\nimport torch\n", "unknown encoding: klingon"),
    "broken gbk": ("# coding: gbk\nimport torch\ns = '\u4e2d'\n".encode("gbk")[:-4] + b"\xff\xff'\n",
                   "cannot decode line 3 as gbk"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bytes_that_do_not_decode_get_one_clear_reason(case, rules):
    data, words = BAD[case]
    result = convert_source("m.py", data, rules)
    assert result.status == "failed" and result.new_data is None
    assert words in result.reason and "\n" not in result.reason, result.reason
    assert "syntax error" not in result.reason and "internal error" not in result.reason


def test_a_replacement_the_encoding_cannot_hold_fails_the_file_cleanly(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(textwrap.dedent("""\
        version: 1
        scoped:
          - {id: TSC001, path: m.py, action: replace_expr, match: "torch.x", replace: "'\u4e2d'", reason: test}
        """), encoding="utf-8")
    data = b"# coding: latin-1\nimport torch\ny = '\xe9'; z = torch.x\n"
    result = convert_source("m.py", data, load_rules([path]))
    assert result.status == "failed" and result.new_data is None
    assert "line 3" in result.reason and "encoding iso-8859-1 cannot represent" in result.reason, result.reason


def test_tree_conversion_writes_the_file_in_its_encoding(tmp_path):
    """Through the runner, as a user runs it: the written bytes, and a no-op second run."""
    from tools.convert.runner import RunOptions, run

    root = tmp_path / "src"
    root.mkdir()
    data = "# coding: shift_jis\nimport torch\ns = '\u65e5\u672c'; d = torch.cuda.current_device()\n".encode("shift_jis")
    (root / "m.py").write_bytes(data)
    rules_path = tmp_path / "r.yaml"
    rules_path.write_text(RULES)
    rules = load_rules([rules_path])
    run(root, rules, RunOptions(jobs=1, report_dir=tmp_path / "rep", introspect=False))
    expected = "# coding: shift_jis\nimport mindtorch as torch\ns = '\u65e5\u672c'; d = torch.npu.current_device()\n"
    assert (root / "m.py").read_bytes() == expected.encode("shift_jis")
    second = run(root, rules, RunOptions(jobs=1, report_dir=tmp_path / "rep", introspect=False))
    assert [r.status for r in second.results] == ["unchanged"]
    assert Path(root / "m.py").read_bytes() == expected.encode("shift_jis")


@pytest.mark.parametrize("newline", ["\r\n", "\r"], ids=["crlf", "cr"])
def test_regenerated_regions_keep_the_files_line_breaks(newline, rules):
    """libcst prints every line break of a regenerated import or argument list as \\n: a CRLF file
    came out with mixed line endings."""
    source = ("import torch\nx = torch.empty(\n    2,  # size\n    pin_memory=True,\n)\n"
              "from torch.cuda import (\n    current_device,  # id\n    synchronize,\n)\n")
    expected = ("import mindtorch as torch\nx = torch.empty(\n    2,  # size\n    device='cpu')\n"
                "from mindtorch.cuda import (\n    synchronize,\n); from mindtorch.npu import current_device\n")
    _check(source.replace("\n", newline).encode(), expected.replace("\n", newline).encode(), rules)
