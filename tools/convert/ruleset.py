"""Load, validate and select rule files.

Rule files are parsed with :func:`tools.yamlpath.load` (``yaml.safe_load``'s semantics, without
duplicate keys or aliases) and checked against :data:`schema.RULE_FILE_SCHEMA`, then semantically
(ids unique, source snippets parse as what their action needs, text spliced into a line has no
comment, targets are not themselves mapped, named transforms exist). The first problem stops the load with one line naming file, line and field.
"""
from __future__ import annotations

import ast
import hashlib
import io
import json
import keyword
import tokenize
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterable, Sequence

import jsonschema
import yaml

from tools.yamlpath import YamlError, field_name, line_of, one_line
from tools.yamlpath import load as load_yaml

from . import ENGINE_VERSION
from .errors import RuleError
from .model import FAMILIES, ApiRule, ImportRule, RuleSet, ScopedRule, TransformRule
from .schema import RULE_FILE_SCHEMA

DEFAULT_RULES_DIR = Path(__file__).resolve().parents[2] / "rules"


class _FileCtx:
    def __init__(self, path: Path, root: yaml.Node | None) -> None:
        self.path, self.root = path, root

    def error(self, where: Sequence[Any], message: str) -> RuleError:
        line = line_of(self.root, where)
        loc = f"{self.path}:{line}" if line else str(self.path)
        return RuleError(f"{loc}: {one_line(field_name(where), 100)}: {one_line(message, 300)}")


def _check_source(ctx: _FileCtx, where: list, source: str, mode: str) -> None:
    try:
        ast.parse(source, mode=mode)
    except SyntaxError as exc:
        kind = "an expression" if mode == "eval" else "statements"
        raise ctx.error(where, f"cannot parse as {kind}: {exc.msg}") from None


def _check_inline(ctx: _FileCtx, where: list, source: str) -> None:
    """Source text spliced into the middle of a line (a replacement expression, a default) must be
    one expression and nothing else: a comment in it would turn the rest of that line into a
    comment, and the result would still compile."""
    _check_source(ctx, where, source, "eval")
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            raise ctx.error(where, f"contains a comment ({tok.string!r}); text inserted into a line may not "
                            "have one (it would comment out the rest of that line): remove it")


_NOT_CALLABLE = (ast.Constant, ast.JoinedStr, ast.List, ast.Tuple, ast.Dict, ast.Set, ast.ListComp, ast.SetComp,
                 ast.DictComp, ast.GeneratorExp)


def _split_target(target: str) -> tuple[str, str]:
    if ":" in target:
        module, attr = target.split(":", 1)
        return f"{module}.{attr}", module
    return target, target.rsplit(".", 1)[0] if "." in target else target


def _load_file(path: Path) -> tuple[_FileCtx, dict]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleError(f"{path}: cannot read rule file: {one_line(str(exc))}") from None
    try:
        data, root = load_yaml(text, path)
    except YamlError as exc:
        raise RuleError(str(exc)) from None
    ctx = _FileCtx(path, root)
    if not isinstance(data, dict):
        raise RuleError(f"{path}:1: (top level): a rule file is a mapping with 'version: 1' and rule lists")
    errors = sorted(jsonschema.Draft202012Validator(RULE_FILE_SCHEMA).iter_errors(data),
                    key=lambda e: (list(e.absolute_path), e.message))
    if errors:
        err = jsonschema.exceptions.best_match(errors)
        where = list(err.absolute_path)
        if err.validator == "additionalProperties":
            extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
            where.append(extra[0])
        elif err.validator == "not" and isinstance(err.instance, dict):
            where.append(err.validator_value["required"][0])
        raise ctx.error(where, _schema_message(err))
    return ctx, data


def _schema_message(err: jsonschema.ValidationError) -> str:
    if err.validator == "additionalProperties":
        return "unknown field; see docs/rules.md for the fields of each rule family"
    if err.validator == "not" and isinstance(err.instance, dict):
        return f"not allowed with action {err.instance.get('action')!r}; see docs/rules.md"
    if err.validator == "required":
        return f"{err.message.split(' ')[0]} is required here"
    if err.validator == "pattern":
        return f"{err.instance!r} is not a valid name here"
    if err.validator == "oneOf" and isinstance(err.instance, dict):
        return "give either 'target', or 'unsupported: true' with a 'hint'"
    return err.message


_NAME_FIELDS = {   # family -> fields holding names that end up in source code
    "imports": ("module", "target"),
    "apis": ("api", "target", "args", "kwargs_rename", "kwargs_drop", "defaults", "unsupported_args"),
    "scoped": ("within",),
}


