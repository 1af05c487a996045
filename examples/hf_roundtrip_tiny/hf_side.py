"""Logits and greedy generation of a Hugging Face checkpoint with unconverted transformers on PyTorch CPU.

The reference side of the round trip: `AutoModelForCausalLM.from_pretrained(HF_DIR)` (float32, eager
attention), the logits of the tokens of `--text`, and `generate(do_sample=False)` of `--max-new-tokens`
tokens from `--prompt`, both tokenized without special tokens as MindSpeed-LLM's inference does.
Writes OUT.json and OUT.npy like megatron_side.py. Refuses a checkpoint whose weights do not all load
(missing, unexpected or mismatched keys), since transformers would fill those with random values.

With `--sampling-of MG_OUT` (megatron_side.py's OUT of a `--sample` run), the sampling checks' PyTorch
half, into OUT.json's "sampling" and OUT_sample_probs.npy: the logits processors transformers' `generate`
builds for `do_sample=True` with MG_OUT's top_k, top_p and temperature (`_get_logits_processor` of a
GenerationConfig holding only those: temperature, top-k, top-p), applied to MindSpore's prompt logits
(MG_OUT_prompt_logits.npy), then softmax: the distribution transformers would sample the first token from
given the same logits; and, for every sequence MindSpeed-LLM sampled, this model's own processed
probability of each sampled token at its position (prompt + the tokens before it, one forward pass):
a token outside PyTorch's top-k/top-p support gets 0.

Usage: python hf_side.py HF_DIR --out OUT --text TEXT --prompt PROMPT [--max-new-tokens N] [--sampling-of MG_OUT]
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig


def sampling(model, prompt_ids: list[int], mg_out: str, out: str) -> dict:
    """The PyTorch half of the sampling checks (see the module docstring)."""
    mg = json.load(open(mg_out + ".json"))["sampling"]
    config = GenerationConfig(do_sample=True, top_k=mg["top_k"], top_p=mg["top_p"], temperature=mg["temperature"])
    top_1 = GenerationConfig(do_sample=True, top_k=1, temperature=mg["temperature"])

    def processors(length: int, generation_config: GenerationConfig = config):
        return model._get_logits_processor(generation_config=generation_config, input_ids_seq_length=length,
                                           encoder_input_ids=torch.tensor([prompt_ids]), device="cpu")

    def probs(input_ids: list[int], logits: torch.Tensor, generation_config: GenerationConfig = config) -> torch.Tensor:
        scores = processors(len(input_ids), generation_config)(torch.tensor([input_ids]), logits.reshape(1, -1).clone())
        return torch.softmax(scores, dim=-1)[0]

    def token_probs(tokens: list[int], generation_config: GenerationConfig) -> list[float]:
        ids = prompt_ids + tokens
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].float()
        return [float(probs(ids[:i], logits[i - 1], generation_config)[ids[i]]) for i in range(len(prompt_ids), len(ids))]

    mg_logits = torch.from_numpy(np.load(mg_out + "_prompt_logits.npy"))
    np.save(out + "_sample_probs.npy", probs(prompt_ids, mg_logits).numpy().astype(np.float32))
    return {"processors": [type(p).__name__ for p in processors(len(prompt_ids))],
            "sampled_token_probs": [token_probs(s["tokens"], config) for s in mg["sequences"]],
            "top_k_1_token_probs": token_probs(mg["top_k_1"], top_1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("hf_dir")
    parser.add_argument("--out", required=True)
    parser.add_argument("--text", required=True)
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--sampling-of", metavar="MG_OUT")
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
    record = {"load": args.hf_dir, "text_ids": text_ids, "prompt_ids": prompt_ids, "generated": generated}
    if args.sampling_of:
        record["sampling"] = sampling(model, prompt_ids, args.sampling_of, args.out)
    np.save(args.out + ".npy", logits.astype(np.float32))
    with open(args.out + ".json", "w") as f:
        json.dump(record, f, indent=1)
    print(f"hf side: {args.out}.json, {args.out}.npy ({logits.shape[0]} x {logits.shape[1]} logits, "
          f"{len(generated)} generated)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
