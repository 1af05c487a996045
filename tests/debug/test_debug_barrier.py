"""``set_trace(ranks=[1], wait_others=True)``: the other ranks wait at the same point, without
collectives, until rank 1's session ends - attached or timed out.

The job is started by a tiny torchrun-like launcher written here (RANK, WORLD_SIZE, MASTER_ADDR,
MASTER_PORT; no MS_DEBUG_JOB), so the job id is the one the debugger derives by itself and
nobody cleans the job directory up after the processes.
"""
from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

from debug_testkit import (
    JOB_TIMEOUT,
    JOBS,
    PYTHON,
    Client,
    Processes,
    debug_env,
    live_sockets,
    wait_for,
    wait_for_sessions,
)

WORLD = 4


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_ranks(procs: Processes, env: dict[str, str], out: Path, timeout: str) -> tuple[list[subprocess.Popen], str]:
    """Our own plain launcher: one process per rank with the variables torchrun would set."""
    port = str(free_port())
    ranks = []
    for rank in range(WORLD):
        rank_env = dict(env, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD), MASTER_ADDR="127.0.0.1",
                        MASTER_PORT=port, JOB_TIMEOUT=timeout)
        log = open(out.parent / f"rank{rank}.stderr", "wb")
        ranks.append(procs.start([PYTHON, str(JOBS / "barrier_job.py"), str(out)], rank_env, stderr=log))
    return ranks, f"torch-127.0.0.1-{port}"


def waiting_markers(job_dir: Path) -> set[int]:
    return {int(p.stem.split("-")[1]) for p in job_dir.glob("barrier/*/waiting-*.json")}


def results(out: Path) -> dict[int, dict]:
    return {r: json.loads((out / f"after-{r}.json").read_text()) for r in range(WORLD)}


def test_other_ranks_wait_until_rank_1_continues(procs: Processes, debug_dir: Path, tmp_path: Path) -> None:
    env = debug_env(debug_dir)
    out = tmp_path / "out"
    out.mkdir()
    ranks, job = start_ranks(procs, env, out, timeout="300")
    job_dir = debug_dir / job

    sessions = wait_for_sessions(env, 1)
    assert [(s["rank"], s["job"]) for s in sessions] == [(1, job)]  # job id derived from MASTER_ADDR/PORT
    wait_for(lambda: waiting_markers(job_dir) == {0, 2, 3}, JOB_TIMEOUT, "ranks 0, 2, 3 waiting at the barrier")
    # All three are inside the barrier and none has got past it.
    assert not list(out.glob("after-*"))

    client = Client(procs, env, "1")
    assert "-> return value + 1" in client.read_until_prompt()
    assert client.command("p value").strip() == "20"
    assert not list(out.glob("after-*"))
    released_at = time.time()
    code, _ = client.finish("c")
    assert code == 0

    for proc in ranks:
        assert proc.wait(timeout=JOB_TIMEOUT) == 0
    after = results(out)
    assert {r: a["value"] for r, a in after.items()} == {0: 11, 1: 21, 2: 31, 3: 41}
    for rank in (0, 2, 3):
        assert after[rank]["after"] >= released_at, f"rank {rank} ran ahead of rank 1's session"
    assert waiting_markers(job_dir) == set()
    assert live_sockets(debug_dir) == [] and list((job_dir / "sessions").glob("*")) == []
    assert "waiting at" in (out.parent / "rank0.stderr").read_text()


def test_unattached_rank_times_out_and_releases_the_others(procs: Processes, debug_dir: Path, tmp_path: Path) -> None:
    env = debug_env(debug_dir)
    out = tmp_path / "out"
    out.mkdir()
    ranks, job = start_ranks(procs, env, out, timeout="2")
    for proc in ranks:
        assert proc.wait(timeout=JOB_TIMEOUT) == 0
    after = results(out)
    assert {r: a["value"] for r, a in after.items()} == {0: 11, 1: 21, 2: 31, 3: 41}
    rank1_arrived = float((out / "before-1").read_text())
    for rank in range(WORLD):  # everyone waited for rank 1's 2 s timeout
        assert after[rank]["after"] >= rank1_arrived + 2.0, rank
    log1 = (out.parent / "rank1.stderr").read_text().splitlines()
    assert len([line for line in log1 if "nobody attached" in line]) == 1
    assert any("within 2 s; continuing" in line for line in log1)
    # The job's own processes removed their socket and registration: nothing listens.
    job_dir = debug_dir / job
    assert (job_dir / "sessions").is_dir()
    assert live_sockets(debug_dir) == [] and list((job_dir / "sessions").glob("*")) == []
