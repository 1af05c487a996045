"""Check a LoRA merge: the merged Hugging Face weights are the base checkpoint's plus (alpha / r) * B @ A.

Upstream's merge (`convert_ckpt.py --load-model-type mg --save-model-type hf --lora-load ...`) loads
the base Megatron checkpoint and the LoRA checkpoint, merges with peft's merge_and_unload and writes
Hugging Face weights. This recomputes every merged matrix from the two Megatron checkpoints
(Megatron's fused QKV split per query group into q/k/v, fc1 into gate/up) and compares it with the
written safetensors; weights LoRA does not touch (embeddings, norms, the output layer) must equal
the base's. Run it in the workspace (`source <workspace>/set_env.sh`: the checkpoints hold mindtorch
tensors):

    python examples/families/check_lora_merge.py WORK/runs/qwen3/ckpt WORK/runs/sft_lora/ckpt WORK/runs/lora_merge/hf

Prints one line per tensor (largest absolute difference) and exits 1 if any exceeds --atol, or if
the LoRA weights are all zero (a merge of an untrained adapter would prove nothing).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def megatron_state(ckpt: Path) -> tuple[dict[str, np.ndarray], object]:
    """The model state (name -> float64 array) and args of the latest checkpoint under `ckpt`."""
    import mindtorch as torch

    iteration = int((ckpt / "latest_checkpointed_iteration.txt").read_text().strip())
    path = ckpt / f"iter_{iteration:07d}" / "mp_rank_00" / "model_optim_rng.pt"
    state = torch.load(str(path), map_location="cpu", weights_only=False)
    model = {k: v.float().numpy().astype(np.float64) for k, v in state["model"].items()
             if hasattr(v, "numpy") and not k.endswith("_extra_state")}
    return model, state["args"]


def hf_state(folder: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    out: dict[str, np.ndarray] = {}
    for file in sorted(folder.glob("*.safetensors")):
        out.update({k: v.astype(np.float64) for k, v in load_file(str(file)).items()})
    if not out:
        raise SystemExit(f"{folder}: no *.safetensors (did the merge run write Hugging Face weights?)")
    return out


def expected(base: dict[str, np.ndarray], lora: dict[str, np.ndarray], args, scale: float) -> dict[str, np.ndarray]:
    """The HF tensors a correct merge writes, from the base and LoRA Megatron states."""
    def merged(name: str) -> np.ndarray:
        stem = name[: -len(".weight")]
        a, b = lora[f"{stem}.lora_A.default.weight"], lora[f"{stem}.lora_B.default.weight"]
        return base[name] + scale * (b @ a)

    heads, groups = args.num_attention_heads, args.num_query_groups or args.num_attention_heads
    head_dim = args.kv_channels or args.hidden_size // heads
    out = {"model.embed_tokens.weight": base["embedding.word_embeddings.weight"],
           "model.norm.weight": base["decoder.final_layernorm.weight"]}
    if "output_layer.weight" in base:
        out["lm_head.weight"] = base["output_layer.weight"]
    for i in range(args.num_layers):
        m, h = f"decoder.layers.{i}.", f"model.layers.{i}."
        qkv = merged(m + "self_attention.linear_qkv.weight").reshape(groups, (heads // groups + 2) * head_dim, -1)
        q, k, v = np.split(qkv, [heads // groups * head_dim, (heads // groups + 1) * head_dim], axis=1)
        out[h + "self_attn.q_proj.weight"] = q.reshape(heads * head_dim, -1)
        out[h + "self_attn.k_proj.weight"] = k.reshape(groups * head_dim, -1)
        out[h + "self_attn.v_proj.weight"] = v.reshape(groups * head_dim, -1)
        out[h + "self_attn.o_proj.weight"] = merged(m + "self_attention.linear_proj.weight")
        gate, up = np.split(merged(m + "mlp.linear_fc1.weight"), 2, axis=0)
        out[h + "mlp.gate_proj.weight"], out[h + "mlp.up_proj.weight"] = gate, up
        out[h + "mlp.down_proj.weight"] = merged(m + "mlp.linear_fc2.weight")
        out[h + "input_layernorm.weight"] = base[m + "self_attention.linear_qkv.layer_norm_weight"]
        out[h + "post_attention_layernorm.weight"] = base[m + "mlp.linear_fc1.layer_norm_weight"]
        if getattr(args, "qk_layernorm", False):
            out[h + "self_attn.q_norm.weight"] = base[m + "self_attention.q_layernorm.weight"]
            out[h + "self_attn.k_norm.weight"] = base[m + "self_attention.k_layernorm.weight"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path)
    parser.add_argument("lora", type=Path)
    parser.add_argument("hf", type=Path)
    parser.add_argument("--atol", type=float, default=1e-5)
    args = parser.parse_args(argv)
    base, base_args = megatron_state(args.base)
    lora_all, lora_args = megatron_state(args.lora)
    lora = {k: v for k, v in lora_all.items() if ".lora_" in k}
    if not lora or not any(np.abs(v).max() > 0 for k, v in lora.items() if ".lora_B." in k):
        print(f"{args.lora}: no trained LoRA weights (lora_B all zero or absent)", file=sys.stderr)
        return 1
    scale = lora_args.lora_alpha / lora_args.lora_r
    want = expected(base, lora, base_args, scale)
    got = hf_state(args.hf)
    status = 0
    for name in sorted(set(want) | set(got)):
        if name not in got or name not in want:
            print(f"{name}: only in the {'expected' if name in want else 'written'} weights")
            status = 1
            continue
        if want[name].shape != got[name].shape:
            print(f"{name}: shape {got[name].shape}, expected {want[name].shape}")
            status = 1
            continue
        diff = float(np.abs(want[name] - got[name]).max())
        print(f"{name}\tmax |merged - expected| = {diff:.2e}")
        if not diff <= args.atol:
            status = 1
    lora_delta = max(float(np.abs(scale * (lora[k.replace('lora_A', 'lora_B')] @ v)).max())
                     for k, v in lora.items() if ".lora_A." in k)
    print(f"{len(lora) // 2} LoRA pairs, scale {scale}, largest |scale * B @ A| {lora_delta:.2e}; "
          f"{'merge matches' if status == 0 else 'MERGE DIFFERS'}")
    return status


if __name__ == "__main__":
    sys.exit(main())
