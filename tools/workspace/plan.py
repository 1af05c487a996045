"""What to do next with one repository: a pure decision from its record, the goal the manifest
sets and what the repository looks like.

:class:`tools.workspace.stages.RepoRunner` asks :func:`plan` for one action, carries it out (git
and file I/O), and asks again with the new record and a fresh look at the repository, until the
answer is :class:`Done` or :class:`Refuse`. Keeping the decision apart from the I/O makes every
row of the table below a unit test that needs no git repository:

* no folder: fetch it (a record whose folder is gone is dropped);
* a folder the record does not cover (no record, or one made at another pin): adopt it when it is
  exactly the pin (plus stage commits of ours), replace our own untouched copy at the old pin,
  and otherwise refuse (``--force``: move it aside, then fetch);
* a stage recorded as in progress was interrupted: roll it back when HEAD is where that stage
  started (or its own commit), otherwise refuse (``--force``: move aside);
* a changed patch series is redone from the pin; changed rules, or a changed conversion target,
  from the patched stage; hand edits stop that (``--force``: move aside);
* nothing changed: done, noting hand edits, which are kept.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence, Union

from tools.workspace.gitutil import BRANCH
from tools.workspace.record import RepoRecord, TargetPrint


@dataclass(frozen=True)
class Want:
    """What the manifest and the command line ask of one repository."""

    path: Path  # the repository's folder (for messages)
    backup: Path  # where --force moves things (for messages)
    pin: str  # Source.pin
    pin_text: str  # Source.describe(): the pin as people read it
    patches: str  # the patch series hash
    rules: str | None  # the rule set hash; None: not converted
    target: TargetPrint  # the conversion's target as it is now (see stages.target_fingerprint)
    force: bool


class Facts(Protocol):
    """What the repository looks like; the runner reads each from git only when plan() asks."""

    @property
    def exists(self) -> bool: ...

    @property
    def is_repo(self) -> bool: ...

    @property
    def head(self) -> str | None: ...  # None: no commit yet

    @property
    def branch(self) -> str | None: ...  # None: detached

    @property
    def changes(self) -> Sequence[str]: ...  # `git status --porcelain` lines (ignored files are not changes)

    @property
    def pin_commit(self) -> str | None: ...  # the pin's commit when the repository is exactly the pin (under
    # stage commits of ours), with no changes; else None

    @property
    def ours_parent(self) -> str | None: ...  # HEAD's parent when HEAD is a commit of this driver


@dataclass(frozen=True)
class Fetch:
    """The folder is missing: fetch the pin into place (dropping a record whose folder is gone)."""


@dataclass(frozen=True)
class Replace:
    """Our untouched copy is at another pin: fetch the new one, move the old copy aside (it may hold
    ignored files: data, checkpoints), put the new one in its place."""


@dataclass(frozen=True)
class Adopt:
    """The folder is the pin already (a workspace whose state file was lost): record it from ``commit``."""

    commit: str


@dataclass(frozen=True)
class MoveAside:
    """--force: move the folder to the backup, with everything in it; the next step fetches it afresh."""

    why: str


@dataclass(frozen=True)
class RollBack:
    """Keep the interrupted stage's partial changes under a ref and reset to where it started."""


@dataclass(frozen=True)
class Patch:
    """Apply the patch series on the pin (stage 2)."""


@dataclass(frozen=True)
class Convert:
    """Convert from the patched stage (stage 3); ``note`` says why when only the target changed."""

    note: str | None = None


@dataclass(frozen=True)
class Done:
    """Nothing to do; ``note`` reports hand edits, which are kept."""

    note: str | None = None


@dataclass(frozen=True)
class Refuse:
    """Stop this repository: the work would overwrite something that is not ours."""

    message: str


Action = Union[Fetch, Replace, Adopt, MoveAside, RollBack, Patch, Convert, Done, Refuse]


def short(commit: str | None) -> str:
    return commit[:10] if commit else "unborn"


