"""Logits and greedy generation of a Megatron checkpoint through MindSpeed-LLM's inference path.

Runs in a converted llm workspace (the launcher converts this file with `python -m tools.convert`
like any user script, so `torch` here is mindtorch on MindSpore). It builds the model exactly as
MindSpeed-LLM's `inference.py` does (its `model_provider`, `MegatronModuleForCausalLM.from_pretrained`
loading `--load`), then
- computes the logits of the tokens of `--text` with the forward step its generation runs on the
  prompt (Megatron's `ForwardStep` on a `StaticInferenceContext`, the mask and positions of
  `_build_attention_mask_and_position_ids`, as MindSpeed-LLM's `generate_tokens_probs_and_return_on_first_stage`
  builds them; its own `MegatronModuleForCausalLM._forward_step`, which the `score` API uses, calls
  `ForwardStep` with the pre-0.12 arguments and fails with a TypeError on Megatron core 0.12), and
- generates `--max-new-tokens` tokens greedily from `--prompt` with its `generate` API (the one
  `inference.py --task greedy` calls), returning token ids instead of text.
It writes OUT.json (the token ids of both) and OUT.npy (the logits, float32, [tokens, vocab]).

Usage: python megatron_side.py --out OUT --text TEXT --prompt PROMPT [MindSpeed-LLM inference flags...]
"""
import argparse
import json
import sys

import numpy as np
import torch

from mindspeed_llm import megatron_adaptor  # noqa: F401  (MindSpeed-LLM's patches of Megatron, first)
from megatron.training import get_args, get_tokenizer
from megatron.training.initialize import initialize_megatron
from megatron.core.inference.contexts import StaticInferenceContext
from megatron.inference.text_generation.forward_step import ForwardStep
from megatron.inference.text_generation.generation import _build_attention_mask_and_position_ids
from mindspeed_llm.tasks.inference.module import MegatronModuleForCausalLM
from inference import model_provider


def main():
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--out", required=True)
    own.add_argument("--text", required=True)
    own.add_argument("--prompt", required=True)
    mine, rest = own.parse_known_args()
    sys.argv = [sys.argv[0], *rest]

    initialize_megatron(args_defaults={"no_load_rng": True, "no_load_optim": True})
    args = get_args()
    model = MegatronModuleForCausalLM.from_pretrained(model_provider=model_provider,
                                                      pretrained_model_name_or_path=args.load)
    model.eval()
    tokenizer = get_tokenizer().tokenizer
    text_ids = tokenizer.encode(mine.text, add_special_tokens=False)
    tokens = torch.tensor([text_ids], dtype=torch.int64)
    with torch.no_grad():
        attention_mask, position_ids = _build_attention_mask_and_position_ids(tokens)
        forward_step = ForwardStep(args.model[0], StaticInferenceContext(1, tokens.size(1)))
        logits = forward_step(tokens, position_ids, attention_mask)
    logits = logits[0, :, :args.vocab_size].float().cpu().numpy()

    prompt_ids = tokenizer.encode(mine.prompt, add_special_tokens=False)
    generated = model.generate(mine.prompt, do_sample=False, max_new_tokens=args.max_new_tokens, detokenize=False)
    generated = [int(t) for t in (generated.tolist() if hasattr(generated, "tolist") else generated)]

    np.save(mine.out + ".npy", logits.astype(np.float32))
    with open(mine.out + ".json", "w") as f:
        json.dump({"load": args.load, "text_ids": text_ids, "prompt_ids": prompt_ids, "generated": generated}, f, indent=1)
    print(f"megatron side: {mine.out}.json, {mine.out}.npy ({logits.shape[0]} x {logits.shape[1]} logits, "
          f"{len(generated)} generated)")


if __name__ == "__main__":
    main()
