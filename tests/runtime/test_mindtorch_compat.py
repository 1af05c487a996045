"""What patches 0007 (MindSpeed / MindSpeed-LLM on CPU) and 0008 (blas products with beta and alpha) add
to mindtorch, run in the converted workspace on MindSpore CPU (mindtorch_compat_check.py): against PyTorch
on the same fixed random inputs where torch has the API (mindtorch_compat_reference.py, run in the
reference environment), and against torch's documented behaviour (names, shapes, exceptions) where it
does not. Also Megatron's roll_tensor as rule MEG008
rewrites it, against the unconverted one on PyTorch. The cases that are the same code on both sides are
written once, against `torch`, in mindtorch_compat_cases.py, which both scripts import."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from testbed import Testbed

pytestmark = [pytest.mark.slow, pytest.mark.pypi, pytest.mark.mindspore]

HERE = Path(__file__).parent
VALUE_TOL = 1e-5      # float32 on both sides, relative to the largest reference magnitude (at least 1)
ADAMW_TOL = 1e-6

ADAMW_CASES = [f"adamw[{api},amsgrad={a},maximize={m}]" for api in ("npu_apply_fused_adamw_v2", "_fused_adamw_")
               for a, m in ((False, False), (True, False), (False, True), (True, True))]
ADAMW_CASES += ["adamw[_fused_adamw_,lr tensor]", "_fused_adamw_[grad_scale,found_inf]"]
TND_CASES = ["npu_fusion_attention[TND]", "npu_fusion_attention[TND,empty sequence first]",
             "npu_fusion_attention[TND,empty sequence inside]", "npu_fusion_attention[TND,empty sequence last]",
             "npu_fusion_attention[TND,queries without keys]"]
ROLL_CASES = [f"roll_tensor[{dt},shifts=-1,dims={d}]" for dt in ("int64", "float32") for d in (-1, 0)]
# patch 0008: beta * input + alpha * (a @ b), function, method, in place, gradients (mindtorch_compat_cases.py)
BLAS_OPS = ("baddbmm", "addmm", "addbmm", "addmv", "addr")
BLAS_CASES = [f"{op}[{v}]" for op in BLAS_OPS for v in (
    *(f"beta={b},alpha={a}" for b, a in ((1, 1), (0.5, 2.0), (2.0, 0.5), (0.0, 0.3), (1.0, 0.0), (-1.5, 0.25))),
    "beta=0.5,alpha=2.0,broadcast input", "beta=0,nan input", "beta=0,inf input")]
BLAS_CASES.append("baddbmm[attention scores on torch.empty]")

# MindSpore case -> (PyTorch reference case, tolerance)
COMPARED = {
    "scatter_add[dim=0]": ("scatter_add[dim=0]", VALUE_TOL),
    "scatter_add[dim=1]": ("scatter_add[dim=1]", VALUE_TOL),
    "sum[empty]": ("sum[empty]", 0.0),
    "split[dim=0,empty chunks]": ("split[dim=0,empty chunks]", VALUE_TOL),
    "split[dim=1,empty chunks]": ("split[dim=1,empty chunks]", VALUE_TOL),
    "split[experts,cat back]": ("split[experts,cat back]", VALUE_TOL),
    "matmul[empty contraction]": ("matmul[empty contraction]", 0.0),
    "arange[dtype inference]": ("arange[dtype inference]", 0.0),
    "histc[in a differentiated function]": ("histc[in a differentiated function]", VALUE_TOL),
    **{name: (name, ADAMW_TOL) for name in ADAMW_CASES},
    "cpp_extension._get_build_directory": ("cpp_extension._get_build_directory", 0.0),
    "checkpoint._get_autocast_kwargs": ("checkpoint._get_autocast_kwargs", 0.0),
    # an empty sequence changes nothing: every TND variant against the same two (or three) sequences
    "npu_fusion_attention[TND]": ("npu_fusion_attention[TND]", VALUE_TOL),
    "npu_fusion_attention[TND,empty sequence first]": ("npu_fusion_attention[TND]", VALUE_TOL),
    "npu_fusion_attention[TND,empty sequence inside]": ("npu_fusion_attention[TND]", VALUE_TOL),
    "npu_fusion_attention[TND,empty sequence last]": ("npu_fusion_attention[TND]", VALUE_TOL),
    "npu_fusion_attention[TND,queries without keys]": ("npu_fusion_attention[TND,queries without keys]", VALUE_TOL),
    **{name: (name, VALUE_TOL) for name in ROLL_CASES},
    **{name: (name, VALUE_TOL) for name in BLAS_CASES},
}
MINDSPORE_ONLY = {
    "adamw[top-level name]", "Tensor.type", "device", "host streams", "torch proxy", "library",
    "checkpoint._get_autocast_kwargs[in autocast]", "autograd.recompute_instance", "torch_npu names",
    "comm_func.all_to_all_v_c", "num_threads", "DataLoader pin-memory thread",
}


def _report(proc, tag: str) -> dict:
    lines = [line for line in proc.stdout.splitlines() if line.startswith(tag + " ")]
    assert lines, f"no report:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return json.loads(lines[-1][len(tag) + 1:])


@pytest.fixture(scope="module")
def ms(testbed: Testbed) -> dict:
    return _report(testbed.ms_run(f"python {HERE / 'mindtorch_compat_check.py'}"), "COMPAT_REPORT")


@pytest.fixture(scope="module")
def pt(testbed: Testbed) -> dict:
    return _report(testbed.torch_run([str(HERE / "mindtorch_compat_reference.py")]), "COMPAT_REFERENCE")


def _case(report: dict, name: str) -> dict:
    result = report["cases"].get(name)
    assert result is not None, f"{name} did not run"
    assert "error" not in result, f"{name}:\n{result['error']}"
    return result


def _mismatches(got, want, tol: float, path: str = "") -> list[str]:
    """Where `got` differs from `want`: numbers within tol of the largest reference magnitude, the rest exactly."""
    if isinstance(want, dict):
        return [m for key in want for m in (_mismatches(got.get(key), want[key], tol, f"{path}.{key}")
                                             if isinstance(got, dict) else [f"{path}: {got!r} is not a dict"])]
    if isinstance(want, list) and isinstance(got, list) and _ragged(want):   # e.g. parameters of several shapes
        if len(got) != len(want):
            return [f"{path}: {len(got)} items != {len(want)}"]
        return [m for i, (g, w) in enumerate(zip(got, want)) for m in _mismatches(g, w, tol, f"{path}[{i}]")]
    if isinstance(want, (list, float, int)) and not isinstance(want, bool) and not isinstance(got, (str, dict)):
        a, b = np.asarray(got), np.asarray(want)
        if a.shape != b.shape:
            return [f"{path}: shape {a.shape} != {b.shape}"]
        if b.dtype.kind in "iub" and a.dtype.kind in "iub":
            return [] if np.array_equal(a, b) else [f"{path}: {got} != {want}"]
        if a.dtype.kind not in "iufb" or b.size == 0:
            return [] if a.tolist() == b.tolist() else [f"{path}: {got} != {want}"]
        err = float(np.abs(a.astype(np.float64) - b).max() / max(1.0, float(np.abs(b).max())))
        return [] if err <= tol else [f"{path}: relative error {err:.3g} > {tol:g}\n  got  {got}\n  want {want}"]
    return [] if got == want else [f"{path}: {got!r} != {want!r}"]


def _ragged(values: list) -> bool:
    try:
        np.asarray(values, dtype=np.float64)
    except (ValueError, TypeError):
        return True
    return False


def test_every_case_ran_on_the_cpu(ms, pt):
    assert ms["device_target"] == "CPU"
    assert set(ms["cases"]) == set(COMPARED) | MINDSPORE_ONLY
    assert set(pt["cases"]) == {ref for ref, _ in COMPARED.values()}
    broken = {name: r["error"].strip().splitlines()[-1] for name, r in pt["cases"].items() if "error" in r}
    assert not broken, f"the PyTorch reference failed: {broken}"


@pytest.mark.parametrize("name", sorted(COMPARED))
def test_matches_pytorch(ms, pt, name):
    ref_name, tol = COMPARED[name]
    got, want = _case(ms, name), _case(pt, ref_name)
    problems = _mismatches(got, want, tol)
    assert not problems, "\n".join(problems)


def test_the_comparisons_are_not_trivial(ms, pt):
    """The compared values depend on the inputs (the scatter indices repeat by construction: 6 rows into
    4, 7 columns into 5): the used part of src gets a gradient and the rest none, the empty experts' weight
    gradients are zero and the others not, sequence boundaries matter, amsgrad and found_inf change the steps."""
    src_grad = np.asarray(_case(pt, "scatter_add[dim=0]")["grad_src"])
    assert np.abs(src_grad[:6, :4]).min() > 0 and not src_grad[6:].any() and not src_grad[:, 4:].any()
    w_grad = np.abs(np.asarray(_case(pt, "split[experts,cat back]")["grad_w"])).sum((1, 2))
    assert (w_grad[[1, 3]] == 0).all() and (w_grad[[0, 2, 4]] > 0).all()
    assert sorted(_case(pt, "histc[in a differentiated function]")["counts"]) != [0.0] * 5
    one_seq = np.asarray(_case(pt, "npu_fusion_attention[TND]")["out"])
    no_keys = np.asarray(_case(pt, "npu_fusion_attention[TND,queries without keys]")["out"])
    assert not no_keys[3:5].any() and np.abs(one_seq[3:5]).min() > 0
    first = _case(pt, "adamw[_fused_adamw_,amsgrad=False,maximize=False]")["params"]
    ams = _case(pt, "adamw[_fused_adamw_,amsgrad=True,maximize=False]")["params"]
    assert first[2] != ams[2], "amsgrad changes nothing on these inputs"
    amp = _case(pt, "_fused_adamw_[grad_scale,found_inf]")["state"]
    assert amp[0] == amp[1] != amp[2], "the found_inf step must change nothing, the others must"


def test_the_blas_comparisons_are_not_trivial(pt):
    """On the reference: swapping beta and alpha changes every result (so a swap cannot pass), beta=0
    results are finite although the input is NaN or inf, alpha=0 leaves the product's operands without a
    gradient and beta=0 the input, and attention's query/key gradients are not zero."""
    for op in BLAS_OPS:
        one, swapped = _case(pt, f"{op}[beta=0.5,alpha=2.0]"), _case(pt, f"{op}[beta=2.0,alpha=0.5]")
        for key in ("out", "method", "inplace", "grad_input", "grad_a", "grad_b"):
            assert not np.allclose(one[key], swapped[key], rtol=1e-3), (op, key)
        for fill in ("nan", "inf"):
            r = _case(pt, f"{op}[beta=0,{fill} input]")
            assert np.isfinite(r["out"]).all() and np.isfinite(r["inplace"]).all(), (op, fill)
            assert not np.any(r["grad_input"]) and np.abs(r["grad_a"]).max() > 0, (op, fill)
        assert not np.any(_case(pt, f"{op}[beta=1.0,alpha=0.0]")["grad_a"]), op
    attention = _case(pt, "baddbmm[attention scores on torch.empty]")
    assert min(np.abs(attention[g]).max() for g in ("grad_q", "grad_k", "grad_v")) > 0.1