def describe_changes(lines: Sequence[str]) -> str:
    """``git status --porcelain`` lines as a phrase: how many changed and untracked paths, the first few."""
    modified = [line[3:] for line in lines if not line.startswith("??")]
    untracked = [line[3:] for line in lines if line.startswith("??")]
    parts = []
    if modified:
        parts.append(f"{len(modified)} changed file(s) ({', '.join(modified[:3])}{', ...' if len(modified) > 3 else ''})")
    if untracked:
        parts.append(f"{len(untracked)} untracked path(s) ({', '.join(untracked[:3])}{', ...' if len(untracked) > 3 else ''})")
    return " and ".join(parts)


def user_changes(facts: Facts, expected: str) -> str | None:
    """Why the repository is not exactly our last stage ``expected``, or None when it is."""
    reasons = []
    if facts.head != expected:
        where = f"branch {facts.branch}" if facts.branch else "a detached HEAD"
        reasons.append(f"HEAD is {short(facts.head)} on {where}, the workspace left it at {expected[:10]} on {BRANCH}")
    if facts.changes:
        reasons.append(describe_changes(facts.changes))
    return "; ".join(reasons) or None


def target_change(old: TargetPrint | None, new: TargetPrint) -> str | None:
    """Why the target differs from the one the last conversion used, or None when it does not."""
    if old == new:
        return None
    if old is None:
        return "the last conversion did not record its target"
    before, after = {t.name: t for t in old}, {t.name: t for t in new}
    parts = [f"target {name} is now set up" for name in after if name not in before]
    parts += [f"target {name} changed ({'pin' if before[name].source != t.source else 'patches'})"
              for name, t in after.items() if name in before and before[name] != t]
    parts += [f"target {name} is no longer set up" for name in before if name not in after]
    return ", ".join(parts) or "the target's order changed"


def _changed_by_hand(want: Want, why: str, what: str = "was changed by hand") -> Action:
    if want.force:
        return MoveAside(why)
    return Refuse(f"{want.path} {what} ({why}); nothing was written to it. Undo the changes "
                  f"(git -C {want.path} status), or pass --force to move it to {want.backup}/ and set it up afresh")


def _plan_unrecorded(record: RepoRecord | None, want: Want, facts: Facts) -> Action:
    """The folder exists and the record does not cover it: none, or one made at another pin."""
    if not facts.is_repo:
        if want.force:
            return MoveAside("it is not a git repository")
        return Refuse(f"{want.path} exists and is not a git repository made by this workspace; nothing was written "
                      f"to it. Move it away, or pass --force to move it to {want.backup}/")
    if facts.pin_commit is not None:
        return Adopt(facts.pin_commit)
    if record is not None:  # ours, at another pin (the manifest changed): replaced only if untouched
        why = user_changes(facts, record.last_commit)
        if why is None:
            return Replace()
        return _changed_by_hand(want, f"the manifest's pin changed to {want.pin_text} and {why}")
    why = f"HEAD {short(facts.head)}, pin {want.pin_text}"
    if facts.changes:
        why += f", {describe_changes(facts.changes)}"
    return _changed_by_hand(want, why, "is in the way: it was not made by this workspace")


def plan(record: RepoRecord | None, want: Want, facts: Facts) -> Action:
    """The next step for one repository (see the module docstring for the table)."""
    if not facts.exists:
        return Fetch()
    if record is None or record.source != want.pin:
        return _plan_unrecorded(record, want, facts)
    if record.in_progress is not None:
        progress = record.in_progress
        if facts.head == progress.start or facts.ours_parent == progress.start:
            return RollBack()
        return _changed_by_hand(want, f"a {progress.stage} stage was interrupted and HEAD has since moved to "
                                      f"{short(facts.head)}")
    need_patch = record.patched is None or record.patched.patches != want.patches
    converted = record.converted
    rules_done = converted is not None and converted.rules == want.rules
    # A record without targets (made before they were recorded) converts once more: it may have
    # been checked against the installed mindtorch, and nothing in it says otherwise.
    target = target_change(converted.targets, want.target) if rules_done and converted and want.rules else None
    why = user_changes(facts, record.last_commit)
    if not need_patch and rules_done and target is None:
        return Done(f"changed by hand since the run that set it up, kept as it is: {why}" if why else None)
    if why:
        return _changed_by_hand(want, why)
    if need_patch:
        return Patch()
    return Convert(f"converted again: {target}" if target else None)
