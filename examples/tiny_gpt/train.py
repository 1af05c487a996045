"""Train a tiny Megatron-core GPT with Megatron's own pieces and print the loss of every step.

Plain PyTorch + Megatron-core code: it runs unchanged on PyTorch (``reference.py`` adds the CPU
shims PyTorch needs there), and on MindSpore after conversion, where it may use nothing but what
the conversion produces::

    source auto_convert_llm.sh --workspace WS                    # converts Megatron-LM, patches mindtorch
    python -m tools.convert convert examples/tiny_gpt -o WS/tiny_gpt
    python WS/tiny_gpt/train.py --out losses.json                # the baseline
    python WS/tiny_gpt/train.py --config rope,all --out-dir D    # several configurations, one process

Model (baseline): 2 layers, hidden 64, 4 heads, FFN 256, vocab 128, sequence 32, micro-batch 2,
TP=PP=1, one process; ``configs.py`` lists the configurations (RMSNorm, RoPE, SwiGLU, GQA, MoE, ...).
Initial weights and data come from NumPy with fixed seeds, so both frameworks start from the same
weights and see the same token stream.

Several processes, launched as upstream scripts are (torchrun on PyTorch; on MindSpore
``python -m mindtorch.distributed.mpi_run``, docs/distributed.md), train in a Megatron layout::

    python -m mindtorch.distributed.mpi_run --nproc-per-node 4 WS/tiny_gpt/train.py --tp 2 --pp 2 \
        --config microbatches4 --out-dir D          # D/microbatches4.rank<R>.json and _grads.npz per rank

``--tp``, ``--pp`` (``--vpp`` chunks per stage), ``--ep``, ``--sp``; data parallelism is what the
world size leaves. Each data-parallel rank takes every dp-th micro-batch of the one token stream.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import re
import time
import traceback
import zlib

import numpy as np
import torch

from megatron.core import fp8_utils, parallel_state
from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig, finalize_model_grads
from megatron.core.models.gpt import GPTModel
from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer
from megatron.core.pipeline_parallel import get_forward_backward_func
from megatron.core.tensor_parallel.random import model_parallel_cuda_manual_seed
from megatron.core.transformer.transformer_block import TransformerBlockSubmodules, get_num_layers_to_build
from megatron.core.transformer.transformer_config import TransformerConfig

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from configs import CONFIGS, Layout, Setup, setup  # noqa: E402


def _quantize_no_fp8_params(model_params, *args, **kwargs) -> None:
    assert not model_params, "FP8 parameters need Transformer Engine"


if not fp8_utils.HAVE_TE:
    # megatron-core 0.12.1 without Transformer Engine: the distributed optimizer calls
    # quantize_param_shard after every step, and its fallback raises even when there is no FP8
    # parameter to quantize (later megatron-core returns). Nothing to do when there are none.
    fp8_utils._quantize_param_shard_impl = _quantize_no_fp8_params


def init_distributed(backend: str, layout: Layout = Layout()) -> None:
    """The process group of the launcher's world (RANK/WORLD_SIZE as torchrun and mpi_run set them;
    one process without them) and Megatron's groups for ``layout``."""
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29533")
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    layout.dp(world)                                          # one line if the world does not fit the layout
    torch.distributed.init_process_group(backend=backend, world_size=world, rank=rank)
    parallel_state.initialize_model_parallel(
        tensor_model_parallel_size=layout.tp, pipeline_model_parallel_size=layout.pp,
        virtual_pipeline_model_parallel_size=layout.vpp, expert_model_parallel_size=layout.ep)


def parallel() -> bool:
    """More than one process: weights by name (set_layout_weights) and one result file per rank."""
    return torch.distributed.get_world_size() > 1


class SequenceParallelTorchNorm:
    """torch's LayerNorm or RMSNorm for sequence parallelism: each tensor-parallel rank normalises its
    part of the sequence, and the weights say ``sequence_parallel`` so that ``finalize_model_grads``
    sums their gradients over the tensor-parallel group. Megatron-core 0.12.1's local spec has only
    Apex's FusedLayerNorm for this (which marks its weights the same way); its torch norm refuses
    ``sequence_parallel``, and neither side has Apex or Transformer Engine here."""

    def __new__(cls, config: TransformerConfig, hidden_size: int, eps: float = 1e-5, **unused) -> torch.nn.Module:
        norm_cls = torch.nn.LayerNorm if config.normalization == "LayerNorm" else torch.nn.RMSNorm
        norm = norm_cls(hidden_size, eps=eps)
        for param in norm.parameters():
            param.sequence_parallel = True
        return norm


