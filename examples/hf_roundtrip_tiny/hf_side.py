"""Logits and greedy generation of a Hugging Face checkpoint with unconverted transformers on PyTorch CPU.

The reference side of the round trip: `AutoModelForCausalLM.from_pretrained(HF_DIR)` (float32, eager
attention), the logits of the tokens of `--text`, and `generate(do_sample=False)` of `--max-new-tokens`
tokens from `--prompt`, both tokenized without special tokens as MindSpeed-LLM's inference does.
Writes OUT.json and OUT.npy like megatron_side.py. Refuses a checkpoint whose weights do not all load
(missing, unexpected or mismatched keys), since transformers would fill those with random values.

Usage: python hf_side.py HF_DIR --out OUT --text TEXT --prompt PROMPT [--max-new-tokens N]
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("hf_dir")
    parser.add_argument("--out", required=True)
    parser.add_argument("--text", required=True)
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    args = parser.parse_args(argv)

    model, info = AutoModelForCausalLM.from_pretrained(args.hf_dir, torch_dtype=torch.float32,
                                                       attn_implementation="eager", output_loading_info=True)
    bad = {k: v for k, v in info.items() if v}
    if bad:
        print(f"hf_side.py: {args.hf_dir}: weights that did not load: {bad}", file=sys.stderr)
        return 1
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(args.hf_dir)
    text_ids = tokenizer.encode(args.text, add_special_tokens=False)
    prompt_ids = tokenizer.encode(args.prompt, add_special_tokens=False)
    with torch.no_grad():
        logits = model(torch.tensor([text_ids])).logits[0].float().numpy()
        out = model.generate(torch.tensor([prompt_ids]), attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long),
                             do_sample=False, max_new_tokens=args.max_new_tokens,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    generated = out[0, len(prompt_ids):].tolist()
    np.save(args.out + ".npy", logits.astype(np.float32))
    with open(args.out + ".json", "w") as f:
        json.dump({"load": args.hf_dir, "text_ids": text_ids, "prompt_ids": prompt_ids, "generated": generated},
                  f, indent=1)
    print(f"hf side: {args.out}.json, {args.out}.npy ({logits.shape[0]} x {logits.shape[1]} logits, "
          f"{len(generated)} generated)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
