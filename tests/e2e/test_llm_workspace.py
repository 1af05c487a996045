"""The llm workspace as a user gets it: built from the pinned Megatron-LM, MindSpeed and MindSpeed-LLM
(the mirror) with ``source auto_convert_llm.sh``, on nothing but what the project's own setup
installed (tools/setup_env.sh); then R1 on it, and examples/deepseek3_tiny as its README runs it:
20 steps, then ``RESUME=1`` for steps 21-25, with the losses of the recorded run
(examples/deepseek3_tiny/recorded_losses.tsv, shown in docs/deepseek3_tiny.md).
"""
from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO_ROOT, LlmWorkspace, Result, bash, find_mirror, git_pins, iteration_steps

pytestmark = [pytest.mark.slow, pytest.mark.pypi, pytest.mark.mindspore]

EXAMPLE = REPO_ROOT / "examples" / "deepseek3_tiny"
RUNTIME = REPO_ROOT / "tests" / "runtime"
if str(RUNTIME) not in sys.path:
    sys.path.append(str(RUNTIME))   # as tests/runtime/conftest.py does: testbed, whose check_megatron_imports is R1
import testbed  # noqa: E402


def test_a_missing_mirror_fails_in_one_line_saying_how_to_point_at_one(tmp_path):
    with pytest.raises(ValueError) as missing:
        find_mirror({"MS_CONVERT_MIRROR": str(tmp_path / "nowhere")})
    message = str(missing.value)
    assert "\n" not in message
    assert f"$MS_CONVERT_MIRROR={tmp_path / 'nowhere'}" in message
    assert "set MS_CONVERT_MIRROR to a folder holding Megatron-LM.git, MindSpeed.git, MindSpeed-LLM.git" in message
    # ../shared/mirror beside the checkout, holding one of the three repositories
    (tmp_path / "shared" / "mirror" / "Megatron-LM.git").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"/shared/mirror \(\.\./shared/mirror beside the checkout\) "
                                         r"\(missing MindSpeed\.git, MindSpeed-LLM\.git\)"):
        find_mirror({}, checkout=tmp_path / "checkout")
    for name in ("MindSpeed.git", "MindSpeed-LLM.git"):
        (tmp_path / "shared" / "mirror" / name).mkdir()
    assert find_mirror({}, checkout=tmp_path / "checkout") == tmp_path / "shared" / "mirror"


def test_workspace_holds_each_repository_at_its_pin_and_loads_into_the_shell(llm_workspace: LlmWorkspace):
    ws = llm_workspace.path
    for name, pin in git_pins().items():
        repo = ws / name
        base = subprocess.run(["git", "-C", str(repo), "merge-base", "--is-ancestor", pin, "HEAD"],
                              capture_output=True, text=True)
        assert base.returncode == 0, f"{name}: the pin {pin} is not an ancestor of its HEAD: {base.stderr}"
        status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain"], capture_output=True, text=True)
        assert status.stdout == "", f"{name}: uncommitted changes after the build: {status.stdout}"
    # The converted stack imports from the user's shell: MindSpeed-LLM's MindSpore adaptor included.
    probe = bash(f"source {ws / 'set_env.sh'} && python -c \"import megatron.core, mindspeed, mindspeed_llm, "
                 f"transformers, accelerate, peft, mindtorch; print('OK', megatron.core.__file__)\"",
                 cwd=ws, timeout=600)
    assert f"OK {ws / 'Megatron-LM'}" in probe.stdout, probe


