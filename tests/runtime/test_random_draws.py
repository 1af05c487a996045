"""Random draws on MindSpore against PyTorch 2.13 (random_jobs/draws.py, converted; patches 0024 and
0026). The values of a draw cannot match PyTorch's (another generator algorithm); what a program
relies on must: a seed repeats the draws, consecutive draws differ, the moments are right, and
torch.normal's gradients are PyTorch's (zeros: it is not reparameterised). Before 0026: every `uniform_` after a seed drew the same
numbers (so layers of one shape got one initialisation), `torch.normal` with a tensor mean or std
raised, `LogisticNormal` did not exist, `Tensor.cumprod` returned a tensor without a device, `randint`
ignored the seed, `randint_like` had no CPU kernel and `randn_like` drew uniform [0, 1) values."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from testbed import Testbed, tagged_json

pytestmark = [pytest.mark.slow, pytest.mark.pypi, pytest.mark.mindspore]

JOBS = Path(__file__).parent / "random_jobs"


def _result(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-4000:])
    return tagged_json(proc)


@pytest.fixture(scope="module")
def draws(testbed: Testbed) -> tuple[dict, dict]:
    jobs = testbed.convert(JOBS, "random_jobs")
    return _result(testbed.ms_run(f"python {jobs / 'draws.py'}")), _result(testbed.torch_run([str(JOBS / "draws.py")]))


def test_seeded_draws_repeat_and_consecutive_draws_differ(draws):
    ms, pt = draws
    for side in (ms, pt):
        assert side["uniform"] == {"repeats": True, "fresh": True, "in_range": True}
        assert side["normal_float"]["repeats"] and side["normal_float"]["fresh"]


def test_randint_and_randn_like_as_pytorch(draws):
    ms, pt = draws
    assert pt["randint"] == {"repeats": True, "fresh": True, "range": [-5, 6], "dtype": "int64",
                             "like_range": [2.0, 8.0], "like_dtype": "float32"}
    assert ms["randint"] == pt["randint"]
    for side in (ms, pt):
        assert side["randn_like"]["dtype"] == "float64"
        assert side["randn_like"]["mean"] == pytest.approx(0.0, abs=0.03)
        assert side["randn_like"]["std"] == pytest.approx(1.0, rel=0.03)


def test_normal_in_every_form_has_the_asked_moments(draws):
    ms, pt = draws
    for side in (ms, pt):   # 20000 draws: the sample mean's standard error is std/141
        assert side["normal_float"]["shape"] == [20000]
        assert side["normal_float"]["mean"] == pytest.approx(0.5, abs=0.06)
        assert side["normal_float"]["std"] == pytest.approx(2.0, rel=0.03)
        assert side["normal_tensor_float"]["mean"] == pytest.approx(3.0, abs=0.015)
        assert side["normal_tensor_float"]["std"] == pytest.approx(0.5, rel=0.03)
        assert side["normal_float_tensor"]["mean"] == pytest.approx(-1.0, abs=0.01)
        assert side["normal_float_tensor"]["std"] == pytest.approx(0.25, rel=0.03)


def test_normal_with_tensor_mean_and_std_broadcasts_and_has_pytorchs_zero_gradients(draws):
    ms, pt = draws
    assert pt["normal_tensors"] == {"shape": [2, 3], "dtype": "float32", "requires_grad": True,
                                    "mean_grad": [[0.0] * 3] * 2, "std_grad": [0.0] * 3}
    assert ms["normal_tensors"] == pt["normal_tensors"]


def test_logistic_normal_equals_pytorch(draws):
    ms, pt = draws
    want, got = pt["logistic_normal"], ms["logistic_normal"]
    for key in ("batch", "event", "loc", "scale", "shape", "simplex", "positive"):
        assert got[key] == want[key], key
    assert got["log_prob"] == pytest.approx(want["log_prob"], rel=1e-5)
    assert got["log_prob3"] == pytest.approx(want["log_prob3"], rel=1e-5)
    assert got["logit_std"] == pytest.approx([1.0, 2.0], rel=0.03)   # the base Normal's scales


def test_tensor_cumprod_equals_pytorch(draws):
    ms, pt = draws
    assert ms["cumprod"]["dtype"] == pt["cumprod"]["dtype"] == "float32"
    assert ms["cumprod"]["values"] == pytest.approx(pt["cumprod"]["values"], rel=1e-6)
    assert ms["cumprod"]["grad"] == pytest.approx(pt["cumprod"]["grad"], rel=1e-6)
