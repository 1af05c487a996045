"""The mm workspace as a user gets it: built from the mirror with ``source auto_convert_mm.sh``, then
Qwen2.5-VL's vision tower on it against PyTorch.

The mirror holds MindSpeed-MM v2.2.0 as a commit without two media files (its README says which),
so the build uses ``workspaces/mm_mirror.yaml``: ``workspaces/mm.yaml`` with that one pin changed,
which the first test checks. The vision tower is transformers' Qwen2.5-VL vision model at a tiny
size (examples/qwen25vl_tiny/vision_tower.py): converted, on MindSpore, in the workspace; unconverted
(the workspace's transformers at its pin) on PyTorch CPU, with the same weights and image.
"""
from __future__ import annotations

import io
import math
import re
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO_ROOT, Result, bash, find_mirror
from tools.workspace.manifest import GitSource, load_manifest
from tools.yamlpath import load as load_yaml

pytestmark = [pytest.mark.slow, pytest.mark.pypi, pytest.mark.mindspore]

MANIFEST = REPO_ROOT / "workspaces" / "mm.yaml"
MIRROR_MANIFEST = REPO_ROOT / "workspaces" / "mm_mirror.yaml"
EXAMPLE = REPO_ROOT / "examples" / "qwen25vl_tiny"
RUNTIME = REPO_ROOT / "tests" / "runtime"
if str(RUNTIME) not in sys.path:
    sys.path.append(str(RUNTIME))   # as tests/runtime/conftest.py does: testbed.reference_python
import testbed  # noqa: E402

MIRROR_COMMIT = "eac13a98aac326a8c1cac07b68dfd17c9eded7b1"   # ../shared/mirror/README.md


def test_mirror_manifest_is_mm_yaml_with_only_the_mindspeed_mm_pin_changed():
    (real, _), (mirror, _) = load_yaml(MANIFEST.read_text(), MANIFEST), load_yaml(MIRROR_MANIFEST.read_text(), MIRROR_MANIFEST)
    real_mm = next(r for r in real["repos"] if r["name"] == "MindSpeed-MM")
    mirror_mm = next(r for r in mirror["repos"] if r["name"] == "MindSpeed-MM")
    assert real_mm["source"]["commit"] == "4c75a551092cf0a510be45277d31e248cd616816"   # v2.2.0
    assert mirror_mm["source"]["commit"] == MIRROR_COMMIT
    for repo in (real_mm, mirror_mm):
        del repo["source"]["commit"], repo["source"]["ref"]
    assert mirror == real
    load_manifest(MIRROR_MANIFEST)   # schema-checked as the driver loads it


@dataclass
class MmWorkspace:
    mirror: Path
    path: Path
    build: Result
    seconds: float

    def source_command(self) -> str:
        return (f"source {REPO_ROOT / 'auto_convert_mm.sh'} --mirror {self.mirror} --manifest {MIRROR_MANIFEST} "
                f"--workspace {self.path} -j 2")


@pytest.fixture(scope="module")
def mm_workspace(tmp_path_factory) -> MmWorkspace:
    try:
        mirror = find_mirror()
        if not (mirror / "MindSpeed-MM.git").is_dir():
            raise ValueError(f"the mirror {mirror} has no MindSpeed-MM.git: set MS_CONVERT_MIRROR to one that has")
    except ValueError as exc:
        pytest.fail(str(exc), pytrace=False)
    root = tmp_path_factory.mktemp("mm")
    ws = MmWorkspace(mirror, root / "ws", Result(0, "", ""), 0.0)
    started = time.monotonic()
    ws.build = bash(f'{ws.source_command()}\necho "SHELL_ALIVE $?"\necho "WS=${{MS_CONVERT_WORKSPACE:-unset}}"',
                    cwd=root, timeout=1800, interactive=True)
    ws.seconds = time.monotonic() - started
    if ws.build.alive != 0 or f"WS={ws.path}" not in ws.build.stdout:
        tail = "\n".join(ws.build.stderr.splitlines()[-40:])
        pytest.fail(f"source auto_convert_mm.sh --mirror {mirror} failed (status {ws.build.alive}):\n{tail}",
                    pytrace=False)
    print(f"\nmm workspace from {mirror}: {ws.seconds:.0f}s", file=sys.stderr)
    return ws


