"""The driver's decision table (tools.workspace.plan), case by case, without git: a record, the
manifest's goal and what the repository looks like go in, the next action comes out. The real
repositories, scripts and shells behind the same cases are in test_workspace_scripts.py."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from tools.workspace.errors import WorkspaceError
from tools.workspace.plan import (
    Adopt, Convert, Done, Fetch, MoveAside, Patch, Refuse, Replace, RollBack, Want, plan, target_change,
)
from tools.workspace.record import Converted, Fetched, InProgress, Patched, RecordError, RepoRecord, Target
from tools.workspace.state import State

PIN, OLD_PIN = "a" * 40, "b" * 40
PATCHED, CONVERTED, ELSEWHERE = "c" * 40, "d" * 40, "e" * 40
MINDTORCH = Target("mindtorch", "mindnlp==0.5.1 wheel take=mindtorch dist_info=False", "p1")
WANT = Want(path=Path("/ws/Megatron-LM"), backup=Path("/ws/.ms-workspace/backup"), pin=PIN,
            pin_text="core_v0.12.1 (aaaaaaaaaa)", patches="p-hash", rules="r-hash", target=(MINDTORCH,), force=False)
FORCE = dataclasses.replace(WANT, force=True)


@dataclass(frozen=True)
class Repo:
    """Facts as plain values: the repository as plan() sees it."""

    exists: bool = True
    is_repo: bool = True
    head: str | None = CONVERTED
    branch: str | None = "ms-workspace"
    changes: tuple[str, ...] = ()
    pin_commit: str | None = None
    ours_parent: str | None = None


CLEAN = Repo()
EDITED = Repo(changes=(" M megatron/core/utils.py",))
UNTRACKED = Repo(changes=("?? notes.txt", "?? data/"))


def record(stage: str = "converted", *, source: str = PIN, patches: str = "p-hash", rules: str | None = "r-hash",
           targets: tuple[Target, ...] | None = (MINDTORCH,), in_progress: InProgress | None = None) -> RepoRecord:
    """A record whose last finished stage is ``stage`` (pinned, patched or converted)."""
    fetched = Fetched(PIN if source == PIN else OLD_PIN, "t0")
    patched = Patched(PATCHED, patches, 1, "t1") if stage in ("patched", "converted") else None
    converted = Converted(CONVERTED, rules, "t2", 10, 2, 0, "/r", targets) if stage == "converted" else None
    return RepoRecord(source, "mirror", fetched, patched, converted, in_progress)


def refused(message: str) -> Refuse:
    return Refuse(message)


CHANGED = ("/ws/Megatron-LM was changed by hand ({}); nothing was written to it. Undo the changes (git -C "
           "/ws/Megatron-LM status), or pass --force to move it to /ws/.ms-workspace/backup/ and set it up afresh")

CASES = [
    # -- the folder is missing ------------------------------------------------------------------------
    ("a new workspace", None, WANT, Repo(exists=False), Fetch()),
    ("the folder was deleted", record(), WANT, Repo(exists=False), Fetch()),
    # -- the folder is there, the record does not cover it ------------------------------------------
    ("not a git repository", None, WANT, Repo(is_repo=False), Refuse(
        "/ws/Megatron-LM exists and is not a git repository made by this workspace; nothing was written to it. "
        "Move it away, or pass --force to move it to /ws/.ms-workspace/backup/")),
    ("not a git repository, --force", None, FORCE, Repo(is_repo=False), MoveAside("it is not a git repository")),
    ("the pin, state file lost", None, WANT, Repo(head=PIN, pin_commit=PIN), Adopt(PIN)),
    ("our stages on the pin, state file lost", None, WANT, Repo(pin_commit=PIN), Adopt(PIN)),
    ("someone else's clone", None, WANT, Repo(head=ELSEWHERE, branch="main", changes=("?? x",)), Refuse(
        "/ws/Megatron-LM is in the way: it was not made by this workspace (HEAD eeeeeeeeee, pin core_v0.12.1 "
        "(aaaaaaaaaa), 1 untracked path(s) (x)); nothing was written to it. Undo the changes (git -C /ws/Megatron-LM "
        "status), or pass --force to move it to /ws/.ms-workspace/backup/ and set it up afresh")),
    ("someone else's clone, --force", None, FORCE, Repo(head=ELSEWHERE),
     MoveAside("HEAD eeeeeeeeee, pin core_v0.12.1 (aaaaaaaaaa)")),
    ("the pin changed, our copy untouched", record(source=OLD_PIN), WANT, CLEAN, Replace()),
    ("the pin changed, our copy edited", record(source=OLD_PIN), WANT, EDITED, Refuse(CHANGED.format(
        "the manifest's pin changed to core_v0.12.1 (aaaaaaaaaa) and 1 changed file(s) (megatron/core/utils.py)"))),
    ("the pin changed, our copy edited, --force", record(source=OLD_PIN), FORCE, EDITED, MoveAside(
        "the manifest's pin changed to core_v0.12.1 (aaaaaaaaaa) and 1 changed file(s) (megatron/core/utils.py)")),
    # -- a stage was interrupted ----------------------------------------------------------------------
    ("interrupted conversion, HEAD at its start", record("patched", in_progress=InProgress("convert", PATCHED, "t", 1)),
     WANT, Repo(head=PATCHED, changes=(" M a.py",)), RollBack()),
    ("interrupted after its own commit", record("patched", in_progress=InProgress("convert", PATCHED, "t", 1)),
     WANT, Repo(head=CONVERTED, ours_parent=PATCHED), RollBack()),
    ("interrupted patch stage", record("pinned", in_progress=InProgress("patch", PIN, "t", 1)),
     WANT, Repo(head=PIN, changes=(" M a.py",)), RollBack()),
    ("interrupted, then HEAD moved", record("patched", in_progress=InProgress("convert", PATCHED, "t", 1)),
     WANT, Repo(head=ELSEWHERE, branch="mine"), Refuse(CHANGED.format(
         "a convert stage was interrupted and HEAD has since moved to eeeeeeeeee"))),
    ("interrupted, then HEAD moved, --force", record("patched", in_progress=InProgress("convert", PATCHED, "t", 1)),
     FORCE, Repo(head=ELSEWHERE), MoveAside("a convert stage was interrupted and HEAD has since moved to eeeeeeeeee")),
    # -- stages to do -----------------------------------------------------------------------------------
    ("pinned: patch next", record("pinned"), WANT, Repo(head=PIN), Patch()),
    ("patched: convert next", record("patched"), WANT, Repo(head=PATCHED), Convert()),
    ("patches changed", record(patches="old"), WANT, CLEAN, Patch()),
    ("patches changed, hand edits", record(patches="old"), WANT, EDITED,
     Refuse(CHANGED.format("1 changed file(s) (megatron/core/utils.py)"))),
    ("patches changed, hand edits, --force", record(patches="old"), FORCE, EDITED,
     MoveAside("1 changed file(s) (megatron/core/utils.py)")),
    ("rules changed", record(rules="old"), WANT, CLEAN, Convert()),
    ("rules changed, untracked files", record(rules="old"), WANT, UNTRACKED,
     Refuse(CHANGED.format("2 untracked path(s) (notes.txt, data/)"))),
    ("rules changed, a commit of the user", record(rules="old"), WANT, Repo(head=ELSEWHERE), Refuse(CHANGED.format(
        "HEAD is eeeeeeeeee on branch ms-workspace, the workspace left it at dddddddddd on ms-workspace"))),
    ("rules changed, detached HEAD", record(rules="old"), WANT, Repo(head=PIN, branch=None), Refuse(CHANGED.format(
        "HEAD is aaaaaaaaaa on a detached HEAD, the workspace left it at dddddddddd on ms-workspace"))),
    ("target patches changed", record(targets=(dataclasses.replace(MINDTORCH, patches="p0"),)), WANT, CLEAN,
     Convert("converted again: target mindtorch changed (patches)")),
    ("target pin changed", record(targets=(dataclasses.replace(MINDTORCH, source="mindnlp==0.5.0"),)), WANT, CLEAN,
     Convert("converted again: target mindtorch changed (pin)")),
    ("target set up since", record(targets=()), WANT, CLEAN, Convert("converted again: target mindtorch is now set up")),
    ("target recorded before targets were", record(targets=None), WANT, CLEAN,
     Convert("converted again: the last conversion did not record its target")),
    ("target changed, hand edits", record(targets=()), WANT, EDITED,
     Refuse(CHANGED.format("1 changed file(s) (megatron/core/utils.py)"))),
    ("patches and target changed: the patch stage first", record(patches="old", targets=()), WANT, CLEAN, Patch()),
    # -- nothing to do ----------------------------------------------------------------------------------
    ("up to date", record(), WANT, CLEAN, Done()),
    ("up to date, hand edits are kept", record(), WANT, EDITED, Done(
        "changed by hand since the run that set it up, kept as it is: 1 changed file(s) (megatron/core/utils.py)")),
    ("up to date, --force changes nothing", record(), FORCE, EDITED, Done(
        "changed by hand since the run that set it up, kept as it is: 1 changed file(s) (megatron/core/utils.py)")),
    ("up to date, a commit of the user is kept", record(), WANT, Repo(head=ELSEWHERE), Done(
        "changed by hand since the run that set it up, kept as it is: HEAD is eeeeeeeeee on branch ms-workspace, "
        "the workspace left it at dddddddddd on ms-workspace")),
    ("no rules (the target itself): its targets do not matter", record(rules=None, targets=None),
     dataclasses.replace(WANT, rules=None, target=()), CLEAN, Done()),
    ("rules added to a repository that had none", record(rules=None, targets=None), WANT, CLEAN, Convert()),
]


@pytest.mark.parametrize("rec, want, facts, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_plan(rec: RepoRecord | None, want: Want, facts: Repo, expected: object) -> None:
    assert plan(rec, want, facts) == expected


def test_a_finished_repository_is_judged_without_walking_its_history() -> None:
    """The facts the runner reads from git are asked for only when needed: an up-to-date
    repository costs HEAD, its branch and one `git status`; nothing else."""
    asked: list[str] = []

    class Counting:
        def __getattr__(self, name: str) -> object:
            asked.append(name)
            return getattr(CLEAN, name)

    assert plan(record(), WANT, Counting()) == Done()
    assert set(asked) <= {"exists", "head", "branch", "changes"}


def test_target_change_names_each_difference() -> None:
    a, b = Target("a", "1", "p"), Target("b", "1", "p")
    assert target_change((a, b), (a, b)) is None
    assert target_change((a, b), (b, a)) == "the target's order changed"
    assert target_change((a, b), (a,)) == "target b is no longer set up"
    assert target_change((a,), (dataclasses.replace(a, source="2"), b)) == "target b is now set up, target a changed (pin)"


def test_records_keep_the_state_files_json_shape() -> None:
    """What earlier versions wrote (here, a conversion from before targets were recorded, and a
    repository without rules) reads back to the same JSON."""
    old = {
        "source": PIN, "origin": "/mirror/Megatron-LM.git",
        "stages": {"fetched": {"commit": PIN, "at": "t0", "detail": "clone"},
                   "patched": {"commit": PATCHED, "patches": "p", "count": 1, "at": "t1"},
                   "converted": {"commit": CONVERTED, "rules": "r", "files_changed": 3, "unsupported": 1,
                                 "files_failed": 0, "report_dir": "/r", "at": "t2"}},
        "in_progress": {"stage": "convert", "from": PATCHED, "at": "t3", "pid": 42},
    }
    rec = RepoRecord.from_json(old)
    assert rec.converted is not None and rec.converted.targets is None and rec.in_progress == InProgress("convert", PATCHED, "t3", 42)
    assert rec.to_json() == old and rec.last_commit == CONVERTED and rec.stage_label == "converted"
    bare = {"source": "six==1.17.0", "origin": "pypi", "stages": {
        "fetched": {"commit": PIN, "at": "t0", "detail": ""},
        "patched": {"commit": PIN, "patches": "e3b0", "count": 0, "at": "t1"},
        "converted": {"commit": PIN, "rules": None, "at": "t2"}}}
    assert RepoRecord.from_json(bare).to_json() == bare and RepoRecord.from_json(bare).stage_label == "pinned"


@pytest.mark.parametrize("entry, problem", [
    ({"source": PIN, "origin": "o"}, "stages is missing"),
    ({"source": PIN, "stages": {"fetched": {"at": "t"}}}, "stages.fetched.commit is missing"),
    ({"source": PIN, "stages": {"fetched": {"commit": PIN, "at": "t"}, "converted": {"commit": 3, "at": "t"}}},
     "stages.converted.commit is not a string"),
    ({"source": PIN, "stages": {"fetched": {"commit": PIN, "at": "t"}}, "in_progress": {"stage": "x", "from": PIN}},
     "in_progress.stage is 'x', not 'patch' or 'convert'"),
])
def test_a_damaged_state_file_is_one_line_naming_the_repository_and_field(tmp_path: Path, entry: dict,
                                                                         problem: str) -> None:
    with pytest.raises(RecordError, match=problem):
        RepoRecord.from_json(entry)
    path = tmp_path / ".ms-workspace" / "state.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"version": 1, "manifest": "llm", "repos": {"Megatron-LM": entry}}))
    with pytest.raises(WorkspaceError) as info:
        State.load(tmp_path)
    assert str(info.value) == (f"{path}: repos.Megatron-LM: {problem}; move it away to start the bookkeeping afresh "
                               "(the repositories are kept and checked again)")


def test_state_round_trip(tmp_path: Path) -> None:
    state = State.load(tmp_path)
    state.manifest = "llm"
    state.set_repo("Megatron-LM", record())
    again = State.load(tmp_path)
    assert again.manifest == "llm" and again.repo("Megatron-LM") == record()
    again.set_repo("Megatron-LM", None)
    assert State.load(tmp_path).repos == {}
