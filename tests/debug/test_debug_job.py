"""A real 4-rank job started by the launcher; ranks 1 and 3 (and rank 3's own subprocess) stop at
breakpoints and are driven through the real client with p / n / up / c."""
from __future__ import annotations

import json
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
    wait_for,
    wait_for_sessions,
)

DATA = list(range(1, 101))
WORLD = 4


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def shard_total(rank: int) -> int:
    return sum(x * x for x in DATA[rank::WORLD])


def launch(procs: Processes, env: dict[str, str], out: Path, *options: str) -> subprocess.Popen:
    argv = [PYTHON, "-m", "tools.debug", "launch", "-n", str(WORLD), *options, "--", str(JOBS / "partial_sums.py"), str(out)]
    return procs.start(argv, env, stderr=open(out.parent / "job.stderr", "wb"))


def check_results(out: Path) -> list[dict]:
    results = [json.loads((out / f"result-{r}.json").read_text()) for r in range(WORLD)]
    assert [r["partial"] for r in results] == [shard_total(r) for r in range(WORLD)]
    assert {r["total"] for r in results} == {sum(x * x for x in DATA)} == {338350}
    return results


def test_breakpoints_in_ranks_1_and_3_of_a_launched_job(procs: Processes, debug_dir: Path, tmp_path: Path) -> None:
    env = debug_env(debug_dir, MS_DEBUG_RANKS="1,3", MS_DEBUG_TIMEOUT="300")
    out = tmp_path / "out"
    out.mkdir()
    job = launch(procs, env, out, "--job", "sums", "--keep")
    script = JOBS / "partial_sums.py"
    stop_line = line_of(script, "breakpoint()  # the ranks selected")

    # Rank 1, rank 3 and rank 3's helper subprocess wait; ranks 0 and 2 were not selected.
    sessions = wait_for_sessions(env, 3, job="sums")
    by_role = {(s["rank"], s["role"]): s for s in sessions}
    assert set(by_role) == {(1, "main"), (3, "main"), (3, "subprocess")}, sessions
    child = by_role[(3, "subprocess")]
    assert child["ppid"] == by_role[(3, "main")]["pid"]
    assert child["file"].endswith("child_worker.py") and child["function"] == "cube_sum"
    for rank in (1, 3):
        assert by_role[(rank, "main")]["file"] == str(script)
        assert by_role[(rank, "main")]["line"] == stop_line
        assert by_role[(rank, "main")]["state"] == "waiting"
    # The non-selected ranks went through the same breakpoint() without stopping.
    wait_for(lambda: (out / "partial-0.json").exists() and (out / "partial-2.json").exists(), JOB_TIMEOUT, "ranks 0, 2")
    assert not (out / "partial-1.json").exists() and not (out / "partial-3.json").exists()

    # The human-readable list shows rank, pid, file:line and which process is a subprocess.
    table = subprocess.run(
        [PYTHON, "-m", "tools.debug", "list"], env=env, cwd=str(REPO_ROOT), capture_output=True, text=True, timeout=60
    )
    assert table.returncode == 0, table.stderr
    assert f"partial_sums.py:{stop_line}" in table.stdout
    assert f"subprocess of {by_role[(3, 'main')]['pid']}" in table.stdout
    assert str(child["pid"]) in table.stdout and "waiting" in table.stdout

    # Rank 1.
    client = Client(procs, env, "1", "--job", "sums")
    first = client.read_until_prompt()
    assert "shard_sum()" in first and "-> doubled = total * 2" in first
    assert client.command("p total").strip() == str(shard_total(1))
    assert client.command("p rank, world").strip() == "(1, 4)"
    assert "-> return doubled // 2" in client.command("n")
    assert client.command("p doubled").strip() == str(2 * shard_total(1))
    assert "-> partial = shard_sum(rank, world, DATA)" in client.command("up")
    assert client.command("p rank").strip() == "1"
    code, rest = client.finish("c")
    assert code == 0, client.stderr_text()
    assert "session ended: continued" in client.stderr_text()
    wait_for(lambda: (out / "partial-1.json").exists(), JOB_TIMEOUT, "rank 1 to go on after 'c'")

    # Rank 3: without --pid the rank's own process is chosen over its subprocess.
    client = Client(procs, env, "3", "--job", "sums")
    assert "-> doubled = total * 2" in client.read_until_prompt()
    assert client.command("p os.getpid()").strip() == str(by_role[(3, "main")]["pid"])
    assert client.command("p total").strip() == str(shard_total(3))
    assert "-> return doubled // 2" in client.command("n")
    assert client.command("p doubled").strip() == str(2 * shard_total(3))
    client.command("up")
    assert client.command("p rank").strip() == "3"
    assert client.finish("c")[0] == 0

    # Rank 3's subprocess, by pid.
    client = Client(procs, env, "3", "--pid", str(child["pid"]), "--job", "sums")
    assert "cube_sum()" in client.read_until_prompt()
    assert client.command("p cubes[:3]").strip() == "[64, 512, 1728]"
    assert client.command("p sum(cubes)").strip() == str(sum(v**3 for v in DATA[3::WORLD]))
    assert "main()" in client.command("up")
    assert client.command("p rank, world").strip() == "(3, 4)"
    assert client.finish("c")[0] == 0

    assert job.wait(timeout=JOB_TIMEOUT) == 0, (out.parent / "job.stderr").read_text()
    results = check_results(out)
    assert results[3]["child_status"] == 0
    assert results[3]["child"]["value"] == sum(v**3 for v in DATA[3::WORLD])
    assert results[3]["child"]["ppid"] == by_role[(3, "main")]["pid"]

    # Nothing listens and nothing is registered once the job is done (the job dir was kept).
    job_dir = debug_dir / "sums"
    assert job_dir.is_dir()
    assert live_sockets(debug_dir) == []
    assert list((job_dir / "sessions").iterdir()) == []
    stderr = (out.parent / "job.stderr").read_text()
    assert stderr.count("waiting at partial_sums.py") == 2 and stderr.count("waiting at child_worker.py") == 1
    assert "nobody attached" not in stderr


def test_unattached_breakpoint_times_out_and_launcher_cleans_up(
    procs: Processes, debug_dir: Path, tmp_path: Path
) -> None:
    env = debug_env(debug_dir, MS_DEBUG_RANKS="2", MS_DEBUG_TIMEOUT="2")
    out = tmp_path / "out"
    out.mkdir()
    job = launch(procs, env, out, "--job", "lonely")
    # The registration appears, nobody attaches, the job finishes on its own.
    sessions = wait_for_sessions(env, 1, job="lonely")
    assert [(s["rank"], s["timeout_at"] - s["since"]) for s in sessions] == [(2, 2.0)]
    assert job.wait(timeout=JOB_TIMEOUT) == 0
    check_results(out)
    stderr = (out.parent / "job.stderr").read_text()
    timeouts = [line for line in stderr.splitlines() if "nobody attached" in line]
    assert len(timeouts) == 1 and timeouts[0].startswith("[ms-debug] rank 2 ") and "within 2 s; continuing" in timeouts[0]
    # Without --keep the launcher removes the job directory; no socket anywhere.
    assert not (debug_dir / "lonely").exists()
    assert live_sockets(debug_dir) == []
