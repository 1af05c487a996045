"""Megatron's MoE router with aux-loss load balancing, upstream's own functions, differentiated with
``.backward()`` (and on mindtorch also with ``torch.autograd.value_and_grad``); prints
``OPDIFF_BACKWARD {json}`` with the loss and the logits' gradient per way.

    python op_cases_backward.py mindtorch     # in a workspace (source set_env.sh)
    python op_cases_backward.py pytorch       # in the PyTorch reference environment, unconverted Megatron

Issue 10: with ``--moe-router-load-balancing-type aux_loss`` the gradient computation failed with
``For primitive[Add] ... but got Tensor[Bool]``: ``topk_softmax_with_capacity``'s routing map is a bool
tensor of the graph used twice (``.sum(dim=0)`` for the tokens per expert, and returned as the mask).
The differential case ``bool_in_graph`` (op_cases_ops.py) has the same pattern under value_and_grad;
this runs the upstream code itself, the way the training step differentiates it.
"""
from __future__ import annotations

import json
import sys

import numpy as np

TOKENS, EXPERTS, TOPK, COEFF = 12, 6, 2, 0.01


def router_step(torch, logits):
    """TopKRouter.aux_loss_load_balancing (megatron-core 0.12.1) without the module: routing, the
    aux loss on the softmax scores, the aux loss attached by MoEAuxLossAutoScaler; the 'main loss' is a
    weighted sum of the routed probabilities and the routing map."""
    from megatron.core.transformer.moe.moe_utils import (MoEAuxLossAutoScaler, switch_load_balancing_loss_func,
                                                         topk_softmax_with_capacity)
    probs, routing_map, tokens_per_expert = topk_softmax_with_capacity(logits, TOPK)
    scores = torch.softmax(logits, dim=-1, dtype=torch.float32)
    aux_loss = switch_load_balancing_loss_func(scores, tokens_per_expert, TOPK, COEFF)
    probs = MoEAuxLossAutoScaler.apply(probs, aux_loss)
    weights = torch.arange(TOKENS * EXPERTS, dtype=torch.float32).reshape(TOKENS, EXPERTS) / 10
    return (probs * weights).sum() + (probs * routing_map).sum()


def main(side: str) -> dict:
    if side == "mindtorch":
        import mindtorch  # noqa: F401  (first: installs the `torch` import proxy)
    import torch
    values = np.random.default_rng(10).standard_normal((TOKENS, EXPERTS)).astype(np.float32)
    report = {}
    ways = ["backward", "value_and_grad"] if side == "mindtorch" else ["backward"]
    for way in ways:
        logits = torch.tensor(values).requires_grad_()
        try:
            if way == "backward":
                loss = router_step(torch, logits)
                loss.backward()
            else:
                loss = torch.autograd.value_and_grad(lambda x: router_step(torch, x), [logits])(logits)
            report[way] = {"loss": float(loss.item()), "grad": np.asarray(logits.grad.tolist()).tolist()}
        except Exception as e:  # noqa: BLE001  (the observation is the error)
            report[way] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"}
    return report


if __name__ == "__main__":
    if sys.argv[1:] not in (["mindtorch"], ["pytorch"]):
        raise SystemExit("usage: op_cases_backward.py mindtorch|pytorch")
    print("OPDIFF_BACKWARD " + json.dumps(main(sys.argv[1])))