def test_roll_tensor_is_upstreams(ms):
    for name in ROLL_CASES:
        assert _case(ms, name)["fills a select() view"], name


def test_top_level_fused_adamw_is_npus(ms):
    assert _case(ms, "adamw[top-level name]")["same"]


def test_a_cpu_tensor_is_a_cuda_tensor(ms):
    r = _case(ms, "Tensor.type")
    assert r["names"] == {"float32": "torch.cuda.FloatTensor", "float16": "torch.cuda.HalfTensor",
                          "bfloat16": "torch.cuda.BFloat16Tensor", "int64": "torch.cuda.LongTensor",
                          "bool": "torch.cuda.BoolTensor"}
    assert r["cast"] == "float16"    # type(dtype) still converts
    d = _case(ms, "device")
    assert d["is_cpu"] is True and d["device_type"] == "cpu"
    assert d["cuda.is_available"] is True
    assert d["ones(device=0)"] == [1.0, 1.0]
    assert d["max_memory_reserved"] == 0


def test_host_streams(ms):
    r = _case(ms, "host streams")
    for step in ("cuda.synchronize", "npu.synchronize", "wait_stream", "wait_event", "event.synchronize"):
        assert r[step] is None, f"{step} raised {r[step]}"
    assert r["cuda.stream() matmul err"] < 1e-5 and r["npu.stream() matmul err"] < 1e-5
    assert r["record_event.query"] is True
    assert r["default_stream == current_stream"] is True


