"""Bring one repository's pinned source into a fresh directory: a git clone or a PyPI distribution.

Both kinds end the same way: a git repository on branch ``ms-workspace`` whose HEAD is the pin
(for a PyPI source, a commit of the distribution's files made with a fixed identity and date, so
the same distribution gives the same commit everywhere). The caller builds it in a temporary
sibling of its final place and renames it there only once the pin is verified, so an interrupted
or failed fetch never leaves a half-made repository where a good one belongs.

A *mirror* (``--mirror DIR`` or ``$MS_CONVERT_MIRROR``) holds one git repository per manifest
repository, named ``<name>`` or ``<name>.git``, bare or not; git sources are then cloned from it
instead of the network, and the pin is verified all the same. A ``pypi/`` folder in the mirror,
when present, is used as the only package index (``pip download --no-index --find-links``).
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import git

from tools.workspace.errors import RepoError
from tools.workspace.gitutil import BRANCH, has_commit, identity_env, network_env, write_excludes
from tools.workspace.manifest import GitSource, PypiSource, RepoSpec

# The date of every commit that imports a PyPI distribution: same files, same commit id.
PYPI_COMMIT_DATE = "2000-01-01T00:00:00+0000"
PYPI_SUBJECT = "{requirement} from PyPI"

Status = Callable[[str], None]


@dataclass
class FetchOptions:
    """How to reach sources: mirror, retry policy, where downloads are cached."""

    mirror: Path | None
    retries: int
    delay: float
    downloads: Path
    scratch: Path
    log: logging.Logger


@dataclass
class Fetched:
    commit: str
    origin: str
    detail: str


def mirror_repo(mirror: Path, name: str) -> Path | None:
    """The mirror's repository for ``name`` (``<name>`` or ``<name>.git``), or None."""
    for candidate in (mirror / name, mirror / f"{name}.git"):
        if (candidate / ".git").exists() or (candidate / "HEAD").is_file() and (candidate / "objects").is_dir():
            return candidate
    return None


def _git_message(exc: git.GitCommandError) -> str:
    text = (exc.stderr or "").strip() or str(exc)
    text = text.removeprefix("stderr:").strip().strip("'").strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " / ".join(lines[-3:]) if lines else f"git exited with status {exc.status}"


def resolve_abbrev(mirror_path: Path, abbrev: str, name: str) -> str:
    """The one commit in the mirror whose id starts with ``abbrev``; anything else is an error."""
    repo = git.Repo(mirror_path)
    out = repo.git.rev_parse(f"--disambiguate={abbrev}")
    commits = [sha for sha in out.split() if repo.git.cat_file("-t", sha).strip() == "commit"]
    if not commits:
        raise RepoError(name, f"the mirror {mirror_path} has no commit starting with {abbrev} (the manifest's abbreviated pin)")
    if len(commits) > 1:
        raise RepoError(name, f"the abbreviated pin {abbrev} matches {len(commits)} commits in {mirror_path}: {', '.join(c[:12] for c in commits)}; write the full commit in the manifest")
    return commits[0]


class _CloneProgress(git.RemoteProgress):
    def __init__(self, status: Status) -> None:
        super().__init__()
        self._status = status
        self._last = 0.0

    def update(self, op_code: int, cur_count: str | float, max_count: str | float | None = None, message: str = "") -> None:
        now = time.monotonic()
        if now - self._last < 0.2 or not max_count:
            return
        self._last = now
        stage = {self.COUNTING: "counting", self.COMPRESSING: "compressing", self.RECEIVING: "receiving",
                 self.RESOLVING: "resolving", self.CHECKING_OUT: "checking out"}.get(op_code & self.OP_MASK, "cloning")
        self._status(f"clone: {stage} {100 * float(cur_count) / float(max_count):.0f}%")


def _retry(what: str, name: str, opts: FetchOptions, action: Callable[[], None], message: Callable[[Exception], str]) -> None:
    """Run ``action`` up to ``opts.retries`` times with exponential backoff; then a RepoError."""
    for attempt in range(1, opts.retries + 1):
        try:
            action()
            return
        except (git.GitCommandError, subprocess.CalledProcessError, OSError) as exc:
            detail = message(exc)
            opts.log.warning("%s: %s failed (attempt %d of %d): %s", name, what, attempt, opts.retries, detail)
            if attempt == opts.retries:
                raise RepoError(name, f"{what} failed after {opts.retries} attempts: {detail}") from None
            time.sleep(opts.delay * 2 ** (attempt - 1))


