"""Every stopped rank at once: ``eval loss`` over 4 ranks stopped at ``breakpoint()`` prints the 4
values side by side by rank, errors per rank, without taking the sessions; ``continue`` ends them
all and the job finishes with the right results."""
from __future__ import annotations

import json
from pathlib import Path

from debug_testkit import JOB_TIMEOUT, JOBS, Client, Processes, debug_env, launch_job, run_cli, wait_for_sessions

SCRIPT = JOBS / "loss_job.py"


def expected_loss(rank: int) -> float:
    values = [rank + k / 4 for k in range(4)]
    return sum(v * v for v in values) / len(values)


def test_eval_in_all_stopped_ranks_then_continue(procs: Processes, debug_dir: Path, tmp_path: Path) -> None:
    env = debug_env(debug_dir, MS_DEBUG_TIMEOUT="300")
    out = tmp_path / "out"
    out.mkdir()
    job = launch_job(procs, env, tmp_path / "job.stderr", SCRIPT, str(out), options=("--job", "losses"))
    wait_for_sessions(env, 4, job="losses")

    values = run_cli(env, "eval", "loss", "--job", "losses", "--json")
    assert values.returncode == 0, values.stderr
    rows = [json.loads(line) for line in values.stdout.splitlines()]
    assert [(r["rank"], r["value"]) for r in rows] == [(r, repr(expected_loss(r))) for r in range(4)]

    table = run_cli(env, "eval", "loss", "--job", "losses")
    lines = [line for line in table.stdout.splitlines() if "loss_job.py" in line]
    assert len(lines) == 4 and all(repr(expected_loss(r)) in lines[r] for r in range(4)), table.stdout

    # Errors are reported per rank, a subset can be chosen, and nothing was consumed.
    errors = run_cli(env, "eval", "1 / 0", "--ranks", "1,3", "--json")
    assert errors.returncode == 1
    assert [(r["rank"], r["ok"], r["error"]) for r in map(json.loads, errors.stdout.splitlines())] == [
        (1, False, "ZeroDivisionError: division by zero"), (3, False, "ZeroDivisionError: division by zero")]
    assert [s["state"] for s in wait_for_sessions(env, 4, job="losses")] == ["waiting"] * 4

    client = Client(procs, env, "2", "--job", "losses")
    assert "-> (out / f\"result-{rank}.json\")" in client.read_until_prompt()
    assert client.command("p loss").strip() == repr(expected_loss(2))
    assert client.command("loss = 42.0") == ""  # a fix made in one rank ...
    assert client.finish("c")[0] == 0

    done = run_cli(env, "continue", "--job", "losses", "--json")
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["rank"] for line in done.stdout.splitlines()] == [0, 1, 3]
    assert job.wait(timeout=JOB_TIMEOUT) == 0
    losses = [json.loads((out / f"result-{r}.json").read_text())["loss"] for r in range(4)]
    assert losses == [expected_loss(0), expected_loss(1), 42.0, expected_loss(3)]  # ... is kept
    assert run_cli(env, "eval", "loss", "--job", "losses").returncode == 2  # nobody is stopped any more
