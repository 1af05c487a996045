"""examples/families: upstream MindSpeed-LLM example scripts run at a tiny size from families.yaml.

Fast tests (no MindSpore): the launch line of an upstream script is what bash expands; every run of
families.yaml edits its pinned upstream script exactly as written (read from the mirror, so an
upstream change that moves a flag fails here); a broken family file is one line naming file and line.

The slow test builds the llm workspace (tests/e2e's fixture: `source auto_convert_llm.sh` from the
mirror) and trains a subset in it: three families (qwen3: dense GQA, qk-norm, tied embeddings;
qwen25: QKV biases; mixtral: MoE with aux-loss routing) and LoRA fine-tuning from qwen3's checkpoint
on sharegpt-style data, each for STEPS steps, two runs at a time (the data too); every loss finite, the last below
the first; then that LoRA run merged into a Hugging Face model by upstream's converter (lora_to_hf.py), whose
logits on PyTorch equal the LoRA model's on MindSpore. The full table (every family, 10 steps) is printed by
`python examples/families/run_family.py table --run` (docs/model_families.md).
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tarfile
import io
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO_ROOT, LlmWorkspace, find_mirror, git_pins

FAMILIES = REPO_ROOT / "examples" / "families"
if str(FAMILIES) not in sys.path:
    sys.path.insert(0, str(FAMILIES))
import families  # noqa: E402
RUNTIME = REPO_ROOT / "tests" / "runtime"
if str(RUNTIME) not in sys.path:
    sys.path.append(str(RUNTIME))   # as tests/runtime/conftest.py does
import testbed  # noqa: E402  (reference_python: the PyTorch reference environment)
from upstream_flags import Flags, ScriptError, launch_argv  # noqa: E402

STEPS = 3          # per run in the slow test, LoRA included: 2 warm-up steps, then the decayed rate
SUBSET = ("qwen3", "qwen25", "mixtral", "sft_lora")


def test_launch_argv_is_what_bash_expands(tmp_path):
    script = tmp_path / "pretrain_x_ms.sh"
    script.write_text(
        '#!/bin/bash\nsource /usr/local/Ascend/ascend-toolkit/set_env.sh\nexport CUDA_DEVICE_MAX_CONNECTIONS=1\n'
        'NPUS_PER_NODE=8\nNNODES=2\nWORLD_SIZE=$(($NPUS_PER_NODE*$NNODES))\nTP=4\nTOKENIZER="your tokenizer path"\n'
        'DISTRIBUTED_ARGS="\n    --worker_num $WORLD_SIZE \\\n    --log_dir=msrun_log\n"\n'
        'GPT_ARGS="\n    --tensor-model-parallel-size ${TP} \\\n    --spec a.b layer_spec \\\n'
        '    --moe-layer-freq -1 \\\n    --tokenizer-name-or-path ${TOKENIZER} \\\n    --bf16\n"\n'
        'mkdir logs\nmsrun $DISTRIBUTED_ARGS pretrain_gpt.py \\\n    $GPT_ARGS \\\n    --seq-length 4096 \\\n'
        '    | tee logs/x.log\n')
    entry, argv = launch_argv(script)
    assert entry == "pretrain_gpt.py"
    assert argv == ["--tensor-model-parallel-size", "4", "--spec", "a.b", "layer_spec", "--moe-layer-freq", "-1",
                    "--tokenizer-name-or-path", "your", "tokenizer", "path", "--bf16", "--seq-length", "4096"]
    assert not (tmp_path / "logs").exists()
    flags = Flags.parse(argv)
    assert flags.get("--spec") == ["a.b", "layer_spec"] and flags.get("--bf16") == []
    flags.set("--tokenizer-name-or-path", ["/tok"])
    flags.drop("--bf16")
    flags.set("--num-layers", ["2"])
    assert flags.argv() == ["--tensor-model-parallel-size", "4", "--spec", "a.b", "layer_spec", "--moe-layer-freq",
                            "-1", "--tokenizer-name-or-path", "/tok", "--seq-length", "4096", "--num-layers", "2"]

    two = tmp_path / "two.sh"
    two.write_text("python a.py --x 1\npython b.py --y 2\n")
    with pytest.raises(ScriptError, match="launches 2 commands"):
        launch_argv(two)


@pytest.fixture(scope="module")
def upstream_examples(tmp_path_factory) -> Path:
    """MindSpeed-LLM's examples/mindspore at the pinned commit, from the mirror (no conversion needed:
    the scripts are shell, which conversion leaves alone)."""
    mirror = find_mirror()
    root = tmp_path_factory.mktemp("upstream")
    archive = subprocess.run(["git", "--git-dir", str(mirror / "MindSpeed-LLM.git"), "archive", "--format=tar",
                              git_pins()["MindSpeed-LLM"], "examples/mindspore"], capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(root, filter="data")
    return root


def test_every_run_edits_its_pinned_upstream_script_as_written(upstream_examples: Path):
    family_file = families.load()
    kinds = {run.kind for run in family_file.runs.values()}
    assert kinds == {"family", "data", "finetune", "merge"}
    assert sum(run.kind == "family" for run in family_file.runs.values()) >= 8
    for name, run in family_file.runs.items():
        entry, argv = launch_argv(upstream_examples / run.script)
        upstream = Flags.parse(argv)
        edited = family_file.edit(run, upstream)   # raises on a set/drop of a flag upstream lacks, an add it has
        for flag, values in {**run.set, **run.add}.items():
            assert edited.get(flag) == values, (name, flag)
        for flag in run.drop:
            assert flag not in edited, (name, flag)
        if run.kind in ("family", "finetune"):
            assert entry in ("pretrain_gpt.py", "posttrain_gpt.py"), (name, entry)
            # one process, fp32, the tiny schedule: whatever upstream had
            for flag in ("--bf16", "--fp16", "--sequence-parallel", "--use-distributed-optimizer"):
                assert flag not in edited, (name, flag)
            assert edited.get("--tensor-model-parallel-size") == ["1"], name
            assert edited.get("--train-iters") == ["10"], name
            assert int(edited.get("--num-layers")[0]) <= 4, name


def test_a_broken_family_file_is_one_line_naming_file_and_line(tmp_path, upstream_examples: Path):
    text = families.FAMILY_FILE.read_text()
    bad = tmp_path / "families.yaml"
    bad.write_text(text.replace("    kind: family\n", "    kind: famly\n", 1))
    with pytest.raises(families.FamilyError) as err:
        families.load(bad)
    assert str(err.value).startswith(f"{bad}:") and "\n" not in str(err.value) and "famly" in str(err.value)

    assert "      --sliding-window: 32\n" in text
    bad.write_text(text.replace("      --sliding-window: 32\n", "      --sliding-windw: 32\n", 1))
    family_file = families.load(bad)
    run = next(r for r in family_file.runs.values() if "--sliding-windw" in r.set)
    _entry, argv = launch_argv(upstream_examples / run.script)
    with pytest.raises(families.FamilyError, match=rf"^{bad}:{run.line}: run {run.name} sets --sliding-windw, which "):
        family_file.edit(run, Flags.parse(argv))


# What instruction fine-tuning calls that mindtorch lacked (patch 0021), run on mindtorch and PyTorch:
# typed constructors on torch.cuda (PyTorch CPU has no CUDA: its CPU classes give the expected dtype),
# masked_fill with Python numbers on every dtype, torch.tensor of a list of numpy arrays.
_SFT_OPS = r"""
import json, sys
import numpy as np
if sys.argv[1] == "mindtorch":
    import mindtorch as torch
    typed = torch.cuda
