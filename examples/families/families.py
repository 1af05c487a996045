"""The family file (families.yaml): which upstream script each tiny run comes from and how it is cut.

Loaded with the project's strict YAML loader (``yaml.safe_load`` semantics without duplicate keys or
aliases) and checked against :data:`SCHEMA`; a mistake is one line naming the file, the line and
the field. Applying a run's edits to upstream's flags is also checked against upstream: a run may
only ``set`` a flag upstream's script has, only ``add`` one it lacks, and only ``drop`` one that
upstream or one of its override sets gives, so a run's
"what was changed" column is exact, and an upstream change that moves a flag is reported instead
of silently producing a different run. Named override sets (``overrides:``) are shared by runs
(``use:``) and may set or drop flags whether or not upstream has them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

from tools.yamlpath import YamlError, field_name, line_of, load as load_yaml

from upstream_flags import Flags

HERE = Path(__file__).resolve().parent
FAMILY_FILE = HERE / "families.yaml"

_FLAG = {"type": "string", "pattern": r"^--[a-z0-9][a-z0-9-]*$"}
_VALUE = {"oneOf": [{"const": True}, {"type": ["string", "number"]},
                    {"type": "array", "minItems": 1, "items": {"type": ["string", "number"]}}]}
_FLAG_MAP = {"type": "object", "propertyNames": _FLAG, "additionalProperties": _VALUE}
_FLAG_LIST = {"type": "array", "items": _FLAG, "uniqueItems": True}
_NAME = r"^[a-z0-9][a-z0-9_]*$"

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["overrides", "runs"],
    "properties": {
        "overrides": {
            "type": "object",
            "propertyNames": {"pattern": _NAME},
            "additionalProperties": {
                "type": "object", "additionalProperties": False, "required": ["why"],
                "properties": {"why": {"type": "string", "minLength": 1}, "set": _FLAG_MAP, "drop": _FLAG_LIST},
            },
        },
        "runs": {
            "type": "object",
            "propertyNames": {"pattern": _NAME},
            "additionalProperties": {
                "type": "object", "additionalProperties": False, "required": ["script", "kind", "changed"],
                "properties": {
                    "script": {"type": "string", "pattern": r"^examples/mindspore/[^/]+/[^/]+\.sh$"},
                    "kind": {"enum": ["family", "data", "finetune", "merge"]},
                    "covers": {"type": "array", "items": {"type": "string", "minLength": 1}},
                    "changed": {"type": "string", "minLength": 1},
                    "use": {"type": "array", "items": {"type": "string", "pattern": _NAME}},
                    "set": _FLAG_MAP,
                    "add": _FLAG_MAP,
                    "drop": _FLAG_LIST,
                },
            },
        },
    },
}

# Placeholders in flag values, filled per run by the runner: {tokenizer}, {chat_tokenizer}, {corpus}, {fixtures},
# {out} (this run's folder), {data:RUN} (RUN's output prefix), {ckpt:RUN} (RUN's checkpoint folder).
PLACEHOLDER = re.compile(r"\{(tokenizer|chat_tokenizer|corpus|fixtures|out|data:[a-z0-9_]+|ckpt:[a-z0-9_]+)\}")


class FamilyError(ValueError):
    """A family file or run that cannot be used; the message is one line naming the file and line."""


@dataclass(frozen=True)
class Run:
    name: str
    script: str
    kind: str
    covers: tuple[str, ...]
    changed: str
    use: tuple[str, ...]
    set: dict[str, list[str]]
    add: dict[str, list[str]]
    drop: tuple[str, ...]
    line: int | None

@dataclass(frozen=True)
class FamilyFile:
    path: Path
    overrides: dict[str, tuple[dict[str, list[str]], tuple[str, ...], str]]
    runs: dict[str, Run]

    def needs(self, run: Run) -> list[str]:
        """The runs whose outputs ({data:RUN}, {ckpt:RUN}) this run's flags name (its own edits and
        its override sets', as they stand after the run's own edits), in order."""
        found: list[str] = []
        final: dict[str, list[str]] = {}
        for set_name in run.use:
            final.update(self.overrides[set_name][0])
        final.update({**run.set, **run.add})
        for words in (v for k, v in final.items() if k not in run.drop):
            for word in words:
                for m in PLACEHOLDER.finditer(word):
                    ref = m.group(1).partition(":")[2]
                    if ref and ref not in found:
                        found.append(ref)
        return found

    def edit(self, run: Run, upstream: Flags) -> Flags:
        """Upstream's flags with the run's override sets and its own edits applied (a new Flags)."""
        where = f"{self.path}:{run.line}" if run.line else str(self.path)
        flags = Flags([(name, list(values)) for name, values in upstream.groups])
        from_sets = {name for set_name in run.use for name in self.overrides[set_name][0]}
        for name in run.drop:
            if name not in upstream and name not in from_sets:
                raise FamilyError(f"{where}: run {run.name} drops {name}, which neither {run.script} nor its "
                                  "override sets give")
        for name in run.set:
            if name not in upstream:
                raise FamilyError(f"{where}: run {run.name} sets {name}, which {run.script} does not have "
                                  "(use add: for a flag upstream lacks)")
        for name in run.add:
            if name in upstream:
                raise FamilyError(f"{where}: run {run.name} adds {name}, which {run.script} already has "
                                  f"({' '.join(upstream.get(name) or [])}): use set:")
        for set_name in run.use:
            values, drops, _why = self.overrides[set_name]
            for name in drops:
                flags.drop(name)
            for name, value in values.items():
                flags.set(name, value)
        for name in run.drop:
            flags.drop(name)
        for name, value in {**run.set, **run.add}.items():
            flags.set(name, value)
        return flags


def _values(value: Any) -> list[str]:
    if value is True:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


def load(path: Path = FAMILY_FILE) -> FamilyFile:
    """The family file at `path`, schema-checked, references resolved; FamilyError on any problem."""
    try:
        data, node = load_yaml(path.read_text(encoding="utf-8"), path)
    except (OSError, YamlError) as exc:
        raise FamilyError(str(exc)) from None
    errors = sorted(jsonschema.Draft202012Validator(SCHEMA).iter_errors(data), key=lambda e: list(e.path))
    if errors:
        err = errors[0]
        raise FamilyError(f"{path}:{line_of(node, list(err.path))}: {field_name(list(err.path))}: {err.message}")
    overrides = {name: ({k: _values(v) for k, v in (o.get("set") or {}).items()}, tuple(o.get("drop") or ()), o["why"])
                 for name, o in data["overrides"].items()}
    runs: dict[str, Run] = {}
    for name, r in data["runs"].items():
        run = Run(name=name, script=r["script"], kind=r["kind"], covers=tuple(r.get("covers") or ()),
                  changed=r["changed"], use=tuple(r.get("use") or ()),
                  set={k: _values(v) for k, v in (r.get("set") or {}).items()},
                  add={k: _values(v) for k, v in (r.get("add") or {}).items()},
                  drop=tuple(r.get("drop") or ()), line=line_of(node, ["runs", name]))
        for set_name in run.use:
            if set_name not in overrides:
                raise FamilyError(f"{path}:{run.line}: run {name} uses override set {set_name!r}, which "
                                  f"overrides: does not define (defined: {', '.join(sorted(overrides))})")
        runs[name] = run
    family_file = FamilyFile(path, overrides, runs)
    for run in runs.values():
        for ref in family_file.needs(run):
            if ref not in runs:
                raise FamilyError(f"{path}:{run.line}: run {run.name} names run {ref!r}, which runs: does not define")
    return family_file
