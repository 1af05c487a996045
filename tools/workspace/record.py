"""A repository's entry in the state file, typed: the commit of each finished stage, what it was
made from, and the stage in progress when a run stopped.

On disk (``state.json``) an entry keeps the JSON shape earlier versions of the driver wrote, so
existing workspaces are read as they are::

    {"source": pin, "origin": where it came from,
     "stages": {"fetched": {...}, "patched": {...}, "converted": {...}},
     "in_progress": {"stage": "patch" | "convert", "from": commit, "at": time, "pid": pid}}

:func:`RepoRecord.from_json` checks that shape, so a damaged state file is one clear line
instead of a ``KeyError`` in the middle of a run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


class RecordError(ValueError):
    """A state file entry that does not have the shape of a record; the message names the field."""


@dataclass(frozen=True)
class Target:
    """One repository of the conversion's target (a repository without rules: mindtorch) as a
    conversion saw it: its name, pin and patch series hash."""

    name: str
    source: str
    patches: str


TargetPrint = tuple[Target, ...]


@dataclass(frozen=True)
class Fetched:
    """Stage 1: the pin itself (a clone, or a PyPI file made into a repository)."""

    commit: str
    at: str
    detail: str = ""


@dataclass(frozen=True)
class Patched:
    """Stage 2: the patch series applied (``commit`` is the pin's when there are no patches)."""

    commit: str
    patches: str  # RepoSpec.patches_hash() of the series applied
    count: int
    at: str


@dataclass(frozen=True)
class Converted:
    """Stage 3: converted with the rule set ``rules`` (None: a repository without rules, left as it is)."""

    commit: str
    rules: str | None
    at: str
    files_changed: int | None = None
    unsupported: int | None = None
    files_failed: int | None = None
    report_dir: str | None = None
    targets: TargetPrint | None = None  # None: made before targets were recorded


Stage = Literal["patch", "convert"]


@dataclass(frozen=True)
class InProgress:
    """A stage that was started from ``start`` and has not finished (yet, or ever: interrupted)."""

    stage: Stage
    start: str
    at: str
    pid: int


@dataclass(frozen=True)
class RepoRecord:
    """What the workspace knows it did to one repository."""

    source: str  # the manifest pin it was fetched at (Source.pin)
    origin: str
    fetched: Fetched
    patched: Patched | None = None
    converted: Converted | None = None
    in_progress: InProgress | None = None

    @property
    def last_commit(self) -> str:
        """The commit of the last finished stage: where the driver left the repository."""
        return (self.converted or self.patched or self.fetched).commit

    @property
    def stage_label(self) -> str:
        """The last finished stage, as the summary table shows it."""
        if self.converted is not None and self.converted.rules:
            return "converted"
        if self.patched is not None and self.patched.commit != self.fetched.commit:
            return "patched"
        return "pinned"

    def to_json(self) -> dict[str, Any]:
        stages: dict[str, Any] = {"fetched": {"commit": self.fetched.commit, "at": self.fetched.at,
                                              "detail": self.fetched.detail}}
        if self.patched is not None:
            p = self.patched
            stages["patched"] = {"commit": p.commit, "patches": p.patches, "count": p.count, "at": p.at}
        if self.converted is not None:
            c = self.converted
            conv: dict[str, Any] = {"commit": c.commit, "rules": c.rules, "at": c.at}
            for key in ("files_changed", "unsupported", "files_failed", "report_dir"):
                if getattr(c, key) is not None:
                    conv[key] = getattr(c, key)
            if c.targets is not None:
                conv["targets"] = [{"name": t.name, "source": t.source, "patches": t.patches} for t in c.targets]
            stages["converted"] = conv
        data: dict[str, Any] = {"source": self.source, "origin": self.origin, "stages": stages}
        if self.in_progress is not None:
            i = self.in_progress
            data["in_progress"] = {"stage": i.stage, "from": i.start, "at": i.at, "pid": i.pid}
        return data

    @classmethod
    def from_json(cls, data: Any) -> "RepoRecord":
        """Read an entry as :meth:`to_json` writes it; :class:`RecordError` names what is wrong."""
        top = _obj(data, "the entry")
        stages = _obj(top.get("stages"), "stages")
        f = _obj(stages.get("fetched"), "stages.fetched")
        fetched = Fetched(_req(f, "commit", "stages.fetched"), _req(f, "at", "stages.fetched"),
                          _opt(f, "detail", "stages.fetched") or "")
        patched = None
        if stages.get("patched") is not None:
            p = _obj(stages["patched"], "stages.patched")
            patched = Patched(_req(p, "commit", "stages.patched"), _req(p, "patches", "stages.patched"),
                              _int(p, "count", "stages.patched") or 0, _req(p, "at", "stages.patched"))
        converted = None
        if stages.get("converted") is not None:
            where = "stages.converted"
            c = _obj(stages["converted"], where)
            targets = None
            if c.get("targets") is not None:
                if not isinstance(c["targets"], list):
                    raise RecordError(f"{where}.targets is not a list")
                items = [_obj(t, f"{where}.targets[{n}]") for n, t in enumerate(c["targets"])]
                targets = tuple(Target(_req(t, "name", f"{where}.targets[{n}]"), _req(t, "source", f"{where}.targets[{n}]"),
                                       _req(t, "patches", f"{where}.targets[{n}]")) for n, t in enumerate(items))
            converted = Converted(
                _req(c, "commit", where), _opt(c, "rules", where), _req(c, "at", where),
                _int(c, "files_changed", where), _int(c, "unsupported", where), _int(c, "files_failed", where),
                _opt(c, "report_dir", where), targets)
        in_progress = None
        if top.get("in_progress") is not None:
            i = _obj(top["in_progress"], "in_progress")
            stage = i.get("stage")
            if stage not in ("patch", "convert"):
                raise RecordError(f"in_progress.stage is {stage!r}, not 'patch' or 'convert'")
            in_progress = InProgress(stage, _req(i, "from", "in_progress"), _opt(i, "at", "in_progress") or "",
                                     _int(i, "pid", "in_progress") or 0)
        return cls(_req(top, "source", "the entry"), _opt(top, "origin", "the entry") or "", fetched, patched,
                   converted, in_progress)


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RecordError(f"{where} is {'missing' if value is None else 'not an object'}")
    return value


def _opt(obj: dict[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise RecordError(f"{where}.{key} is not a string")
    return value


def _req(obj: dict[str, Any], key: str, where: str) -> str:
    value = _opt(obj, key, where)
    if value is None:
        raise RecordError(f"{where}.{key} is missing")
    return value


def _int(obj: dict[str, Any], key: str, where: str) -> int | None:
    value = obj.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise RecordError(f"{where}.{key} is not a number")
    return value