def test_workspace_holds_each_repository_at_its_pin_and_imports_in_the_shell(mm_workspace: MmWorkspace):
    ws = mm_workspace.path
    pins = {r.name: r.source.commit for r in load_manifest(MIRROR_MANIFEST).repos if isinstance(r.source, GitSource)}
    assert set(pins) == {"Megatron-LM", "MindSpeed", "MindSpeed-MM"}
    for name, pin in pins.items():
        base = subprocess.run(["git", "-C", str(ws / name), "merge-base", "--is-ancestor", pin, "HEAD"],
                              capture_output=True, text=True)
        assert base.returncode == 0, f"{name}: the pin {pin} is not an ancestor of its HEAD: {base.stderr}"
        status = subprocess.run(["git", "-C", str(ws / name), "status", "--porcelain"], capture_output=True, text=True)
        assert status.stdout == "", f"{name}: uncommitted changes after the build: {status.stdout}"
    converted = subprocess.run(["git", "-C", str(ws / "MindSpeed-MM"), "log", "-1", "--format=%s"],
                               capture_output=True, text=True).stdout
    assert converted.startswith("ms-workspace: converted"), converted
    probe = bash(f"source {ws / 'set_env.sh'} && python -c \"import mindspeed_mm, transformers, diffusers, accelerate, "
                 f"peft, torchvision.transforms, timm.models.vision_transformer, mindtorch; from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as m; "
                 f"print('OK', mindspeed_mm.__file__, transformers.__version__, m.torch.__name__)\"",
                 cwd=ws, timeout=600)
    assert f"OK {ws / 'MindSpeed-MM' / 'mindspeed_mm' / '__init__.py'} 4.53.0 mindtorch" in probe.stdout, probe


def _pristine_transformers(ws: Path, into: Path) -> Path:
    """The workspace's transformers at its pin (the wheel as PyPI ships it), unconverted."""
    repo = ws / "transformers"
    pin = subprocess.run(["git", "-C", str(repo), "rev-list", "--max-parents=0", "HEAD"], capture_output=True,
                         text=True, check=True).stdout.split()[0]
    archive = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", pin, "transformers"],
                             capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into


