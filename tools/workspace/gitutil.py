"""Small git helpers on top of gitpython, shared by sources and stages.

Commits the driver makes carry a fixed identity (so no ``git config user.*`` is needed on a fresh
machine, and ``git log --author=ms-workspace`` finds them), skip hooks and signing, and never
touch untracked files.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import git

from tools.convert.walk import TMP_SUFFIX  # a constant of a small module: the engine itself (tools.convert.api, libcst) loads only to convert

BRANCH = "ms-workspace"
AUTHOR_NAME = "MindSpeed-Core-MS workspace"
AUTHOR_EMAIL = "ms-workspace@localhost"

# Never counted as a user's change: what running converted code leaves in a repository, and the
# temporary file of an atomic write by the engine killed mid-write (its next run removes them).
EXCLUDES = ("__pycache__/", "*.pyc", "*.pyo", "kernel_meta/", f"*{TMP_SUFFIX}")


def identity_env(date: str | None = None) -> dict[str, str]:
    env = {
        "GIT_AUTHOR_NAME": AUTHOR_NAME,
        "GIT_AUTHOR_EMAIL": AUTHOR_EMAIL,
        "GIT_COMMITTER_NAME": AUTHOR_NAME,
        "GIT_COMMITTER_EMAIL": AUTHOR_EMAIL,
    }
    if date:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = date
    return env


def network_env() -> dict[str, str]:
    """Never wait for a password prompt; give up on a stalled transfer instead of hanging."""
    env = {
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_HTTP_LOW_SPEED_LIMIT": os.environ.get("GIT_HTTP_LOW_SPEED_LIMIT", "1000"),
        "GIT_HTTP_LOW_SPEED_TIME": os.environ.get("GIT_HTTP_LOW_SPEED_TIME", "60"),
    }
    if "GIT_SSH_COMMAND" not in os.environ:
        env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes"
    return env


def is_repo(path: Path) -> bool:
    return (path / ".git").exists()


def open_repo(path: Path) -> git.Repo:
    return git.Repo(path)


def head_commit(repo: git.Repo) -> str | None:
    try:
        return repo.head.commit.hexsha
    except ValueError:  # no commit yet
        return None


def head_branch(repo: git.Repo) -> str | None:
    try:
        return repo.active_branch.name
    except TypeError:  # detached
        return None


def has_commit(repo: git.Repo, commit: str) -> bool:
    try:
        repo.git.rev_parse("--verify", "--quiet", f"{commit}^{{commit}}")
        return True
    except git.GitCommandError:
        return False


def changes(repo: git.Repo) -> list[str]:
    """``git status --porcelain`` lines: modified, staged and untracked (not ignored) files."""
    out = repo.git.status("--porcelain", "--untracked-files=normal")
    return [line for line in out.splitlines() if line.strip()]


def write_excludes(repo: git.Repo) -> None:
    info = Path(repo.git_dir) / "info"
    info.mkdir(exist_ok=True)
    exclude = info / "exclude"
    text = exclude.read_text(encoding="utf-8") if exclude.exists() else ""
    missing = [pattern for pattern in EXCLUDES if pattern not in text.splitlines()]
    if missing:
        with open(exclude, "a", encoding="utf-8") as fh:
            fh.write(("" if not text or text.endswith("\n") else "\n") + "# MindSpeed-Core-MS workspace\n")
            fh.write("".join(p + "\n" for p in missing))


def commit_tracked(repo: git.Repo, message: str) -> str | None:
    """Commit the changes to tracked files (and files added to the index); None if there are none."""
    repo.git.add("-u")
    if not repo.git.diff("--cached", "--name-only").strip():
        return None
    repo.git.commit("-q", "--no-verify", "--no-gpg-sign", "-m", message, env=identity_env())
    return repo.head.commit.hexsha


def reset_to(repo: git.Repo, commit: str) -> None:
    """Put branch ``ms-workspace``, the index and the tracked files at ``commit``; untracked files stay."""
    repo.git.reset("-q", "--hard", commit)
    if head_branch(repo) != BRANCH:
        repo.git.checkout("-q", "-B", BRANCH)


def keep_dirty_state(repo: git.Repo, label: str) -> str | None:
    """Save the tracked changes of the work tree under a ref before a rollback (nothing is lost)."""
    sha = repo.git.stash("create", env=identity_env()).strip()
    if not sha:
        return None
    ref = f"refs/ms-workspace/{label}-{time.strftime('%Y%m%d-%H%M%S')}"
    repo.git.update_ref(ref, sha)
    return ref


def is_ours(repo: git.Repo, commit: str) -> bool:
    """True when ``commit`` was made by this driver."""
    return repo.commit(commit).author.email == AUTHOR_EMAIL
