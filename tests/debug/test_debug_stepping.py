"""pdb semantics that need care in a remote session: a breakpoint() reached while stepping stays in
the same session; threads of one process get one session each (labelled with the thread name)."""
from __future__ import annotations

import subprocess
from pathlib import Path

from debug_testkit import (
    JOB_TIMEOUT,
    JOBS,
    PYTHON,
    REPO_ROOT,
    Client,
    Processes,
    debug_env,
    live_sockets,
    wait_for_sessions,
)

SCRIPT = JOBS / "nested_script.py"


def test_stepping_over_a_breakpoint_and_threads(procs: Processes, debug_dir: Path, tmp_path: Path) -> None:
    env = debug_env(debug_dir, MS_DEBUG_JOB="nested")
    job = procs.start([PYTHON, str(SCRIPT)], env, stdout=open(tmp_path / "stdout", "wb"), stderr=open(tmp_path / "stderr", "wb"))
    wait_for_sessions(env, 1)

    client = Client(procs, env, "0")
    assert "-> b = inner(a)" in client.read_until_prompt()
    stepped = client.command("n")  # over inner(), whose breakpoint() must stop us inside it
    assert "inner()" in stepped and "-> return w * 10" in stepped and "bdb.py" not in stepped
    assert client.command("p w").strip() == "2"
    assert client.command("p v").strip() == "1"
    assert client.finish("c")[0] == 0

    sessions = wait_for_sessions(env, 2)
    assert sorted(s["thread"] for s in sessions) == ["worker-0", "worker-1"]
    assert len({s["pid"] for s in sessions}) == 1
    table = subprocess.run([PYTHON, "-m", "tools.debug", "list"], env=env, cwd=str(REPO_ROOT),
                           capture_output=True, text=True, timeout=60)
    assert "main [worker-0]" in table.stdout and "main [worker-1]" in table.stdout
    seen = set()
    for _ in range(2):
        client = Client(procs, env, "0", "--wait", "60")
        assert "-> results[n] = local + 1" in client.read_until_prompt()
        seen.add(client.command("p n, local").strip())
        assert client.finish("c")[0] == 0
    assert seen == {"(0, 0)", "(1, 100)"}

    assert job.wait(timeout=JOB_TIMEOUT) == 0
    assert "outer 20 workers [(0, 1), (1, 101)]" in (tmp_path / "stdout").read_text()
    assert live_sockets(debug_dir) == []
