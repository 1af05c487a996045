"""Every shipped patch series (``patches/<repository>/``) on the files it was written for.

The upstream repositories (MindSpeed, MindSpeed-LLM, ...) cannot be fetched in CI, so each patched
file is rebuilt from the patch itself: its hunks' context and removed lines at their line
numbers, other lines filled with a marker. The driver's own applier (``apply_series``: path
checks, ``git apply --check``, ``git apply --index``) must take the whole series in order, and
every hunk's added and context lines must be in the result where the hunk says. mindtorch's
series also runs for real in tests/runtime (the testbed applies it to mindtorch from PyPI); the
full MindSpeed / MindSpeed-LLM runs are recorded in docs/deepseek3_tiny.md.
"""
from __future__ import annotations

from pathlib import Path

import git
import pytest

from tools.workspace.patches import Hunk, apply_series, parse

REPO_ROOT = Path(__file__).resolve().parents[2]
# mindtorch's series patches some files several times; tests/runtime applies it to the real
# mindtorch from PyPI and runs it, which is the stronger test
SERIES = sorted(p for p in (REPO_ROOT / "patches").iterdir()
                if p.is_dir() and any(p.glob("*.patch")) and p.name != "mindtorch")
FILLER = "# (line not in the patch)"


def _preimage(hunks: list[Hunk]) -> str:
    """The file as the patch expects it: hunks' old lines at their numbers, a marker elsewhere."""
    out: list[str] = []
    for hunk in hunks:
        while len(out) < hunk.old_start - 1:
            out.append(FILLER)
        out.extend(hunk.old)
    if hunks[-1].old_ends_without_newline:
        return "\n".join(out)
    out.append(FILLER)
    return "\n".join(out) + "\n"


def _series_files(series: Path) -> dict[str, list[Hunk]]:
    """Each touched file with all its hunks (parsed by the driver's own patch reader), in the
    coordinates of the file before the series."""
    merged: dict[str, list[Hunk]] = {}
    for patch in sorted(series.glob("*.patch")):
        hunks: dict[str, list[Hunk]] = {}
        for hunk in parse(patch.read_text(encoding="utf-8", errors="surrogateescape")).hunks:
            hunks.setdefault(hunk.path, []).append(hunk)
        for path, file_hunks in hunks.items():
            assert path not in merged, f"{path} is patched twice in {series.name}: merge the patches"
            merged[path] = file_hunks
    return merged


@pytest.mark.parametrize("series", SERIES, ids=lambda p: p.name)
def test_series_applies_with_the_driver_and_gives_the_hunks_results(series: Path, tmp_path: Path):
    files = _series_files(series)
    assert files, f"{series}: no file changes found"
    repo = git.Repo.init(tmp_path / series.name)
    root = Path(repo.working_tree_dir)
    for path, hunks in files.items():
        if hunks[0].old_start == 0:     # a new file: nothing before the patch
            continue
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(_preimage(hunks).encode("utf-8", "surrogateescape"))
    repo.git.add(A=True)
    repo.git.commit("-m", "pre-image", "--allow-empty", author="t <t@t>")

    apply_series(repo, tuple(sorted(series.glob("*.patch"))), series.name)

    for path, hunks in files.items():
        result = (root / path).read_bytes().decode("utf-8", "surrogateescape").split("\n")
        for hunk in hunks:
            start = max(hunk.new_start - 1, 0)
            assert result[start:start + len(hunk.new)] == hunk.new, f"{path}: hunk at +{hunk.new_start} not in the result"


def test_mindspeed_builders_no_longer_import_torchair_unconditionally():
    """The intent of patches/MindSpeed/0001: every op builder that imported torchair (torch_npu's
    graph-mode compiler, absent on MindSpore) imports it optionally and registers its GE converters
    only when it is there."""
    files = _series_files(REPO_ROOT / "patches" / "MindSpeed")
    builders = {p: hunks for p, hunks in files.items() if p.startswith("mindspeed/op_builder/")}
    assert len(builders) >= 8
    for path, hunks in builders.items():
        removed = [line for h in hunks for line in h.old if line not in h.new]
        added = "\n".join(line for h in hunks for line in h.new)
        if "import torchair" in removed:
            assert "try:\n    import torchair\nexcept ImportError:" in added, path
        assert "if torchair is None:\n            return" in added, path
        assert "from __future__ import annotations" in added, path
