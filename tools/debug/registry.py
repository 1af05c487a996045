"""Where sessions are announced: the per-user base directory, per-job directories, the job secret
and the small JSON records that ``list`` reads.

Layout (every directory 0700, every file 0600, all owned by the user)::

    ${MS_DEBUG_DIR:-${XDG_RUNTIME_DIR:-/tmp}/ms-debug-<uid>}/
        <job-id>/
            secret                      per-job token (absent when $MS_DEBUG_SECRET is used)
            sessions/<pid>-<n>.json     one waiting or attached breakpoint
            sessions/<pid>-<n>.sock     its Unix socket, only while waiting for a client
            ranks/<host>-<pid>.json     a rank process inspectable without a breakpoint (agent.py)
            barrier/<site>-<hit>/...    markers for set_trace(wait_others=True)

The directory permissions are the first line of defence (another user cannot even see the
sockets); the secret is the second (a client must prove it knows it before pdb I/O starts).
This module is imported by training processes, so it uses the standard library only.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import stat
import threading
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Self

from tools.debug.settings import ENV_DIR, ENV_JOB, ENV_SECRET, hostname

SESSIONS = "sessions"
RANKS = "ranks"
REPO_ROOT = Path(__file__).resolve().parents[2]  # the checkout holding tools/debug (for remote commands)
BARRIER = "barrier"
SECRET = "secret"
MAX_JOB_ID = 48
# sun_path is 108 bytes on Linux and 104 on macOS, including the terminating NUL.
MAX_SOCKET_PATH = 103


class InsecureDirectory(RuntimeError):
    """A debugger directory is not private to this user; we refuse to put sockets or secrets there."""


def sanitize_job_id(raw: str) -> str:
    """A job id usable as one path component, short enough to keep socket paths under the limit."""
    text = re.sub(r"[^A-Za-z0-9._-]", "_", raw.strip()).lstrip(".") or "job"
    if len(text) > MAX_JOB_ID:
        text = f"{text[:32]}-{hashlib.sha1(text.encode()).hexdigest()[:12]}"
    return text


def derive_job_id(env: Mapping[str, str] | None = None) -> str:
    """The job id every rank of one job computes identically.

    ``$MS_DEBUG_JOB`` wins (our launcher sets it, unique per run). Otherwise the ids real
    launchers export: SLURM job+step, the MPI job namespace, torchrun's run id, the rendezvous
    address (MASTER_ADDR/MASTER_PORT, msrun's MS_SCHED_HOST/MS_SCHED_PORT), and finally the
    process group, which a shell gives to a whole pipeline and children inherit. MPICH's mpiexec
    (hydra) exports no job id and puts every rank in a process group of its own: its ranks use
    the pid of their node's ``hydra_pmi_proxy``.
    """
    env = os.environ if env is None else env
    if env.get(ENV_JOB, "").strip():
        return sanitize_job_id(env[ENV_JOB])
    if env.get("SLURM_JOB_ID"):
        return sanitize_job_id(f"slurm-{env['SLURM_JOB_ID']}-{env.get('SLURM_STEP_ID', '0')}")
    for name in ("PMIX_NAMESPACE", "OMPI_MCA_ess_base_jobid"):
        if env.get(name):
            return sanitize_job_id(f"mpi-{env[name]}")
    if env.get("PMI_RANK") and (env.get("HYDI_CONTROL_FD") or env.get("PMI_FD") or env.get("PMI_PORT")):
        proxy = _ancestor_named("hydra_pmi_proxy")  # MPICH's mpiexec gives each rank its own process group
        if proxy is not None:
            return sanitize_job_id(f"mpi-hydra-{hostname(env).split('.')[0]}-{proxy}")
    run_id = env.get("TORCHELASTIC_RUN_ID", "")
    if run_id and run_id != "none":
        return sanitize_job_id(f"torch-{run_id}")
    if env.get("MASTER_ADDR") and env.get("MASTER_PORT"):
        return sanitize_job_id(f"torch-{env['MASTER_ADDR']}-{env['MASTER_PORT']}")
    if env.get("MS_SCHED_HOST") and env.get("MS_SCHED_PORT"):
        return sanitize_job_id(f"ms-{env['MS_SCHED_HOST']}-{env['MS_SCHED_PORT']}")
    return f"pg-{os.getpgid(0)}"


def proc_stat(pid: int | str) -> tuple[str, list[bytes]] | None:
    """Linux ``/proc/<pid>/stat``: the command name and the fields after it (``[0]`` the state,
    ``[1]`` the parent pid, ``[19]`` the start time in clock ticks), or None where it cannot be read.
    The name is in parentheses and may itself hold spaces and parentheses, so it is cut at the last
    closing one."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            head, _, tail = handle.read().rpartition(b")")
    except OSError:
        return None
    return head.partition(b"(")[2].decode(errors="replace"), tail.split()


