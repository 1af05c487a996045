"""A hung 4-rank job with no debugger call in its code (launched through ``tools.debug launch``,
so every rank runs under the agent): ``stacks`` shows ranks 0, 2, 3 blocked in the barrier (with
the collective they wait in) and rank 1 sleeping in load_batch, within 2 s; ``break 1`` opens a
session where rank 1 is, ``n`` steps, ``c`` lets it go, and the job finishes with its results."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from debug_testkit import JOB_TIMEOUT, JOBS, Client, Processes, agents, debug_env, launch_job, run_cli, wait_for

from tools.debug import stacks

SCRIPT = JOBS / "hang_job.py"


def user_frames(thread: dict) -> list[dict]:
    return [f for f in thread["frames"] if os.path.basename(f["file"]) in ("hang_job.py", "toy_transport.py")]


def hung_as_expected(results: list[dict]) -> bool:
    by_rank = {r["rank"]: r for r in results}
    if sorted(by_rank) != [0, 1, 2, 3] or any(r["error"] for r in results):
        return False
    main = {rank: r["threads"][0] for rank, r in by_rank.items()}
    # Ranks 2 and 3 retry connecting (sleeping 50 ms) until rank 0 has opened the barrier: on a
    # loaded machine they can be seen there first, so "hung" means inside the recv.
    return (all((main[r]["collective"] or {}).get("op") == "barrier" for r in (0, 2, 3))
            and all(user_frames(main[r])[:1] and user_frames(main[r])[0]["source"].startswith("conn.recv(1)")
                    for r in (2, 3))
            and user_frames(main[1])[:1] != [] and user_frames(main[1])[0]["function"] == "load_batch")


def test_stacks_of_every_rank_of_a_hung_job_then_break_into_one(procs: Processes, debug_dir: Path, tmp_path: Path) -> None:
    env = debug_env(debug_dir)
    out = tmp_path / "out"
    out.mkdir()
    job = launch_job(procs, env, tmp_path / "job.stderr", SCRIPT, str(out), options=("--job", "hang"))
    wait_for(lambda: len(agents(env, "hang")) == 4 and all((out / f"entering-{r}").exists() for r in (0, 2, 3)),
             JOB_TIMEOUT, "4 registered ranks, 3 of them entering the barrier")
    os.environ["MS_DEBUG_DIR"] = env["MS_DEBUG_DIR"]  # the in-process collect() below reads it
    try:
        # The ranks enter the barrier a moment after their marker: ask until they are inside.
        deadline = time.monotonic() + JOB_TIMEOUT
        while True:
            started = time.monotonic()
            results = stacks.collect("hang", None)
            elapsed = time.monotonic() - started
            if hung_as_expected(results) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        del os.environ["MS_DEBUG_DIR"]
    assert hung_as_expected(results), json.dumps(results, indent=1)
    assert elapsed < 2.0, f"collecting the 4 ranks' stacks took {elapsed:.2f} s"

    by_rank = {r["rank"]: r for r in results}
    for rank in (2, 3):  # blocked in recv, in the barrier, called from main
        main = by_rank[rank]["threads"][0]
        assert main["name"] == "MainThread"
        frames = user_frames(main)
        assert [f["function"] for f in frames] == ["barrier", "main", "<module>"], frames
        assert frames[0]["source"].startswith("conn.recv(1)")
        assert main["collective"]["details"] == {"group": "world", "size": 4}
    rank0 = by_rank[0]["threads"]
    assert len(rank0) == 2 and rank0[0]["name"] == "MainThread"
    assert "server.accept()" in user_frames(rank0[0])[0]["source"]  # rank 0 waits for the missing rank
    assert rank0[1]["name"].endswith("(heartbeat)") and rank0[1]["collective"] is None
    assert any(f["function"] == "heartbeat" and f["source"] == "stop.wait()" for f in rank0[1]["frames"])
    sleeper = user_frames(by_rank[1]["threads"][0])
    assert sleeper[0]["function"] == "load_batch" and sleeper[0]["source"].startswith("time.sleep(0.2)")
    assert by_rank[1]["threads"][0]["collective"] is None
    assert not any(f["file"].endswith(("tools/debug/run.py", "runpy>")) for r in results for t in r["threads"]
                   for f in t["frames"])  # the wrapper's own frames are left out

    # The command people run: ranks with the same stacks grouped, side by side.
    table = run_cli(env, "stacks", "--job", "hang")
    assert table.returncode == 0, table.stderr
    header = next(line for line in table.stdout.splitlines() if "rank 1 " in line)
    assert header.index("rank 0 ") < header.index("rank 1 ") < header.index("ranks 2,3 ")
    assert "in collective barrier(group=world, size=4)" in table.stdout and "conn.recv(1)" in table.stdout
    assert "time.sleep(0.2)  # rank 1 is stuck here" in table.stdout

    # Open a session in the sleeping rank, step once, let it go.
    client = Client(procs, env, "1", "--job", "hang", command="break")
    first = client.read_until_prompt()
    assert "opened by a signal" in first and "load_batch()" in first and "-> time.sleep(0.2)" in first
    where = client.command("w")
    assert "runpy" not in where and where.lstrip().startswith(f"{SCRIPT}(") and "<module>()" in where.splitlines()[0]
    assert client.command("p waited > 0").strip() == "True"
    assert "-> waited += 1" in client.command("n")
    (out / "go").touch()
    assert client.finish("c")[0] == 0
    assert "session ended: continued" in client.stderr_text()

    assert job.wait(timeout=JOB_TIMEOUT) == 0, (tmp_path / "job.stderr").read_text()
    assert [json.loads((out / f"result-{r}.json").read_text())["value"] for r in range(4)] == [100, 200, 300, 400]
    assert not (debug_dir / "hang").exists()  # the launcher removed the job directory
