"""The hang diagnosis under ``mpiexec`` (MPICH's hydra) with a real ``MPI_Barrier``: the 4 ranks,
started as ``mpiexec -n 4 python -m tools.debug run -- job.py``, land in one job (hydra gives
each rank a process group of its own), ranks 0, 2, 3 are shown in MPI_Barrier and rank 1 in
load_batch within 2 s. Needs ``mpiexec`` on PATH with mpi4py importable by the Python beside it
(``pip install mpich mpi4py`` into a venv); skipped otherwise."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from debug_testkit import JOB_TIMEOUT, JOBS, Processes, debug_env, wait_for

from tools.debug import stacks


def mpi_python() -> tuple[str, str] | None:
    mpiexec = shutil.which("mpiexec")
    if mpiexec is None:
        return None
    python = os.path.join(os.path.dirname(mpiexec), "python")
    if not os.path.exists(python):
        return None
    probe = subprocess.run([python, "-c", "import mpi4py.MPI"], capture_output=True, timeout=60)
    return (mpiexec, python) if probe.returncode == 0 else None


MPI = mpi_python()


@pytest.mark.skipif(MPI is None, reason="needs mpiexec with mpi4py importable by the python beside it")
def test_stacks_of_ranks_blocked_in_mpi_barrier(procs: Processes, debug_dir: Path, tmp_path: Path) -> None:
    mpiexec, python = MPI  # type: ignore[misc]
    env = debug_env(debug_dir)
    out = tmp_path / "out"
    out.mkdir()
    job = procs.start([mpiexec, "-n", "4", python, "-m", "tools.debug", "run", "--", str(JOBS / "mpi_hang_job.py"),
                       str(out)], env, stdout=open(tmp_path / "stdout", "wb"), stderr=open(tmp_path / "stderr", "wb"))
    wait_for(lambda: all((out / f"entering-{r}").exists() for r in (0, 2, 3)), JOB_TIMEOUT, "3 ranks entering")
    jobs = [p.name for p in debug_dir.iterdir()]
    assert len(jobs) == 1 and jobs[0].startswith("mpi-hydra-"), jobs  # one job, not one per process group
    os.environ["MS_DEBUG_DIR"] = str(debug_dir)
    try:
        deadline = time.monotonic() + JOB_TIMEOUT
        while True:
            started = time.monotonic()
            results = {r["rank"]: r for r in stacks.collect(None, None)}
            elapsed = time.monotonic() - started
            ops = {rank: (r["threads"][0]["collective"] or {}).get("op") for rank, r in results.items() if r["threads"]}
            if ops == {0: "MPI_Barrier", 1: None, 2: "MPI_Barrier", 3: "MPI_Barrier"} or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        del os.environ["MS_DEBUG_DIR"]
    assert ops == {0: "MPI_Barrier", 1: None, 2: "MPI_Barrier", 3: "MPI_Barrier"}, results
    assert elapsed < 2.0, f"{elapsed:.2f} s"
    for rank in (0, 2, 3):
        frames = [f for f in results[rank]["threads"][0]["frames"] if f["file"].endswith("mpi_hang_job.py")]
        assert frames[0]["function"] == "main" and frames[0]["source"] == "comm.Barrier()"
    sleeper = [f for f in results[1]["threads"][0]["frames"] if f["file"].endswith("mpi_hang_job.py")]
    assert sleeper[0]["function"] == "load_batch"
    (out / "go").touch()
    assert job.wait(timeout=JOB_TIMEOUT) == 0, (tmp_path / "stderr").read_text()
    assert [(out / f"result-{r}").read_text() for r in range(4)] == ["10"] * 4