def _shallow_fetch(url: str, commit: str, dest: Path, name: str, opts: FetchOptions,
                   progress: _CloneProgress, status: Status) -> bool:
    """From the network, fetch just the pinned commit (``git fetch --depth 1 origin <commit>``):
    a fraction of a full clone of Megatron-LM or vLLM. Servers that refuse a fetch by commit id
    make this return False, and the caller clones the whole repository instead."""
    shutil.rmtree(dest, ignore_errors=True)
    status(f"fetch {commit[:10]} from {url}")
    try:
        repo = git.Repo.init(dest)
        repo.create_remote("origin", url)
        repo.remote("origin").fetch(commit, depth=1, progress=progress, env=network_env())
    except git.GitCommandError as exc:
        lines = [line.strip() for line in progress.error_lines if line.strip()]
        opts.log.info("%s: fetching only %s from %s failed (%s); cloning the whole repository",
                      name, commit, url, " / ".join(lines) or _git_message(exc))
        shutil.rmtree(dest, ignore_errors=True)
        return False
    return has_commit(repo, commit)


def fetch_git(spec: RepoSpec, dest: Path, opts: FetchOptions, status: Status) -> Fetched:
    """Clone ``spec`` into ``dest`` (which must not exist), check out its pin and verify HEAD."""
    src = spec.source
    assert isinstance(src, GitSource)
    mirror_path = None
    if opts.mirror is not None:
        mirror_path = mirror_repo(opts.mirror, spec.name)
        if mirror_path is None:
            raise RepoError(spec.name, f"the mirror {opts.mirror} has no repository {spec.name} or {spec.name}.git")
        url = mirror_path.resolve().as_uri()
        where = f"the mirror {mirror_path}"
    else:
        url = src.url
        where = src.url
    if src.commit:
        commit = src.commit
    elif mirror_path is not None:
        commit = resolve_abbrev(mirror_path, src.pin, spec.name)
    else:
        raise RepoError(
            spec.name,
            f"the manifest pins only the abbreviated commit {src.pin}; it is resolved only from a mirror "
            "(--mirror DIR), never from the network. Write the full 40-hex commit in the manifest or use a mirror",
        )

    progress = _CloneProgress(status)

    def clone() -> None:
        shutil.rmtree(dest, ignore_errors=True)
        status(f"clone {url}")
        progress.error_lines.clear()
        progress.other_lines.clear()
        git.Repo.clone_from(url, dest, no_checkout=True, env=network_env(), progress=progress)

    def clone_message(exc: Exception) -> str:
        # With a progress handler, git's stderr goes to the handler, not to the exception.
        lines = [line.strip() for line in progress.error_lines or progress.other_lines[-3:] if line.strip()]
        if lines:
            return " / ".join(lines[-3:])
        return _git_message(exc) if isinstance(exc, git.GitCommandError) else str(exc)

    if mirror_path is None and _shallow_fetch(url, commit, dest, spec.name, opts, progress, status):
        opts.log.info("%s: fetched only the pinned commit %s from %s (shallow)", spec.name, commit, url)
    else:
        _retry(f"git clone {url}", spec.name, opts, clone, clone_message)
    repo = git.Repo(dest)
    if not has_commit(repo, commit):
        # Not reachable from a branch or tag: ask for it by id (servers that allow it answer).
        try:
            repo.git.fetch("-q", "origin", commit, env=network_env())
        except git.GitCommandError as exc:
            opts.log.info("%s: fetch of %s by id failed: %s", spec.name, commit, _git_message(exc))
    if not has_commit(repo, commit):
        ref = f" ({src.ref})" if src.ref else ""
        raise RepoError(spec.name, f"{where} does not have the pinned commit {commit}{ref}; update it (git fetch --tags) or check the manifest")
    status(f"checkout {commit[:10]}")
    repo.git.checkout("-q", "-B", BRANCH, commit)
    head = repo.head.commit.hexsha
    if head != commit:
        raise RepoError(spec.name, f"after checkout HEAD is {head}, not the pin {commit}")
    if mirror_path is not None:
        repo.create_remote("upstream", src.url)
    write_excludes(repo)
    return Fetched(commit, url, src.describe())


def _dist_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith((".whl", ".tar.gz", ".zip", ".tgz")))


