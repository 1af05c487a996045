"""torch_npu's fused operators (the DeepSeek-V3 path of MindSpeed / MindSpeed-LLM) in the converted
workspace on MindSpore CPU: values and gradients against float64 NumPy references (npu_ops_check.py;
the operators are listed in docs/npu_ops.md)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from testbed import Testbed

pytestmark = [pytest.mark.slow, pytest.mark.pypi, pytest.mark.mindspore]

HERE = Path(__file__).parent
VALUE_TOL = 1e-5      # float32 computation against float64, relative to the largest magnitude
GRAD_TOL = 1e-4       # against central differences of the float64 reference

EXPECTED = {
    "npu_rms_norm", "npu_add_rms_norm", "npu_swiglu", "npu_swiglu[dim=0]", "npu_swiglu_backward",
    "npu_rotary_mul[half]", "npu_rotary_mul[interleave]", "npu_rotary_position_embedding[mode=0]",
    "npu_rotary_position_embedding[mode=1]", "npu_scaled_masked_softmax",
    "npu_fusion_attention[SBH,sparse_mode=2]", "npu_fusion_attention[BSH,sparse_mode=2]",
    "npu_fusion_attention[BNSD,sparse_mode=0,atten_mask]", "npu_fusion_attention[BSND,sparse_mode=0,band]",
    "npu_fusion_attention[BSND,MLA Dv!=Dqk,sparse_mode=3,Sq<Sk]",
    "npu_fusion_attention[SBH,GQA 4q/2kv,sparse_mode=2]", "npu_fusion_attention[TND,actual_seq_len,sparse_mode=3]",
    "npu_grouped_matmul[group_type=0,split_item=2,group_list_type=0]",
    "npu_grouped_matmul[group_type=0,split_item=2,group_list_type=1]", "npu_grouped_matmul[group_type=2,split_item=3]",
    "npu_grouped_matmul[group_type=-1,bias]", "npu_matmul_add_fp32",
    "npu_moe_token_permute", "npu_moe_token_unpermute", "npu_moe_token_permute_with_routing_map",
    "npu_moe_token_permute_with_routing_map[sorted_indices]", "npu_moe_token_permute_with_routing_map_grad",
    "_npu_moe_token_unpermute_with_routing_map", "npu_moe_token_unpermute_with_routing_map_grad",
}


@pytest.fixture(scope="module")
def report(testbed: Testbed) -> dict:
    proc = testbed.ms_run(f"python {HERE / 'npu_ops_check.py'}")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("NPU_OPS_REPORT ")]
    assert lines, f"no report:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return json.loads(lines[-1][len("NPU_OPS_REPORT "):])


def test_every_case_ran_on_the_cpu(report):
    assert report["error"] is None, report["error"]
    assert report["device_target"] == "CPU"
    assert set(report["cases"]) == EXPECTED


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_values_and_gradients_match_the_float64_reference(report, case):
    result = report["cases"].get(case)
    assert result is not None, f"{case} did not run: {report['error']}"
    assert result["value_err"] <= VALUE_TOL, result
    if "grad_err" in result:
        assert result["grads_nonzero"], result
        assert result["grad_err"] <= GRAD_TOL, result
