"""File I/O of the engine: read only regular files, write atomically, never clobber a concurrent edit.

* :func:`read_regular` opens without following a symlink and without blocking, and reads only a
  regular file: a named pipe, socket or device that appears in a tree (or replaces a file after the
  walk) is refused, never read (a FIFO would block forever, ``/dev/zero`` would never end).
* :func:`atomic_write` goes through a temp file in the same folder and ``os.replace``: a run
  killed at any point leaves every file either old or new. The temp name ends with
  :data:`TMP_SUFFIX`, so the next run can recognise and remove what a killed run left.
* :func:`replace_converted` is the in-place write: it keeps the file's mode and owner, refuses a
  hard-linked file (replacing it would silently detach it from its other names), and writes only
  if the file still holds the bytes that were converted (a user's edit made meanwhile wins).
"""
from __future__ import annotations

import errno
import hashlib
import os
import secrets
import shutil
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from .walk import TMP_SUFFIX, file_kind


class Refused(Exception):
    """The file is left as it is, for the reason given (not an I/O error: a decision)."""


def read_regular(path: Path) -> tuple[bytes, os.stat_result]:
    """The bytes of a regular file and its stat. Raises :class:`Refused` for anything else
    (checked on the opened descriptor, so a file swapped for a FIFO after the walk is refused too)
    and :class:`OSError` when it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Refused("symlink (not followed)") from None
        raise
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Refused(f"not a regular file ({file_kind(st.st_mode)}): not read")
        return fh.read(), st


def ensure_dir(folder: Path) -> None:
    """``mkdir -p``, without recursion (``Path.mkdir(parents=True)`` and ``os.makedirs`` recurse
    once per level, and a hostile tree can be nested deeper than Python's recursion limit)."""
    path = os.fspath(folder)
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for path in reversed(missing):
        try:
            os.mkdir(path)
        except FileExistsError:
            if not os.path.isdir(path):
                raise


@contextmanager
def _replacing(path: Path, check: Callable[[], None] | None = None) -> Iterator[tuple[BinaryIO, str]]:
    """A temp file next to ``path`` (named ``.<name>.<random>`` + :data:`TMP_SUFFIX`), renamed
    onto ``path`` when the block ends normally (after ``check``, which may raise) and removed
    when it does not."""
    ensure_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh, tmp
            fh.flush()
            os.fsync(fh.fileno())
        if check is not None:
            check()
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write(path: Path, data: bytes, *, mode: int | None = None, owner: tuple[int, int] | None = None,
                 expect_sha: str | None = None) -> None:
    """Write ``data`` to ``path`` through a temp file in the same folder and ``os.replace``.

    ``mode``: permission bits for the new file (default: those of the file it replaces, else the
    umask's). ``owner``: (uid, gid) to keep, where permitted (root may give any; others only their
    own groups); an owner that cannot be kept is not an error. ``expect_sha``: replace only if
    ``path`` still holds content with this hash, checked after the new content is on disk, just
    before the rename; otherwise raise :class:`Refused` and leave ``path`` as it is.
    """
    check = (lambda: _check_unchanged(path, expect_sha)) if expect_sha is not None else None
    with _replacing(path, check) as (fh, _tmp):
        fh.write(data)
        if mode is None:
            try:
                mode = stat.S_IMODE(os.stat(path).st_mode)
            except OSError:
                mode = 0o666 & ~_umask()   # a new file: what open() would have made
        if owner is not None:
            _chown(fh.fileno(), *owner)
        os.fchmod(fh.fileno(), mode)       # after chown, which may clear set-id bits


def atomic_copy(source: Path, target: Path) -> None:
    """Copy a regular file's bytes, mode and times to ``target`` the same way (streamed: data
    files in a tree can be large). Raises :class:`Refused` if ``source`` is not a regular file."""
    fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as src:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Refused(f"not a regular file ({file_kind(st.st_mode)}): not copied")
        with _replacing(target) as (fh, tmp):
            shutil.copyfileobj(src, fh, 1024 * 1024)
            os.fchmod(fh.fileno(), stat.S_IMODE(st.st_mode))
            fh.flush()
            os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))


def atomic_symlink(link: str, target: Path) -> None:
    """Make ``target`` a symlink to ``link``, replacing what is there in one step."""
    ensure_dir(target.parent)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}{TMP_SUFFIX}")
    os.symlink(link, tmp)
    try:
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise


def holds(path: Path, digest: str) -> bool:
    """Whether ``path`` is a regular file whose content has the sha256 ``digest``."""
    try:
        return hashlib.sha256(read_regular(path)[0]).hexdigest() == digest
    except (OSError, Refused):
        return False


def write_if_different(path: Path, data: bytes, mode: int) -> None:
    """:func:`atomic_write`, unless ``path`` already holds ``data`` (a re-run into an output tree)."""
    try:
        if read_regular(path)[0] == data:
            return
    except (OSError, Refused):
        pass
    atomic_write(path, data, mode=mode)


def copy_if_newer(source: Path, target: Path) -> None:
    """:func:`atomic_copy`, unless ``target`` has the same size and is not older."""
    try:
        st_s, st_t = os.stat(source), os.stat(target)
        if st_s.st_size == st_t.st_size and st_s.st_mtime_ns <= st_t.st_mtime_ns:
            return
    except OSError:
        pass
    atomic_copy(source, target)


def replace_converted(path: Path, data: bytes, *, read_stat: os.stat_result, read_sha: str) -> None:
    """The in-place write of a converted file that was read with stat ``read_stat`` and had
    content hash ``read_sha``. Keeps its mode and owner; raises :class:`Refused` for a hard-linked
    file or one that changed since it was read, :class:`OSError` when it cannot be written."""
    if read_stat.st_nlink > 1:
        raise Refused(f"hard-linked ({read_stat.st_nlink} names share this file): not converted in place, "
                      "because replacing it would detach it from its other names and writing through them "
                      "would change those too; give it its own copy (cp -p F F.new && mv F.new F) or "
                      "convert into an output tree (-o)")
    atomic_write(path, data, mode=stat.S_IMODE(read_stat.st_mode), owner=(read_stat.st_uid, read_stat.st_gid),
                 expect_sha=read_sha)


def _check_unchanged(path: Path, expect_sha: str) -> None:
    try:
        current, st = read_regular(path)
    except (OSError, Refused):
        raise Refused("changed during conversion (it is gone or no longer a regular file): "
                      "left as it is; run again") from None
    if st.st_nlink > 1 or hashlib.sha256(current).hexdigest() != expect_sha:
        raise Refused("changed during conversion: your version is kept; run again to convert it")


def _umask() -> int:
    mask = os.umask(0o22)
    os.umask(mask)
    return mask


def _chown(fd: int, uid: int, gid: int) -> None:
    st = os.fstat(fd)
    if (st.st_uid, st.st_gid) == (uid, gid):
        return
    try:
        os.fchown(fd, uid, gid)
    except PermissionError:
        try:
            os.fchown(fd, -1, gid)    # not root: the group may still be kept if we are in it
        except PermissionError:
            pass
