"""Errors the driver reports to the user as one clear line (no traceback)."""
from __future__ import annotations


class WorkspaceError(Exception):
    """A problem the user can act on; ``str(err)`` is the whole message."""


class ManifestError(WorkspaceError):
    """An invalid manifest: the message names the file, the line when known, and the field."""


class RepoError(WorkspaceError):
    """One repository could not be brought to its goal; the others still are."""

    def __init__(self, repo: str, message: str) -> None:
        super().__init__(f"{repo}: {message}")
        self.repo = repo


class UserChangesError(RepoError):
    """The repository holds changes the run would overwrite (see ``--force``)."""