def test_vision_tower_on_mindspore_equals_pytorch_on_a_fixed_image(mm_workspace: MmWorkspace, tmp_path):
    """Qwen2.5-VL's vision tower (2 blocks: window then full attention, 2D RoPE, patch merger),
    eager and SDPA attention, within 1e-4 of PyTorch's output relative to its largest value."""
    script, npz = EXAMPLE / "vision_tower.py", tmp_path / "reference.npz"
    src = _pristine_transformers(mm_workspace.path, tmp_path / "transformers-pin")
    started = time.monotonic()
    ref = subprocess.run([str(testbed.reference_python()), str(script), "reference", str(npz)],
                         env=testbed._clean_env({"PYTHONPATH": str(src)}), capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, (f"the PyTorch side ({testbed.reference_python()}) failed; it needs transformers' own "
                                 f"dependencies (tools/setup_env.sh --reference):\n{ref.stderr[-3000:]}")
    seconds = {"pytorch": time.monotonic() - started}
    for attn in ("eager", "sdpa"):
        started = time.monotonic()
        ms = bash(f"source {mm_workspace.path / 'set_env.sh'} && python {script} compare {npz} --attn {attn}",
                  cwd=tmp_path, timeout=600)
        seconds[attn] = time.monotonic() - started
        assert ms.returncode == 0, ms
        line = ms.stdout.strip().splitlines()[-1]
        assert line.startswith("compare: processed image max rel 0.000e+00") and line.endswith("EQUAL"), line
        print(f"\n{line}", file=sys.stderr)
    print(f"vision tower: {', '.join(f'{k} {v:.0f}s' for k, v in seconds.items())}", file=sys.stderr)


# Patch 0022's behaviours, the same code on PyTorch 2.13 and on the workspace's mindtorch: each
# failed (ImportError / AttributeError / "Unsupported data type" on the bf16 kernels) before it.
_PATCH_0022_CASES = r'''
import json, sys
try:
    import torch
except ImportError:
    import mindtorch as torch
import torch.futures, torch.autograd.graph
from torch.utils.checkpoint import checkpoint_sequential
from torch.distributed.fsdp import StateDictType, ShardingStrategy, BackwardPrefetch, MixedPrecision
from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy, lambda_auto_wrap_policy
out = {}
f = torch.futures.Future()
chained = f.then(lambda fut: fut.wait() * 2)
f.set_result(21)
out["future"] = [f.done(), f.value(), chained.wait()]
g = torch.futures.Future(); g.set_exception(ValueError("boom"))
try:
    g.wait(); out["error"] = None
except ValueError as exc:
    out["error"] = str(exc)
a, b = torch.futures.Future(), torch.futures.Future(); a.set_result(1); b.set_result(2)
out["wait_all"] = torch.futures.wait_all([a, b])
torch.manual_seed(0)
seq = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2), torch.nn.Tanh())
x = torch.arange(8, dtype=torch.float32).reshape(2, 4) / 8
out["sequential_equal"] = bool(torch.equal(checkpoint_sequential(seq, 2, x, use_reentrant=False), seq(x)))
with torch.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t):
    y = (x * x).sum()
out["hooks_value"] = float(y)
out["fsdp"] = [StateDictType.FULL_STATE_DICT.name, ShardingStrategy.FULL_SHARD.name, BackwardPrefetch.BACKWARD_PRE.name,
               MixedPrecision().param_dtype is None,
               transformer_auto_wrap_policy(seq[0], False, 0, {torch.nn.Linear}),
               transformer_auto_wrap_policy(seq[1], False, 0, {torch.nn.Linear}),
               lambda_auto_wrap_policy(seq[1], True, 0, lambda m: False)]
m = torch.tensor([[-1.5, 0.0, 2.25], [3.0, -0.0, 0.5]], dtype=torch.bfloat16)
out["bf16_eq"] = (m == 0).tolist()
out["bf16_lt"] = (m < 0).tolist()
out["bf16_ge"] = (m >= 0.5).tolist()
out["bf16_triu"] = torch.triu(m, diagonal=1).float().tolist()
out["bf16_masked_fill"] = m.masked_fill(m < 0, torch.finfo(torch.bfloat16).min).float().tolist()
out["bf16_triu_dtype"] = str(torch.triu(m).dtype).split(".")[-1]
print("CASES " + json.dumps(out))
'''


def _cases(result: subprocess.CompletedProcess | Result) -> dict:
    import json

    lines = [line for line in result.stdout.splitlines() if line.startswith("CASES ")]
    assert lines, result
    return json.loads(lines[-1][len("CASES "):])


def test_patch_0022_behaves_as_pytorch(mm_workspace: MmWorkspace, tmp_path):
    script = tmp_path / "cases.py"
    script.write_text(_PATCH_0022_CASES)
    ref = subprocess.run([str(testbed.reference_python()), str(script)], env=testbed._clean_env({}),
                         capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr[-3000:]
    ms = bash(f"source {mm_workspace.path / 'set_env.sh'} && python {script}", cwd=tmp_path, timeout=600)
    assert ms.returncode == 0, ms
    want, got = _cases(ref), _cases(ms)
    assert want["future"] == [True, 21, 42] and want["error"] == "boom"
    assert got == want


# Fine-tuning through MindSpeed-MM's own entry points as each example's README says: 20 steps that save
# a checkpoint, then a resume in a new shell for steps 21-25 of the same schedule; and the same 25
# steps in one sitting, which the two sittings must reproduce. Qwen2.5-VL (pretrain_vlm.py) and
# InternVL2 (pretrain_internvl.py): the two MindSpeed-MM families upstream runs on MindSpore here.
FINETUNE_LAUNCHERS = {
    "qwen25vl": EXAMPLE / "finetune_qwen25vl_tiny.sh",
    "internvl2": REPO_ROOT / "examples" / "internvl2_tiny" / "finetune_internvl2_tiny.sh",
}
_ITERATION = re.compile(r"iteration\s+(\d+)/\s*\d+ \|.*?\| loss: (\S+) \|.*?\| grad norm: (\S+) \|")


def _steps(log: Path) -> dict[int, tuple[float, float]]:
    """{step: (loss, grad norm)} from MindSpeed-MM's iteration lines."""
    return {int(m.group(1)): (float(m.group(2)), float(m.group(3)))
            for m in _ITERATION.finditer(log.read_text(errors="replace"))}


@dataclass
class FinetuneRuns:
    two_sittings: Path
    one_sitting: Path
    seconds: dict[str, float]


@pytest.fixture(scope="module", params=sorted(FINETUNE_LAUNCHERS))
def finetune_runs(request, mm_workspace: MmWorkspace, tmp_path_factory) -> FinetuneRuns:
    root = tmp_path_factory.mktemp(request.param)
    runs = FinetuneRuns(root / "two", root / "one", {})
    for name, work, env in (("steps 1-20", runs.two_sittings, {}), ("resume 21-25", runs.two_sittings, {"RESUME": "1"}),
                            ("steps 1-25", runs.one_sitting, {"TRAIN_ITERS": "25", "RESUME_ITERS": "0"})):
        started = time.monotonic()
        result = bash(f"source {mm_workspace.path / 'set_env.sh'} && bash {FINETUNE_LAUNCHERS[request.param]}",
                      cwd=root, timeout=1200, WORK=str(work), **env)
        runs.seconds[name] = time.monotonic() - started
        assert result.returncode == 0, f"{request.param} {name}: {result.stdout[-4000:]}\n{result.stderr[-3000:]}"
    print(f"\n{request.param}: {', '.join(f'{k} {v:.0f}s' for k, v in runs.seconds.items())}", file=sys.stderr)
    return runs


def test_finetunes_20_steps_with_finite_falling_losses_and_saves(finetune_runs: FinetuneRuns):
    steps = _steps(finetune_runs.two_sittings / "logs" / "train.log")
    assert sorted(steps) == list(range(1, 21))
    losses = [steps[s][0] for s in sorted(steps)]
    assert all(math.isfinite(v) for v in losses) and all(math.isfinite(g) and g > 0 for _, g in steps.values())
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 1.0, losses   # recorded: 2.18 (Qwen2.5-VL), 2.22 (InternVL2)
    train_log = (finetune_runs.two_sittings / "logs" / "train.log").read_text(errors="replace")
    assert re.search(r"successfully saved checkpoint from iteration\s+20 ", train_log), train_log[-2000:]
    assert (finetune_runs.two_sittings / "ckpt" / "iter_0000020" / "mp_rank_00" / "model_optim_rng.pt").is_file()


def test_resume_continues_as_one_sitting_would(finetune_runs: FinetuneRuns):
    """The resume loads the model, the optimizer's state, the schedule and the data position: its steps
    21-25 are the one-sitting run's, and the first sitting's steps 1-20 are too (the CPU kernels and
    the seeded draws are repeatable: patches 0017, 0024, 0026)."""
    resume_log = finetune_runs.two_sittings / "logs" / "resume.log"
    assert "successfully loaded checkpoint" in resume_log.read_text(errors="replace")
    two = {**_steps(finetune_runs.two_sittings / "logs" / "train.log"), **_steps(resume_log)}
    one = _steps(finetune_runs.one_sitting / "logs" / "train.log")
    assert sorted(two) == sorted(one) == list(range(1, 26))
    for step in range(1, 26):
        assert two[step] == pytest.approx(one[step], rel=1e-5), f"step {step}: {two[step]} vs {one[step]}"
