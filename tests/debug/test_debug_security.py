"""Plain Python (no launcher), the secret handshake, private directories, and how sessions end:
detach clears the session's breakpoints, process exit while attached, a killed process."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import stat
import subprocess
from pathlib import Path

from debug_testkit import (
    JOB_TIMEOUT,
    JOBS,
    PYTHON,
    Client,
    Processes,
    debug_env,
    list_json,
    live_sockets,
    run_client,
    wait_for_sessions,
)

from tools.debug import protocol

SCRIPT = JOBS / "plain_script.py"


def line_of(text: str) -> int:
    return next(i for i, line in enumerate(SCRIPT.read_text().splitlines(), 1) if text in line)


def start_plain(procs: Processes, env: dict[str, str], tmp_path: Path) -> subprocess.Popen:
    return procs.start(
        [PYTHON, str(SCRIPT)], env, stdout=open(tmp_path / "stdout", "wb"), stderr=open(tmp_path / "stderr", "wb")
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def raw_handshake(sock_path: str, answer: bytes | None, kind: bytes = protocol.AUTH) -> tuple[bytes, bytes] | None:
    """Talk to the session socket directly: read the challenge, send ``answer`` as ``kind``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(sock_path)
        hello = protocol.recv_frame(sock)
        assert hello is not None and hello[0] == protocol.HELLO
        assert set(json.loads(hello[1])) == {"protocol", "nonce"}  # nothing about the session before auth
        if answer is None:
            sock.sendall(b"p secret_value\n")  # not even a frame
        else:
            protocol.send_frame(sock, kind, answer)
        try:
            reply = protocol.recv_frame(sock)
            assert protocol.recv_frame(sock) is None  # and the server hangs up
        except ConnectionResetError:  # closed with our unread garbage in its buffer
            reply = None
        return reply


def test_attach_is_refused_without_the_job_secret(procs: Processes, debug_dir: Path, tmp_path: Path) -> None:
    # As a launcher would: the secret comes from $MS_DEBUG_SECRET, so no secret file is written.
    env = debug_env(debug_dir, MS_DEBUG_SECRET="s3cret-from-the-launcher", MS_DEBUG_JOB="plain")
    job = start_plain(procs, env, tmp_path)
    (session,) = wait_for_sessions(env, 1)
    assert (session["rank"], session["rank_source"], session["role"]) == (0, "default", "main")

    job_dir = debug_dir / "plain"
    sock_path = job_dir / "sessions" / session["socket"]
    assert mode(debug_dir) == mode(job_dir) == mode(job_dir / "sessions") == 0o700
    assert mode(sock_path) == 0o600 and stat.S_ISSOCK(sock_path.lstat().st_mode)
    assert mode(job_dir / "sessions" / f"{session['session']}.json") == 0o600
    assert not (job_dir / "secret").exists()

    client_env = {k: v for k, v in env.items() if k != "MS_DEBUG_SECRET"}
    missing = run_client(client_env, "0", input_text="p secret_value\n")
    assert missing.returncode == 3 and "no secret for job plain" in missing.stderr
    wrong = run_client(dict(env, MS_DEBUG_SECRET="guessed"), "0", input_text="p secret_value\n")
    assert wrong.returncode == 3 and "refused by rank 0" in wrong.stderr and "wrong or missing secret" in wrong.stderr
    assert "1234" not in wrong.stdout + missing.stdout

    # Below the client: a wrong HMAC, a pdb command instead of the handshake, unframed text.
    nonce_free_guess = protocol.auth_answer(b"guessed", b"")
    assert raw_handshake(str(sock_path), nonce_free_guess) == (protocol.DENIED, b"wrong or missing secret")
    assert raw_handshake(str(sock_path), b"p secret_value", kind=protocol.LINE)[0] == protocol.DENIED
    assert raw_handshake(str(sock_path), None) is None

    # The refusals were logged, and the breakpoint still waits for the rightful user.
    assert [s["state"] for s in list_json(env)] == ["waiting"]
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text("s3cret-from-the-launcher\n")
    client = Client(procs, client_env, "0", "--secret-file", str(secret_file))
    assert "-> result = accumulate(5) + secret_value" in client.read_until_prompt()
    assert client.command("p secret_value").strip() == "1234"
    assert client.finish("c")[0] == 0
    assert job.wait(timeout=JOB_TIMEOUT) == 0
    stderr = (tmp_path / "stderr").read_text()
    assert stderr.count("refused a client") == 4  # the client without a secret never connected
    assert "result 1264 tracing False breakpoints 0" in (tmp_path / "stdout").read_text()
    assert live_sockets(debug_dir) == [] and list((job_dir / "sessions").iterdir()) == []


