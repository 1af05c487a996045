"""LoRA fine-tuning to a Hugging Face model: merge, convert, and check the logits on PyTorch.

The `lora_merge_hf` run of families.yaml is upstream's ckpt_convert_qwen3_mcore2hf.sh with its
`--lora-load` merge flags: MindSpeed-LLM's convert_ckpt.py loads the qwen3 base checkpoint and the
sft_lora run's LoRA weights, merges them (peft's merge_and_unload) and saves Hugging Face safetensors.
Its saver reads the config.json of an HF model in the save folder, so this script first writes one
there: examples/hf_roundtrip_tiny/make_hf_model.py with `qwen3_tiny_hf_config.json` (the qwen3 run's
sizes; the random weights it writes are only a template, the converter writes `hf/mg2hf/`). Then:

- MindSpore: examples/hf_roundtrip_tiny/megatron_side.py (converted like a user script) builds the
  Megatron model as the sft_lora run trained it — its own flags, `--load` the base, `--lora-load` its
  LoRA checkpoint — and writes the logits of a sentence and 16 greedy tokens; once more without
  `--lora-load` (the base model: adapters at lora_B = 0), so a merge that dropped the LoRA weights fails;
- PyTorch: examples/hf_roundtrip_tiny/hf_side.py, unconverted transformers on the merged HF model;
- the check: max |logit MindSpore LoRA - logit PyTorch merged| <= --rtol * max |logit|, same greedy
  tokens, and the LoRA model's logits differ from the base model's by more than 100 x that bound.

The sft_lora flags lose `--save` and `--prompt-type` (with a prompt type MindSpeed-LLM's generate
wraps the prompt in the chat template, and upstream's qwen3 ReasoningTemplate then fails:
`TypeError: ReasoningTemplate._encode() takes 5 positional arguments but 7 were given`; the PyTorch
side takes the prompt as plain text too).

Run it in the workspace (`source <workspace>/set_env.sh`), after or without run_family.py (it runs
qwen3 and sft_lora first when WORK has no current result for them):

    python examples/families/lora_to_hf.py --work WORK [--train-iters N] [--reference-python PY]

Writes WORK/runs/lora_merge_hf/lora_to_hf.json with the numbers; exit 0 when every check holds.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parents[1]
ROUNDTRIP = CHECKOUT / "examples" / "hf_roundtrip_tiny"
CONFIG = HERE / "qwen3_tiny_hf_config.json"
TEXT = "The river carried the old boat past the mill, and the children ran along the bank."
PROMPT = "how are you?"
RTOL = 1e-4
sys.path.insert(0, str(HERE))

from run_family import Runner  # noqa: E402  (first: it puts the checkout before the workspace's tools/)
from families import load  # noqa: E402

sys.path.append(str(ROUNDTRIP))
import make_hf_model  # noqa: E402


def without(argv: list[str], flags: tuple[str, ...]) -> list[str]:
    """argv without each flag of `flags` and its value words."""
    out, skip = [], False
    for word in argv:
        if word.startswith("--"):
            skip = word in flags
        if not skip:
            out.append(word)
    return out


def ensure(runner: Runner, name: str) -> None:
    previous = runner.result(name)
    if previous is None or not previous.ok or not runner.current(previous):
        result = runner.run(name)
        if not result.ok:
            raise SystemExit(f"lora_to_hf.py: run {name} {result.status} (log {runner.folder(name) / 'log.txt'})")


def megatron_side(runner: Runner, converted: Path, out: Path, extra: list[str], log: Path) -> None:
    _, argv = runner.command("sft_lora")
    argv = without(argv, ("--save", "--prompt-type"))
    env = dict(os.environ, CUDA_DEVICE_MAX_CONNECTIONS="1", GLOG_v=os.environ.get("GLOG_v", "3"),
               MASTER_ADDR="localhost", MASTER_PORT=os.environ.get("MASTER_PORT", "6000"), RANK="0",
               LOCAL_RANK="0", WORLD_SIZE="1")
    with log.open("w") as f:
        proc = subprocess.run([runner.python, str(converted / "megatron_side.py"), "--out", str(out), "--text", TEXT,
                               "--prompt", PROMPT, *argv, *extra, "--max-new-tokens", "16", "--seed", "42"],
                              cwd=runner.llm, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"lora_to_hf.py: megatron_side.py failed ({log})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("families_run"))
    parser.add_argument("--workspace", type=Path, default=os.environ.get("MS_CONVERT_WORKSPACE"))
    parser.add_argument("--train-iters", type=int, default=None)
    parser.add_argument("--reference-python", default=os.environ.get(
        "REFERENCE_PYTHON", str(CHECKOUT / ".venv-torch" / "bin" / "python")))
    parser.add_argument("--rtol", type=float, default=RTOL)
    args = parser.parse_args(argv)
    if args.workspace is None:
        print("lora_to_hf.py: run 'source <workspace>/set_env.sh' first, or pass --workspace", file=sys.stderr)
        return 2
    runner = Runner(load(), args.workspace, args.work, train_iters=args.train_iters)
    for name in ("qwen3", "sft_lora"):
        ensure(runner, name)
    runner.prepare_tokenizers()
    folder = runner.folder("lora_merge_hf")
    shutil.rmtree(folder / "hf", ignore_errors=True)
    make_hf_model.write(folder / "hf", runner.work / "chat_tokenizer", CONFIG, 1234, 0.1)
    merge = runner.run("lora_merge_hf", done={"qwen3", "sft_lora"})
    if not merge.ok:
        print(f"lora_to_hf.py: lora_merge_hf {merge.status} (log {folder / 'log.txt'})", file=sys.stderr)
        return 1
    merged = folder / "hf" / "mg2hf"
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(folder / "hf" / name, merged / name)

    converted = folder / "converted"
    shutil.rmtree(converted, ignore_errors=True)
    subprocess.run([runner.python, "-m", "tools.convert", "convert", str(ROUNDTRIP), "-o", str(converted), "-q"],
                   cwd=CHECKOUT, check=True)
    lora_ckpt = runner.folder("sft_lora") / "ckpt"
    megatron_side(runner, converted, folder / "mg_lora", ["--lora-load", str(lora_ckpt)], folder / "megatron_lora.log")
    megatron_side(runner, converted, folder / "mg_base", [], folder / "megatron_base.log")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    with (folder / "hf_side.log").open("w") as f:
        proc = subprocess.run([args.reference_python, str(ROUNDTRIP / "hf_side.py"), str(merged), "--out",
                               str(folder / "hf_merged"), "--text", TEXT, "--prompt", PROMPT, "--max-new-tokens", "16"],
                              env=env, stdout=f, stderr=subprocess.STDOUT, timeout=900)
    if proc.returncode != 0:
        print(f"lora_to_hf.py: hf_side.py failed ({folder / 'hf_side.log'})", file=sys.stderr)
        return 1

    def side(name: str) -> tuple[dict, np.ndarray]:
        return json.loads((folder / f"{name}.json").read_text()), np.load(folder / f"{name}.npy").astype(np.float64)

    (mg, mg_logits), (base, base_logits), (hf, hf_logits) = side("mg_lora"), side("mg_base"), side("hf_merged")
    scale = float(np.abs(hf_logits).max())
    result = {
        "text_ids_equal": mg["text_ids"] == hf["text_ids"],
        "logits_shape": list(hf_logits.shape),
        "max_abs_diff_lora_mindspore_vs_merged_pytorch": float(np.abs(mg_logits - hf_logits).max()),
        "max_abs_logit": scale,
        "max_abs_diff_lora_vs_base_mindspore": float(np.abs(mg_logits - base_logits).max()),
        "greedy_mindspore_lora": mg["generated"], "greedy_pytorch_merged": hf["generated"],
        "greedy_mindspore_base": base["generated"],
        "merge_seconds": merge.seconds,
    }
    problems = []
    if not result["text_ids_equal"] or mg_logits.shape != hf_logits.shape:
        problems.append(f"the sides tokenized differently or gave other shapes: {mg_logits.shape} vs {hf_logits.shape}")
    elif not result["max_abs_diff_lora_mindspore_vs_merged_pytorch"] <= args.rtol * scale:
        problems.append(f"logits differ by {result['max_abs_diff_lora_mindspore_vs_merged_pytorch']:.3e}, "
                        f"more than {args.rtol:g} x {scale:.3f}")
    if not result["max_abs_diff_lora_vs_base_mindspore"] > 100 * args.rtol * scale:
        problems.append(f"the LoRA model's logits are within {result['max_abs_diff_lora_vs_base_mindspore']:.3e} of the "
                        "base model's: the adapters do not matter, so the check proves nothing")
    if mg["generated"] != hf["generated"]:
        problems.append(f"greedy tokens differ: {mg['generated']} (MindSpore LoRA) vs {hf['generated']} (PyTorch merged)")
    result["problems"] = problems
    (folder / "lora_to_hf.json").write_text(json.dumps(result, indent=1) + "\n")
    rel = result["max_abs_diff_lora_mindspore_vs_merged_pytorch"] / scale
    print("| check | measured |\n| --- | --- |")
    print(f"| merged HF (PyTorch) vs LoRA model (MindSpore): max abs logit difference / max abs logit "
          f"({hf_logits.shape[0]} tokens x {hf_logits.shape[1]}) | {rel:.2e} "
          f"({result['max_abs_diff_lora_mindspore_vs_merged_pytorch']:.2e} / {scale:.3f}) |")
    print(f"| LoRA vs base model (MindSpore): max abs logit difference | "
          f"{result['max_abs_diff_lora_vs_base_mindspore']:.3e} |")
    print(f"| greedy tokens: MindSpore LoRA / PyTorch merged / MindSpore base | {mg['generated']} / "
          f"{hf['generated']} / {base['generated']} |")
    for problem in problems:
        print(f"lora_to_hf.py: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