def test_setting_through_the_torch_proxy_changes_mindtorch(ms):
    r = _case(ms, "torch proxy")
    assert r["is_proxy"] is True
    assert r["set"] == 1 and r["deleted"] is True
    assert r["patched function"] == "patched"
    assert r["patched, through nn.SiLU"] == "patched"     # mindtorch's own callers see the patch too
    assert np.allclose(r["restored"], [-1 / (1 + np.e), 2 / (1 + np.exp(-2))], rtol=1e-6)


def test_library(ms):
    r = _case(ms, "library")
    assert r["define"] == "op"
    assert r["redefine"] and r["redefine"].startswith("RuntimeError") and "compat_probe::op" in r["redefine"]
    assert r["bad kind"] and r["bad kind"].startswith("ValueError")
    assert r["impl registers"] is True and r["impl returns the function"] is True
    assert r["impl(qualname)"] is None
    assert r["torch.library.Library"] is True


def test_autocast_kwargs_outside_autocast_and_recompute_state(ms):
    r = _case(ms, "checkpoint._get_autocast_kwargs")
    assert r["enabled"] == [False, False]
    assert _case(ms, "autograd.recompute_instance")["recompute"] is False


def test_autocast_kwargs_inside_autocast(ms):
    """Recomputation re-enters the autocast state the forward ran in: inside autocast it is enabled."""
    r = _case(ms, "checkpoint._get_autocast_kwargs[in autocast]")
    assert r["dtype"] == "bfloat16"
    assert r["enabled"] is True, r


