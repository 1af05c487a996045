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
    overlap: bool = False                             # DDP's overlapped gradient reduction (and, with the
                                                      # distributed optimizer, parameter all-gather), small buckets


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


# Features only the parallel layouts use (not configurations of their own): the virtual pipeline
# needs a layer per model chunk (pipeline 2 x 2 chunks).
LAYOUT_FEATURES: dict[str, dict] = {"layers4": {"layers": 4}, "overlap": {"overlap": True}}


def setup(config: str) -> Setup:
    """The ``Setup`` of a configuration named in ``CONFIGS``, or of several joined by ``+`` (their
    features together, e.g. ``moe_aux_loss+microbatches4``; ``layers4`` may be one of them)."""
    result = Setup()
    for part in config.split("+"):
        if part in LAYOUT_FEATURES:
            result = replace(result, **LAYOUT_FEATURES[part])
            continue
        if part not in CONFIGS:
            raise SystemExit(f"unknown configuration {part!r}: choose from {', '.join([*CONFIGS, *LAYOUT_FEATURES])}"
                             f" (join several with +)")
        for feature in CONFIGS[part]:
            result = replace(result, **FEATURES[feature])
    return result


@dataclass(frozen=True)
class Layout:
    """How the processes split the model: Megatron's tensor (``tp``), pipeline (``pp``, with ``vpp``
    model chunks per stage when set) and expert (``ep``) parallel sizes, and sequence parallelism
    (``sp``, over the tensor-parallel group). Data parallelism is what the world size leaves:
    ``world / (tp * pp)`` (the experts' data parallelism: ``world / (tp * pp * ep)``)."""
    tp: int = 1
    pp: int = 1
    vpp: int | None = None
    ep: int = 1
    sp: bool = False

    def dp(self, world: int) -> int:
        if world % (self.tp * self.pp) or world % (self.tp * self.pp * self.ep):
            raise SystemExit(f"world size {world} is not a multiple of tp*pp*ep = {self.tp * self.pp * self.ep}")
        return world // (self.tp * self.pp)

    def options(self) -> list[str]:
        """train.py's command-line options for this layout."""
        opts = [f"--{name}={value}" for name, value in (("tp", self.tp), ("pp", self.pp), ("vpp", self.vpp),
                                                        ("ep", self.ep)) if value and value > 1]
        return opts + (["--sp"] if self.sp else [])


@dataclass(frozen=True)
class ParallelRun:
    """A layout the parallel parity test trains: its world size, layout and configuration."""
    world: int
    layout: Layout
    config: str


# The layouts of issue 11, each against unconverted Megatron-core on PyTorch in the same layout.
PARALLEL_RUNS: dict[str, ParallelRun] = {
    "tp2": ParallelRun(2, Layout(tp=2), "baseline"),
    "sp_tp2": ParallelRun(2, Layout(tp=2, sp=True), "baseline"),
    "dp2": ParallelRun(2, Layout(), "baseline"),
    "pp2_1f1b": ParallelRun(2, Layout(pp=2), "microbatches4"),
    "ep2": ParallelRun(2, Layout(ep=2), "moe_aux_loss"),
    "tp2_pp2": ParallelRun(4, Layout(tp=2, pp=2), "microbatches4"),
    "pp2_vpp2": ParallelRun(4, Layout(pp=2, vpp=2), "microbatches4+layers4"),
    "pp2_ep2_distopt": ParallelRun(4, Layout(pp=2, ep=2), "moe_aux_loss+microbatches4+distributed_optimizer"),
    "dp2_overlap": ParallelRun(2, Layout(), "microbatches4+distributed_optimizer+overlap"),
    "ep2_alltoall": ParallelRun(2, Layout(ep=2), "moe_alltoall"),
}