def _ancestor_named(name: str, depth: int = 16) -> int | None:
    """Linux: pid of the nearest ancestor process whose command name is ``name``."""
    pid = os.getppid()
    for _ in range(depth):
        stat = proc_stat(pid)
        if stat is None:
            return None
        if stat[0] == name[:15]:  # comm is cut at 15 characters
            return pid
        pid = int(stat[1][1])
        if pid <= 1:
            return None
    return None


def candidate_base_dirs(env: Mapping[str, str] | None = None) -> list[Path]:
    """Base directories to use (first) or search (all): $MS_DEBUG_DIR, else XDG runtime dir and /tmp.

    The client searches both defaults because a job started by a scheduler often lacks the
    ``XDG_RUNTIME_DIR`` that the user's login shell has.
    """
    env = os.environ if env is None else env
    if env.get(ENV_DIR, "").strip():
        return [Path(env[ENV_DIR]).expanduser()]
    name = f"ms-debug-{os.getuid()}"
    dirs = []
    xdg = env.get("XDG_RUNTIME_DIR", "").strip()
    if xdg and os.path.isdir(xdg):
        dirs.append(Path(xdg) / name)
    dirs.append(Path("/tmp") / name)
    return dirs


def ensure_private_dir(path: Path, *, strict: bool = True) -> Path:
    """Create ``path`` (mode 0700) if missing and check it really is ours.

    strict: no group/other permission bits at all (job and default base directories);
    otherwise only "not writable by others" (a user-chosen $MS_DEBUG_DIR may be 0755).
    A symlink is refused: someone else could have planted it in /tmp before us.
    """
    created = False
    try:
        os.mkdir(path, 0o700)
        created = True
    except FileExistsError:
        pass
    except FileNotFoundError:
        os.makedirs(path.parent, mode=0o700, exist_ok=True)
        os.mkdir(path, 0o700)
        created = True
    if created:
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise InsecureDirectory(f"{path} is not a directory (a symlink?)")
    if st.st_uid != os.getuid():
        raise InsecureDirectory(f"{path} belongs to uid {st.st_uid}, not to you (uid {os.getuid()})")
    forbidden = 0o077 if strict else 0o022
    if st.st_mode & forbidden:
        raise InsecureDirectory(f"{path} has mode {stat.S_IMODE(st.st_mode):04o}; other users must not have access")
    return path


def short_socket_dir() -> Path:
    """Fallback directory for sockets whose path under the job directory would be too long
    (``/tmp/ms-debug-<uid>/sockets``, created 0700 with its parent by the caller's checks)."""
    parent = ensure_private_dir(Path("/tmp") / f"ms-debug-{os.getuid()}")
    return parent / "sockets"


def base_dir_for_server(env: Mapping[str, str] | None = None) -> Path:
    """The base directory a breakpoint (or launcher) registers in, created if needed."""
    env = os.environ if env is None else env
    candidates = candidate_base_dirs(env)
    strict = not env.get(ENV_DIR, "").strip()
    last_error: OSError | None = None
    for path in candidates:
        try:
            return ensure_private_dir(path, strict=strict)
        except InsecureDirectory:
            raise
        except OSError as exc:  # e.g. XDG dir not writable: fall back to /tmp
            last_error = exc
    assert last_error is not None
    raise last_error


def job_dir_for_server(env: Mapping[str, str] | None = None, job: str | None = None) -> Path:
    """``<base>/<job>`` created private, with its ``sessions`` sub-directory."""
    job = job or derive_job_id(env)
    path = ensure_private_dir(base_dir_for_server(env) / job)
    ensure_private_dir(path / SESSIONS)
    return path


