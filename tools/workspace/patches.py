"""Apply a repository's patch series: refuse unsafe paths, check each patch, name the failing hunk.

Patches are unified diffs (``git format-patch``/``git diff`` output, ``a/``/``b/`` prefixes),
applied in file-name order with ``git apply --check`` and then ``git apply --index``. Before any
is applied, every path a patch touches is checked: an absolute path, a ``..`` component or a path
into ``.git`` is refused, whatever ``git apply`` would do with it. A patch that does not apply
stops the series with a message that names the patch file and the hunk (its line in the patch
file and its ``@@`` header), and the caller puts the repository back at its previous stage.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

import git

from tools.workspace.errors import RepoError

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


@dataclass(frozen=True)
class Hunk:
    path: str
    old_start: int
    line: int  # 1-based line of the @@ header in the patch file
    header: str
    new_start: int = 0
    old: list[str] = field(default_factory=list)  # context and removed lines, without their tag
    new: list[str] = field(default_factory=list)  # context and added lines
    old_ends_without_newline: bool = False        # "\ No newline at end of file" after an old line


@dataclass
class ParsedPatch:
    paths: list[str]
    hunks: list[Hunk]


def _strip(raw: str, prefix: bool) -> str:
    path = raw.split("\t", 1)[0].strip()
    if len(path) >= 2 and path[0] == path[-1] == '"':  # git quotes unusual names: "a/t\303\251st.py"
        path = path[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape").encode("latin-1").decode("utf-8", "replace")
    if prefix and path[:2] in ("a/", "b/"):
        path = path[2:]
    return path


def parse(text: str) -> ParsedPatch:
    """The paths and hunks of a unified diff; hunk bodies are read by their line counts, so a
    removed line that starts with ``--`` is never taken for a file header."""
    paths: list[str] = []
    hunks: list[Hunk] = []
    old_left = new_left = 0
    current = ""
    last_tag = ""
    for number, line in enumerate(text.splitlines(), start=1):
        if old_left > 0 or new_left > 0:
            tag = line[:1]
            if tag == "\\":
                if last_tag in (" ", "", "-"):
                    hunks[-1] = replace(hunks[-1], old_ends_without_newline=True)
                continue
            last_tag = tag
            if tag in (" ", ""):
                old_left, new_left = old_left - 1, new_left - 1
                hunks[-1].old.append(line[1:])
                hunks[-1].new.append(line[1:])
                continue
            if tag == "-" and old_left > 0:
                old_left -= 1
                hunks[-1].old.append(line[1:])
                continue
            if tag == "+" and new_left > 0:
                new_left -= 1
                hunks[-1].new.append(line[1:])
                continue
            old_left = new_left = 0  # the body ended early: read this line as a header
        if line.startswith("\\") and hunks and last_tag in (" ", "", "-"):
            hunks[-1] = replace(hunks[-1], old_ends_without_newline=True)  # after the hunk's last line
            last_tag = "\\"
            continue
        match = _HUNK.match(line)
        if match:
            old_left = int(match.group(2)) if match.group(2) is not None else 1
            new_left = int(match.group(4)) if match.group(4) is not None else 1
            hunks.append(Hunk(current, int(match.group(1)), number, line.strip(), new_start=int(match.group(3))))
            last_tag = "@"
        elif line.startswith("diff --git "):
            parts = line[len("diff --git "):].split(" b/", 1)
            paths.append(_strip(parts[0], True))
            if len(parts) == 2:
                paths.append(_strip("b/" + parts[1], True))
        elif line.startswith(("--- ", "+++ ")):
            path = _strip(line[4:], True)
            if path != "/dev/null":
                paths.append(path)
                current = path
        elif line.startswith(("rename from ", "rename to ", "copy from ", "copy to ")):
            paths.append(_strip(line.split(" ", 2)[2], False))
    return ParsedPatch(paths, hunks)


def unsafe_path(path: str) -> str | None:
    """Why ``path`` may not be touched by a patch, or None when it is inside the repository."""
    pure = PurePosixPath(path)
    if not path:
        return "an empty path"
    if pure.is_absolute() or re.match(r"^[A-Za-z]:[\\/]", path) or path.startswith("\\"):
        return f"the absolute path {path}"
    if ".." in pure.parts or ".." in path.split("\\"):
        return f"the path {path}, which leaves the repository"
    if pure.parts and pure.parts[0] == ".git":
        return f"the path {path}, inside .git"
    return None


def check_paths(patch: Path, repo_name: str) -> ParsedPatch:
    """Parse ``patch`` and refuse it if any path it names is outside the repository."""
    try:
        text = patch.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        raise RepoError(repo_name, f"cannot read patch {patch}: {exc.strerror or exc}") from None
    parsed = parse(text)
    if not parsed.paths:
        raise RepoError(repo_name, f"patch {patch} is not a unified diff (no file headers found)")
    for path in parsed.paths:
        why = unsafe_path(path)
        if why:
            raise RepoError(repo_name, f"patch {patch} is refused: it touches {why}")
    return parsed


def _failure(patch: Path, parsed: ParsedPatch, exc: git.GitCommandError) -> str:
    stderr = (exc.stderr or "").replace("stderr:", "").strip().strip("'").strip()
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    found = re.search(r"patch failed: (.+):(\d+)", stderr)
    if found:
        path, start = found.group(1), int(found.group(2))
        for number, hunk in enumerate(parsed.hunks, start=1):
            if hunk.path == path and hunk.old_start == start:
                return (f"patch {patch} does not apply: hunk #{number} at line {hunk.line} of the patch "
                        f"({hunk.header} in {path}) fails; git says: {' / '.join(lines)}")
        return f"patch {patch} does not apply at {path}:{start}; git says: {' / '.join(lines)}"
    return f"patch {patch} does not apply; git says: {' / '.join(lines) or exc.status}"


def apply_series(repo: git.Repo, patches: tuple[Path, ...], repo_name: str) -> None:
    """Check, then apply each patch to the work tree and the index. Raises RepoError on the first
    patch that is unsafe or does not apply; the caller resets the repository."""
    parsed = [check_paths(patch, repo_name) for patch in patches]
    for patch, info in zip(patches, parsed):
        try:
            repo.git.apply("--check", "--index", "--whitespace=nowarn", str(patch))
        except git.GitCommandError as exc:
            raise RepoError(repo_name, _failure(patch, info, exc)) from None
        repo.git.apply("--index", "--whitespace=nowarn", str(patch))
