"""Several nodes sharing one ``MS_DEBUG_DIR``, simulated on one machine: ranks 2 and 3 run as
node ``node-b`` (``MS_DEBUG_HOSTNAME``), the client on this host. ``list`` has a host column;
``attach``, ``eval`` and ``stacks`` reach node-b's ranks through ``MS_DEBUG_SSH``, pointed at a
local stand-in for ssh that logs its arguments and runs the command as node-b; the exact ssh
command is what ``--print-command`` shows."""
from __future__ import annotations

import json
import shlex
import socket
import sys
from pathlib import Path

from debug_testkit import (
    JOB_TIMEOUT,
    JOBS,
    PYTHON,
    REPO_ROOT,
    Client,
    Processes,
    debug_env,
    run_cli,
    wait_for,
    wait_for_sessions,
)

SCRIPT = JOBS / "loss_job.py"
REMOTE = "node-b"


def test_ranks_on_another_node(procs: Processes, debug_dir: Path, tmp_path: Path) -> None:
    env = debug_env(debug_dir, MS_DEBUG_JOB="multi", WORLD_SIZE="4", MS_DEBUG_TIMEOUT="300")
    out = tmp_path / "out"
    out.mkdir()
    ranks = []
    for rank in range(4):
        rank_env = dict(env, RANK=str(rank), **({"MS_DEBUG_HOSTNAME": REMOTE} if rank >= 2 else {}))
        ranks.append(procs.start([PYTHON, "-m", "tools.debug", "run", "--", str(SCRIPT), str(out)], rank_env,
                                 stderr=open(tmp_path / f"rank{rank}.stderr", "wb")))
    sessions = wait_for_sessions(env, 4, job="multi")
    here = socket.gethostname()
    assert [(s["rank"], s["host"]) for s in sessions] == [(0, here), (1, here), (2, REMOTE), (3, REMOTE)]
    table = run_cli(env, "list", "--job", "multi")
    assert "HOST" in table.stdout
    assert [line.split("│")[3].strip() for line in table.stdout.splitlines() if "loss_job.py" in line] == \
        [here, here, REMOTE, REMOTE]

    # Without a way to reach node-b: the exact command to run.
    rank3 = sessions[3]
    remote_command = shlex.join(["env", f"PYTHONPATH={REPO_ROOT}", f"MS_DEBUG_DIR={debug_dir}", sys.executable, "-m",
                                 "tools.debug", "attach", "3", "--job", "multi", "--pid", str(rank3["pid"])])
    shown = run_cli(env, "attach", "3", "--print-command")
    assert shown.returncode == 2
    assert f"rank 3 runs on {REMOTE}; run there: {shlex.join(['ssh', REMOTE, remote_command])}" in shown.stderr

    # Through the ssh stand-in: a real session with rank 3.
    ssh_log = tmp_path / "ssh.log"
    env["MS_DEBUG_SSH"] = f"{PYTHON} {JOBS / 'fake_ssh.py'} {ssh_log}"
    client = Client(procs, env, "3")
    assert "-> (out / f\"result-{rank}.json\")" in client.read_until_prompt()
    assert client.command("p rank, os.environ['MS_DEBUG_HOSTNAME']").strip() == f"(3, '{REMOTE}')"
    assert client.finish("detach")[0] == 0
    assert json.loads(ssh_log.read_text().splitlines()[0]) == [REMOTE, remote_command]  # no -t: stdin is a pipe

    # eval and stacks merge this node's ranks with node-b's (asked through the stand-in).
    values = run_cli(env, "eval", "(rank, loss)", "--json")
    assert values.returncode == 0, values.stderr
    rows = [json.loads(line) for line in values.stdout.splitlines()]
    assert [(r["rank"], r["host"]) for r in rows] == [(0, here), (1, here), (2, REMOTE)]  # rank 3 went on
    assert [r["value"] for r in rows] == [repr((r, sum((r + k / 4) ** 2 for k in range(4)) / 4)) for r in range(3)]
    wait_for(lambda: (out / "result-3.json").exists(), JOB_TIMEOUT, "rank 3 to go on after detach")
    found = run_cli(env, "stacks", "--json", "--job", "multi")
    assert found.returncode == 0, found.stderr
    stacks = {r["rank"]: r for r in map(json.loads, found.stdout.splitlines())}
    assert sorted(stacks) == [0, 1, 2] and stacks[2]["host"] == REMOTE  # rank 3 has exited
    for entry in stacks.values():
        assert any(f["function"] == "main" and f["file"] == str(SCRIPT) for f in entry["threads"][0]["frames"])
    calls = [json.loads(line) for line in ssh_log.read_text().splitlines()]
    assert [c[1].split(" -m tools.debug ")[1].split()[0] for c in calls] == ["attach", "eval", "stacks"]

    assert run_cli(env, "continue", "--json").returncode == 0
    for proc in ranks:
        assert proc.wait(timeout=JOB_TIMEOUT) == 0
    assert sorted(p.name for p in out.iterdir()) == [f"result-{r}.json" for r in range(4)]
