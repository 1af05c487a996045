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

With `--sample`, also the sampling path of that API (`inference.py --task do_sample`: `generate(do_sample=True,
top_k=args.top_k, top_p=args.top_p, temperature=args.temperature)`, MindSpeed-LLM's own
`--top-k/--top-p/--temperature` flags), into OUT.json's "sampling" and OUT_prompt_logits.npy /
OUT_sample_probs.npy:
- the distribution MindSpeed-LLM samples the first new token from: its `_sample_strategy` (temperature,
  top-k, top-p, softmax; what `generate` calls at every position) on the logits of the prompt's last
  position, and the prompt logits themselves, so the reference side can apply transformers' logits
  processors to the same numbers;
- `--sample-draws` draws of `torch.multinomial` (generate's sampler) from that distribution at once, as
  counts per token, so the sampler itself can be checked against the probabilities;
- the sequences `generate` samples after `torch.manual_seed(S)` for each `--sample-seeds` S, the first seed
  twice (reproducibility), and `generate(do_sample=True, top_k=1)` (equal to greedy by construction).

On several processes (TP x PP under mindtorch's MPI launcher) every rank runs the same calls; rank 0 (the
first pipeline stage, which holds the generated tokens) writes OUT.json and the last stage's TP rank 0
the logits.

Usage: python megatron_side.py --out OUT --text TEXT --prompt PROMPT [--sample] [MindSpeed-LLM inference flags...]
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

from mindspeed_llm import megatron_adaptor  # noqa: F401  (MindSpeed-LLM's patches of Megatron, first)
from megatron.core import mpu
from megatron.training import get_args, get_tokenizer
from megatron.training.initialize import initialize_megatron
from megatron.core.inference.contexts import StaticInferenceContext
from megatron.inference.text_generation.forward_step import ForwardStep
from megatron.inference.text_generation.generation import _build_attention_mask_and_position_ids
from mindspeed_llm.inference.text_generation.generation import _sample_strategy
from mindspeed_llm.tasks.inference.module import MegatronModuleForCausalLM
from inference import model_provider


def token_ids(generated) -> list[int]:
    return [int(t) for t in (generated.tolist() if hasattr(generated, "tolist") else generated)]


def last_stage_logits(args, tokens):
    """The forward step of MindSpeed-LLM's generation on `tokens` ([1, n]): [n, vocab] float32 on the last
    pipeline stage, None on the others."""
    with torch.no_grad():
        attention_mask, position_ids = _build_attention_mask_and_position_ids(tokens)
        forward_step = ForwardStep(args.model[0], StaticInferenceContext(1, tokens.size(1)))
        logits = forward_step(tokens, position_ids, attention_mask)
    if not mpu.is_pipeline_last_stage():
        return None
    return logits[0, :, :args.vocab_size].float()


def sampling(model, args, prompt_ids, mine) -> tuple[dict, np.ndarray | None, np.ndarray | None]:
    """What MindSpeed-LLM's sampling path does on the prompt (see the module docstring)."""
    params = {"top_k": args.top_k, "top_p": args.top_p, "temperature": args.temperature}
    logits = last_stage_logits(args, torch.tensor([prompt_ids], dtype=torch.int64))
    prompt_logits = probs = None
    counts = None
    if logits is not None:
        last = logits[-1:, :].clone()
        with torch.no_grad():
            processed, _ = _sample_strategy(last.clone(), do_sample=True, **params)
            torch.manual_seed(mine.sample_seeds[0])
            draws = torch.multinomial(processed.expand(mine.sample_draws, -1).contiguous(), num_samples=1).view(-1)
        prompt_logits, probs = last[0].numpy(), processed[0].float().numpy()
        counts = np.bincount(draws.numpy().astype(np.int64), minlength=probs.shape[0]).tolist()

    def sampled(seed: int, **overrides) -> list[int]:
        torch.manual_seed(seed)
        return token_ids(model.generate(mine.prompt, do_sample=True, max_new_tokens=args.max_new_tokens,
                                        detokenize=False, **{**params, **overrides}))

    first = mine.sample_seeds[0]
    sequences = [{"seed": seed, "tokens": sampled(seed)} for seed in [first, *mine.sample_seeds]]
    top_k_1 = sampled(first, top_k=1, top_p=0.0)
    return ({**params, "draws": mine.sample_draws, "draw_counts": counts, "sequences": sequences,
             "top_k_1": top_k_1}, prompt_logits, probs)


def main():
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--out", required=True)
    own.add_argument("--text", required=True)
    own.add_argument("--prompt", required=True)
    own.add_argument("--sample", action="store_true")
    own.add_argument("--sample-seeds", type=int, nargs="+", default=[1234, 4321])
    own.add_argument("--sample-draws", type=int, default=20000)
    mine, rest = own.parse_known_args()
    sys.argv = [sys.argv[0], *rest]

    initialize_megatron(args_defaults={"no_load_rng": True, "no_load_optim": True})
    args = get_args()
    model = MegatronModuleForCausalLM.from_pretrained(model_provider=model_provider,
                                                      pretrained_model_name_or_path=args.load)
    model.eval()
    tokenizer = get_tokenizer().tokenizer
    text_ids = tokenizer.encode(mine.text, add_special_tokens=False)
    logits = last_stage_logits(args, torch.tensor([text_ids], dtype=torch.int64))

    prompt_ids = tokenizer.encode(mine.prompt, add_special_tokens=False)
    generated = token_ids(model.generate(mine.prompt, do_sample=False, max_new_tokens=args.max_new_tokens,
                                         detokenize=False))
    record = {"load": args.load, "tensor_parallel": args.tensor_model_parallel_size,
              "pipeline_parallel": args.pipeline_model_parallel_size,
              "text_ids": text_ids, "prompt_ids": prompt_ids, "generated": generated}
    prompt_logits = probs = None
    if mine.sample:
        record["sampling"], prompt_logits, probs = sampling(model, args, prompt_ids, mine)

    writes_logits = logits is not None and mpu.get_tensor_model_parallel_rank() == 0
    if writes_logits:
        np.save(mine.out + ".npy", logits.numpy().astype(np.float32))
        if mine.sample:
            np.save(mine.out + "_prompt_logits.npy", prompt_logits.astype(np.float32))
            np.save(mine.out + "_sample_probs.npy", probs.astype(np.float32))
            with open(mine.out + "_draws.json", "w") as f:
                json.dump(record["sampling"]["draw_counts"], f)
    if torch.distributed.get_rank() == 0:
        if mine.sample:
            record["sampling"].pop("draw_counts")   # from the last stage's file, which may be another rank's
        with open(mine.out + ".json", "w") as f:
            json.dump(record, f, indent=1)
        print(f"megatron side: {mine.out}.json ({len(generated)} generated)")
    if writes_logits:
        print(f"megatron side: {mine.out}.npy ({logits.shape[0]} x {logits.shape[1]} logits)")


if __name__ == "__main__":
    main()
