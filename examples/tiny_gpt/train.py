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
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback

import numpy as np
import torch

from megatron.core import fp8_utils, parallel_state
from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig, finalize_model_grads
from megatron.core.models.gpt import GPTModel
from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer
from megatron.core.pipeline_parallel import get_forward_backward_func
from megatron.core.tensor_parallel.random import model_parallel_cuda_manual_seed
from megatron.core.transformer.transformer_config import TransformerConfig

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from configs import CONFIGS, Setup, setup  # noqa: E402


def _quantize_no_fp8_params(model_params, *args, **kwargs) -> None:
    assert not model_params, "FP8 parameters need Transformer Engine"


if not fp8_utils.HAVE_TE:
    # megatron-core 0.12.1 without Transformer Engine: the distributed optimizer calls
    # quantize_param_shard after every step, and its fallback raises even when there is no FP8
    # parameter to quantize (later megatron-core returns). Nothing to do when there are none.
    fp8_utils._quantize_param_shard_impl = _quantize_no_fp8_params


def init_distributed(backend: str) -> None:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29533")
    torch.distributed.init_process_group(backend=backend, world_size=1, rank=0)
    parallel_state.initialize_model_parallel(tensor_model_parallel_size=1, pipeline_model_parallel_size=1)


def build_model(s: Setup) -> torch.nn.Module:
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
    config = TransformerConfig(
        num_layers=s.layers, hidden_size=s.hidden, num_attention_heads=s.heads, ffn_hidden_size=s.ffn,
        num_query_groups=s.query_groups, add_bias_linear=s.bias, normalization=s.normalization,
        qk_layernorm=s.qk_layernorm,
        gated_linear_unit=s.swiglu, activation_func=torch.nn.functional.silu if s.swiglu else torch.nn.functional.gelu,
        use_cpu_initialization=True, hidden_dropout=0.0, attention_dropout=0.0,
        params_dtype=torch.float32, bias_activation_fusion=False, bias_dropout_fusion=False,
        masked_softmax_fusion=False, gradient_accumulation_fusion=False, apply_rope_fusion=False,
        persist_layer_norm=False, **recompute, **moe,
    )
    spec = get_gpt_layer_local_spec(num_experts=s.experts, qk_layernorm=s.qk_layernorm, normalization=s.normalization)
    model = GPTModel(config=config, transformer_layer_spec=spec, vocab_size=s.vocab, max_sequence_length=s.seq,
                     position_embedding_type=s.position_embedding,
                     share_embeddings_and_output_weights=not s.untied_embeddings)
    set_weights(model)
    return model


def set_weights(model: torch.nn.Module) -> None:
    """The same initial weights on every framework: drawn with NumPy, by parameter name."""
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            shape = tuple(param.shape)
            if name.endswith(("layer_norm_weight", "layernorm.weight")):
                value = np.ones(shape, dtype=np.float32)
            elif name.endswith("bias"):
                value = np.zeros(shape, dtype=np.float32)
            else:
                value = (rng.standard_normal(shape) * 0.02).astype(np.float32)
            param.copy_(torch.tensor(value))


def batches(s: Setup, count: int):
    """A fixed synthetic token stream: a noisy repeating pattern the model can learn."""
    rng = np.random.default_rng(42)
    base = np.arange(s.seq + 1) * 7 % s.vocab
    for _ in range(count):
        offsets = rng.integers(0, s.vocab, size=(s.micro_batch, 1))
        tokens = (base[None, :] + offsets) % s.vocab
        noise = rng.random(tokens.shape) < 0.1
        tokens = np.where(noise, rng.integers(0, s.vocab, size=tokens.shape), tokens)
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


def gradients(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """Each parameter's gradient as the optimizer will read it (DDP's main_grad, or .grad), by name."""
    grads = {}
    for name, param in model.named_parameters():
        grad = getattr(param, "main_grad", None)
        grad = param.grad if grad is None else grad
        grads[name] = np.array(grad.detach().float().numpy(), dtype=np.float32) if grad is not None else \
            np.full(tuple(param.shape), np.nan, np.float32)       # no gradient at all: never equal to one
    return grads


def train(s: Setup, steps: int, lr: float = 3e-3) -> dict:
    """``steps`` optimizer steps of ``s``; returns the losses, gradient norms, step times and the
    step-1 gradients (before the optimizer step)."""
    torch.manual_seed(1234)
    model_parallel_cuda_manual_seed(1234)
    model = build_model(s)
    ddp_config = DistributedDataParallelConfig(grad_reduce_in_fp32=False, overlap_grad_reduce=False,
                                               use_distributed_optimizer=s.distributed_optimizer)
    model = DistributedDataParallel(config=model.config, ddp_config=ddp_config, module=model)
    model.config.finalize_model_grads_func = finalize_model_grads
    optimizer = get_megatron_optimizer(
        OptimizerConfig(optimizer="adam", lr=lr, weight_decay=0.01, adam_beta1=0.9, adam_beta2=0.95,
                        adam_eps=1e-8, clip_grad=s.clip_grad, bf16=False, fp16=False,
                        use_distributed_optimizer=s.distributed_optimizer),
        [model],
    )
    forward_backward = get_forward_backward_func()
    forward_step = make_forward_step(s)
    data = batches(s, steps * s.microbatches)
    result = {"losses": [], "grad_norms": [], "step_times": [], "step1_grads": None}
    for step in range(steps):
        start = time.perf_counter()
        model.zero_grad_buffer()
        optimizer.zero_grad()
        out = forward_backward(forward_step_func=forward_step, data_iterator=data, model=[model],
                               num_microbatches=s.microbatches, seq_length=s.seq, micro_batch_size=s.micro_batch,
                               forward_only=False)
        if step == 0:
            result["step1_grads"] = gradients(model)
        ok, grad_norm, _ = optimizer.step()
        # each micro-batch logged loss / microbatches (the schedule divides in place): the sum is the mean loss
        loss = sum(float(o["lm loss"]) for o in out)
        result["step_times"].append(time.perf_counter() - start)
        result["losses"].append(loss)
        result["grad_norms"].append(float(grad_norm))
        print(f"step {step + 1:2d}  loss {loss:.6f}  grad_norm {float(grad_norm):.6f}  "
              f"time {result['step_times'][-1] * 1000:.1f} ms", flush=True)
    return result


def save(result: dict, out: str | None, grads_out: str | None) -> None:
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
                                      "a configuration that raises gets {\"error\": traceback} and the next one runs")
    args = ap.parse_args(argv)
    names = [name for name in args.config.split(",") if name]
    setups = {name: setup(name) for name in names}
    if len(names) > 1 and not args.out_dir:
        ap.error("several configurations need --out-dir")

    if args.out_dir:
        os.makedirs(args.out_dir, exist_ok=True)
    init_distributed(args.backend)
    for name, s in setups.items():
        print(f"== {name}", flush=True)
        start, cpu_start = time.perf_counter(), time.process_time()
        if not args.out_dir:
            save(train(s, args.steps, args.lr), args.out, args.grads_out)
            continue
        try:
            result = train(s, args.steps, args.lr)
        except Exception:                    # recorded for this configuration; the others still run
            result = {"error": traceback.format_exc()}
            print(result["error"], file=sys.stderr, flush=True)
        result.update(config=name, seconds=time.perf_counter() - start, cpu_seconds=time.process_time() - cpu_start)
        save(result, os.path.join(args.out_dir, f"{name}.json"), os.path.join(args.out_dir, f"{name}_grads.npz"))


if __name__ == "__main__":
    main()
