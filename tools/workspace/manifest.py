"""Manifests: which repositories a workspace holds, at which pin, with which patches and rules.

A manifest is data (``workspaces/llm.yaml`` and friends), loaded with the project's strict YAML
loader (``yaml.safe_load`` without duplicate keys, aliases or unbounded nesting) and checked against
:data:`SCHEMA`, so a typo is reported before anything is cloned, as one line
naming the file, the line and the field. Relative paths in ``patches`` and ``rules`` are resolved
against the directory of the manifest file (so ``workspaces/llm.yaml`` names ``../rules/...``),
which lets tests and users keep a manifest with its own patches anywhere.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterator, Union

import jsonschema

from tools.yamlpath import YamlError, field_name, line_of, load as load_yaml

from tools.workspace.errors import ManifestError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MANIFEST_DIR = PROJECT_ROOT / "workspaces"

_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
_REQUIREMENT = r"^[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9][A-Za-z0-9.+!_-]*$"

_GIT_SOURCE: dict[str, Any] = {
    "additionalProperties": False,
    "required": ["url"],
    "oneOf": [{"required": ["commit"]}, {"required": ["commit_abbrev"]}],
    "properties": {
        "kind": {"const": "git"},
        "url": {"type": "string", "minLength": 1},
        "commit": {"type": "string", "pattern": "^[0-9a-f]{40}$"},
        "commit_abbrev": {"type": "string", "pattern": "^[0-9a-f]{7,39}$"},
        "ref": {"type": "string"},
    },
}

_PYPI_SOURCE: dict[str, Any] = {
    "additionalProperties": False,
    "required": ["requirement", "take"],
    "properties": {
        "kind": {"const": "pypi"},
        "requirement": {"type": "string", "pattern": _REQUIREMENT},
        "take": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
        "format": {"enum": ["wheel", "sdist"]},
        "dist_info": {"type": "boolean"},
        "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
    },
}

_PATHS: dict[str, Any] = {"type": "array", "items": {"type": "string", "minLength": 1}}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "repos"],
    "properties": {
        "name": {"type": "string", "pattern": _NAME},
        "description": {"type": "string"},
        "repos": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "source"],
                "properties": {
                    "name": {"type": "string", "pattern": _NAME},
                    "source": {
                        "type": "object",
                        "required": ["kind"],
                        "properties": {"kind": {"enum": ["git", "pypi"]}},
                        "allOf": [
                            {"if": {"properties": {"kind": {"const": "git"}}}, "then": _GIT_SOURCE},
                            {"if": {"properties": {"kind": {"const": "pypi"}}}, "then": _PYPI_SOURCE},
                        ],
                    },
                    "patches": {"oneOf": [{"type": "string", "minLength": 1}, _PATHS]},
                    "rules": _PATHS,
                    "pythonpath": _PATHS,
                },
            },
        },
    },
}


@dataclass(frozen=True)
class GitSource:
    """A git repository at an exact commit (``commit``), or at a short one resolved from a mirror."""

    url: str
    commit: str | None
    commit_abbrev: str | None
    ref: str | None

    @property
    def pin(self) -> str:
        return self.commit or self.commit_abbrev or ""

    def describe(self) -> str:
        short = self.pin[:10]
        return f"{self.ref} ({short})" if self.ref else short


@dataclass(frozen=True)
class PypiSource:
    """A folder (or file) of one distribution from PyPI, made into a local git repository."""

    requirement: str
    take: tuple[str, ...]
    format: str
    dist_info: bool
    sha256: str | None

    @property
    def pin(self) -> str:
        """Everything that decides the content of the repository."""
        return f"{self.requirement} {self.format} take={','.join(self.take)} dist_info={self.dist_info}"

    def describe(self) -> str:
        return self.requirement


Source = Union[GitSource, PypiSource]


@dataclass(frozen=True)
class RepoSpec:
    """One repository of a workspace, as the manifest asks for it."""

    name: str
    source: Source
    patches: tuple[Path, ...]
    rules: tuple[Path, ...]
    pythonpath: tuple[str, ...]

    def patches_hash(self) -> str:
        """Identifies the patch series (names and contents) so a changed series is re-applied."""
        digest = hashlib.sha256()
        for patch in self.patches:
            digest.update(patch.name.encode() + b"\0" + patch.read_bytes() + b"\0")
        return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Manifest:
    name: str
    description: str
    path: Path
    repos: tuple[RepoSpec, ...]


def manifest_path(kind: str) -> Path:
    """The shipped manifest for ``llm``, ``mm`` or ``rl``."""
    return MANIFEST_DIR / f"{kind}.yaml"


def _best_error(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """The most specific error: the deepest one inside ``oneOf``/``if`` branches."""
    return jsonschema.exceptions.best_match([error]) if not error.context else max(
        (_best_error(e) for e in error.context), key=lambda e: len(e.absolute_path)
    )


def _is_relative_inside(path: str) -> bool:
    pure = PurePosixPath(path)
    return not pure.is_absolute() and ".." not in pure.parts and "\\" not in path


def _control_characters(value: Any, where: list[Any]) -> Iterator[tuple[list[Any], str]]:
    """Strings that hold a control character, with where they are (``description`` may span lines).
    The schema's patterns cannot refuse them all: ``$`` also matches before a final newline, so
    ``name: "a\\n"`` passed ``^[A-Za-z0-9][A-Za-z0-9._-]*$`` and made a folder name with a newline."""
    if isinstance(value, str):
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
            yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            if where or key != "description":
                yield from _control_characters(item, where + [key])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _control_characters(item, where + [index])


def load_manifest(path: Path) -> Manifest:
    """Load and check one manifest; every problem is a :class:`ManifestError` naming file and field."""
    path = Path(path).resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read the manifest: {exc.strerror or exc}") from None
    try:
        data, root = load_yaml(text, path)
    except YamlError as exc:
        raise ManifestError(str(exc)) from None

    def fail(where: list[Any], message: str) -> ManifestError:
        line = line_of(root, where)
        return ManifestError(f"{path}:{line}: {field_name(where)}: {message}" if line else f"{path}: {field_name(where)}: {message}")

    validator = jsonschema.Draft202012Validator(SCHEMA)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        error = errors[0]
        if error.validator == "oneOf" and error.context and all(e.validator == "required" for e in error.context):
            wanted = [e.validator_value[0] for e in error.context]
            raise fail(list(error.absolute_path), "needs exactly one of: " + ", ".join(wanted))
        error = _best_error(error)
        where = list(error.absolute_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = error.schema.get("properties", {})
            extra = [key for key in error.instance if key not in allowed]
            if extra:
                where.append(extra[0])
                raise fail(where, "unknown field (allowed: " + ", ".join(allowed) + ")")
        raise fail(where, error.message)

    bad = next(_control_characters(data, []), None)
    if bad is not None:
        where, value = bad
        raise fail(where, f"{value!r} holds a control character (a newline, tab, ...): write it on one line")

    base = path.parent
    repos: list[RepoSpec] = []
    seen: set[str] = set()
    for index, item in enumerate(data["repos"]):
        at = ["repos", index]
        name = item["name"]
        if name in seen:
            raise fail(at + ["name"], f"repository {name!r} is listed twice")
        seen.add(name)
        src = item["source"]
        source: Source
        if src["kind"] == "git":
            source = GitSource(src["url"], src.get("commit"), src.get("commit_abbrev"), src.get("ref"))
        else:
            for i, take in enumerate(src["take"]):
                if not _is_relative_inside(take):
                    raise fail(at + ["source", "take", i], f"{take!r} must be a relative path inside the distribution")
            source = PypiSource(
                src["requirement"], tuple(src["take"]), src.get("format", "wheel"),
                bool(src.get("dist_info", False)), src.get("sha256"),
            )
        patch_entries = item.get("patches", [])
        if isinstance(patch_entries, str):
            patch_entries = [patch_entries]
        patches: list[Path] = []
        for i, entry in enumerate(patch_entries):
            where = at + ["patches"] + ([i] if isinstance(item.get("patches"), list) else [])
            target = (base / entry).resolve()
            if target.is_dir():
                patches.extend(sorted(target.glob("*.patch")))
            elif target.is_file():
                patches.append(target)
            else:
                raise fail(where, f"{target} does not exist (paths are relative to the manifest's folder)")
        rules: list[Path] = []
        for i, entry in enumerate(item.get("rules", [])):
            target = (base / entry).resolve()
            if not target.is_file():
                raise fail(at + ["rules", i], f"rule file {target} does not exist (paths are relative to the manifest's folder)")
            rules.append(target)
        pythonpath = item.get("pythonpath", ["."])
        for i, entry in enumerate(pythonpath):
            if not _is_relative_inside(entry):
                raise fail(at + ["pythonpath", i], f"{entry!r} must be a relative path inside the repository")
        repos.append(RepoSpec(name, source, tuple(patches), tuple(rules), tuple(pythonpath)))
    return Manifest(data["name"], data.get("description", ""), path, tuple(repos))