def test_detach_clears_the_sessions_breakpoints(procs: Processes, debug_dir: Path, tmp_path: Path) -> None:
    env = debug_env(debug_dir, MS_DEBUG_JOB="detach")
    job = start_plain(procs, env, tmp_path)
    wait_for_sessions(env, 1)
    secret = debug_dir / "detach" / "secret"
    assert mode(secret) == 0o600 and len(secret.read_text().strip()) == 64

    client = Client(procs, env, "0")
    client.read_until_prompt()
    loop = line_of("# LOOP_BODY")
    assert f"Breakpoint 1 at {SCRIPT}:{loop}" in client.command(f"b {SCRIPT}:{loop}")
    assert "-> acc += i * i" in client.command("c")  # same session, stopped at the new breakpoint
    assert client.command("p i").strip() == "0"
    assert "-> acc += i * i" in client.command("c")
    assert client.command("p i, acc").strip() == "(1, 0)"
    code, rest = client.finish(None)  # end of input = Ctrl-D: detach
    assert code == 0
    assert "session ended: client disconnected" in client.stderr_text()
    assert job.wait(timeout=JOB_TIMEOUT) == 0
    # Had the breakpoint survived, pdb would still trace the program and the loop would stop again.
    assert "result 1264 tracing False breakpoints 0" in (tmp_path / "stdout").read_text()


def test_process_exit_while_attached_ends_the_session(procs: Processes, debug_dir: Path, tmp_path: Path) -> None:
    env = debug_env(debug_dir, MS_DEBUG_JOB="exits")
    job = start_plain(procs, env, tmp_path)
    wait_for_sessions(env, 1)
    client = Client(procs, env, "0")
    client.read_until_prompt()
    client.command("b never_called")
    code, _ = client.finish("c")  # a breakpoint is set, so the session stays open until the process exits
    assert code == 0
    assert "session ended: process exiting" in client.stderr_text()
    assert job.wait(timeout=JOB_TIMEOUT) == 0
    assert "result 1264" in (tmp_path / "stdout").read_text()
    assert live_sockets(debug_dir) == [] and list((debug_dir / "exits" / "sessions").iterdir()) == []


def test_sigterm_while_attached_cleans_up_and_tells_the_client(
    procs: Processes, debug_dir: Path, tmp_path: Path
) -> None:
    env = debug_env(debug_dir, MS_DEBUG_JOB="term")
    job = start_plain(procs, env, tmp_path)
    wait_for_sessions(env, 1)
    client = Client(procs, env, "0")
    client.read_until_prompt()
    assert client.command("p secret_value").strip() == "1234"
    os.kill(job.pid, signal.SIGTERM)  # what a launcher sends when another rank failed
    assert job.wait(timeout=JOB_TIMEOUT) == -signal.SIGTERM
    code, _ = client.finish(None)  # the client ends by itself (it may be gone before we type anything)
    assert code == 0 and "session ended: process received signal 15" in client.stderr_text()
    assert live_sockets(debug_dir) == [] and list((debug_dir / "term" / "sessions").iterdir()) == []


def test_a_killed_process_leaves_nothing_listable(procs: Processes, debug_dir: Path, tmp_path: Path) -> None:
    env = debug_env(debug_dir, MS_DEBUG_JOB="killed")
    job = start_plain(procs, env, tmp_path)
    (session,) = wait_for_sessions(env, 1)
    client = Client(procs, env, "0")
    client.read_until_prompt()
    code, _ = client.finish("import os; os._exit(7)")  # dies on the spot: no atexit, no cleanup
    assert code == 0 and "connection closed by the process" in client.stderr_text()
    assert job.wait(timeout=JOB_TIMEOUT) == 7
    record = debug_dir / "killed" / "sessions" / f"{session['session']}.json"
    assert record.exists()  # the dead process could not remove it ...
    assert list_json(env) == []  # ... list sees its pid is gone and prunes it
    assert not record.exists()


def test_insecure_job_directory_is_refused_and_the_program_continues(
    procs: Processes, debug_dir: Path, tmp_path: Path
) -> None:
    env = debug_env(debug_dir, MS_DEBUG_JOB="shared")
    (debug_dir / "shared").mkdir(parents=True)
    os.chmod(debug_dir, 0o700)
    os.chmod(debug_dir / "shared", 0o777)
    job = start_plain(procs, env, tmp_path)
    assert job.wait(timeout=JOB_TIMEOUT) == 0
    stderr = (tmp_path / "stderr").read_text()
    assert "debugger unavailable" in stderr and "has mode 0777" in stderr
    assert "result 1264" in (tmp_path / "stdout").read_text()
    assert live_sockets(debug_dir) == []


def test_deep_debug_dir_falls_back_to_a_short_socket_path(procs: Processes, tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60) / "dbg"
    env = debug_env(deep, MS_DEBUG_JOB="deep")
    job = start_plain(procs, env, tmp_path)
    (session,) = wait_for_sessions(env, 1)
    sock = Path(session["socket"])
    assert sock.is_absolute() and len(str(sock)) < 104 and mode(sock.parent) == 0o700 and mode(sock) == 0o600
    digest = hashlib.sha1(str(deep / "deep").encode()).hexdigest()[:10]
    assert sock.name.startswith(digest)
    client = Client(procs, env, "0")
    client.read_until_prompt()
    assert client.command("p secret_value").strip() == "1234"
    assert client.finish("c")[0] == 0
    assert job.wait(timeout=JOB_TIMEOUT) == 0
    assert not sock.exists()
