"""Check a round-trip run (roundtrip.sh's WORK folder) and print its numbers as a markdown table.

Runs in the PyTorch reference Python (NumPy, safetensors, transformers; no MindSpore). Checks:
- the HF -> Megatron -> HF round trip without training gives back the original weights bit for bit
  (same names, shapes, dtypes, values), and a config.json that transformers on PyTorch loads with
  `torch_dtype="auto"` and whose model fields equal the original's;
- after training, every weight moved (the round trip carries the trained model, not the original);
- before and after training: the logits of the Megatron checkpoint on MindSpore (megatron_side.py)
  equal transformers' logits of its HF conversion on PyTorch (hf_side.py) for the same token ids,
  max |difference| <= RTOL * max |logit|, and greedy generation gives the same 16 (--new-tokens) token ids;
- the training log has TRAIN_ITERS iteration lines with finite losses (examples/deepseek3_tiny/losses.py);
- with --inference-log: the text MindSpeed-LLM's inference.py --task greedy printed equals
  transformers' decode of its greedy tokens;
- when the sides recorded sampling (megatron_side.py --sample, hf_side.py --sampling-of): the
  distribution MindSpeed-LLM's sampling path draws the first new token from (temperature, top-k, top-p,
  softmax on MindSpore) equals transformers' logits processors' on PyTorch for the same logits (max
  |difference| <= --sampling-atol, same support); torch.multinomial's draws from it on MindSpore fall in
  that support with a chi-square statistic below df + 6 sqrt(2 df); the same seed samples the same
  sequence; every sampled token lies in PyTorch's top-k/top-p support at its position; top_k=1 sampling
  equals greedy generation on both sides. Sampled sequences are not compared across frameworks:
  MindSpore's and PyTorch's random generators differ.
Exit 0 when every check holds, 1 otherwise (one line per failed check on stderr).

Usage: python compare.py WORK [--train-log LOG] [--inference-log LOG] [--train-iters N] [--rtol R]
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "deepseek3_tiny"))
from losses import parse as parse_iterations  # noqa: E402

RTOL = 1e-4
SAMPLING_ATOL = 1e-5
PROCESSORS = ["TemperatureLogitsWarper", "TopKLogitsWarper", "TopPLogitsWarper"]
MODEL_FIELDS = ("model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                "num_attention_heads", "num_key_value_heads", "head_dim", "rms_norm_eps", "rope_theta",
                "tie_word_embeddings", "max_position_embeddings", "hidden_act", "attention_bias")


def side(work: Path, name: str) -> tuple[dict, np.ndarray]:
    return json.loads((work / "out" / f"{name}.json").read_text()), np.load(work / "out" / f"{name}.npy")


def inference_text(log: Path, task: str = "Greedy Search") -> str:
    """The reply inference.py logged for `task` (between 'MindSpeed-LLM:' and the closing rule)."""
    text = re.sub(r"(?m)^INFO:root:", "", log.read_text(errors="replace"))   # logging's prefix, when configured
    m = re.search(r"=+ " + task + r" =+\s*\nYou:\n.*?\n\nMindSpeed-LLM:\n(.*?)\n=+\n", text, re.S)
    if not m:
        raise ValueError(f"{log}: no '{task}' reply found")
    return m.group(1)


def check_sampling(work: Path, name: str, atol: float, rows: list[tuple[str, str]], problems: list[str]) -> None:
    """The sampling checks of one side pair (see the module docstring)."""
    mg, _ = side(work, f"mg_{name}")
    hf, _ = side(work, f"hf_{name}")
    ms, pt = mg["sampling"], hf["sampling"]
    what = f"{name} training, sampling (top-k {ms['top_k']}, top-p {ms['top_p']}, temperature {ms['temperature']})"
    if pt["processors"] != PROCESSORS:
        problems.append(f"{name}: transformers built the processors {pt['processors']}, not {PROCESSORS}")
    ms_probs = np.load(work / "out" / f"mg_{name}_sample_probs.npy").astype(np.float64)
    pt_probs = np.load(work / "out" / f"hf_{name}_sample_probs.npy").astype(np.float64)
    diff = float(np.abs(ms_probs - pt_probs).max())
    support = pt_probs > 0
    rows.append((f"{what}: first token's distribution, max |p MindSpore - p transformers|, support (of {support.size})",
                 f"{diff:.2e}, {int(support.sum())} tokens, largest p {pt_probs.max():.4f}"))
    if not diff <= atol:
        problems.append(f"{name}: sampling distributions differ by {diff:.3e}, more than {atol:g}")
    if not np.array_equal(ms_probs > 0, support):
        problems.append(f"{name}: the top-k/top-p support differs: {int((ms_probs > 0).sum())} tokens on MindSpore, "
                        f"{int(support.sum())} on PyTorch")
    counts = np.array(json.loads((work / "out" / f"mg_{name}_draws.json").read_text()), dtype=np.float64)
    outside = int(counts[~support].sum())
    expected = counts.sum() * pt_probs[support]
    chi2 = float(((counts[support] - expected) ** 2 / expected).sum())
    df = int(support.sum()) - 1
    bound = df + 6 * math.sqrt(2 * max(df, 1))
    rows.append((f"{what}: {int(counts.sum())} torch.multinomial draws on MindSpore: outside the support, chi-square (df)",
                 f"{outside}, {chi2:.1f} ({df}; bound {bound:.1f})"))
    if outside or not chi2 <= bound:
        problems.append(f"{name}: multinomial draws: {outside} outside the support, chi-square {chi2:.1f} > {bound:.1f}")
    sequences = ms["sequences"]
    rows.append((f"{what}: sequences by seed (MindSpore)",
                 "; ".join(f"{s['seed']}: {s['tokens']}" for s in sequences)))
    if sequences[0]["seed"] != sequences[1]["seed"] or sequences[0]["tokens"] != sequences[1]["tokens"]:
        problems.append(f"{name}: seed {sequences[0]['seed']} sampled {sequences[0]['tokens']}, then {sequences[1]['tokens']}")
    if any(not s["tokens"] for s in sequences):
        problems.append(f"{name}: a sampled sequence is empty: {sequences}")
    outside = [(s["seed"], i, t) for s, probs in zip(sequences, pt["sampled_token_probs"])
               for i, (t, p) in enumerate(zip(s["tokens"], probs)) if not p > 0]
    smallest = min(p for probs in pt["sampled_token_probs"] for p in probs)
    rows.append((f"{what}: sampled tokens outside transformers' support at their position (smallest p)",
                 f"{len(outside)} of {sum(len(s['tokens']) for s in sequences)} ({smallest:.4f})"))
    if outside:
        problems.append(f"{name}: sampled tokens outside PyTorch's top-k/top-p support (seed, position, token): {outside}")
    rows.append((f"{name} training: top_k=1 sampling (MindSpore) = greedy (MindSpore) = greedy (PyTorch)",
                 f"{ms['top_k_1'] == mg['generated'] == hf['generated']}"))
    if not ms["top_k_1"] == mg["generated"] == hf["generated"]:
        problems.append(f"{name}: top_k=1 sampling gave {ms['top_k_1']}, greedy {mg['generated']} (MindSpore), "
                        f"{hf['generated']} (PyTorch)")
    if any(p != 1.0 for p in pt["top_k_1_token_probs"]):
        problems.append(f"{name}: transformers' top_k=1 probabilities of the top_k=1 tokens: {pt['top_k_1_token_probs']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--train-log", type=Path)
    parser.add_argument("--inference-log", type=Path)
    parser.add_argument("--inference-sample-log", type=Path,
                        help="a second inference.py --task do_sample run: its reply must equal --inference-log's")
    parser.add_argument("--train-iters", type=int, default=10)
    parser.add_argument("--rtol", type=float, default=RTOL)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--sampling-atol", type=float, default=SAMPLING_ATOL)
    args = parser.parse_args(argv)
    work = args.work
    problems: list[str] = []
    rows: list[tuple[str, str]] = []

    original = load_file(str(work / "hf" / "model.safetensors"))
    before = load_file(str(work / "hf_before" / "mg2hf" / "model.safetensors"))
    after = load_file(str(work / "hf_after" / "mg2hf" / "model.safetensors"))
    for name, weights in (("before", before), ("after", after)):
        if set(weights) != set(original):
            problems.append(f"hf_{name}: weight names differ from the original: {sorted(set(weights) ^ set(original))}")
    same = [k for k in original if k in before and before[k].dtype == original[k].dtype
            and np.array_equal(before[k], original[k])]
    rows.append(("round trip without training: weights equal to the original, bit for bit",
                 f"{len(same)} of {len(original)}"))
    if len(same) != len(original):
        problems.append(f"round trip without training changed {sorted(set(original) - set(same))}")
    moved = [k for k in original if k in after and not np.array_equal(after[k], original[k])]
    change = max(float(np.abs(after[k] - original[k]).max()) for k in moved) if moved else 0.0
    rows.append(("after training: weights that moved (largest change)", f"{len(moved)} of {len(original)} ({change:.3g})"))
    if len(moved) != len(original):
        problems.append(f"training left {sorted(set(original) - set(moved))} unchanged")

    from transformers import AutoConfig
    reference_config = json.loads((work / "hf" / "config.json").read_text())
    for name in ("before", "after"):
        folder = work / f"hf_{name}" / "mg2hf"
        saved = json.loads((folder / "config.json").read_text())
        try:
            AutoConfig.from_pretrained(str(folder))
            import torch
            from transformers import AutoModelForCausalLM
            dtype = AutoModelForCausalLM.from_pretrained(str(folder), torch_dtype="auto").dtype
        except Exception as exc:  # noqa: BLE001 - reported as a failed check
            problems.append(f"{folder}: transformers on PyTorch cannot load it with torch_dtype='auto': {exc}")
            dtype = None
        differing = {f: (saved.get(f), reference_config.get(f)) for f in MODEL_FIELDS if saved.get(f) != reference_config.get(f)}
        if differing:
            problems.append(f"{folder}/config.json differs from the original in {differing}")
        rows.append((f"hf_{name} config.json: torch_dtype, model fields", f"{saved.get('torch_dtype')!r} (loads as {dtype}), "
                     f"{len(MODEL_FIELDS) - len(differing)} of {len(MODEL_FIELDS)} equal"))

    for name in ("before", "after"):
        mg, mg_logits = side(work, f"mg_{name}")
        hf, hf_logits = side(work, f"hf_{name}")
        if mg["text_ids"] != hf["text_ids"] or mg["prompt_ids"] != hf["prompt_ids"]:
            problems.append(f"{name}: the two sides tokenized differently: {mg['text_ids']} vs {hf['text_ids']}")
            continue
        if mg_logits.shape != hf_logits.shape:
            problems.append(f"{name}: logits of shape {mg_logits.shape} on MindSpore, {hf_logits.shape} on PyTorch")
            continue
        scale = float(np.abs(hf_logits).max())
        diff = float(np.abs(mg_logits.astype(np.float64) - hf_logits).max())
        rows.append((f"{name} training: max |logit MindSpore - logit PyTorch| / max |logit| "
                     f"({hf_logits.shape[0]} tokens x {hf_logits.shape[1]})", f"{diff / scale:.2e} ({diff:.2e} / {scale:.3f})"))
        if not diff <= args.rtol * scale:
            problems.append(f"{name}: logits differ by {diff:.3e}, more than {args.rtol:g} x {scale:.3f}")
        same_argmax = int((mg_logits.argmax(-1) == hf_logits.argmax(-1)).sum())
        rows.append((f"{name} training: same argmax token", f"{same_argmax} of {hf_logits.shape[0]}"))
        rows.append((f"{name} training: greedy tokens, MindSpore (MindSpeed-LLM generate)", str(mg["generated"])))
        rows.append((f"{name} training: greedy tokens, PyTorch (transformers generate)", str(hf["generated"])))
        if mg["generated"] != hf["generated"]:
            problems.append(f"{name}: greedy generation differs: {mg['generated']} on MindSpore, {hf['generated']} on PyTorch")
        elif len(hf["generated"]) != args.new_tokens:
            problems.append(f"{name}: greedy generation stopped (end of text) after {len(hf['generated'])} tokens, "
                            f"not {args.new_tokens}: {hf['generated']}")

    for name in ("before", "after"):
        if "sampling" in side(work, f"mg_{name}")[0] or "sampling" in side(work, f"hf_{name}")[0]:
            try:
                check_sampling(work, name, args.sampling_atol, rows, problems)
            except (KeyError, FileNotFoundError) as exc:
                problems.append(f"{name}: sampling recorded by one side only, or incompletely: {exc!r}")

    if args.train_log:
        steps = parse_iterations(args.train_log)
        losses = [r["lm"] for r in steps]
        rows.append(("training: lm loss per step", ", ".join(f"{x:.4f}" for x in losses)))
        if len(steps) != args.train_iters or not all(math.isfinite(x) for x in losses):
            problems.append(f"{args.train_log}: {len(steps)} iteration lines (want {args.train_iters}), losses {losses}")

    if args.inference_log:
        from transformers import AutoTokenizer
        tokenizer = AutoTokenizer.from_pretrained(str(work / "hf_after" / "mg2hf"))
        hf, _ = side(work, "hf_after")
        expected = tokenizer.decode(hf["generated"], skip_special_tokens=True)
        try:
            got = inference_text(args.inference_log)
        except ValueError as exc:
            problems.append(str(exc))
            got = None
        rows.append(("inference.py --task greedy (MindSpore) vs transformers' decode (PyTorch)",
                     f"{got!r} vs {expected!r}"))
        if got != expected:
            problems.append(f"inference.py replied {got!r}, transformers decodes {expected!r}")
    if args.inference_log and args.inference_sample_log:
        try:
            first, again = (inference_text(log, "Do Sample") for log in (args.inference_log, args.inference_sample_log))
        except ValueError as exc:
            problems.append(str(exc))
        else:
            rows.append(("inference.py --task do_sample (MindSpore), two processes, the same --seed",
                         f"{first!r} / {again!r}"))
            if first != again:
                problems.append(f"inference.py --task do_sample replied {first!r}, then {again!r} with the same seed")

    print("| check | measured |\n| --- | --- |")
    for what, value in rows:
        print(f"| {what} | {value} |")
    for problem in problems:
        print(f"compare.py: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