def sequence_parallel_spec(spec, config: TransformerConfig) -> TransformerBlockSubmodules:
    """The local layer spec's block with SequenceParallelTorchNorm for its layer norms."""
    layer = dataclasses.replace(spec, submodules=dataclasses.replace(
        spec.submodules, input_layernorm=SequenceParallelTorchNorm, pre_mlp_layernorm=SequenceParallelTorchNorm))
    return TransformerBlockSubmodules(layer_specs=[layer] * get_num_layers_to_build(config),
                                      layer_norm=SequenceParallelTorchNorm)


def build_model(s: Setup, layout: Layout = Layout()) -> list[torch.nn.Module]:
    """The model chunks of this rank: one, or ``layout.vpp`` with a virtual pipeline."""
    recompute = {}
    if s.recompute == "full":
        recompute = {"recompute_granularity": "full", "recompute_method": "uniform", "recompute_num_layers": 1}
    elif s.recompute == "block":
        recompute = {"recompute_granularity": "full", "recompute_method": "block", "recompute_num_layers": 1}
    elif s.recompute == "selective":
        recompute = {"recompute_granularity": "selective"}
    moe = {}
    if s.experts:
        moe = {"num_moe_experts": s.experts, "moe_router_topk": s.router_topk,
               "moe_router_load_balancing_type": s.load_balancing, "moe_aux_loss_coeff": s.aux_loss_coeff,
               "moe_token_dispatcher_type": s.dispatcher}
    # Megatron's training arguments: the interleaved schedule overlaps its p2p transfers with compute, and
    # then sends them one by one (batched, a stage's sends to and receives from the same neighbour, e.g.
    # at PP=2, would pair up in the wrong order: activations received as gradients)
    p2p = {"overlap_p2p_comm": True, "batch_p2p_comm": False} if layout.vpp else {}
    config = TransformerConfig(
        num_layers=s.layers, hidden_size=s.hidden, num_attention_heads=s.heads, ffn_hidden_size=s.ffn,
        num_query_groups=s.query_groups, add_bias_linear=s.bias, normalization=s.normalization,
        qk_layernorm=s.qk_layernorm,
        gated_linear_unit=s.swiglu, activation_func=torch.nn.functional.silu if s.swiglu else torch.nn.functional.gelu,
        use_cpu_initialization=True, hidden_dropout=0.0, attention_dropout=0.0,
        params_dtype=torch.float32, bias_activation_fusion=False, bias_dropout_fusion=False,
        masked_softmax_fusion=False, gradient_accumulation_fusion=False, apply_rope_fusion=False,
        persist_layer_norm=False, tensor_model_parallel_size=layout.tp, pipeline_model_parallel_size=layout.pp,
        virtual_pipeline_model_parallel_size=layout.vpp, expert_model_parallel_size=layout.ep,
        sequence_parallel=layout.sp, pipeline_dtype=torch.float32 if layout.pp > 1 else None,
        **recompute, **moe, **p2p,
    )
    spec = get_gpt_layer_local_spec(num_experts=s.experts, qk_layernorm=s.qk_layernorm, normalization=s.normalization)
    chunks = []
    for chunk in range(layout.vpp or 1):
        if layout.vpp:
            parallel_state.set_virtual_pipeline_model_parallel_rank(chunk)
        if layout.sp:
            spec = sequence_parallel_spec(get_gpt_layer_local_spec(
                num_experts=s.experts, qk_layernorm=s.qk_layernorm, normalization=s.normalization), config)
        model = GPTModel(config=config, transformer_layer_spec=spec, vocab_size=s.vocab, max_sequence_length=s.seq,
                         position_embedding_type=s.position_embedding,
                         share_embeddings_and_output_weights=not s.untied_embeddings,
                         pre_process=parallel_state.is_pipeline_first_stage(),
                         post_process=parallel_state.is_pipeline_last_stage())
        if parallel():
            set_layout_weights(model, s)
        else:
            set_weights(model)
        chunks.append(model)
    if layout.vpp:
        parallel_state.set_virtual_pipeline_model_parallel_rank(0)
    return chunks


