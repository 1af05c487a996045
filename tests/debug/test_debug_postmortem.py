"""Post mortem: ``launch --post-mortem`` and rank 2 of 4 raises ZeroDivisionError in code that has
no debugger call. The rank waits at the frame that raised, listed with the exception; the client
shows the exception when it attaches; ``c`` ends the rank as it would have (traceback, status 1)."""
from __future__ import annotations

import json
from pathlib import Path

from debug_testkit import JOB_TIMEOUT, JOBS, PYTHON, Client, Processes, debug_env, launch_job, run_cli, wait_for_sessions

SCRIPT = JOBS / "loss_job.py"


def test_uncaught_exception_in_rank_2_is_debugged_post_mortem(procs: Processes, debug_dir: Path, tmp_path: Path) -> None:
    env = debug_env(debug_dir, CRASH_RANK="2", PYTHONBREAKPOINT="0")  # the other ranks run through
    out = tmp_path / "out"
    out.mkdir()
    log = tmp_path / "job.stderr"
    job = launch_job(procs, env, log, SCRIPT, str(out), options=("--job", "crash", "--post-mortem"))

    (session,) = wait_for_sessions(env, 1, job="crash")
    assert (session["rank"], session["kind"], session["function"]) == (2, "post-mortem", "mean_loss")
    assert session["exception"] == "ZeroDivisionError: division by zero"
    assert session["file"] == str(SCRIPT)
    table = run_cli(env, "list", "--job", "crash")
    assert "ZeroDivisionError: division by zero" in table.stdout and "mean_loss" in table.stdout
    # The log line names the exception and the exact attach command, with the custom MS_DEBUG_DIR.
    assert f"attach: MS_DEBUG_DIR={debug_dir} python -m tools.debug attach 2 --job crash" in log.read_text()

    client = Client(procs, env, "2", "--job", "crash")
    first = client.read_until_prompt()
    assert "Traceback (most recent call last)" in first and "ZeroDivisionError: division by zero" in first
    assert "tools/debug" not in first.split("ZeroDivisionError")[0]  # the traceback starts in the program
    assert "mean_loss()" in first and "-> return total / len(values)" in first
    assert client.command("p values, total").strip() == "([], 0)"
    assert "-> loss = mean_loss(shard_of(rank))" in client.command("up")
    assert client.command("p rank").strip() == "2"
    code, _ = client.finish("c")
    assert code == 0
    stderr = client.stderr_text()
    assert "post mortem: the rank raised ZeroDivisionError: division by zero" in stderr
    assert "session ended: post-mortem session over; the process ends with its exception" in stderr

    assert job.wait(timeout=JOB_TIMEOUT) == 1  # rank 2 failed, as without the debugger
    text = log.read_text()
    traceback = text[text.index("Traceback (most recent call last)"):]
    assert traceback.splitlines()[1].startswith(f'  File "{SCRIPT}"')  # no runpy / tools.debug frames
    assert "ZeroDivisionError: division by zero" in traceback and "rank 2 exited with status 1" in traceback
    for rank in (0, 1, 3):
        assert json.loads((out / f"result-{rank}.json").read_text())["rank"] == rank
    assert not (out / "result-2.json").exists()


def test_an_exception_in_a_thread_is_debugged_post_mortem(procs: Processes, debug_dir: Path, tmp_path: Path) -> None:
    env = debug_env(debug_dir, MS_DEBUG_JOB="thread")
    script = JOBS / "thread_crash.py"
    job = procs.start([PYTHON, "-m", "tools.debug", "run", "--post-mortem", "--", str(script)], env,
                      stdout=open(tmp_path / "stdout", "wb"), stderr=open(tmp_path / "stderr", "wb"))
    (session,) = wait_for_sessions(env, 1)
    assert (session["thread"], session["function"], session["exception"]) == (
        "loader", "average", "ZeroDivisionError: division by zero")
    client = Client(procs, env, "0")
    assert "-> return sum(items) / len(items)" in client.read_until_prompt()
    assert client.command("p items").strip() == "[]"
    assert client.finish("c")[0] == 0
    assert job.wait(timeout=JOB_TIMEOUT) == 0  # as without the debugger: a thread's exception is printed
    assert "main goes on" in (tmp_path / "stdout").read_text()
    assert "Exception in thread loader" in (tmp_path / "stderr").read_text()
