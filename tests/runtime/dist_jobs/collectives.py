"""Every collective and group operation once, on inputs that depend only on the rank.

Runs unchanged on PyTorch (torchrun, gloo) and on mindtorch (mindtorch.distributed.mpi_run, MPI):
it imports mindtorch when it is there, torch otherwise. Each rank writes what each case left in
its output tensors to OUT_DIR/rank<r>.json; tests/runtime/test_distributed_collectives.py compares
the two frameworks' files rank by rank.

    python -m torch.distributed.run --nproc-per-node 4 collectives.py OUT_DIR
    python -m mindtorch.distributed.mpi_run --nproc-per-node 4 collectives.py OUT_DIR
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

try:
    import mindtorch as torch
except ImportError:
    import torch
import_name = torch.__name__
dist = torch.distributed

results: dict = {}


def record(name: str, value) -> None:
    if isinstance(value, torch.Tensor):
        value = {"dtype": str(value.dtype).rsplit(".", 1)[-1], "shape": list(value.shape),
                 "values": value.reshape(-1).tolist()}
    elif isinstance(value, (list, tuple)) and value and isinstance(value[0], torch.Tensor):
        value = [{"dtype": str(t.dtype).rsplit(".", 1)[-1], "shape": list(t.shape),
                  "values": t.reshape(-1).tolist()} for t in value]
    results[name] = value


def ints(r: int, k: int = 6):
    return torch.arange(k, dtype=torch.int64) * (r + 1) + r


def eighths(r: int, k: int = 6):
    """float32 values whose sums are exact in any order."""
    return (torch.arange(k, dtype=torch.float32) + 3 * r) / 8


def irregular(r: int, k: int = 6):
    """float32 values whose sums depend on the order at world size > 2."""
    return ((torch.arange(k, dtype=torch.float64) * 7919 + r * 104729) % 1000 / 997.0 + 0.1).to(torch.float32)


def main(out_dir: Path) -> None:
    dist.init_process_group("gloo")
    r, n = dist.get_rank(), dist.get_world_size()
    record("rank_and_size", [r, n])

    # all_reduce: every op the upstream stacks use, on int64 and float32
    for op in ("SUM", "MAX", "MIN", "PRODUCT", "AVG"):
        t = eighths(r) if op == "AVG" else ints(r)
        dist.all_reduce(t, op=getattr(dist.ReduceOp, op))
        record(f"all_reduce_{op.lower()}", t)
    for op in ("BAND", "BOR", "BXOR"):
        t = ints(r) + 5
        dist.all_reduce(t, op=getattr(dist.ReduceOp, op))
        record(f"all_reduce_{op.lower()}", t)
    t = eighths(r); dist.all_reduce(t); record("all_reduce_sum_float_exact", t)
    t = irregular(r); dist.all_reduce(t); record("all_reduce_sum_float_irregular", t)
    t = irregular(r).to(torch.float64); dist.all_reduce(t, op=dist.ReduceOp.MAX); record("all_reduce_max_float64", t)
    t = ints(r).reshape(2, 3); work = dist.all_reduce(t, async_op=True); work.wait()
    record("all_reduce_async", t)
    t = ints(r); dist.group.WORLD.allreduce([t]).wait()        # the ProcessGroup method, no options
    record("process_group_allreduce_without_options", t)

    # gathers
    out = [torch.zeros(6, dtype=torch.int64) for _ in range(n)]
    dist.all_gather(out, ints(r)); record("all_gather", out)
    out = torch.zeros(n * 2, 3, dtype=torch.float32)
    dist.all_gather_into_tensor(out, eighths(r).reshape(2, 3)); record("all_gather_into_tensor", out)
    out = torch.zeros(n, 6, dtype=torch.int64)
    work = dist.all_gather_into_tensor(out, ints(r).reshape(1, 6), async_op=True); work.wait()
    record("all_gather_into_tensor_stacked_async", out)

    # reduce-scatters
    out = torch.zeros(3, dtype=torch.int64)
    dist.reduce_scatter(out, [ints(r, 3) + 10 * j for j in range(n)]); record("reduce_scatter", out)
    out = torch.zeros(2, 3, dtype=torch.float32)
    dist.reduce_scatter_tensor(out, eighths(r, 6 * n).reshape(2 * n, 3)); record("reduce_scatter_tensor", out)
    out = torch.zeros(4, dtype=torch.int64)
    dist.reduce_scatter_tensor(out, ints(r, 4 * n), op=dist.ReduceOp.MAX); record("reduce_scatter_tensor_max", out)

    # Megatron's DDP reduce-scatters its buckets inside a coalescing manager
    coalescing = dist.distributed_c10d._coalescing_manager
    a, b = torch.zeros(2, dtype=torch.float32), torch.zeros(3, dtype=torch.float32)
    with coalescing(async_ops=True) as cm:
        dist.reduce_scatter_tensor(a, eighths(r, 2 * n))
        dist.reduce_scatter_tensor(b, eighths(r + 1, 3 * n))
    cm.wait()
    record("coalesced_reduce_scatter_tensor", [a, b])
    a, b = ints(r, 2), ints(r, 5)
    with coalescing(async_ops=True) as cm:
        dist.all_reduce(a)
        dist.all_reduce(b)
    cm.wait()
    record("coalesced_all_reduce", [a, b])

    # broadcast, reduce, gather, scatter
    t = ints(r); dist.broadcast(t, src=n - 1); record("broadcast", t)
    t = eighths(r); work = dist.broadcast(t, src=0, async_op=True); work.wait(); record("broadcast_async", t)
    t = ints(r); dist.reduce(t, dst=n - 1); record("reduce_dst", t if r == n - 1 else "not root")
    gl = [torch.zeros(6, dtype=torch.int64) for _ in range(n)] if r == 0 else None
    dist.gather(ints(r), gl, dst=0); record("gather", gl if r == 0 else "not root")
    t = torch.zeros(3, dtype=torch.int64)
    dist.scatter(t, [ints(j, 3) * 7 for j in range(n)] if r == n - 1 else None, src=n - 1); record("scatter", t)

    # all-to-all: equal splits, uneven split sizes (MoE dispatch), and the list form
    out = torch.zeros(2 * n, dtype=torch.int64)
    dist.all_to_all_single(out, torch.arange(2 * n, dtype=torch.int64) + 100 * r); record("all_to_all_single", out)
    in_splits = [(r + j) % 3 + 1 for j in range(n)]
    out_splits = [(j + r) % 3 + 1 for j in range(n)]
    inp = (torch.arange(sum(in_splits) * 2, dtype=torch.float32) / 4 + 10 * r).reshape(-1, 2)
    out = torch.zeros(sum(out_splits), 2, dtype=torch.float32)
    dist.all_to_all_single(out, inp, out_splits, in_splits); record("all_to_all_single_uneven", out)
    work = dist.all_to_all_single(out, inp, out_splits, in_splits, async_op=True); work.wait()
    record("all_to_all_single_uneven_async", out)
    ins = [torch.arange(2, dtype=torch.int64) + 10 * r + 100 * j for j in range(n)]   # gloo: equal sizes
    outs = [torch.zeros(2, dtype=torch.int64) for j in range(n)]
    dist.all_to_all(outs, ins); record("all_to_all", outs)

    # point to point
    if n > 1:
        if r == 0:
            dist.send(ints(r) * 3, dst=1)
        elif r == 1:
            t = torch.zeros(6, dtype=torch.int64); dist.recv(t, src=0); record("send_recv", t)
        nxt, prv = (r + 1) % n, (r - 1) % n
        t = torch.zeros(6, dtype=torch.float32)
        works = [dist.isend(eighths(r), nxt), dist.irecv(t, prv)]
        for w in works:
            w.wait()
        record("isend_irecv_ring", t)
        fwd, bwd = torch.zeros(3, dtype=torch.int64), torch.zeros(3, dtype=torch.int64)
        ops = [dist.P2POp(dist.isend, ints(r, 3), nxt), dist.P2POp(dist.irecv, fwd, prv),
               dist.P2POp(dist.isend, ints(r, 3) * -1, prv), dist.P2POp(dist.irecv, bwd, nxt)]
        for w in dist.batch_isend_irecv(ops):
            w.wait()
        record("batch_isend_irecv", [fwd, bwd])
        if r == 1:
            dist.send(ints(r), dst=0)
        elif r == 0:
            t = torch.zeros(6, dtype=torch.int64); sender = dist.recv(t)
            record("recv_any_source", [sender, t.tolist()])

    # groups as Megatron's parallel_state makes them: every rank creates every group, in order
    tp = 2 if n % 2 == 0 else 1
    tp_groups = [list(range(i, i + tp)) for i in range(0, n, tp)]
    dp_groups = [list(range(i, n, tp)) for i in range(tp)]
    mine = {}
    for kind, layout in (("tp", tp_groups), ("dp", dp_groups)):
        for ranks in layout:
            g = dist.new_group(ranks)
            if r in ranks:
                mine[kind] = g
    for kind, g in sorted(mine.items()):
        record(f"{kind}_group", [dist.get_rank(g), dist.get_world_size(g), dist.get_process_group_ranks(g),
                                 dist.get_global_rank(g, 0), dist.get_group_rank(g, r)])
        t = ints(r); dist.all_reduce(t, group=g); record(f"{kind}_all_reduce", t)
        out = torch.zeros(dist.get_world_size(g) * 2, dtype=torch.float32)
        dist.all_gather_into_tensor(out, eighths(r, 2), group=g); record(f"{kind}_all_gather_into_tensor", out)
        out = torch.zeros(2, dtype=torch.float32)
        dist.reduce_scatter_tensor(out, eighths(r, 2 * dist.get_world_size(g)), group=g)
        record(f"{kind}_reduce_scatter_tensor", out)
        t = ints(r); dist.broadcast(t, src=dist.get_global_rank(g, dist.get_world_size(g) - 1), group=g)
        record(f"{kind}_broadcast", t)
        size = dist.get_world_size(g)
        out = torch.zeros(size, dtype=torch.int64)
        dist.all_to_all_single(out, torch.arange(size, dtype=torch.int64) + 10 * r, group=g)
        record(f"{kind}_all_to_all_single", out)
        dist.barrier(group=g)
    # a group only its members create (non-members do not call new_group at all)
    ends = [0, n - 1]
    if r in ends:
        g = dist.new_group(ends, use_local_synchronization=True)
        t = ints(r); dist.all_reduce(t, group=g)
        record("local_synchronization_group", [dist.get_rank(g), dist.get_process_group_ranks(g), t.tolist()])
    lone = dist.new_group([n - 1])          # a group most ranks are not in
    record("non_member_rank", [dist.get_rank(lone), lone == dist.GroupMember.NON_GROUP_MEMBER])
    if r == n - 1:
        t = ints(r); dist.all_reduce(t, group=lone); record("single_member_all_reduce", t)
    # the same layout through new_subgroups_by_enumeration
    sub, _ = dist.new_subgroups_by_enumeration(tp_groups)
    t = ints(r); dist.all_reduce(t, group=sub); record("subgroups_by_enumeration_all_reduce", t)

    # objects (checkpointing and logging use these)
    objs = [None] * n
    dist.all_gather_object(objs, {"rank": r, "name": f"r{r}"}); record("all_gather_object", objs)
    lst = [{"step": 7, "lr": 0.5}, "x"] if r == 0 else [None, None]
    dist.broadcast_object_list(lst, src=0); record("broadcast_object_list", lst)

    dist.barrier()

    # an all_reduce into a view of a flat buffer: Megatron's grads are views of one grad buffer
    buf = torch.zeros(10, dtype=torch.float32)
    view = buf[2:8]
    view.copy_(eighths(r))
    dist.all_reduce(view)
    record("view_all_reduce_buffer", buf)

    # a collective is invisible to autograd: a tensor that requires grad keeps its graph through it
    x0 = torch.ones(3, requires_grad=True)
    y = x0 * (r + 1)
    dist.all_reduce(y)
    try:
        y.sum().backward()
        record("autograd_through_all_reduce", [y.tolist(), x0.grad.tolist()])
    except RuntimeError as exc:
        record("autograd_through_all_reduce", f"{type(exc).__name__}: {exc}")

    (out_dir / f"rank{r}.json").write_text(json.dumps({"framework": import_name, "results": results}))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
