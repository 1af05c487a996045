"""Write a tiny Hugging Face Qwen3 checkpoint with random weights, offline: config.json, model.safetensors
and the tokenizer, in the layout `AutoModelForCausalLM.from_pretrained` and MindSpeed-LLM's HF loader read.

The weights are drawn with NumPy from a fixed seed and written with `safetensors.numpy`, so the
checkpoint is the same bytes whichever framework reads it later (transformers on PyTorch, the converted
transformers on MindSpore): no framework's random generator or initializer is involved. Shapes and names
are those of transformers' Qwen3ForCausalLM for `qwen3_tiny_config.json` (tied embeddings, as Qwen3-0.6B,
GQA, q/k RMSNorm). Norm weights are drawn around 1, not left at 1, so a norm that the conversion drops
or swaps changes the logits.

Usage: python make_hf_model.py OUT_DIR TOKENIZER_DIR [--config FILE] [--seed N] [--std S]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

HERE = Path(__file__).resolve().parent


def qwen3_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    """Parameter name -> shape of transformers' Qwen3ForCausalLM for `config`."""
    hidden, heads, kv_heads = config["hidden_size"], config["num_attention_heads"], config["num_key_value_heads"]
    head_dim, ffn, vocab = config["head_dim"], config["intermediate_size"], config["vocab_size"]
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (vocab, hidden), "model.norm.weight": (hidden,)}
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes.update({
            p + "input_layernorm.weight": (hidden,),
            p + "post_attention_layernorm.weight": (hidden,),
            p + "self_attn.q_proj.weight": (heads * head_dim, hidden),
            p + "self_attn.k_proj.weight": (kv_heads * head_dim, hidden),
            p + "self_attn.v_proj.weight": (kv_heads * head_dim, hidden),
            p + "self_attn.o_proj.weight": (hidden, heads * head_dim),
            p + "self_attn.q_norm.weight": (head_dim,),
            p + "self_attn.k_norm.weight": (head_dim,),
            p + "mlp.gate_proj.weight": (ffn, hidden),
            p + "mlp.up_proj.weight": (ffn, hidden),
            p + "mlp.down_proj.weight": (hidden, ffn),
        })
    if not config.get("tie_word_embeddings", False):
        shapes["lm_head.weight"] = (vocab, hidden)
    return shapes


def random_weights(config: dict, seed: int, std: float) -> dict[str, np.ndarray]:
    """float32 weights: N(0, std) for matrices, 1 + N(0, 0.1) for norm scales."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in qwen3_shapes(config).items():
        if len(shape) == 1:
            weights[name] = (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
        else:
            weights[name] = (std * rng.standard_normal(shape)).astype(np.float32)
    return weights


def write(out_dir: Path, tokenizer_dir: Path, config_file: Path, seed: int, std: float) -> Path:
    config = json.loads(config_file.read_text())
    if config.get("model_type") != "qwen3":
        raise SystemExit(f"{config_file}: model_type {config.get('model_type')!r}: this writer knows qwen3 only")
    tokenizer = json.loads((tokenizer_dir / "tokenizer.json").read_text())
    # the model's vocabulary and the added (special) tokens, e.g. the chat tokens of examples/families
    vocab = len(set(tokenizer["model"]["vocab"].values()) | {t["id"] for t in tokenizer.get("added_tokens", [])})
    if vocab != config["vocab_size"]:
        raise SystemExit(f"{config_file}: vocab_size {config['vocab_size']} but {tokenizer_dir}/tokenizer.json has "
                         f"{vocab} tokens: build the tokenizer with --vocab-size {config['vocab_size']}")
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(random_weights(config, seed, std), str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(tokenizer_dir / name, out_dir / name)
    generation = {"bos_token_id": config["bos_token_id"], "eos_token_id": config["eos_token_id"],
                  "pad_token_id": config["pad_token_id"], "do_sample": False}
    (out_dir / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("tokenizer_dir", type=Path)
    parser.add_argument("--config", type=Path, default=HERE / "qwen3_tiny_config.json")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--std", type=float, default=0.1)
    args = parser.parse_args(argv)
    out = write(args.out_dir, args.tokenizer_dir, args.config, args.seed, args.std)
    print(f"hf model: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