def _check_names(ctx: _FileCtx, data: dict) -> None:
    """Names the schema's patterns accept but Python does not: ``kwargs_rename: {a: class}`` would
    write ``f(class=1)``."""
    for family, fields in _NAME_FIELDS.items():
        for i, item in enumerate(data.get(family) or []):
            for name in fields:
                value = item.get(name)
                names = (value if isinstance(value, list) else
                         [*value, *(v for v in value.values() if name == "kwargs_rename")] if isinstance(value, dict)
                         else [value] if isinstance(value, str) else [])
                for text in names:
                    bad = [part for part in text.replace(":", ".").split(".") if keyword.iskeyword(part)]
                    if bad:
                        raise ctx.error([family, i, name], f"{bad[0]!r} is a Python keyword, not a name")


def _parse_rules(ctx: _FileCtx, data: dict) -> list:
    from .transforms import TRANSFORMS

    _check_names(ctx, data)
    origin = str(ctx.path)
    rules: list = []
    for i, item in enumerate(data.get("imports") or []):
        rules.append(ImportRule(item["id"], item["module"], item["target"], f"{origin}:imports[{i}]"))
    for i, item in enumerate(data.get("apis") or []):
        where = ["apis", i]
        target = module = None
        if item.get("target"):
            target, module = _split_target(item["target"])
        for name, value in (item.get("defaults") or {}).items():
            src = value if isinstance(value, str) else json.dumps(value).replace("true", "True").replace(
                "false", "False").replace("null", "None")
            _check_inline(ctx, [*where, "defaults", name], src)
            if not _is_dotted(src):
                try:
                    ast.literal_eval(src)
                except ValueError:
                    raise ctx.error([*where, "defaults", name], "a default is a literal or a dotted name") from None
        rules.append(ApiRule(
            id=item["id"], api=item["api"], target=target, target_module=module,
            args=tuple(item.get("args") or ()),
            kwargs_rename=tuple((item.get("kwargs_rename") or {}).items()),
            kwargs_drop=tuple(item.get("kwargs_drop") or ()),
            defaults=tuple((k, v if isinstance(v, str) else repr(v)) for k, v in (item.get("defaults") or {}).items()),
            unsupported_args=tuple((item.get("unsupported_args") or {}).items()),
            unsupported=bool(item.get("unsupported", False)), hint=item.get("hint", ""),
            origin=f"{origin}:apis[{i}]",
        ))
    for i, item in enumerate(data.get("scoped") or []):
        where = ["scoped", i]
        action = item["action"]
        if action in ("replace_call", "remove_decorator", "replace_expr"):
            _check_source(ctx, [*where, "match"], item["match"], "eval")
        if action == "remove_stmt":
            _check_source(ctx, [*where, "match"], item["match"], "exec")
        if action in ("replace_call", "replace_expr"):
            item = dict(item, replace=item["replace"].strip())   # a YAML block scalar's final newline
            _check_inline(ctx, [*where, "replace"], item["replace"])
        if action == "replace_call" and isinstance(ast.parse(item["replace"], mode="eval").body, _NOT_CALLABLE):
            raise ctx.error([*where, "replace"], "replace_call replaces the called function: give a callable "
                            "expression such as torch.npu.synchronize, not a literal")
        if action in ("insert_import", "replace_body"):
            _check_source(ctx, [*where, "replace"], item["replace"], "exec")
        if action == "insert_import":
            stmts = ast.parse(item["replace"]).body
            if not stmts or not all(isinstance(s, (ast.Import, ast.ImportFrom)) for s in stmts):
                raise ctx.error([*where, "replace"], "insert_import takes import statements only")
        if action == "replace_call" and not _is_dotted(item["match"]):
            raise ctx.error([*where, "match"], "replace_call matches a dotted API name, e.g. torch.cuda.synchronize")
        rules.append(ScopedRule(
            id=item["id"], path=item["path"], action=action, reason=item["reason"], within=item.get("within"),
            match=item.get("match"), replace=item.get("replace"), keep_docstring=item.get("keep_docstring", True),
            expect_body=item.get("expect_body"),
            origin=f"{origin}:scoped[{i}]",
        ))
    for i, item in enumerate(data.get("transforms") or []):
        if item["transform"] not in TRANSFORMS:
            known = ", ".join(sorted(TRANSFORMS))
            raise ctx.error(["transforms", i, "transform"], f"no transform named {item['transform']!r} (known: {known})")
        rules.append(TransformRule(item["id"], item["transform"], item["reason"], item.get("path", "*"),
                                   f"{origin}:transforms[{i}]"))
    return rules


def _is_dotted(text: str) -> bool:
    return all(part.isidentifier() for part in text.split("."))


def _family(rule: object) -> str:
    return {ImportRule: "imports", ApiRule: "apis", ScopedRule: "scoped", TransformRule: "transforms"}[type(rule)]