def _read_private_file(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        st = os.fstat(fd)
        if st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise InsecureDirectory(f"{path} must be a 0600 file owned by you")
        data = b""
        while chunk := os.read(fd, 4096):
            data += chunk
    finally:
        os.close(fd)
    data = data.strip()
    if not data:
        raise InsecureDirectory(f"{path} is empty")
    return data


def write_private_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically with mode 0600 (temp file + rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def job_secret(job_dir: Path, env: Mapping[str, str] | None = None, *, create: bool) -> bytes | None:
    """The job's secret: ``$MS_DEBUG_SECRET`` if set, else ``<job dir>/secret``.

    With ``create`` the first rank to get here generates the file; the others (racing) read the
    same one: the new token is written to a private temp file and hard-linked into place, which
    fails instead of overwriting when another rank won.
    """
    env = os.environ if env is None else env
    if env.get(ENV_SECRET, "").strip():
        return env[ENV_SECRET].strip().encode()
    path = job_dir / SECRET
    try:
        return _read_private_file(path)
    except FileNotFoundError:
        if not create:
            return None
    tmp = job_dir / f".secret.{os.getpid()}.{threading.get_ident()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.write(fd, secrets.token_hex(32).encode())
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    return _read_private_file(path)


def host_tag(host: str | None = None) -> str:
    """8 hex digits naming a host in file names: pids of different nodes sharing one
    ``$MS_DEBUG_DIR`` must not collide, and a host name would make socket paths too long."""
    return hashlib.sha1((host or hostname()).encode()).hexdigest()[:8]


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live (non-zombie) process on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = proc_stat(pid)
    if stat is None or not stat[1]:
        return True
    return stat[1][0] not in (b"Z", b"X")


class JobFileRecord:
    """A dataclass kept as a JSON file in a job folder. ``job_dir`` (a field of each subclass) says
    where it was read from and is never written; fields a newer writer added are ignored."""

    job_dir: str

    def to_json(self) -> bytes:
        data = asdict(self)  # type: ignore[call-overload]
        data.pop("job_dir")
        return json.dumps(data, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes, job_dir: Path) -> Self:
        raw: dict[str, Any] = json.loads(data)
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        record = cls(**{k: v for k, v in raw.items() if k in known and k != "job_dir"})
        record.job_dir = str(job_dir)
        return record


@dataclass
class SessionRecord(JobFileRecord):
    """What ``list`` shows about one breakpoint, and what ``attach`` needs to reach it."""

    job: str
    session: str
    rank: int
    rank_source: str
    role: str
    pid: int
    ppid: int
    host: str
    thread: str
    file: str
    line: int
    function: str
    since: float
    timeout_at: float | None
    state: str  # "waiting" (socket open) or "attached"
    socket: str | None  # socket file name inside sessions/ (or an absolute path), while waiting
    argv: list[str] = field(default_factory=list)
    kind: str = "breakpoint"  # "breakpoint", "post-mortem" (uncaught exception) or "signal" (tools.debug break)
    exception: str | None = None  # post-mortem: the exception, as its last traceback line
    python: str = ""  # sys.executable and the checkout of tools.debug: what a remote command runs
    root: str = ""
    job_dir: str = ""  # filled in when read back, never written

    @property
    def socket_path(self) -> Path | None:
        if not self.socket:
            return None
        path = Path(self.socket)
        return path if path.is_absolute() else Path(self.job_dir) / SESSIONS / path

    @property
    def record_path(self) -> Path:
        return Path(self.job_dir) / SESSIONS / f"{self.session}.json"

    def is_local(self) -> bool:
        return self.host == hostname()


def job_dirs(base_dirs: list[Path], job: str | None = None, errors: list[str] | None = None) -> list[Path]:
    """The job directories under ``base_dirs`` (or just ``job``'s); a directory that cannot be
    read is reported in ``errors`` (one line each) instead of raising."""
    found: list[Path] = []
    for base in base_dirs:
        try:
            if not base.is_dir():
                continue
            if job:
                found.append(base / sanitize_job_id(job))
            else:
                found.extend(sorted(p for p in base.iterdir() if p.is_dir() and p.name != "sockets"))
        except OSError as exc:
            if errors is not None:
                errors.append(f"cannot read {base}: {exc.strerror or exc}")
    return found


def _json_files(directory: Path, errors: list[str] | None) -> list[Path]:
    try:
        return sorted(directory.glob("*.json")) if directory.is_dir() else []
    except OSError as exc:
        if errors is not None:
            errors.append(f"cannot read {directory}: {exc.strerror or exc}")
        return []


def read_sessions(
    base_dirs: list[Path], job: str | None = None, *, prune: bool = True, errors: list[str] | None = None
) -> list[SessionRecord]:
    """All registered sessions under ``base_dirs`` (optionally one job), by job, rank and pid.

    With ``prune``, records left behind by processes that died without cleaning up (SIGKILL,
    OOM killer) are deleted together with their socket files, so ``list`` never shows a
    session that cannot be attached.
    """
    found: list[SessionRecord] = []
    for job_dir in job_dirs(base_dirs, job, errors):
        for path in _json_files(job_dir / SESSIONS, errors):
            try:
                record = SessionRecord.from_json(path.read_bytes(), job_dir)
            except (OSError, ValueError, TypeError):
                continue  # being written or removed right now
            if prune and record.is_local() and not pid_alive(record.pid):
                for leftover in (path, record.socket_path):
                    if leftover is not None:
                        try:
                            leftover.unlink()
                        except OSError:
                            pass
                continue
            found.append(record)
    found.sort(key=lambda r: (r.job, r.rank, r.role != "main", r.host, r.pid, r.since))
    return found
