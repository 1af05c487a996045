"""Checkpoints cross between MindSpore and PyTorch both ways: what torch.save writes on mindtorch
loads with torch.load in the reference environment, which has no MindSpore (weights_only=True and
False), and PyTorch's checkpoints load here; a Megatron-shaped checkpoint of a tiny Megatron-core GPT
saved on either side loads into the same model on the other and training resumes with the losses
the saving run had (docs/checkpoints.md)."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from testbed import Testbed, free_port

pytestmark = [pytest.mark.slow, pytest.mark.pypi, pytest.mark.mindspore]

JOBS = Path(__file__).parent / "ckpt_jobs"
SHARED = [["/base", "/detached", "/rows", "/strided", "/transposed"]]   # tensor_cases.SHARED, as paths
LOSS_TOL = 1e-4   # relative, resumed losses across frameworks; measured <= 1e-6 (docs/checkpoints.md)


@pytest.fixture(scope="module")
def jobs(testbed: Testbed) -> Path:
    """ckpt_jobs converted into the workspace, as a user converts their own scripts."""
    return testbed.convert(JOBS, "ckpt_jobs")


def _ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-4000:])


@pytest.fixture(scope="module")
def tensor_reports(testbed: Testbed, jobs: Path, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("ckpt_tensors")
    ms, pt = root / "ms", root / "pt"
    ms.mkdir()
    pt.mkdir()
    _ok(testbed.torch_run([str(JOBS / "tensor_cases.py"), "--save", str(pt)]))
    _ok(testbed.ms_run(f"python {jobs / 'tensor_cases.py'} --save {ms} --load {pt} --out {root / 'ms_loads_pt.json'} "
                       f"--legacy {JOBS / 'legacy_mindtorch_format.pt'}"))
    _ok(testbed.torch_run([str(JOBS / "tensor_cases.py"), "--load", str(ms), "--out", str(root / "pt_loads_ms.json")]))
    _ok(testbed.torch_run([str(JOBS / "tensor_cases.py"), "--load", str(pt), "--out", str(root / "pt_loads_pt.json")]))
    reports = {name: json.loads((root / f"{name}.json").read_text())
               for name in ("ms_loads_pt", "pt_loads_ms", "pt_loads_pt")}
    reports["ms_expected"] = json.loads((ms / "expected.json").read_text())
    reports["pt_expected"] = json.loads((pt / "expected.json").read_text())
    return reports


def _check_loaded(entry: dict, expected: dict, name: str) -> None:
    assert "error" not in entry, entry["error"]
    want = {k: v for k, v in expected["tensors"].items() if name == "full" or k.split("/")[1] in entry["others"]}
    assert entry["tensors"] == want, "dtype, shape or parameter-ness differ"
    assert entry["differ"] == [] and entry["missing"] == [], (entry["differ"], entry["missing"])
    assert entry["others"] == {k: v for k, v in expected["others"].items() if k in entry["others"]}
    assert len(entry["others"]) == (len(expected["others"]) if name == "full" else len(expected["others"]) - 5)


def test_mindtorch_checkpoint_loads_in_pytorch_without_mindspore(tensor_reports):
    """Before mindtorch patch 0014 every case failed here: No module named 'mindspore'."""
    report, expected = tensor_reports["pt_loads_ms"], tensor_reports["ms_expected"]
    assert report["mindspore_importable"] is False
    assert len(expected["tensors"]) >= 18
    for name, modes in (("weights", (True, False)), ("full", (False,))):
        for weights_only in modes:
            entry = report[f"{name}/weights_only={weights_only}"]
            _check_loaded(entry, expected, name)
            # views of one storage are one storage in PyTorch, as when PyTorch saves them
            assert entry["shared"] == SHARED == tensor_reports["pt_loads_pt"][f"{name}/weights_only={weights_only}"]["shared"]


def test_full_checkpoint_meets_weights_only_as_pytorch_saved_one_does(tensor_reports):
    """Namespace, NumPy RNG state and BytesIO need weights_only=False in PyTorch whoever saved them:
    the same unsafe globals in mindtorch's file as in PyTorch's own."""
    ours, theirs = tensor_reports["pt_loads_ms"], tensor_reports["pt_loads_pt"]
    assert ours["unsafe_globals"] == theirs["unsafe_globals"]
    assert "argparse.Namespace" in ours["unsafe_globals"]
    assert "error" in ours["full/weights_only=True"] and "error" in theirs["full/weights_only=True"]


def test_pytorch_checkpoint_loads_in_mindtorch(tensor_reports):
    """Before patch 0014: torch._utils._rebuild_parameter was missing, torch.float32 came back as the
    string 'float32', torch.device('cpu') failed, and a view with strides (base[1:, ::2]) came back
    with the wrong elements."""
    report, expected = tensor_reports["ms_loads_pt"], tensor_reports["pt_expected"]
    assert report["mindspore_importable"] is True
    for name in ("weights", "full"):
        _check_loaded(report[f"{name}/weights_only=False"], expected, name)
    _check_loaded(report["weights/weights_only=True"], expected, "weights")
    # weights_only=True refuses what PyTorch's weights-only loader refuses, naming the file
    error = report["full/weights_only=True"]["error"]
    assert error.startswith("UnpicklingError: torch.load(weights_only=True): ") and "full.pt refers to " in error


def test_mindspore_object_in_a_checkpoint_is_refused_with_its_name(tensor_reports):
    message = tensor_reports["ms_loads_pt"]["mindspore_object"]
    assert message.startswith("PicklingError: torch.save: mindspore.") and "would not load in PyTorch" in message


@pytest.fixture(scope="module")
def megatron_runs(testbed: Testbed, jobs: Path, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("ckpt_megatron")
    script = "megatron_checkpoint.py"

    def ms(mode: str, side: str, out: str) -> None:
        _ok(testbed.ms_run(f"python {jobs / script} {mode} --ckpt {root / side}.pt --values {root / side}.npz "
                           f"--out {root / out}.json", MASTER_PORT=free_port()))

    def pt(mode: str, side: str, out: str) -> None:
        _ok(testbed.torch_run([str(JOBS / script), mode, "--ckpt", f"{root / side}.pt", "--values",
                               f"{root / side}.npz", "--out", f"{root / out}.json", "--pytorch-cpu"],
                              MASTER_PORT=free_port()))

    ms("save", "ms", "ms_save")
    pt("load", "ms", "pt_load")
    pt("save", "pt", "pt_save")
    ms("load", "pt", "ms_load")
    return {name: json.loads((root / f"{name}.json").read_text())
            for name in ("ms_save", "pt_load", "pt_save", "ms_load")}


@pytest.mark.parametrize("saver,loader", [("ms_save", "pt_load"), ("pt_save", "ms_load")])
def test_megatron_checkpoint_loads_and_resumes_on_the_other_framework(megatron_runs, saver, loader):
    saved, loaded = megatron_runs[saver], megatron_runs[loader]
    assert loaded["arrays_compared"] > 100
    assert loaded["keys_missing"] == loaded["keys_extra"] == loaded["arrays_differ"] == []
    assert loaded["model_differs_after_load"] == []
    assert loaded["python_values"] == saved["python_values"]   # args (dtype, enums), iteration, RNG, scheduler
    assert len(loaded["losses_after"]) == len(saved["losses_after"]) == 2
    for step, (a, b) in enumerate(zip(loaded["losses_after"], saved["losses_after"]), 3):
        assert abs(a - b) <= LOSS_TOL * abs(b), f"step {step} resumed: {a}, the saving run: {b}"


def test_checkpoints_in_mindtorchs_earlier_format_still_load(tensor_reports):
    """Files saved before patch 0014 (MindSpore's classes in the pickle) load as they did."""
    assert tensor_reports["ms_loads_pt"]["legacy"] == {
        "w": [[0.0, 0.25, 0.5], [0.75, 1.0, 1.25]], "i": [7, -8],
        "args": {"Namespace": {"params_dtype": {"dtype": "float32"}, "iteration": 20}}}
