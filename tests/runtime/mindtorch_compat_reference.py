"""The PyTorch side of mindtorch_compat_check.py: the cases that torch has too, on the same inputs,
computed with PyTorch (CPU) and the unconverted megatron-core.

The cases that are the same code on both sides are in mindtorch_compat_cases.py (written against
`torch`: here PyTorch itself, verified below); this file adds the PyTorch side of the cases whose
reference is other code than the MindSpore side's: scatter_add's gradient, AdamW (torch's optimizer,
against mindtorch's fused kernels) and npu_fusion_attention (scaled_dot_product_attention sequence by
sequence).

Run with the reference environment (``testbed.torch_run``). Prints one line
``COMPAT_REFERENCE {json}``: per case the same keys as the check script's case of that name.
"""
from __future__ import annotations

import json
import sys

import torch

import mindtorch_compat_cases
from mindtorch_compat_cases import (ADAMW, SCALE, adamw_grads, adamw_params, attention_case, case, param,
                                    register_adamw, register_roll_tensor, register_scatter_add, run_cases, values)

# the reference is PyTorch itself, never mindtorch
if mindtorch_compat_cases.ON_MINDTORCH or "mindtorch" in sys.modules or mindtorch_compat_cases.torch is not torch:
    raise SystemExit(f"the reference must run PyTorch, not {torch!r}")


def _used_src(src, index):
    # scatter_add reads the index-shaped leading part of src; torch's own backward rejects a src larger
    # than index (it returns a gradient of index's shape), so differentiate through that part explicitly
    return src[tuple(slice(0, n) for n in index.shape)]


register_scatter_add(_used_src)


def _adamw(api, amsgrad, maximize, lr):
    # torch's AdamW optimizer (single-tensor: neither foreach nor fused) is the reference of both
    # kernels, with a float or a tensor lr alike
    params = adamw_params(param)
    opt = torch.optim.AdamW(params, lr=ADAMW["lr"], betas=(ADAMW["beta1"], ADAMW["beta2"]), eps=ADAMW["eps"],
                            weight_decay=ADAMW["weight_decay"], amsgrad=amsgrad, maximize=maximize, foreach=False)
    trajectory = []
    for step in range(3):
        params[0].grad, params[1].grad = adamw_grads(step)
        opt.step()
        trajectory.append([values(p) for p in params])
    return {"params": trajectory}


register_adamw(_adamw)


def _tnd(seqs):
    """Packed sequences attended one by one: seqs = [(q0, q1, kv0, kv1)], causal aligned to the
    bottom right (sparse_mode 3); queries without keys give zeros."""
    def out(q, k, v):
        rows = []
        for q0, q1, kv0, kv1 in seqs:
            if kv1 == kv0:
                rows.append(torch.zeros(q1 - q0, q.shape[1], v.shape[2]))
                continue
            sq, sk = q1 - q0, kv1 - kv0
            allowed = torch.arange(sk)[None, :] <= torch.arange(sq)[:, None] + (sk - sq)
            o = torch.nn.functional.scaled_dot_product_attention(
                q[q0:q1].transpose(0, 1), k[kv0:kv1].transpose(0, 1), v[kv0:kv1].transpose(0, 1),
                attn_mask=allowed, scale=SCALE)
            rows.append(o.transpose(0, 1))
        return torch.cat(rows, 0)
    return attention_case(out)


case("npu_fusion_attention[TND]")(lambda: _tnd([(0, 3, 0, 3), (3, 7, 3, 7)]))
case("npu_fusion_attention[TND,queries without keys]")(lambda: _tnd([(0, 3, 0, 3), (3, 5, 3, 3), (5, 7, 3, 7)]))

register_roll_tensor()   # the unconverted megatron-core 0.12.1 (PYTHONPATH)


def main():
    print("COMPAT_REFERENCE " + json.dumps({"torch": torch.__version__, "cases": run_cases()}))


if __name__ == "__main__":
    main()
