"""A two-process job in which rank 1 fails: ``raise`` (an exception) or ``hang`` (it never joins).

Rank 0 meanwhile waits in an all_reduce; tests/runtime/test_distributed_collectives.py checks
that the job ends with one line naming the failure instead of hanging.
"""
import sys
import time
from datetime import timedelta

import mindtorch as torch
import mindtorch.distributed as dist

dist.init_process_group("gloo", timeout=timedelta(seconds=5))
rank = dist.get_rank()
if rank == 1:
    if sys.argv[1] == "raise":
        raise ValueError("rank 1 fails on purpose")
    time.sleep(600)
t = torch.ones(4)
dist.all_reduce(t)
print(f"rank {rank} finished its all_reduce", flush=True)