def set_weights(model: torch.nn.Module) -> None:
    """The same initial weights on every framework: drawn with NumPy, by parameter name."""
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            param.copy_(torch.tensor(_initial_value(name, tuple(param.shape), rng)))


def _initial_value(name: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if name.endswith(("layer_norm_weight", "layernorm.weight")):
        return np.ones(shape, dtype=np.float32)
    if name.endswith("bias"):
        return np.zeros(shape, dtype=np.float32)
    return (rng.standard_normal(shape) * 0.02).astype(np.float32)


_LAYER = re.compile(r"^(.*?\blayers\.)(\d+)(\..*)$")
_EXPERT = re.compile(r"^(.*?\blocal_experts\.)(\d+)(\..*)$")


def set_layout_weights(model: torch.nn.Module, s: Setup) -> None:
    """The weights of a model split over processes: each parameter drawn with NumPy from its name in
    the whole model (global layer and expert numbers; a last pipeline stage's tied output layer is
    the word embedding), at its whole size, and this rank's tensor-parallel slice of it taken. Every
    layout of a configuration then holds the same model, and replicas (data parallel, the layer norms
    of tensor parallel ranks) hold the same values."""
    offsets = {}
    for module_name, module in model.named_modules():
        match = _LAYER.match(module_name + ".")
        if match and match.group(3) == "." and hasattr(module, "layer_number"):
            offsets[module_name] = module.layer_number - 1 - int(match.group(2))
    local_experts = (s.experts or 0) // parallel_state.get_expert_model_parallel_world_size()
    with torch.no_grad():
        for name, param in model.named_parameters():
            whole = name.removeprefix("module.")
            match = _LAYER.match(whole)
            if match:
                layer = int(match.group(2)) + offsets[(match.group(1) + match.group(2)).removesuffix(".")]
                whole = f"{match.group(1)}{layer}{match.group(3)}"
            match = _EXPERT.match(whole)
            if match:
                expert = int(match.group(2)) + parallel_state.get_expert_model_parallel_rank() * local_experts
                whole = f"{match.group(1)}{expert}{match.group(3)}"
            if whole == "output_layer.weight" and not s.untied_embeddings:
                whole = "embedding.word_embeddings.weight"
            shape = list(param.shape)
            split = getattr(param, "tensor_model_parallel", False)
            if split:
                expert_param = not getattr(param, "allreduce", True)
                size, rank = (parallel_state.get_expert_tensor_parallel_world_size(),
                              parallel_state.get_expert_tensor_parallel_rank()) if expert_param else \
                    (parallel_state.get_tensor_model_parallel_world_size(),
                     parallel_state.get_tensor_model_parallel_rank())
                dim = param.partition_dim
                shape[dim] *= size
            value = _initial_value(whole, tuple(shape), np.random.default_rng(zlib.crc32(whole.encode())))
            if split:
                value = np.split(value, size, axis=dim)[rank]
            param.copy_(torch.tensor(np.ascontiguousarray(value)))


def batches(s: Setup, count: int, dp: int = 1, dp_rank: int = 0):
    """A fixed synthetic token stream: a noisy repeating pattern the model can learn. With ``dp``
    data-parallel ranks, ``count`` micro-batches for each: rank ``dp_rank`` takes every dp-th."""
    rng = np.random.default_rng(42)
    base = np.arange(s.seq + 1) * 7 % s.vocab
    for index in range(count * dp):
        offsets = rng.integers(0, s.vocab, size=(s.micro_batch, 1))
        tokens = (base[None, :] + offsets) % s.vocab
        noise = rng.random(tokens.shape) < 0.1
        tokens = np.where(noise, rng.integers(0, s.vocab, size=tokens.shape), tokens)
        if index % dp == dp_rank:
            yield tokens.astype(np.int64)


def make_forward_step(s: Setup):
    mask = torch.tensor(np.triu(np.ones((1, 1, s.seq, s.seq), dtype=bool), k=1))
    positions = torch.tensor(np.tile(np.arange(s.seq), (s.micro_batch, 1)).astype(np.int64))

    def forward_step(data_iterator, model):
        tokens = torch.tensor(next(data_iterator))
        inputs, labels = tokens[:, :-1], tokens[:, 1:]
        losses = model(inputs, positions, mask, labels=labels)

        def loss_func(output):
            loss = output.float().mean()
            # detach() shares the loss's storage: the schedule's in-place `/= num_microbatches` shows in it
            return loss, {"lm loss": loss.detach()}

        return losses, loss_func

    return forward_step


def gradients(chunks: list[torch.nn.Module]) -> dict[str, np.ndarray]:
    """Each parameter's gradient as the optimizer will read it (DDP's main_grad, or .grad), by name
    (``chunk<i>.`` before it with a virtual pipeline)."""
    grads = {}
    for index, model in enumerate(chunks):
        prefix = f"chunk{index}." if len(chunks) > 1 else ""
        grads.update({prefix + name: grad for name, grad in _gradients(model).items()})
    return grads


def _gradients(model: torch.nn.Module) -> dict[str, np.ndarray]:
    grads = {}
    for name, param in model.named_parameters():
        grad = getattr(param, "main_grad", None)
        grad = param.grad if grad is None else grad
        grads[name] = np.array(grad.detach().float().numpy(), dtype=np.float32) if grad is not None else \
            np.full(tuple(param.shape), np.nan, np.float32)       # no gradient at all: never equal to one
    return grads


def train(s: Setup, steps: int, lr: float = 3e-3, layout: Layout = Layout()) -> dict:
    """``steps`` optimizer steps of ``s``; returns the losses, gradient norms, step times and the
    step-1 gradients (before the optimizer step). In a pipeline only the last stage has losses (the
    others record none)."""
    torch.manual_seed(1234)
    model_parallel_cuda_manual_seed(1234)
    chunks = build_model(s, layout)
    # overlap: Megatron's --overlap-grad-reduce (--overlap-param-gather with the distributed optimizer), in
    # buckets of 40000 elements (several in this model) so that reductions start during the backward
    overlap = {"overlap_grad_reduce": True, "overlap_param_gather": s.distributed_optimizer,
               "bucket_size": 40000} if s.overlap else {"overlap_grad_reduce": False}
    ddp_config = DistributedDataParallelConfig(grad_reduce_in_fp32=False, use_distributed_optimizer=s.distributed_optimizer,
                                               **overlap)
    # as Megatron's training.get_model: the chunks after the first need no buckets of their own
    model = [DistributedDataParallel(config=chunk.config, ddp_config=ddp_config, module=chunk,
                                     disable_bucketing=index > 0) for index, chunk in enumerate(chunks)]
    config = model[0].config
    config.finalize_model_grads_func = finalize_model_grads
    if s.overlap:      # as Megatron's training.py sets them for --overlap-grad-reduce (align_grad_reduce)
        config.no_sync_func = [chunk.no_sync for chunk in model]
        config.grad_sync_func = [chunk.start_grad_sync for chunk in model]
        if len(model) == 1:
            config.no_sync_func, config.grad_sync_func = config.no_sync_func[0], config.grad_sync_func[0]
    optimizer = get_megatron_optimizer(
        OptimizerConfig(optimizer="adam", lr=lr, weight_decay=0.01, adam_beta1=0.9, adam_beta2=0.95,
                        adam_eps=1e-8, clip_grad=s.clip_grad, bf16=False, fp16=False,
                        use_distributed_optimizer=s.distributed_optimizer),
        model,
    )
    forward_backward = get_forward_backward_func()
    forward_step = make_forward_step(s)
    dp, dp_rank = parallel_state.get_data_parallel_world_size(), parallel_state.get_data_parallel_rank()
    # every model chunk reads the stream for its own micro-batches
    data = [batches(s, steps * s.microbatches, dp, dp_rank) for _ in model]
    last_stage = parallel_state.is_pipeline_last_stage(ignore_virtual=True)
    result = {"losses": [], "grad_norms": [], "step_times": [], "step_cpu_times": [], "step1_grads": None}
    for step in range(steps):
        start, cpu_start = time.perf_counter(), time.process_time()
        for chunk in model:
            chunk.zero_grad_buffer()
        optimizer.zero_grad()
        out = forward_backward(forward_step_func=forward_step, data_iterator=data if len(data) > 1 else data[0],
                               model=model, num_microbatches=s.microbatches, seq_length=s.seq,
                               micro_batch_size=s.micro_batch, forward_only=False)
        if step == 0:
            result["step1_grads"] = gradients(model)
        ok, grad_norm, _ = optimizer.step()
        # each micro-batch logged loss / microbatches (the schedule divides in place): the sum is the mean loss
        loss = sum(float(o["lm loss"]) for o in out) if last_stage else None
        result["step_times"].append(time.perf_counter() - start)
        result["step_cpu_times"].append(time.process_time() - cpu_start)
        if last_stage:
            result["losses"].append(loss)
        result["grad_norms"].append(float(grad_norm))
        shown = f"{loss:.6f}" if last_stage else "-"
        print(f"step {step + 1:2d}  loss {shown}  grad_norm {float(grad_norm):.6f}  "
              f"time {result['step_times'][-1] * 1000:.1f} ms", flush=True)
    return result


def rank_path(path: str | None) -> str | None:
    """``path`` for this process: ``x.json`` -> ``x.rank<R>.json`` when there are several."""
    if not path or not parallel():
        return path
    stem, ext = os.path.splitext(path)
    return f"{stem}.rank{torch.distributed.get_rank()}{ext}"


def save(result: dict, out: str | None, grads_out: str | None) -> None:
    out, grads_out = rank_path(out), rank_path(grads_out)
    if out:
        with open(out, "w") as fh:
            json.dump({k: v for k, v in result.items() if k != "step1_grads"}, fh)
    if grads_out and result.get("step1_grads") is not None:
        np.savez(grads_out, **result["step1_grads"])


def main(argv: list[str] | None = None, backend: str = "gloo") -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="baseline",
                    help=f"comma-separated configurations to train one after the other: {', '.join(CONFIGS)}")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--backend", default=backend)
    ap.add_argument("--out", help="one configuration: write {losses, grad_norms, step_times} as JSON here")
    ap.add_argument("--grads-out", help="one configuration: write each parameter's step-1 gradient (before the "
                                        "optimizer step) here, as a NumPy .npz keyed by parameter name")
    ap.add_argument("--out-dir", help="write <config>.json and <config>_grads.npz here for each configuration; "
                                      "a configuration that raises gets {\"error\": traceback} and the next one runs "
                                      "(with several processes: <config>.rank<R>.json, and the job stops)")
    ap.add_argument("--tp", type=int, default=1, help="tensor-parallel size")
    ap.add_argument("--pp", type=int, default=1, help="pipeline-parallel size (1F1B schedule)")
    ap.add_argument("--vpp", type=int, default=None, help="model chunks per pipeline stage (interleaved schedule)")
    ap.add_argument("--ep", type=int, default=1, help="expert-parallel size (MoE configurations)")
    ap.add_argument("--sp", action="store_true", help="sequence parallelism over the tensor-parallel group")
    args = ap.parse_args(argv)
    names = [name for name in args.config.split(",") if name]
    setups = {name: setup(name) for name in names}
    layout = Layout(tp=args.tp, pp=args.pp, vpp=args.vpp, ep=args.ep, sp=args.sp)
    if len(names) > 1 and not args.out_dir:
        ap.error("several configurations need --out-dir")

    if args.out_dir:
        os.makedirs(args.out_dir, exist_ok=True)
    init_distributed(args.backend, layout)
    for name, s in setups.items():
        print(f"== {name}", flush=True)
        start, cpu_start = time.perf_counter(), time.process_time()
        if not args.out_dir:
            save(train(s, args.steps, args.lr, layout), args.out, args.grads_out)
            continue
        try:
            result = train(s, args.steps, args.lr, layout)
        except Exception:                    # recorded for this configuration; the others still run
            result = {"error": traceback.format_exc()}
            print(result["error"], file=sys.stderr, flush=True)
        result.update(config=name, seconds=time.perf_counter() - start, cpu_seconds=time.process_time() - cpu_start)
        save(result, os.path.join(args.out_dir, f"{name}.json"), os.path.join(args.out_dir, f"{name}_grads.npz"))
        if "error" in result and parallel():
            raise SystemExit(f"rank {torch.distributed.get_rank()}: {name} failed (above)")  # the others wait on it


if __name__ == "__main__":
    main()
