"""Train a tiny Megatron-core GPT with Megatron's own pieces and print the loss of every step.

Plain PyTorch + Megatron-core code: it runs unchanged on PyTorch (``reference.py`` adds the CPU
shims PyTorch needs there), and on MindSpore after conversion, where it may use nothing but what
the conversion produces::

    source auto_convert_llm.sh --workspace WS                    # converts Megatron-LM, patches mindtorch
    python -m tools.convert convert examples/tiny_gpt -o WS/tiny_gpt
    python WS/tiny_gpt/train.py --out losses.json

Model: 2 layers, hidden 64, 4 heads, FFN 256, vocab 128, sequence 32, micro-batch 2, TP=PP=1,
one process. Initial weights and data come from NumPy with fixed seeds, so both frameworks start
from the same weights and see the same token stream.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from megatron.core import parallel_state
from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig, finalize_model_grads
from megatron.core.models.gpt import GPTModel
from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer
from megatron.core.pipeline_parallel import get_forward_backward_func
from megatron.core.tensor_parallel.random import model_parallel_cuda_manual_seed
from megatron.core.transformer.transformer_config import TransformerConfig

LAYERS, HIDDEN, HEADS, FFN, VOCAB, SEQ, MBS = 2, 64, 4, 256, 128, 32, 2


def init_distributed(backend: str) -> None:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29533")
    torch.distributed.init_process_group(backend=backend, world_size=1, rank=0)
    parallel_state.initialize_model_parallel(tensor_model_parallel_size=1, pipeline_model_parallel_size=1)
    model_parallel_cuda_manual_seed(1234)


def build_model() -> torch.nn.Module:
    config = TransformerConfig(
        num_layers=LAYERS, hidden_size=HIDDEN, num_attention_heads=HEADS, ffn_hidden_size=FFN,
        use_cpu_initialization=True, hidden_dropout=0.0, attention_dropout=0.0,
        params_dtype=torch.float32, bias_activation_fusion=False, bias_dropout_fusion=False,
        masked_softmax_fusion=False, gradient_accumulation_fusion=False, apply_rope_fusion=False,
        persist_layer_norm=False,
    )
    model = GPTModel(config=config, transformer_layer_spec=get_gpt_layer_local_spec(), vocab_size=VOCAB,
                     max_sequence_length=SEQ, position_embedding_type="learned_absolute")
    set_weights(model)
    return model


def set_weights(model: torch.nn.Module) -> None:
    """The same initial weights on every framework: drawn with NumPy, by parameter name."""
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            shape = tuple(param.shape)
            if name.endswith("layer_norm_weight") or name.endswith("final_layernorm.weight"):
                value = np.ones(shape, dtype=np.float32)
            elif name.endswith("bias"):
                value = np.zeros(shape, dtype=np.float32)
            else:
                value = (rng.standard_normal(shape) * 0.02).astype(np.float32)
            param.copy_(torch.tensor(value))


def batches(steps: int):
    """A fixed synthetic token stream: a noisy repeating pattern the model can learn."""
    rng = np.random.default_rng(42)
    base = np.arange(SEQ + 1) * 7 % VOCAB
    for _ in range(steps):
        offsets = rng.integers(0, VOCAB, size=(MBS, 1))
        tokens = (base[None, :] + offsets) % VOCAB
        noise = rng.random(tokens.shape) < 0.1
        tokens = np.where(noise, rng.integers(0, VOCAB, size=tokens.shape), tokens)
        yield tokens.astype(np.int64)


def make_forward_step():
    mask = torch.tensor(np.triu(np.ones((1, 1, SEQ, SEQ), dtype=bool), k=1))
    positions = torch.tensor(np.tile(np.arange(SEQ), (MBS, 1)).astype(np.int64))

    def forward_step(data_iterator, model):
        tokens = torch.tensor(next(data_iterator))
        inputs, labels = tokens[:, :-1], tokens[:, 1:]
        losses = model(inputs, positions, mask, labels=labels)

        def loss_func(output):
            loss = output.float().mean()
            return loss, {"lm loss": loss.detach()}

        return losses, loss_func

    return forward_step


def save_gradients(model: torch.nn.Module, path: str) -> None:
    """Each parameter's gradient as the optimizer will read it (DDP's main_grad, or .grad), by name."""
    grads = {}
    for name, param in model.named_parameters():
        grad = getattr(param, "main_grad", None)
        grad = param.grad if grad is None else grad
        grads[name] = np.array(grad.detach().float().numpy(), dtype=np.float32) if grad is not None else \
            np.full(tuple(param.shape), np.nan, np.float32)       # no gradient at all: never equal to one
    np.savez(path, **grads)


def main(argv: list[str] | None = None, backend: str = "gloo") -> list[float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--backend", default=backend)
    ap.add_argument("--out", help="write {losses, grad_norms, step_times} as JSON here")
    ap.add_argument("--grads-out", help="write each parameter's step-1 gradient (before the optimizer step) "
                                        "here, as a NumPy .npz keyed by parameter name")
    args = ap.parse_args(argv)

    init_distributed(args.backend)
    model = build_model()
    ddp_config = DistributedDataParallelConfig(grad_reduce_in_fp32=False, overlap_grad_reduce=False,
                                               use_distributed_optimizer=False)
    model = DistributedDataParallel(config=model.config, ddp_config=ddp_config, module=model)
    model.config.finalize_model_grads_func = finalize_model_grads
    optimizer = get_megatron_optimizer(
        OptimizerConfig(optimizer="adam", lr=args.lr, weight_decay=0.01, adam_beta1=0.9, adam_beta2=0.95,
                        adam_eps=1e-8, clip_grad=0.0, bf16=False, fp16=False, use_distributed_optimizer=False),
        [model],
    )
    forward_backward = get_forward_backward_func()
    forward_step = make_forward_step()
    data = batches(args.steps)
    losses, times, grad_norms = [], [], []
    for step in range(args.steps):
        start = time.perf_counter()
        model.zero_grad_buffer()
        optimizer.zero_grad()
        out = forward_backward(forward_step_func=forward_step, data_iterator=data, model=[model],
                               num_microbatches=1, seq_length=SEQ, micro_batch_size=MBS, forward_only=False)
        if step == 0 and args.grads_out:
            save_gradients(model, args.grads_out)
        ok, grad_norm, _ = optimizer.step()
        loss = float(out[0]["lm loss"])
        times.append(time.perf_counter() - start)
        losses.append(loss)
        grad_norms.append(float(grad_norm))
        print(f"step {step + 1:2d}  loss {loss:.6f}  grad_norm {float(grad_norm):.6f}  time {times[-1] * 1000:.1f} ms",
              flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"losses": losses, "grad_norms": grad_norms, "step_times": times}, fh)
    return losses


if __name__ == "__main__":
    main()
