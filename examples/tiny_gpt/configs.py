"""The tiny GPT's configurations: a baseline, each Megatron-core feature switched on alone, and all together.

A configuration is a list of feature names; each feature is a set of overrides of ``Setup``, the
few knobs ``train.py`` passes to Megatron-core (``TransformerConfig``, the layer spec, ``GPTModel``,
the schedule, DDP and the optimizer). Plain data, so that the converted copy and the PyTorch
reference read the same table.
"""
from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Setup:
    """What one training run of the tiny GPT uses; the defaults are the baseline."""
    layers: int = 2
    hidden: int = 64
    heads: int = 4
    ffn: int = 256
    vocab: int = 128
    seq: int = 32
    micro_batch: int = 2
    bias: bool = True                                 # biases in the linear layers (MoE needs them off)
    normalization: str = "LayerNorm"                  # or "RMSNorm"
    position_embedding: str = "learned_absolute"      # or "rope"
    swiglu: bool = False                              # gated linear unit with SiLU
    query_groups: int | None = None                   # GQA when < heads
    qk_layernorm: bool = False
    untied_embeddings: bool = False
    experts: int | None = None                        # MoE layers (local SequentialMLP experts)
    router_topk: int = 2
    load_balancing: str = "aux_loss"                  # "aux_loss", "sinkhorn", "none"
    aux_loss_coeff: float = 0.0
    dispatcher: str = "allgather"                     # or "alltoall"
    microbatches: int = 1
    clip_grad: float = 0.0
    recompute: str | None = None                      # "full" (uniform, 1 layer), "block" (full, the first
                                                      # layer) or "selective" (core_attn)
    distributed_optimizer: bool = False


FEATURES: dict[str, dict] = {
    "rmsnorm": {"normalization": "RMSNorm"},
    "rope": {"position_embedding": "rope"},
    "swiglu": {"swiglu": True},
    "gqa": {"query_groups": 2},
    "qk_layernorm": {"qk_layernorm": True},
    "untied_embeddings": {"untied_embeddings": True},
    "moe_aux_loss": {"bias": False, "experts": 4, "load_balancing": "aux_loss", "aux_loss_coeff": 1e-2},
    "moe_sinkhorn": {"bias": False, "experts": 4, "load_balancing": "sinkhorn", "router_topk": 1},
    "moe_no_balancing": {"bias": False, "experts": 4, "load_balancing": "none"},
    "moe_alltoall": {"bias": False, "experts": 4, "load_balancing": "aux_loss", "aux_loss_coeff": 1e-2,
                     "dispatcher": "alltoall"},
    "microbatches4": {"microbatches": 4},
    "clip_grad": {"clip_grad": 0.5},
    "recompute_full": {"recompute": "full"},
    "recompute_block": {"recompute": "block"},
    "recompute_selective": {"recompute": "selective"},
    "distributed_optimizer": {"distributed_optimizer": True},
}

# "all": every feature at once (one MoE router: aux-loss with the alltoall dispatcher; full recompute).
ALL = ["rmsnorm", "rope", "swiglu", "gqa", "qk_layernorm", "untied_embeddings", "moe_alltoall",
       "microbatches4", "clip_grad", "recompute_full", "distributed_optimizer"]

CONFIGS: dict[str, list[str]] = {"baseline": [], **{name: [name] for name in FEATURES}, "all": ALL}


def setup(config: str) -> Setup:
    """The ``Setup`` of a configuration named in ``CONFIGS``."""
    if config not in CONFIGS:
        raise SystemExit(f"unknown configuration {config!r}: choose from {', '.join(CONFIGS)}")
    result = Setup()
    for feature in CONFIGS[config]:
        result = replace(result, **FEATURES[feature])
    return result