def _selected(rule: object, select: Iterable[str] | None, ignore: Iterable[str] | None) -> bool:
    def hit(patterns: Iterable[str]) -> bool:
        return any(p == _family(rule) or rule.id.startswith(p) for p in patterns)  # type: ignore[attr-defined]
    if select and not hit(select):
        return False
    return not (ignore and hit(ignore))


def rule_files(paths: Sequence[Path | str] | None) -> list[Path]:
    """Expand directories to their ``*.yaml`` files (sorted); default: the project's ``rules/``."""
    out: list[Path] = []
    for p in [Path(p) for p in (paths or [DEFAULT_RULES_DIR])]:
        if p.is_dir():
            out.extend(sorted([*p.glob("*.yaml"), *p.glob("*.yml")]))
        elif p.is_file():
            out.append(p)
        else:
            raise RuleError(f"{p}: no such rule file or directory")
    return out


def load_rules(paths: Sequence[Path | str] | None = None, select: Iterable[str] | None = None,
               ignore: Iterable[str] | None = None) -> RuleSet:
    """Load and validate rule files, then keep the rules chosen by ``select``/``ignore``.

    ``select``/``ignore`` take rule ids, id prefixes (``API``, ``MEG0``) or family names
    (``imports``, ``apis``, ``scoped``, ``transforms``), like a linter's --select/--ignore.
    """
    select, ignore = list(select or []), list(ignore or [])
    for token in [*select, *ignore]:
        if not (token in FAMILIES or token.isalnum()):
            raise RuleError(f"--select/--ignore: {token!r} is neither a family ({', '.join(FAMILIES)}) nor a rule id prefix")
    files = rule_files(paths)
    rules: list = []
    files_ctx: dict[str, _FileCtx] = {}
    for path in files:
        ctx, data = _load_file(path)
        files_ctx[str(path)] = ctx
        rules.extend(_parse_rules(ctx, data))
    _check_consistency(rules, files_ctx)
    chosen = [r for r in rules if _selected(r, select, ignore)]
    payload = json.dumps({"engine": ENGINE_VERSION,
                          "rules": [[_family(r), {k: v for k, v in asdict(r).items() if k != "origin"}] for r in chosen]},
                         sort_keys=True, default=list)
    return RuleSet(
        imports=tuple(r for r in chosen if isinstance(r, ImportRule)),
        apis=tuple(r for r in chosen if isinstance(r, ApiRule)),
        scoped=tuple(r for r in chosen if isinstance(r, ScopedRule)),
        transforms=tuple(r for r in chosen if isinstance(r, TransformRule)),
        files=tuple(str(p) for p in files),
        hash=hashlib.sha256(payload.encode()).hexdigest()[:12],
    )


def _check_consistency(rules: list, files: dict[str, _FileCtx]) -> None:
    """Cross-rule checks: ids are unique, no two rules claim the same source (the later one would
    silently win), and no rule maps onto another rule's source (conversion stays idempotent)."""

    def locate(rule) -> tuple[_FileCtx, list]:
        path, item = rule.origin.rsplit(":", 1)            # "rules/x.yaml:apis[3]"
        family, index = item.rstrip("]").split("[")
        return files[path], [family, int(index)]

    def error(rule, field: str, message: str) -> RuleError:
        ctx, where = locate(rule)
        return ctx.error([*where, field], message)

    def where(rule) -> str:
        ctx, where = locate(rule)
        return f"{ctx.path}:{line_of(ctx.root, where)} ({field_name(where)})"

    ids: dict[str, object] = {}
    modules: dict[str, ImportRule] = {}
    apis: dict[str, ApiRule] = {}
    for r in rules:
        if r.id in ids:
            raise error(r, "id", f"{r.id} is already used by {where(ids[r.id])}")
        ids[r.id] = r
        if isinstance(r, ImportRule):
            if r.module in modules:
                raise error(r, "module", f"{r.module} is already retargeted by {modules[r.module].id} at "
                            f"{where(modules[r.module])}; keep one rule per module")
            modules[r.module] = r
        if isinstance(r, ApiRule):
            if r.api in apis:
                raise error(r, "api", f"{r.api} is already mapped by {apis[r.api].id} at {where(apis[r.api])}; "
                            "keep one rule per API")
            apis[r.api] = r
    for r in rules:
        if isinstance(r, ImportRule) and r.target in modules:
            raise error(r, "target", f"{r.target} is itself retargeted by {modules[r.target].id}; "
                        "chains of retargets are not allowed")
        if isinstance(r, ApiRule) and r.api in modules:
            raise error(r, "api", f"{r.api} is a module retargeted by {modules[r.api].id}; use an import rule")
        if isinstance(r, ApiRule) and r.target and r.target in apis:
            raise error(r, "target", f"{r.target} is itself mapped by {apis[r.target].id}")