def download(src: PypiSource, name: str, opts: FetchOptions, status: Status) -> Path:
    """The distribution file of ``src``, from the workspace's download cache or through pip."""
    folder = opts.downloads / src.requirement.replace("==", "-") / src.format
    folder.mkdir(parents=True, exist_ok=True)
    found = _dist_files(folder)
    if not found:
        index: list[str] = []
        if opts.mirror is not None and (opts.mirror / "pypi").is_dir():
            index = ["--no-index", "--find-links", str((opts.mirror / "pypi").resolve())]
        fmt = ["--only-binary", ":all:"] if src.format == "wheel" else ["--no-binary", ":all:"]
        tmp = opts.scratch / f"download-{name}-{os.getpid()}"
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q",
               *index, *fmt, "-d", str(tmp), src.requirement]

        def run() -> None:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            status(f"pip download {src.requirement}")
            opts.log.info("%s: %s", name, " ".join(cmd))
            subprocess.run(cmd, check=True, capture_output=True, text=True, stdin=subprocess.DEVNULL)

        def message(exc: Exception) -> str:
            if isinstance(exc, subprocess.CalledProcessError):
                lines = [line for line in (exc.stderr or "").splitlines() if line.strip()]
                return " / ".join(lines[-3:]) or f"pip exited with status {exc.returncode}"
            return str(exc)

        _retry(f"pip download {src.requirement}", name, opts, run, message)
        files = _dist_files(tmp)
        if len(files) != 1:
            raise RepoError(name, f"pip download {src.requirement} gave {len(files)} files, expected one: {[f.name for f in files]}")
        os.replace(files[0], folder / files[0].name)
        shutil.rmtree(tmp, ignore_errors=True)
        found = _dist_files(folder)
    if len(found) != 1:
        raise RepoError(name, f"{folder} should hold exactly one distribution file, it holds {[f.name for f in found]}")
    return found[0]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _unpack(archive: Path, out: Path) -> Path:
    """Unpack a wheel or sdist into ``out``; return the folder the ``take`` paths are relative to."""
    if archive.name.endswith(".whl"):
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(out)
        return out
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(out)
    else:
        with tarfile.open(archive) as tf:
            tf.extractall(out, filter="data")
    tops = [p for p in out.iterdir() if p.is_dir()]
    return tops[0] if len(tops) == 1 else out


def _dist_info(root: Path, archive: Path, src: PypiSource, dest: Path, repo_name: str) -> None:
    """Copy the wheel's ``*.dist-info`` (or make one from an sdist's PKG-INFO) so that
    ``importlib.metadata.version(...)`` finds the package on PYTHONPATH."""
    infos = list(root.glob("*.dist-info"))
    if infos:
        for info in infos:
            shutil.copytree(info, dest / info.name)
        return
    pkg_info = root / "PKG-INFO"
    if pkg_info.is_file():
        dist, _, version = src.requirement.partition("==")
        info = dest / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        shutil.copy2(pkg_info, info / "METADATA")
        return
    raise RepoError(repo_name, f"{archive.name} has no metadata to copy (dist_info: true)")


def fetch_pypi(spec: RepoSpec, dest: Path, opts: FetchOptions, status: Status) -> Fetched:
    """Download ``spec``'s distribution, copy its ``take`` paths into ``dest`` and commit them."""
    src = spec.source
    assert isinstance(src, PypiSource)
    archive = download(src, spec.name, opts, status)
    digest = sha256_of(archive)
    if src.sha256 and digest != src.sha256:
        raise RepoError(spec.name, f"{archive} has sha256 {digest}, the manifest pins {src.sha256}; delete the file to download it again")
    status(f"unpack {archive.name}")
    unpacked = opts.scratch / f"unpack-{spec.name}-{os.getpid()}"
    shutil.rmtree(unpacked, ignore_errors=True)
    try:
        root = _unpack(archive, unpacked)
        dest.mkdir(parents=True)
        for take in src.take:
            item = root / take
            if not item.exists():
                present = ", ".join(sorted(p.name for p in root.iterdir())[:12])
                raise RepoError(spec.name, f"{archive.name} has no {take!r} (it has: {present})")
            target = dest / Path(take).name
            if item.is_dir():
                shutil.copytree(item, target, symlinks=True)
            else:
                shutil.copy2(item, target)
        if src.dist_info:
            _dist_info(root, archive, src, dest, spec.name)
    finally:
        shutil.rmtree(unpacked, ignore_errors=True)
    status("commit the distribution")
    repo = git.Repo.init(dest)
    repo.git.symbolic_ref("HEAD", f"refs/heads/{BRANCH}")
    write_excludes(repo)
    repo.git.add("-A", "-f", ".")
    subject = PYPI_SUBJECT.format(requirement=src.requirement)
    body = f"file: {archive.name}\nsha256: {digest}\ntaken: {', '.join(src.take)}"
    repo.git.commit("-q", "--no-verify", "--no-gpg-sign", "-m", f"{subject}\n\n{body}", env=identity_env(PYPI_COMMIT_DATE))
    return Fetched(repo.head.commit.hexsha, archive.name, f"{src.requirement} (sha256 {digest[:12]})")


def is_pypi_import(repo: git.Repo, src: PypiSource, commit: str) -> bool:
    """True when ``commit`` is this driver's import of ``src`` (a root commit, our identity)."""
    head = repo.commit(commit)
    return (
        not head.parents
        and head.author.email == identity_env()["GIT_AUTHOR_EMAIL"]
        and head.message.splitlines()[0] == PYPI_SUBJECT.format(requirement=src.requirement)
    )


def fetch(spec: RepoSpec, dest: Path, opts: FetchOptions, status: Status) -> Fetched:
    """Fetch ``spec`` into ``dest`` by its source kind."""
    if isinstance(spec.source, GitSource):
        return fetch_git(spec, dest, opts, status)
    return fetch_pypi(spec, dest, opts, status)