else:
    import torch
    typed = torch
out = {}
for cls in ("LongTensor", "IntTensor", "BoolTensor", "ByteTensor"):
    t = getattr(typed, cls)([1, 0])
    out[cls] = [str(t.dtype).split(".")[-1], t.tolist()]
mask = torch.tensor([[True, False, True], [False, False, True]])
for name in ("bool", "uint8", "int8", "int16", "int32", "int64", "float32", "float64"):
    dtype = getattr(torch, name)
    for value in (0, True, 3, 2.5):
        filled = torch.ones(2, 3, dtype=dtype).masked_fill(mask, value)
        inplace = torch.ones(2, 3, dtype=dtype)
        inplace.masked_fill_(mask, value=value)
        out[f"masked_fill {name} {value!r}"] = [str(filled.dtype).split(".")[-1], filled.tolist(), inplace.tolist()]
labels = torch.tensor([np.array([1, 2, -100]), np.array([3, 4, 5])], dtype=torch.int64)
out["tensor(list of arrays)"] = [str(labels.dtype).split(".")[-1], labels.tolist()]
print("SFT_OPS " + json.dumps(out))
"""


def _sft_ops(python: list[str], env: dict[str, str], which: str) -> dict:
    proc = subprocess.run([*python, "-c", _SFT_OPS, which], env=env, capture_output=True, text=True, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("SFT_OPS ")]
    assert lines, proc.stdout[-2000:] + proc.stderr[-3000:]
    return json.loads(lines[-1][len("SFT_OPS "):])


def _workspace_env(ws: Path, **extra: str) -> dict[str, str]:
    """The workspace's environment as its set_env.sh makes it: its trees on PYTHONPATH and this
    interpreter's bin first on PATH (Megatron compiles its dataset helpers with `python3 -m pybind11`
    when a run first builds its data: that must be this environment's python3, also when the tests
    run as `.venv/bin/python -m pytest` from a shell without the venv on PATH)."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(str(ws / p) for p in (
        "mindtorch", "Megatron-LM", "MindSpeed", "MindSpeed-LLM", "transformers", "accelerate", "peft")),
                PATH=os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", ""))), **extra)