def test_r1_every_megatron_core_module_that_imports_on_pytorch_imports_here(llm_workspace: LlmWorkspace,
                                                                          tmp_path_factory):
    """tests/runtime's R1 check (tests/runtime/import_all.py on both sides), on this workspace: the
    MindSpore side is its converted Megatron-LM, the PyTorch side the same pin unconverted."""
    ws = llm_workspace.path
    pin = git_pins()["Megatron-LM"]
    reference_src = tmp_path_factory.mktemp("megatron-pin")
    archive = subprocess.run(["git", "-C", str(ws / "Megatron-LM"), "archive", "--format=tar", pin, "megatron"],
                             capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(reference_src, filter="data")
    bed = testbed.Testbed(workspace=ws, megatron_src=reference_src, reference_python=testbed.reference_python())
    started = time.monotonic()
    bed.check_megatron_imports()
    print(f"\nR1 on the llm workspace: {time.monotonic() - started:.0f}s", file=sys.stderr)


@dataclass
class Run:
    work: Path
    train: Result
    resume: Result
    latest_after_train: str
    seconds: dict[str, float]


@pytest.fixture(scope="module")
def deepseek_run(llm_workspace: LlmWorkspace, tmp_path_factory) -> Run:
    """The README's commands: the first in the shell that sources auto_convert_llm.sh (again: finished
    work is skipped), the resume after `source <workspace>/set_env.sh` (a new shell)."""
    work = tmp_path_factory.mktemp("deepseek3_tiny") / "run"
    seconds = {}
    started = time.monotonic()
    train = bash(f"{llm_workspace.source_command()} || exit 90\n"
                 f"bash examples/deepseek3_tiny/pretrain_deepseek3_tiny.sh", cwd=REPO_ROOT, timeout=3600,
                 interactive=True, WORK=str(work))
    seconds["train"] = time.monotonic() - started
    latest = work / "ckpt" / "latest_checkpointed_iteration.txt"
    latest_after_train = latest.read_text().strip() if latest.is_file() else ""
    started = time.monotonic()
    resume = bash(f"source {llm_workspace.path / 'set_env.sh'} && bash examples/deepseek3_tiny/pretrain_deepseek3_tiny.sh",
                  cwd=REPO_ROOT, timeout=1800, WORK=str(work), RESUME="1")
    seconds["resume"] = time.monotonic() - started
    print(f"\ndeepseek3_tiny: steps 1-20 {seconds['train']:.0f}s, resume 21-25 {seconds['resume']:.0f}s",
          file=sys.stderr)
    return Run(work, train, resume, latest_after_train, seconds)


def _tail(result: Result, lines: int = 40) -> str:
    return "\n".join((result.stdout + result.stderr).splitlines()[-lines:])


def test_deepseek3_tiny_trains_20_steps_and_saves_a_checkpoint(deepseek_run: Run, llm_workspace: LlmWorkspace):
    assert deepseek_run.train.returncode == 0, _tail(deepseek_run.train)
    log = deepseek_run.work / "logs" / "train.log"
    assert iteration_steps(log) == list(range(1, 21))
    assert deepseek_run.latest_after_train == "20"
    assert (deepseek_run.work / "ckpt" / "iter_0000020").is_dir()
    # Megatron compiled its dataset helpers in the workspace with what the setup installed.
    assert list((llm_workspace.path / "Megatron-LM" / "megatron" / "core" / "datasets").glob("helpers_cpp*.so"))


def test_deepseek3_tiny_resumes_from_the_checkpoint_for_steps_21_to_25(deepseek_run: Run):
    assert deepseek_run.train.returncode == 0, _tail(deepseek_run.train)
    assert deepseek_run.resume.returncode == 0, _tail(deepseek_run.resume)
    log = deepseek_run.work / "logs" / "resume.log"
    text = log.read_text(errors="replace")
    assert f"successfully loaded checkpoint from {deepseek_run.work / 'ckpt'}" in text
    assert "at iteration 20" in text
    assert iteration_steps(log) == list(range(21, 26))
    assert (deepseek_run.work / "ckpt" / "latest_checkpointed_iteration.txt").read_text().strip() == "25"
    assert (deepseek_run.work / "ckpt" / "iter_0000025").is_dir()


def test_deepseek3_tiny_losses_equal_the_recorded_run(deepseek_run: Run):
    """Every step of both logs against the record, with the example's own checker, as the doc runs it."""
    logs = [deepseek_run.work / "logs" / name for name in ("train.log", "resume.log")]
    assert all(log.is_file() for log in logs), _tail(deepseek_run.train)
    check = subprocess.run([sys.executable, str(EXAMPLE / "losses.py"), *map(str, logs),
                            "--expect", str(EXAMPLE / "recorded_losses.tsv")], capture_output=True, text=True)
    assert check.returncode == 0, f"{check.stderr}\n{check.stdout}"
    assert "all 25 steps agree with recorded_losses.tsv" in check.stderr
    print("\n" + check.stdout, file=sys.stderr)
