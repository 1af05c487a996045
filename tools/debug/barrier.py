"""Keep ranks in step at a breakpoint without collectives: a barrier made of small files.

With ``set_trace(wait_others=True)`` every rank's main process that reaches the breakpoint
waits there until the selected ranks' debugging sessions at that same point have ended, so no
rank runs ahead into a collective (where it would block with a timeout we do not control).
Collectives cannot be used for this: the selected ranks are sitting at a pdb prompt.

A point is identified by the breakpoint's site (file:line) and how many times this process has
hit it, so a ``breakpoint()`` in a training loop pairs iteration k of every rank. Markers in
``<job dir>/barrier/<site>-<hit>/``::

    arrived-<rank>.json   a selected rank reached the point (pid, host, time)
    done-<rank>.json      its session ended (continued, detached, timed out)
    waiting-<rank>.json   a rank is waiting here (for ``list``-style inspection and tests)

A waiting rank stops waiting when every selected rank is done, or when a selected rank that
arrived has died, or - only for selected ranks that have not arrived at all - when the timeout
expires. An arrived rank with a live session is waited for as long as it takes: its own timeout
bounds the un-attached case, and an attached one is being debugged by someone.

Markers older than this process are ignored, so a re-run with the same job id (same
MASTER_PORT, say) is not released by the previous run's leftovers.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from pathlib import Path

from tools.debug.registry import BARRIER, ensure_private_dir, pid_alive, proc_stat, write_private_file
from tools.debug.settings import log

STALE_SLACK = 5.0  # seconds: ranks of one job are started by one launcher within this window


def process_start_time(pid: int | str = "self") -> float:
    """Wall-clock start time of a process (Linux /proc): with the pid, it names a process
    unambiguously (pids are recycled). For this process, the import time of this module where
    /proc is missing; for another, 0.0."""
    try:
        stat = proc_stat(pid)
        if stat is None:
            raise OSError(f"/proc/{pid}/stat")
        ticks = int(stat[1][19])
        with open("/proc/stat", "rb") as handle:
            boot = next(int(line.split()[1]) for line in handle if line.startswith(b"btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return _IMPORT_TIME if pid == "self" else 0.0


_IMPORT_TIME = time.time()
_START_TIME = process_start_time()


class SiteBarrier:
    """The barrier for one (site, hit) of one job, seen from one rank.

    key: names the site identically on every rank (file name, line, function: not the full path,
    which may differ between nodes sharing a $MS_DEBUG_DIR); site: how log lines show it.
    """

    def __init__(
        self,
        job_dir: Path,
        key: str,
        site: str,
        hit: int,
        rank: int,
        selected: frozenset[int] | None,
        world_size: int | None,
        timeout: float | None,
    ) -> None:
        digest = hashlib.sha1(key.encode()).hexdigest()[:16]
        self.path = job_dir / BARRIER / f"{digest}-{hit}"
        self.site = site
        self.rank = rank
        self.timeout = timeout
        if selected is None:
            self.targets = set(range(world_size)) if world_size else None
        else:
            self.targets = {r for r in selected if world_size is None or r < world_size}
        if self.targets is not None:
            self.targets.discard(rank)

    def _ensure(self) -> None:
        ensure_private_dir(self.path.parent)
        ensure_private_dir(self.path)

    def _mark(self, kind: str) -> None:
        self._ensure()
        payload = {"rank": self.rank, "pid": os.getpid(), "host": socket.gethostname(), "time": time.time()}
        write_private_file(self.path / f"{kind}-{self.rank}.json", json.dumps(payload).encode())

    def arrived(self) -> None:
        """A selected rank reached the point (its session is about to wait for a client)."""
        self._mark("arrived")

    def done(self) -> None:
        """A selected rank's session at this point has ended."""
        self._mark("done")

    def _read(self, kind: str, rank: int) -> dict | None:
        try:
            marker = json.loads((self.path / f"{kind}-{rank}.json").read_bytes())
        except (OSError, ValueError):
            return None
        if float(marker.get("time", 0)) < _START_TIME - STALE_SLACK:
            return None  # left over from an earlier run with the same job id
        return marker

    def wait(self, poll: float = 0.05, max_poll: float = 0.5) -> None:
        """Block until the selected ranks (other than this one) are done here; see module doc."""
        if self.targets is None:
            log(f"rank {self.rank}: wait_others needs the world size (WORLD_SIZE & co.) to wait for all ranks; not waiting")
            return
        if not self.targets:
            return
        self._ensure()
        waiting_marker = self.path / f"waiting-{self.rank}.json"
        self._mark("waiting")
        started = time.monotonic()
        pending = set(self.targets)
        announced = False
        try:
            while True:
                not_arrived = set()
                for rank in sorted(pending):
                    if self._read("done", rank) is not None:
                        pending.discard(rank)
                        continue
                    arrived = self._read("arrived", rank)
                    if arrived is None:
                        not_arrived.add(rank)
                    elif arrived.get("host") == socket.gethostname() and not pid_alive(int(arrived["pid"])):
                        log(f"rank {self.rank}: rank {rank} died at {self.site} without finishing; not waiting for it")
                        pending.discard(rank)
                if not pending:
                    return
                if not announced:
                    log(f"rank {self.rank} waiting at {self.site} for rank(s) {_fmt(pending)} to finish debugging")
                    announced = True
                elapsed = time.monotonic() - started
                if self.timeout is not None and not_arrived and elapsed > self.timeout:
                    log(
                        f"rank {self.rank}: rank(s) {_fmt(not_arrived)} did not reach {self.site} within "
                        f"{self.timeout:g} s; continuing"
                    )
                    return
                time.sleep(poll)
                poll = min(max_poll, poll * 1.5)
        finally:
            try:
                os.unlink(waiting_marker)
            except OSError:
                pass


def _fmt(ranks: set[int]) -> str:
    return ",".join(str(r) for r in sorted(ranks))
