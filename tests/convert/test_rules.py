"""Rule files are data: validated against the schema; the first problem is one line naming the
file, the line and the field."""
from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest

from tools.convert.errors import RuleError
from tools.convert.fileconv import convert_source
from tools.convert.ruleset import DEFAULT_RULES_DIR, load_rules


def _write(tmp_path: Path, text: str, name: str = "r.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


BAD = {
    "unknown field": ("""\
        version: 1
        apis:
          - id: API001
            api: torch.zeros
            target: mindtorch.zeros
            kwarg_rename: {a: b}
        """, 6, "apis[0].kwarg_rename", "unknown field"),
    "bad id": ("""\
        version: 1
        imports:
          - id: imp-1
            module: torch
            target: mindtorch
        """, 3, "imports[0].id", "is not a valid name"),
    "neither target nor unsupported": ("""\
        version: 1
        apis:
          - id: API001
            api: torch.zeros
        """, 3, "apis[0]", "either 'target', or 'unsupported: true'"),
    "unparsable replacement": ("""\
        version: 1
        scoped:
          - id: SC001
            path: a.py
            action: replace_expr
            match: torch.cuda.is_available()
            replace: "False +"
            reason: test
        """, 7, "scoped[0].replace", "cannot parse as an expression"),
    "remove with replace": ("""\
        version: 1
        scoped:
          - id: SC001
            path: a.py
            action: remove_stmt
            match: x = 1
            replace: y
            reason: test
        """, 7, "scoped[0].replace", "not allowed with action 'remove_stmt'"),
    "unknown transform": ("""\
        version: 1
        transforms:
          - id: TR001
            transform: rm_rf
            reason: test
        """, 4, "transforms[0].transform", "no transform named 'rm_rf'"),
    "not yaml": ("version: 1\nimports: [\n", 3, "", "not valid YAML"),
    "wrong version": ("version: 2\n", 1, "version", ""),
    "a call as a default": ("""\
        version: 1
        apis:
          - id: API001
            api: torch.zeros
            target: mindtorch.zeros
            defaults: {device: "os.system('x')"}
        """, 6, "apis[0].defaults.device", "a literal or a dotted name"),
    "code in a default": ("""\
        version: 1
        apis:
          - id: API001
            api: torch.zeros
            target: mindtorch.zeros
            defaults: {device: "import os"}
        """, 6, "apis[0].defaults.device", "cannot parse as an expression"),
    "comment in a replacement": ("""\
        version: 1
        scoped:
          - id: SC001
            path: a.py
            action: replace_call
            match: torch.cuda.current_device
            replace: "torch.npu.current_device  #"
            reason: test
        """, 7, "scoped[0].replace", "contains a comment ('#')"),
    "comment after a replacement expression": ("""\
        version: 1
        scoped:
          - id: SC001
            path: a.py
            action: replace_expr
            match: torch.cuda.is_available()
            replace: "False  # no CUDA here"
            reason: test
        """, 7, "scoped[0].replace", "contains a comment"),
    "comment in a default": ("""\
        version: 1
        apis:
          - id: API001
            api: torch.zeros
            target: mindtorch.zeros
            defaults: {device: "'cpu' # the host"}
        """, 6, "apis[0].defaults.device", "contains a comment"),
    "a literal as the new callee": ("""\
        version: 1
        scoped:
          - id: SC001
            path: a.py
            action: replace_call
            match: torch.cuda.synchronize
            replace: "None"
            reason: test
        """, 7, "scoped[0].replace", "callable expression"),
    "duplicate key": ("""\
        version: 1
        imports:
          - id: IMP901
            module: torch
            target: mindtorch
            target: mindspore
        """, 6, "", "duplicate key 'target' (first given at line 5)"),
    "duplicate top-level key": ("""\
        version: 1
        imports: []
        apis: []
        imports:
          - {id: IMP901, module: torch, target: mindtorch}
        """, 4, "", "duplicate key 'imports' (first given at line 2)"),
    "alias": ("""\
        version: 1
        imports:
          - &rule {id: IMP901, module: torch, target: mindtorch}
          - *rule
        """, 4, "", "alias *rule is not allowed"),
    "keyword as a keyword argument": ("""\
        version: 1
        apis:
          - id: API001
            api: torch.zeros
            target: mindtorch.zeros
            kwargs_rename: {klass: class}
        """, 6, "apis[0].kwargs_rename", "'class' is a Python keyword"),
    "keyword in a module": ("""\
        version: 1
        imports:
          - {id: IMP901, module: torch, target: mindtorch.lambda}
        """, 3, "imports[0].target", "'lambda' is a Python keyword"),
    "two rules for one API": ("""\
        version: 1
        apis:
          - {id: API001, api: torch.zeros, target: mindtorch.zeros}
          - {id: API002, api: torch.zeros, target: mindtorch.ones}
        """, 4, "apis[1].api", "torch.zeros is already mapped by API001 at"),
    "two rules for one module": ("""\
        version: 1
        imports:
          - {id: IMP901, module: torch, target: mindtorch}
          - {id: IMP902, module: torch, target: mindspore}
        """, 4, "imports[1].module", "torch is already retargeted by IMP901 at"),
    "a chain of retargets": ("""\
        version: 1
        imports:
          - {id: IMP901, module: torch, target: mindtorch}
          - {id: IMP902, module: mindtorch, target: mindspore}
        """, 3, "imports[0].target", "mindtorch is itself retargeted by IMP902"),
    "deep nesting": ("version: 1\ndescription: " + "[" * 100 + "]" * 100 + "\n", 2, "", "nested more than 64"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_invalid_rule_file_is_one_clear_line(tmp_path, case):
    text, line, field, words = BAD[case]
    path = _write(tmp_path, text)
    with pytest.raises(RuleError) as info:
        load_rules([path])
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:{line}: "), message
    assert field in message and words in message


def test_duplicate_ids_across_files_name_both(tmp_path):
    a = _write(tmp_path, "version: 1\nimports:\n  - {id: IMP901, module: torch, target: mindtorch}\n", "a.yaml")
    _write(tmp_path, "version: 1\nimports:\n  - {id: IMP901, module: torch_npu, target: mindtorch.npu}\n", "b.yaml")
    with pytest.raises(RuleError, match=r"b.yaml:3: imports\[0\].id: IMP901 is already used by .*a.yaml:3 \(imports\[0\]\)"):
        load_rules([tmp_path])
    assert a.exists()


def test_a_rule_may_not_map_onto_another_rules_source(tmp_path):
    path = _write(tmp_path, """\
        version: 1
        apis:
          - {id: API901, api: torch.a, target: torch.b}
          - {id: API902, api: torch.b, target: mindtorch.b}
        """)
    with pytest.raises(RuleError, match="target: torch.b is itself mapped by API902"):
        load_rules([path])


def test_select_and_ignore_by_family_prefix_and_id():
    everything = load_rules()
    assert everything.imports
    only_imports = load_rules(select=["imports"])
    assert only_imports.imports and not only_imports.apis and not only_imports.scoped
    no_npu = load_rules(ignore=["IMP002"])
    assert "torch_npu" not in no_npu.import_map and "torch" in no_npu.import_map
    assert no_npu.hash != everything.hash
    assert load_rules(select=["IMP"]).imports == tuple(r for r in everything.imports if r.id.startswith("IMP"))
    assert load_rules(select=["IMP", "ACL"]).imports == everything.imports
    with pytest.raises(RuleError, match="neither a family"):
        load_rules(select=["imp-*"])


def test_shipped_rules_are_valid_and_hash_is_stable():
    assert DEFAULT_RULES_DIR.is_dir()
    assert load_rules().hash == load_rules([DEFAULT_RULES_DIR]).hash


def test_an_alias_bomb_is_refused_at_once_in_one_short_line(tmp_path):
    """510 bytes of nested aliases took 55 s and 3 GB to load, and a 528-byte one printed a 312 MB
    error (the schema error quoted the expanded value)."""
    lines = ["version: 1", 'l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)]
    lines.append("imports: *l8")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size < 600
    started = time.monotonic()
    with pytest.raises(RuleError) as info:
        load_rules([path])
    assert time.monotonic() - started < 2
    message = str(info.value)
    assert message.startswith(f"{path}:3: alias *l0 is not allowed") and len(message) < 400 and "\n" not in message


@pytest.mark.parametrize("item, start", [
    ("{id: IMP901, module: torch, target: '" + "x." * 50_000 + "'}", "imports[0].target: "),
    ("{id: IMP901, module: torch, target: mindtorch, " + "k" * 1000 + ": 1}", "imports[0].kkkk"),
    ("{id: IMP901, module: torch, target: mindtorch, note: '" + "a\n\n" * 1000 + "'}", ""),
], ids=["value", "key", "multi-line value"])
def test_an_error_quoting_a_huge_value_stays_short(tmp_path, item, start):
    path = _write(tmp_path, "version: 1\nimports:\n  - " + item + "\n  - {id: IMP901, module: torch, target: mindtorch}\n")
    with pytest.raises(RuleError) as info:
        load_rules([path])
    message = str(info.value)
    assert message.startswith(f"{path}:") and start in message and len(message) < 500 and "\n" not in message


def test_a_non_atomic_callee_replacement_keeps_its_meaning(tmp_path):
    """``replace: a if b else c`` for a callee gave ``a if b else c(x)`` (it compiles: c is called)."""
    path = _write(tmp_path, """\
        version: 1
        scoped:
          - id: SC001
            path: m.py
            action: replace_call
            match: torch.cuda.synchronize
            replace: |
              npu_sync if ON_NPU else host_sync
            reason: test
        """)
    rules = load_rules([path])
    assert rules.scoped[0].replace == "npu_sync if ON_NPU else host_sync"   # the block scalar's newline is dropped
    result = convert_source("m.py", b"import torch\ntorch.cuda.synchronize(0); x = 1\n", rules)
    assert result.status == "changed", result.reason
    assert result.new_data == b"import torch\n(npu_sync if ON_NPU else host_sync)(0); x = 1\n"
    assert convert_source("m.py", result.new_data, rules).status == "unchanged"


def test_shipped_rule_files_load_with_the_strict_loader():
    import yaml

    from tools.yamlpath import load

    for path in sorted(DEFAULT_RULES_DIR.glob("*.yaml")):
        text = path.read_text()
        assert load(text, path)[0] == yaml.safe_load(text)