def test_torch_npu_names_without_cann(ms):
    r = _case(ms, "torch_npu names")
    assert r["acl.get_soc_name"] == ""
    assert r["acl.other"] and r["acl.other"].startswith("AttributeError") and "CANN" in r["acl.other"]
    assert r["get_cann_version"] == ""
    assert r["get_cann_version(toolkit)"] == "8.0.RC2"
    assert r["hccl_config"] == {}
    assert r["npu.npu is npu"] is True
    assert r["get_device_name"] == "CPU"
    assert r["npu.Event is cuda.Event"] is True
    assert r["privateuse1"] == "npu"


def test_all_to_all_v_c_on_one_rank(ms):
    r = _case(ms, "comm_func.all_to_all_v_c")
    assert r["copy"] == [[0.0, 1.5, 3.0], [4.5, 6.0, 7.5]] and r["returned"] is None
    assert r["wrong count"] and r["wrong count"].startswith("ValueError")
    assert r["not square"] and r["not square"].startswith("ValueError")
    assert r["two ranks"] and r["two ranks"].startswith("NotImplementedError")


def test_num_threads(ms):
    r = _case(ms, "num_threads")
    assert r["before"] >= 1 and r["after set(3)"] == 3
    assert r["set(0)"] and r["set(0)"].startswith("ValueError") and r["after set(0)"] == 3


@pytest.mark.parametrize("device", ["default", "npu"])
def test_dataloader_pin_memory_thread(ms, device):
    r = _case(ms, "DataLoader pin-memory thread")
    loaded = r[device]
    assert "error" not in loaded, loaded["error"]
    x = np.arange(24, dtype=np.float32).reshape(6, 4)
    assert loaded["batches"] == [[x[i:i + 2].tolist(), [i, i + 1]] for i in (0, 2, 4)]
    assert loaded["thread"] == "pt_data_pin"
    assert r["num_threads after"] == 1          # the thread's set_num_threads(1)
