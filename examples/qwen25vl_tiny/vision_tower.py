"""Qwen2.5-VL's vision tower at a tiny size on a fixed image: the same script on both sides.

    # PyTorch CPU, unconverted transformers: weights (seeded init), the processed image, the output
    python vision_tower.py reference OUT.npz
    # MindSpore, the workspace's converted transformers: the same weights and image, compared
    python vision_tower.py compare OUT.npz [--rtol 1e-4] [--attn eager|sdpa]

The model is transformers' ``Qwen2_5_VisionTransformerPretrainedModel`` (patch embedding, 2D rotary
embedding, window attention in block 0 and full attention in block 1, the patch merger), the
image a 224x168 picture computed from a formula (no file), processed by each side's own
``Qwen2VLImageProcessor`` into patches. ``compare`` checks the processed patches, then the tower's
output, against the reference: max |ms - ref| / max |ref| must stay within ``--rtol``. Exit 1 when
it does not; the line printed says by how much.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

try:   # the PyTorch side
    import torch
except ImportError:   # the MindSpore side: the converted transformers imports mindtorch
    import mindtorch as torch

from PIL import Image
from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLVisionConfig
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionTransformerPretrainedModel
from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor

# 2 blocks (the first windowed, the second full), 4 heads of 16, merged into 96-wide tokens.
TINY = dict(depth=2, hidden_size=64, intermediate_size=128, num_heads=4, out_hidden_size=96,
            fullatt_block_indexes=[1], window_size=112, patch_size=14, spatial_merge_size=2,
            temporal_patch_size=2, in_channels=3, hidden_act="silu")
WIDTH, HEIGHT = 224, 168   # 16 x 12 patches: 8 x 6 merged tokens, 2 x 2 windows of 4 x 4 (one padded)


def fixed_image() -> Image.Image:
    """An RGB picture from a formula: smooth gradients and rings, so every patch differs."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    r = np.hypot(x - WIDTH * 0.4, y - HEIGHT * 0.6)
    rgb = np.stack([127.5 * (1 + np.sin(r / 9.0)), 255.0 * x / WIDTH, 255.0 * (y / HEIGHT) ** 2], axis=-1)
    return Image.fromarray(np.clip(np.rint(rgb), 0, 255).astype(np.uint8), "RGB")


def process(image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """Qwen2-VL's image processor (the one Qwen2.5-VL uses), with its default mean/std and no resize
    beyond rounding to 28 pixels: (patches [N, 3*2*14*14] float32, grid_thw [1, 3] int64)."""
    processor = Qwen2VLImageProcessor(min_pixels=WIDTH * HEIGHT, max_pixels=WIDTH * HEIGHT)
    out = processor(images=[image], return_tensors="np")
    return np.asarray(out["pixel_values"], np.float32), np.asarray(out["image_grid_thw"], np.int64)


def build_model(attn: str = "eager") -> Qwen2_5_VisionTransformerPretrainedModel:
    config = Qwen2_5_VLVisionConfig(**TINY)
    config._attn_implementation = attn
    return Qwen2_5_VisionTransformerPretrainedModel(config).float().eval()


def forward(model, patches: np.ndarray, grid_thw: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        out = model(torch.tensor(patches), grid_thw=torch.tensor(grid_thw))
    return out.float().numpy()


def reference(path: str) -> None:
    torch.manual_seed(0)
    model = build_model()
    with torch.no_grad():   # transformers' init leaves RMSNorm weights at 1: spread them so they matter
        for name, p in model.named_parameters():
            if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name.endswith("ln_q.weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
    patches, grid_thw = process(fixed_image())
    out = forward(model, patches, grid_thw)
    weights = {f"w.{k}": v.detach().numpy() for k, v in model.state_dict().items()}
    np.savez(path, patches=patches, grid_thw=grid_thw, out=out, **weights)
    print(f"reference: torch {torch.__version__}, {len(weights)} tensors, patches {patches.shape}, "
          f"grid {grid_thw.tolist()}, output {out.shape}, max |out| {np.abs(out).max():.4g}")


def max_relative(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got.astype(np.float64) - want).max() / max(np.abs(want).max(), 1e-30))


def compare(path: str, rtol: float, attn: str) -> int:
    ref = np.load(path)
    patches, grid_thw = process(fixed_image())
    if patches.shape != ref["patches"].shape or not np.array_equal(grid_thw, ref["grid_thw"]):
        print(f"compare: processed image differs in shape: {patches.shape} {grid_thw.tolist()} vs "
              f"{ref['patches'].shape} {ref['grid_thw'].tolist()}")
        return 1
    model = build_model(attn)
    state = {k[2:]: torch.tensor(ref[k]) for k in ref.files if k.startswith("w.")}
    model.load_state_dict(state, strict=True)
    out = forward(model, ref["patches"], ref["grid_thw"])
    image_err = max_relative(patches, ref["patches"])
    out_err = max_relative(out, ref["out"]) if out.shape == ref["out"].shape else float("inf")
    ok = image_err <= rtol and out_err <= rtol
    print(f"compare: processed image max rel {image_err:.3e}, vision tower output ({attn} attention) {out.shape} max rel "
          f"{out_err:.3e} (bound {rtol:g}): {'EQUAL' if ok else 'DIFFERENT'}")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["reference", "compare"])
    parser.add_argument("npz")
    parser.add_argument("--rtol", type=float, default=1e-4)
    parser.add_argument("--attn", choices=["eager", "sdpa"], default="eager",
                        help="the MindSpore side's attention (the reference is always eager)")
    args = parser.parse_args(argv)
    if args.mode == "reference":
        reference(args.npz)
        return 0
    return compare(args.npz, args.rtol, args.attn)


if __name__ == "__main__":
    sys.exit(main())
