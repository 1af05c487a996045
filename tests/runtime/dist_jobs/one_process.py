"""Object collectives and destroy_process_group in a job of one process without a launcher
(patch 0002's local group on mindtorch, gloo on PyTorch): checkpointing code calls them at any size.
Prints one line, ``RESULT <json>``."""
import json

try:
    import mindtorch as torch
except ImportError:
    import torch
dist = torch.distributed

dist.init_process_group("gloo", world_size=1, rank=0)
objs = [None]
dist.all_gather_object(objs, {"rank": dist.get_rank(), "name": "only"})
lst = [{"step": 3, "lr": 0.25}, "x"]
dist.broadcast_object_list(lst, src=0)
t = torch.arange(4, dtype=torch.int64)
dist.all_reduce(t)
dist.destroy_process_group()
print("RESULT " + json.dumps({"all_gather_object": objs, "broadcast_object_list": lst, "all_reduce": t.tolist(),
                              "initialized_after_destroy": dist.is_initialized()}), flush=True)
