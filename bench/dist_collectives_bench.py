"""Collective times on this machine: mindtorch over MPI against PyTorch 2.13 with gloo.

    .venv/bin/python bench/dist_collectives_bench.py                 # world sizes 2 and 4, prints a table
    .venv/bin/python bench/dist_collectives_bench.py --nproc 2 --mindtorch /path/holding/mindtorch

Runs itself as the job: under ``python -m mindtorch.distributed.mpi_run`` (the mindtorch in
``--mindtorch``, default the one installed in .venv) and under torchrun in .venv-torch. Each
collective runs on float32 tensors of 4 KiB and 1 MiB (and 16 MiB for all_reduce), a few warm-up
calls then ``--iters`` timed calls between barriers; the time is the slowest rank's mean. On the
mindtorch side the same operation is also timed on bare NumPy buffers through mpi4py, which is what
the transport costs without the tensor <-> buffer copies.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SIZES = {"4KiB": 1024, "1MiB": 256 * 1024, "16MiB": 4 * 1024 * 1024}
CASES = [("all_reduce", "4KiB"), ("all_reduce", "1MiB"), ("all_reduce", "16MiB"),
         ("all_gather_into_tensor", "1MiB"), ("reduce_scatter_tensor", "1MiB"),
         ("all_to_all_single", "1MiB"), ("broadcast", "1MiB"), ("send_recv", "1MiB")]


def _job(iters: int) -> None:
    try:
        import mindtorch as torch
    except ImportError:
        import torch
    dist = torch.distributed
    dist.init_process_group("gloo")
    rank, n = dist.get_rank(), dist.get_world_size()

    def op_for(name: str, numel: int):
        x = torch.ones(numel, dtype=torch.float32)
        if name == "all_reduce":
            return lambda: dist.all_reduce(x)
        if name == "all_gather_into_tensor":
            out = torch.zeros(numel * n, dtype=torch.float32)
            return lambda: dist.all_gather_into_tensor(out, x)
        if name == "reduce_scatter_tensor":
            big, out = torch.ones(numel * n, dtype=torch.float32), torch.zeros(numel, dtype=torch.float32)
            return lambda: dist.reduce_scatter_tensor(out, big)
        if name == "all_to_all_single":
            out = torch.zeros(numel, dtype=torch.float32)
            numel -= numel % n
            x2, out2 = x[:numel].clone(), out[:numel].clone()
            return lambda: dist.all_to_all_single(out2, x2)
        if name == "broadcast":
            return lambda: dist.broadcast(x, src=0)
        if name == "send_recv":   # rank 0 -> 1 and back: half a round trip each way
            def pingpong():
                if rank == 0:
                    dist.send(x, 1); dist.recv(x, 1)
                elif rank == 1:
                    dist.recv(x, 0); dist.send(x, 0)
            return pingpong
        raise ValueError(name)

    def timed(fn) -> float:
        for _ in range(3):
            fn()
        dist.barrier()
        start = time.perf_counter()
        for _ in range(iters):
            fn()
        mine = torch.tensor([(time.perf_counter() - start) / iters], dtype=torch.float64)
        dist.all_reduce(mine, op=dist.ReduceOp.MAX)
        return float(mine.item())

    raw = None
    if torch.__name__ == "mindtorch":
        raw = _raw_mpi_ops(n, rank)
    rows = []
    for name, size in CASES:
        row = {"op": name, "size": size, "ms": 1e3 * timed(op_for(name, SIZES[size]))}
        if raw is not None:
            row["raw_mpi_ms"] = 1e3 * timed(raw(name, SIZES[size]))
        rows.append(row)
    if rank == 0:
        print("BENCH " + json.dumps({"framework": torch.__name__, "world": n, "rows": rows}), flush=True)
    dist.destroy_process_group()


def _raw_mpi_ops(n: int, rank: int):
    """The same operations on NumPy buffers through mpi4py: the transport without the tensors."""
    import numpy as np
    from mpi4py import MPI
    comm = MPI.COMM_WORLD

    def raw(name: str, numel: int):
        x = np.ones(numel, dtype=np.float32)
        y = np.zeros(numel * n, dtype=np.float32)
        if name == "all_reduce":
            return lambda: comm.Allreduce(x, y[:numel])
        if name == "all_gather_into_tensor":
            return lambda: comm.Allgather(x, y)
        if name == "reduce_scatter_tensor":
            big = np.ones(numel * n, dtype=np.float32)
            return lambda: comm.Reduce_scatter_block(big, y[:numel])
        if name == "all_to_all_single":
            m = numel - numel % n
            return lambda: comm.Alltoall(x[:m], y[:m])
        if name == "broadcast":
            return lambda: comm.Bcast(x, 0)
        if name == "send_recv":
            def pingpong():
                if rank == 0:
                    comm.Send(x, 1); comm.Recv(x, 1)
                elif rank == 1:
                    comm.Recv(x, 0); comm.Send(x, 0)
            return pingpong
        raise ValueError(name)
    return raw


def _run(framework: str, nproc: int, iters: int, mindtorch_dir: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update({"GLOG_v": "3", "OMP_NUM_THREADS": "1"})
    me = str(Path(__file__).resolve())
    if framework == "mindtorch":
        if mindtorch_dir:
            env["PYTHONPATH"] = mindtorch_dir
        cmd = [str(REPO / ".venv" / "bin" / "python"), "-m", "mindtorch.distributed.mpi_run",
               "--nproc-per-node", str(nproc), me, "--job", "--iters", str(iters)]
    else:
        cmd = [str(REPO / ".venv-torch" / "bin" / "python"), "-m", "torch.distributed.run",
               "--nproc-per-node", str(nproc), me, "--job", "--iters", str(iters)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("BENCH ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{framework} at {nproc} processes failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("BENCH "):])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nproc", type=int, nargs="+", default=[2, 4])
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--mindtorch", help="folder holding the patched mindtorch/ (default: the installed one)")
    p.add_argument("--job", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.job:
        _job(args.iters)
        return
    print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    print(f"{'world':>5} {'op':<24} {'size':>6} {'mindtorch/MPI ms':>17} {'mpi4py raw ms':>14} {'torch/gloo ms':>14}")
    for nproc in args.nproc:
        ms = _run("mindtorch", nproc, args.iters, args.mindtorch)
        pt = _run("torch", nproc, args.iters, None)
        for a, b in zip(ms["rows"], pt["rows"]):
            print(f"{nproc:>5} {a['op']:<24} {a['size']:>6} {a['ms']:>17.3f} {a['raw_mpi_ms']:>14.3f} {b['ms']:>14.3f}")
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
