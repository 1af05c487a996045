"""Converted code runs on MindSpore through mindtorch (``import torch`` is mindtorch): the debugger is
pure Python, so a breakpoint in such a job shows real tensors on the rank that stopped."""
from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
from debug_testkit import JOB_TIMEOUT, JOBS, PYTHON, Client, Processes, debug_env, live_sockets, wait_for_sessions

pytestmark = [
    pytest.mark.mindspore,
    pytest.mark.slow,
    # find_spec, not import: importing MindSpore here would slow down every test collection
    pytest.mark.skipif(importlib.util.find_spec("mindtorch") is None, reason="MindSpore runtime not installed"),
]


def expected(rank: int) -> float:
    return sum(math.tanh(v * (rank + 1) / 10) for v in range(6))


def test_breakpoint_in_a_mindtorch_job(procs: Processes, debug_dir: Path, tmp_path: Path) -> None:
    env = debug_env(debug_dir, MS_DEBUG_RANKS="1", MS_DEBUG_TIMEOUT="300")
    out = tmp_path / "out"
    argv = [PYTHON, "-m", "tools.debug", "launch", "-n", "2", "--job", "mt", "--", str(JOBS / "mindtorch_job.py"), str(out)]
    job = procs.start(argv, env, stderr=open(tmp_path / "job.stderr", "wb"))
    (session,) = wait_for_sessions(env, 1, job="mt")
    assert session["rank"] == 1 and session["function"] == "rank_tensor"

    client = Client(procs, env, "1", "--job", "mt")
    assert "-> return float(activations.sum().item())" in client.read_until_prompt()
    assert client.command("p 'mindtorch' in torch.__file__").strip() == "True"  # `torch` is mindtorch
    assert client.command("p type(weights).__module__.split('.')[0]").strip() == "'mindspore'"
    assert client.command("p tuple(weights.shape)").strip() == "(2, 3)"
    assert client.command("p weights.tolist()").strip() == "[[0.0, 2.0, 4.0], [6.0, 8.0, 10.0]]"
    assert abs(float(client.command("p activations.sum().item()")) - expected(1)) < 1e-5
    assert "Tensor" in client.command("p activations")
    assert client.finish("c")[0] == 0

    assert job.wait(timeout=JOB_TIMEOUT) == 0, (tmp_path / "job.stderr").read_text()
    for rank in (0, 1):
        value = json.loads((out / f"value-{rank}.json").read_text())["value"]
        assert abs(value - expected(rank)) < 1e-5
    assert live_sockets(debug_dir) == []
