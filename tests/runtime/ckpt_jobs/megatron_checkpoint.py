"""A Megatron-shaped checkpoint of a tiny Megatron-core GPT: saved by one framework, loaded and resumed
by the other.

Plain PyTorch + megatron-core code: it runs unchanged on PyTorch (``--pytorch-cpu`` installs
examples/tiny_gpt/reference.py's CPU shims) and on MindSpore after conversion::

    python megatron_checkpoint.py save --ckpt C.pt --values V.npz --out S.json   # train 2, save, train 2 more
    python megatron_checkpoint.py load --ckpt C.pt --values V.npz --out L.json   # load, compare, train 2

The checkpoint is what megatron/training/checkpointing.py (core_v0.12.1) writes with ``torch.save``:
``args`` (an argparse.Namespace with a dtype and Megatron enums), ``checkpoint_version``,
``iteration``, ``model`` (``state_dict_for_save_checkpoint`` of the DDP-wrapped model), ``optimizer``
(Megatron's optimizer state: Adam moments, step, param groups), ``opt_param_scheduler``,
``rng_state`` (Python, NumPy, torch, "cuda" and the tensor-parallel tracker's states) and
``num_floating_point_operations_so_far``. ``save`` also writes every tensor and NumPy array of it,
by path, to ``--values``, so ``load`` can check that what it read is exactly what was saved; then
``load`` puts model and optimizer state into the same model (``load_state_dict``, strict) and trains
on from the checkpoint's iteration, with the batches the saving run used after saving.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys

import numpy as np
import torch

from tensor_cases import leaves   # a sibling script: the job's folder is first on sys.path

LAYERS, HIDDEN, HEADS, FFN, VOCAB, SEQ, MBS = 2, 64, 4, 256, 128, 32, 2
EXAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "examples", "tiny_gpt")


def build(seed_weights: bool):
    """The DDP-wrapped tiny GPT, Megatron's optimizer and LR scheduler."""
    from megatron.core import parallel_state
    from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig, finalize_model_grads
    from megatron.core.models.gpt import GPTModel
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
    from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer
    from megatron.core.optimizer_param_scheduler import OptimizerParamScheduler
    from megatron.core.tensor_parallel.random import model_parallel_cuda_manual_seed
    from megatron.core.transformer.transformer_config import TransformerConfig

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29541")
    torch.distributed.init_process_group(backend="gloo", world_size=1, rank=0)
    parallel_state.initialize_model_parallel(tensor_model_parallel_size=1, pipeline_model_parallel_size=1)
    model_parallel_cuda_manual_seed(1234)
    config = TransformerConfig(
        num_layers=LAYERS, hidden_size=HIDDEN, num_attention_heads=HEADS, ffn_hidden_size=FFN,
        use_cpu_initialization=True, hidden_dropout=0.0, attention_dropout=0.0, params_dtype=torch.float32,
        bias_activation_fusion=False, bias_dropout_fusion=False, masked_softmax_fusion=False,
        gradient_accumulation_fusion=False, apply_rope_fusion=False, persist_layer_norm=False)
    model = GPTModel(config=config, transformer_layer_spec=get_gpt_layer_local_spec(), vocab_size=VOCAB,
                     max_sequence_length=SEQ, position_embedding_type="learned_absolute")
    rng = np.random.default_rng(0 if seed_weights else 1)   # the loading side starts from other weights
    with torch.no_grad():
        for _, param in sorted(model.named_parameters()):
            param.copy_(torch.tensor((rng.standard_normal(tuple(param.shape)) * 0.02).astype(np.float32)))
    ddp = DistributedDataParallelConfig(grad_reduce_in_fp32=False, overlap_grad_reduce=False,
                                        use_distributed_optimizer=False)
    model = DistributedDataParallel(config=model.config, ddp_config=ddp, module=model)
    model.config.finalize_model_grads_func = finalize_model_grads
    optimizer = get_megatron_optimizer(
        OptimizerConfig(optimizer="adam", lr=1e-2, min_lr=1e-3, weight_decay=0.01, adam_beta1=0.9, adam_beta2=0.95,
                        adam_eps=1e-8, clip_grad=0.0, bf16=False, fp16=False, use_distributed_optimizer=False),
        [model])
    scheduler = OptimizerParamScheduler(optimizer, init_lr=1e-2, max_lr=1e-2, min_lr=1e-3, lr_warmup_steps=0,
                                        lr_decay_steps=10, lr_decay_style="cosine", start_wd=0.01, end_wd=0.01,
                                        wd_incr_steps=10, wd_incr_style="constant")
    return model, optimizer, scheduler


def batch(step: int) -> np.ndarray:
    """The tokens of training step ``step`` (1-based), the same on every framework."""
    rng = np.random.default_rng(1000 + step)
    base = np.arange(SEQ + 1) * 7 % VOCAB
    tokens = (base[None, :] + rng.integers(0, VOCAB, size=(MBS, 1))) % VOCAB
    noise = rng.random(tokens.shape) < 0.1
    return np.where(noise, rng.integers(0, VOCAB, size=tokens.shape), tokens).astype(np.int64)


