"""The hung job on real MPI (mpi4py over MPICH, started by ``mpiexec``): ranks 0, 2 and 3 block in
``MPI_Barrier``; rank 1 sleeps in ``load_batch`` until ``<out>/go`` appears. The barrier is marked
with ``tools.debug.collectives`` the way the project's MPI transport is meant to mark its calls.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from mpi4py import MPI

from tools.debug.collectives import collective


def load_batch(out: Path) -> None:
    while not (out / "go").exists():
        time.sleep(0.2)  # rank 1 is stuck here


def main() -> None:
    comm = MPI.COMM_WORLD
    out = Path(sys.argv[1])
    if comm.rank == 1:
        load_batch(out)
    (out / f"entering-{comm.rank}").write_text("")
    with collective("MPI_Barrier", comm="COMM_WORLD", size=comm.size):
        comm.Barrier()
    total = comm.allreduce(comm.rank + 1)
    (out / f"result-{comm.rank}").write_text(str(total))


if __name__ == "__main__":
    main()