@pytest.mark.slow
@pytest.mark.mindspore
def test_what_instruction_finetuning_calls_matches_pytorch(llm_workspace: LlmWorkspace):
    ms = _sft_ops([sys.executable], _workspace_env(llm_workspace.path), "mindtorch")
    pt = _sft_ops([str(testbed.reference_python())],
                  {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "torch")
    assert ms.keys() == pt.keys()
    differ = {k: (ms[k], pt[k]) for k in ms if ms[k] != pt[k]}
    assert not differ, differ


@pytest.mark.slow
@pytest.mark.mindspore
def test_tiny_families_and_lora_train_with_falling_losses(llm_workspace: LlmWorkspace, tmp_path):
    """Three families and LoRA at STEPS steps in the converted workspace, two processes at a time."""
    work = tmp_path / "work"
    env = _workspace_env(llm_workspace.path)
    runner = [sys.executable, str(FAMILIES / "run_family.py"), "--work", str(work),
              "--workspace", str(llm_workspace.path), "--train-iters", str(STEPS), "run"]

    def start(names: tuple[str, ...], port: int) -> subprocess.Popen:
        return subprocess.Popen([*runner, *names], env=dict(env, MASTER_PORT=str(port)), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    started = time.monotonic()
    # the tokenizers, then the data the lanes need (text, sharegpt), both at once, then the lanes
    import run_family
    run_family.Runner(families.load(), llm_workspace.path, work).prepare_tokenizers()
    preps = [start(("text",), 6101), start(("sharegpt",), 6102)]
    for prep in preps:
        out = prep.communicate(timeout=900)[0]
        assert prep.returncode == 0, out
    lanes = [start(("qwen3", "sft_lora"), 6101), start(("qwen25", "mixtral"), 6102)]
    outputs = [lane.communicate(timeout=1800)[0] for lane in lanes]
    seconds = time.monotonic() - started
    print(f"\nexamples/families subset {SUBSET} at {STEPS} steps: {seconds:.0f} s wall\n" + "".join(outputs),
          file=sys.stderr)
    for name in SUBSET:
        result = json.loads((work / "runs" / name / "result.json").read_text())
        losses = result["losses"]
        assert result["status"] == "runs", (name, result["status"])
        assert len(losses) == STEPS and all(math.isfinite(v) for v in losses), (name, losses)
        assert losses[-1] < losses[0], (name, losses)
    # LoRA trained only the adapters (peft's count in the log) and saved its checkpoint
    log = (work / "runs" / "sft_lora" / "log.txt").read_text(errors="replace")
    assert "trainable params: 26,624 || all params: 388,352" in log
    saved = list((work / "runs" / "sft_lora" / "ckpt").rglob("model_optim_rng.pt"))
    assert saved, "sft_lora saved no checkpoint"

    # LoRA to Hugging Face (docs/finetune.md): the lora_merge_hf run merges base + LoRA with upstream's
    # converter into safetensors; transformers' logits on PyTorch equal the LoRA model's on MindSpore
    started = time.monotonic()
    proc = subprocess.run([sys.executable, str(FAMILIES / "lora_to_hf.py"), "--work", str(work), "--workspace",
                           str(llm_workspace.path), "--train-iters", str(STEPS),
                           "--reference-python", str(testbed.reference_python())],
                          env=dict(env, MASTER_PORT="6103"), capture_output=True, text=True, timeout=1800)
    print(f"\nlora_to_hf.py: {time.monotonic() - started:.0f} s wall\n{proc.stdout}", file=sys.stderr)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    merged = json.loads((work / "runs" / "lora_merge_hf" / "lora_to_hf.json").read_text())
    assert merged["text_ids_equal"] and merged["logits_shape"][1] == 516
    assert merged["max_abs_diff_lora_mindspore_vs_merged_pytorch"] <= 1e-4 * merged["max_abs_logit"]
    assert merged["max_abs_diff_lora_vs_base_mindspore"] > 1e-2 * merged["max_abs_logit"]   # the adapters matter
    assert merged["greedy_mindspore_lora"] == merged["greedy_pytorch_merged"]