def train(model, optimizer, scheduler, first: int, last: int) -> list:
    from megatron.core.pipeline_parallel import get_forward_backward_func
    mask = torch.tensor(np.triu(np.ones((1, 1, SEQ, SEQ), dtype=bool), k=1))
    positions = torch.tensor(np.tile(np.arange(SEQ), (MBS, 1)).astype(np.int64))

    def forward_step(data_iterator, model):
        tokens = torch.tensor(next(data_iterator))
        output = model(tokens[:, :-1], positions, mask, labels=tokens[:, 1:])

        def loss_func(output_tensor):
            loss = output_tensor.float().mean()
            return loss, {"lm loss": loss.detach()}
        return output, loss_func

    losses = []
    for step in range(first, last + 1):
        model.zero_grad_buffer()
        optimizer.zero_grad()
        out = get_forward_backward_func()(forward_step_func=forward_step, data_iterator=iter([batch(step)]),
                                          model=[model], num_microbatches=1, seq_length=SEQ, micro_batch_size=MBS,
                                          forward_only=False)
        optimizer.step()
        scheduler.step(increment=1)
        losses.append(float(out[0]["lm loss"]))
        print(f"step {step}  loss {losses[-1]:.6f}", flush=True)
    return losses


def megatron_state_dict(model, optimizer, scheduler, iteration: int) -> dict:
    """What megatron.training.checkpointing.generate_state_dict puts into model_optim_rng.pt."""
    from megatron.core import tensor_parallel
    from megatron.core.enums import ModelType
    from megatron.core.transformer.enums import AttnBackend
    args = argparse.Namespace(num_layers=LAYERS, hidden_size=HIDDEN, num_attention_heads=HEADS, seq_length=SEQ,
                              params_dtype=torch.float32, model_type=ModelType.encoder_or_decoder,
                              attention_backend=AttnBackend.auto, lr=1e-2, bf16=False, iteration=iteration,
                              data_path=["tiny"], tensor_model_parallel_size=1, no_load_rng=False)
    rng_state = {"random_rng_state": random.getstate(), "np_rng_state": np.random.get_state(),
                 "torch_rng_state": torch.get_rng_state(), "cuda_rng_state": torch.cuda.get_rng_state(),
                 "rng_tracker_states": tensor_parallel.get_cuda_rng_tracker().get_states()}
    return {"args": args, "checkpoint_version": 3.0, "iteration": iteration,
            "model": model.state_dict_for_save_checkpoint(), "optimizer": optimizer.state_dict(),
            "opt_param_scheduler": scheduler.state_dict(), "rng_state": [rng_state],
            "num_floating_point_operations_so_far": 123456789}


def arrays(obj) -> dict:
    """Every tensor and NumPy array in ``obj`` by its path, as NumPy (tensors with their dtype's name)."""
    found = {}
    for path, value in leaves(obj):
        if isinstance(value, torch.Tensor):
            found[f"{path}:{str(value.dtype).split('.')[-1]}"] = value.detach().cpu().numpy()
        elif isinstance(value, np.ndarray):
            found[f"{path}:numpy"] = value
    return found


def python_values(obj) -> object:
    """The checkpoint's non-array content as plain JSON (dtypes and enums by name), to compare across."""
    if isinstance(obj, dict):
        return {str(k): python_values(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [python_values(v) for v in obj]
    if isinstance(obj, argparse.Namespace):
        return {"Namespace": python_values(vars(obj))}
    if isinstance(obj, (torch.Tensor, np.ndarray)):
        return "<array>"
    if isinstance(obj, (bool, int, float, str)) or obj is None:
        return obj
    if isinstance(obj, torch.dtype):
        return f"dtype:{str(obj).split('.')[-1]}"
    if hasattr(obj, "name") and hasattr(type(obj), "__members__"):   # an Enum
        return f"{type(obj).__name__}.{obj.name}"
    return f"{type(obj).__module__}.{type(obj).__name__}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["save", "load"])
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--values", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=2, help="steps before the checkpoint, and after it")
    ap.add_argument("--pytorch-cpu", action="store_true", help="PyTorch on a CPU: install the example's shims")
    args = ap.parse_args()
    if args.pytorch_cpu:
        sys.path.insert(0, EXAMPLE)
        import reference  # examples/tiny_gpt/reference.py
        reference.install()
    model, optimizer, scheduler = build(seed_weights=args.mode == "save")
    result = {}
    if args.mode == "save":
        result["losses_before"] = train(model, optimizer, scheduler, 1, args.steps)
        state = megatron_state_dict(model, optimizer, scheduler, args.steps)
        torch.save(state, args.ckpt)
        np.savez(args.values, **arrays(state))
        result["python_values"] = python_values(state)
        result["losses_after"] = train(model, optimizer, scheduler, args.steps + 1, 2 * args.steps)
    else:
        state = torch.load(args.ckpt, map_location="cpu", weights_only=False)
        loaded = arrays(state)
        with np.load(args.values) as saved:
            result["keys_missing"] = sorted(set(saved.files) - set(loaded))
            result["keys_extra"] = sorted(set(loaded) - set(saved.files))
            result["arrays_differ"] = sorted(k for k in saved.files if k in loaded and not (
                saved[k].shape == loaded[k].shape and np.array_equal(saved[k], loaded[k])))
            result["arrays_compared"] = len(saved.files)
        result["python_values"] = python_values(state)
        model.load_state_dict(state["model"], strict=True)
        now = arrays({"model": model.state_dict_for_save_checkpoint()})
        result["model_differs_after_load"] = sorted(k for k in now if not np.array_equal(now[k], loaded[k]))
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["opt_param_scheduler"])
        iteration = state["iteration"]
        result["losses_after"] = train(model, optimizer, scheduler, iteration + 1, iteration + args.steps)
    with open(args.out, "w") as fh:
        json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
