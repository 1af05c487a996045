"""The engine's data: what a validated rule file turns into, and what converting one file gives.

The per-file result types are plain values (enums with the string values the reports and the
cache have always used, named tuples that serialise as JSON lists), so a cached result and a
fresh one are the same thing.
"""
from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import NamedTuple


@dataclass(frozen=True)
class ImportRule:
    """Retarget a module and everything below it: ``torch`` -> ``mindtorch``."""

    id: str
    module: str
    target: str
    origin: str = ""


@dataclass(frozen=True)
class ApiRule:
    """Map one fully qualified torch API to a target, with argument edits (PaConvert's shape)."""

    id: str
    api: str
    target: str | None = None            # None: unsupported, report only
    target_module: str | None = None     # the importable part of ``target``
    args: tuple[str, ...] = ()           # positional parameter names, to find positional args
    kwargs_rename: tuple[tuple[str, str], ...] = ()
    kwargs_drop: tuple[str, ...] = ()
    defaults: tuple[tuple[str, str], ...] = ()   # keyword -> source text (literal or dotted name)
    unsupported_args: tuple[tuple[str, str], ...] = ()  # keyword -> hint
    unsupported: bool = False
    hint: str = ""
    origin: str = ""

    @property
    def edits_arguments(self) -> bool:
        return bool(self.kwargs_rename or self.kwargs_drop or self.defaults)

    @property
    def target_attr(self) -> str:
        assert self.target and self.target_module
        return self.target[len(self.target_module) + 1:]


SCOPED_ACTIONS = (
    "replace_call", "replace_expr", "remove_stmt", "remove_decorator", "insert_import", "replace_body",
)


@dataclass(frozen=True)
class ScopedRule:
    """A structural edit aimed at a module path (glob) and optionally a qualified class/function."""

    id: str
    path: str
    action: str
    reason: str
    within: str | None = None
    match: str | None = None
    replace: str | None = None
    keep_docstring: bool = True
    expect_body: str | None = None       # replace_body: fingerprint of the upstream body it replaces
    origin: str = ""

    def applies_to(self, relpath: str) -> bool:
        return fnmatch.fnmatchcase(relpath, self.path)


@dataclass(frozen=True)
class TransformRule:
    """The escape hatch: a named transform implemented in Python inside tools/convert/transforms."""

    id: str
    transform: str
    reason: str
    path: str = "*"
    origin: str = ""

    def applies_to(self, relpath: str) -> bool:
        return fnmatch.fnmatchcase(relpath, self.path)


FAMILIES = ("imports", "apis", "scoped", "transforms")


@dataclass(frozen=True)
class RuleSet:
    """The selected rules of one run. ``hash`` keys the cache and names the workspace stage."""

    imports: tuple[ImportRule, ...] = ()
    apis: tuple[ApiRule, ...] = ()
    scoped: tuple[ScopedRule, ...] = ()
    transforms: tuple[TransformRule, ...] = ()
    files: tuple[str, ...] = ()
    hash: str = ""
    import_map: dict[str, str] = field(default_factory=dict, compare=False)
    api_map: dict[str, ApiRule] = field(default_factory=dict, compare=False)
    # Derived once here, used for every file and every name:
    import_roots: frozenset[str] = field(default=frozenset(), compare=False)   # torch, torch_npu
    source_roots: frozenset[str] = field(default=frozenset(), compare=False)   # + roots of mapped APIs
    tracked_roots: frozenset[str] = field(default=frozenset(), compare=False)  # + roots of the targets
    trigger_tokens: tuple[bytes, ...] = field(default=(), compare=False)       # the prefilter's tokens
    reverse_import_map: dict[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        def roots(names) -> frozenset[str]:
            return frozenset(n.split(".")[0] for n in names)
        derived = {
            "import_map": {r.module: r.target for r in self.imports},
            "api_map": {r.api: r for r in self.apis},
        }
        derived["import_roots"] = roots(derived["import_map"])
        derived["source_roots"] = derived["import_roots"] | roots(derived["api_map"])
        # A file that contains none of these (and no scoped/transform path hit) is never parsed.
        derived["tracked_roots"] = derived["source_roots"] | roots(derived["import_map"].values())
        derived["trigger_tokens"] = tuple(sorted(t.encode() for t in derived["tracked_roots"]))
        derived["reverse_import_map"] = {t: m for m, t in derived["import_map"].items()}
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    def all_rules(self) -> list:
        return [*self.imports, *self.apis, *self.scoped, *self.transforms]

    def retarget(self, qualname: str) -> str:
        """Where ``qualname`` lives after import retargeting (longest matching module wins)."""
        parts = qualname.split(".")
        for i in range(len(parts), 0, -1):
            target = self.import_map.get(".".join(parts[:i]))
            if target is not None:
                return ".".join([target, *parts[i:]])
        return qualname

    def canonical(self, qualname: str) -> str:
        """The source-side name of ``qualname``: ``mindtorch.nn`` -> ``torch.nn`` (for reports)."""
        parts = qualname.split(".")
        for i in range(len(parts), 0, -1):
            source = self.reverse_import_map.get(".".join(parts[:i]))
            if source is not None:
                return ".".join([source, *parts[i:]])
        return qualname


class Status(StrEnum):
    """What happened to one file."""

    CHANGED = "changed"
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"
    FAILED = "failed"


class SkipReason(StrEnum):
    """The fixed reasons a file is skipped (others carry details: ``too large (...)``)."""

    NO_TRIGGER = "no trigger token"
    OPTED_OUT = "opted out with '# ms-convert: skip-file'"
    SYMLINK = "symlink (not followed)"
    SYMLINKED_DIR = "symlinked directory (not followed)"


class Category(StrEnum):
    """What the conversion did with one API use."""

    REWRITTEN = "rewritten"        # an API rule rewrote it
    RETARGETED = "retargeted"      # an import rule moved its module; the name is unchanged
    UNSUPPORTED = "unsupported"    # a rule (or the engine) says it has no target


class Use(NamedTuple):
    """One use of a source-side API (``torch.nn.Linear``), or a finding that is reported like one."""

    api: str
    line: int
    end_line: int
    category: str          # a Category
    rule: str = ""
    hint: str = ""


class Change(NamedTuple):
    """One applied edit, a row of change_list.csv."""

    line: int
    end_line: int
    op: str
    message: str
    rule: str


@dataclass
class FileResult:
    """What happened to one file. Everything but ``new_data`` is JSON-able (it is cached)."""

    path: str
    status: str                       # a Status
    reason: str = ""
    parsed: bool = False
    sha: str = ""
    new_sha: str = ""
    changes: list[Change] = field(default_factory=list)
    uses: list[Use] = field(default_factory=list)
    scoped_considered: list[str] = field(default_factory=list)
    scoped_matched: list[str] = field(default_factory=list)
    opted_out: int = 0
    new_data: bytes | None = None
    fixed_point: dict | None = None   # the result of converting the output (cached under new_sha)
    worker_rss_kb: int = 0            # peak RSS of the process that converted it (not cached)

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("new_data")
        d.pop("fixed_point")
        d.pop("worker_rss_kb")
        return d

    @classmethod
    def from_json(cls, d: dict) -> "FileResult":
        d = dict(d, status=Status(d["status"]), changes=[Change(*c) for c in d.get("changes", [])],
                 uses=[Use(*u) for u in d.get("uses", [])])
        return cls(**d)
