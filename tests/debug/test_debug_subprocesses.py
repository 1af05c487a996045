"""Data-loader style workers (multiprocessing fork and spawn) of a rank get their own sessions,
labelled with their pid and the rank they inherited."""
from __future__ import annotations

from pathlib import Path

from debug_testkit import JOB_TIMEOUT, JOBS, PYTHON, Client, Processes, debug_env, live_sockets, wait_for_sessions

SCRIPT = JOBS / "mp_workers.py"


def test_multiprocessing_workers_get_their_own_sessions(procs: Processes, debug_dir: Path, tmp_path: Path) -> None:
    env = debug_env(debug_dir, RANK="2", WORLD_SIZE="4", MS_DEBUG_JOB="mp")
    job = procs.start([PYTHON, str(SCRIPT)], env, stdout=open(tmp_path / "stdout", "wb"), stderr=open(tmp_path / "stderr", "wb"))
    (main,) = wait_for_sessions(env, 1)
    assert (main["rank"], main["role"], main["function"]) == (2, "main", "main")
    client = Client(procs, env, "2")
    client.read_until_prompt()
    assert client.finish("c")[0] == 0

    for index in (1, 2):  # the fork worker, then the spawn worker
        (worker,) = wait_for_sessions(env, 1)
        assert (worker["rank"], worker["role"], worker["function"]) == (2, "subprocess", "load_batch")
        assert worker["ppid"] == main["pid"] and worker["pid"] != main["pid"]
        client = Client(procs, env, "2", "--pid", str(worker["pid"]))
        assert "-> queue.put((index, sum(batch), os.getpid()))" in client.read_until_prompt()
        assert client.command("p index, batch").strip() == f"({index}, {[index * 10 + k for k in range(3)]})"
        assert client.command("p os.getpid() != os.getppid() == %d" % main["pid"]).strip() == "True"
        assert client.finish("c")[0] == 0

    assert job.wait(timeout=JOB_TIMEOUT) == 0, (tmp_path / "stderr").read_text()
    assert f"results (1, 33) (2, 63) main {main['pid']}" in (tmp_path / "stdout").read_text()
    assert live_sockets(debug_dir) == [] and list((debug_dir / "mp" / "sessions").iterdir()) == []
