"""Check a LoRA merge: every merged weight is the base checkpoint's plus (alpha / r) * B @ A.

Upstream's merge (`convert_ckpt.py --load-model-type mg --save-model-type mg --lora-load ...`,
MindSpeed-LLM docs/pytorch/solutions/checkpoint/checkpoint_convert.md) loads the base Megatron
checkpoint and the LoRA one, merges with peft's merge_and_unload and saves a Megatron checkpoint.
This recomputes each merged matrix from the two inputs and compares it with what was saved;
weights LoRA does not touch (embeddings, norms) must equal the base's. Run it in the workspace
(`source <workspace>/set_env.sh`: the checkpoints hold mindtorch tensors):

    python examples/families/check_lora_merge.py WORK/runs/qwen3/ckpt WORK/runs/sft_lora/ckpt WORK/runs/lora_merge/ckpt

Prints the largest difference per tensor and exits 1 if any exceeds --atol, if a tensor is missing
on either side, or if the LoRA weights are untrained (lora_B all zero: a merge would prove nothing).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def megatron_state(ckpt: Path) -> tuple[dict[str, np.ndarray], object]:
    """The model state (name -> float64 array) and args of the latest checkpoint under `ckpt`."""
    import mindtorch as torch

    iteration = (ckpt / "latest_checkpointed_iteration.txt").read_text().strip()
    folder = ckpt / ("release" if iteration == "release" else f"iter_{int(iteration):07d}") / "mp_rank_00"
    state = torch.load(str(folder / "model_optim_rng.pt"), map_location="cpu", weights_only=False)
    model = {k: v.float().numpy().astype(np.float64) for k, v in state["model"].items()
             if hasattr(v, "numpy") and "_extra_state" not in k}
    return model, state.get("args")


def lora_pairs(state: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{base weight name: (A, B)} of a LoRA checkpoint (peft's `...lora_A.default.weight` names)."""
    pairs = {}
    for name, a in state.items():
        if ".lora_A." in name:
            stem = name.split(".lora_A.")[0]
            pairs[f"{stem}.weight"] = (a, state[name.replace(".lora_A.", ".lora_B.")])
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path)
    parser.add_argument("lora", type=Path)
    parser.add_argument("merged", type=Path)
    parser.add_argument("--atol", type=float, default=1e-5)
    args = parser.parse_args(argv)
    base, _ = megatron_state(args.base)
    lora_state, lora_args = megatron_state(args.lora)
    merged, _ = megatron_state(args.merged)
    pairs = lora_pairs(lora_state)
    if not pairs or not any(np.abs(b).max() > 0 for _a, b in pairs.values()):
        print(f"{args.lora}: no trained LoRA weights (lora_B all zero or absent)", file=sys.stderr)
        return 1
    scale = lora_args.lora_alpha / lora_args.lora_r
    status = 0
    for name in sorted(set(base) | set(merged)):
        if name not in base or name not in merged:
            print(f"{name}: only in the {'base' if name in base else 'merged'} checkpoint")
            status = 1
            continue
        want = base[name]
        if name in pairs:
            a, b = pairs[name]
            want = base[name] + scale * (b @ a)
        diff = float(np.abs(merged[name] - want).max())
        moved = float(np.abs(merged[name] - base[name]).max())
        print(f"{name}\t{'merged' if name in pairs else 'base  '}\tmax |saved - expected| {diff:.2e}"
              f"\tmax |saved - base| {moved:.2e}")
        if not diff <= args.atol:
            status = 1
    missing = sorted(set(pairs) - set(base))
    for name in missing:
        print(f"{name}: has LoRA weights but no base weight")
        status = 1
    print(f"{len(pairs)} LoRA pairs merged with scale {scale}: {'the merge matches' if status == 0 else 'MERGE DIFFERS'}")
    return status


if __name__ == "__main__":
    sys.exit(main())
