"""One request to many stopped ranks: ``eval EXPR`` (the values side by side by rank) and
``continue`` (let them all go on).

Each waiting session is asked over its own connection, in parallel; an evaluation never starts
pdb and leaves the breakpoint waiting, so ``eval`` can be repeated, followed by ``attach`` in the
rank whose value looks wrong, and ``continue`` at the end. Only the ranks' own processes are
asked unless ``--pid`` names a subprocess. Sessions on other nodes are asked through ssh.
"""
from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TextIO

from tools.debug.client import EXIT_ERROR, EXIT_NO_SESSION, EXIT_OK, connect, find_sessions, print_table, session_secret
from tools.debug.registry import SessionRecord
from tools.debug.settings import hostname, log

EVAL_TIMEOUT = 30.0  # seconds one rank gets to evaluate an expression


def _row(record: SessionRecord) -> dict[str, Any]:
    """The columns of one session's result row, before its answer."""
    return {"job": record.job, "rank": record.rank, "host": record.host, "pid": record.pid,
            "where": f"{record.file}:{record.line}", "function": record.function,
            "stopped": record.exception or record.kind}


def _ask(record: SessionRecord, request: dict[str, Any]) -> dict[str, Any]:
    row = _row(record)
    if record.state != "waiting":
        return {**row, "ok": False, "error": "attached by a client; not asked"}
    secret, why = session_secret(record)
    if secret is None:
        return {**row, "ok": False, "error": why}
    try:
        sock, reply, _kind = connect(record, secret, request, timeout=EVAL_TIMEOUT)
        sock.close()
    except (OSError, ValueError, KeyError) as exc:
        return {**row, "ok": False, "error": f"{exc.__class__.__name__}: {exc}"}
    return {**row, "ok": bool(reply.get("ok")), "value": reply.get("value"), "error": reply.get("error")}


def _remote(host: str, records: list[SessionRecord], args: list[str]) -> list[dict[str, Any]]:
    from tools.debug.remote import remote_json

    first = records[0]
    ranks = ",".join(str(r.rank) for r in records)
    rows, missing = remote_json(host, [*args, "--job", first.job, "--ranks", ranks], first.python, first.root,
                                Path(first.job_dir).parent, f"rank(s) {ranks}")
    answered = {row.get("pid") for row in rows}
    rows += [{**_row(r), "ok": False, "error": missing} for r in records if r.pid not in answered]
    return rows


def fanout(mode: str, expr: str | None, job: str | None, ranks: frozenset[int] | None, pid: int | None = None,
           local_only: bool = False) -> list[dict[str, Any]]:
    """Send ``mode`` (eval/continue) to the chosen waiting sessions; one result row per session."""
    sessions = [s for s in find_sessions(job) if (ranks is None or s.rank in ranks)
                and (s.pid == pid if pid is not None else s.role == "main")]
    if len({s.job for s in sessions}) > 1:
        raise ValueError(f"sessions of several jobs ({', '.join(sorted({s.job for s in sessions}))}); choose one with --job")
    by_rank: dict[tuple[str, int], SessionRecord] = {}
    for record in sessions:  # the oldest session of each process (threads: one at a time)
        by_rank.setdefault((record.host, record.pid), record)
    chosen = list(by_rank.values())
    request: dict[str, Any] = {"mode": mode} | ({"expr": expr} if expr is not None else {})
    here = hostname()
    local = [r for r in chosen if r.host == here]
    with ThreadPoolExecutor(max_workers=max(1, min(32, len(local)))) as pool:
        rows = list(pool.map(lambda r: _ask(r, request), local))
    if not local_only:
        remote: dict[str, list[SessionRecord]] = {}
        for record in chosen:
            if record.host != here:
                remote.setdefault(record.host, []).append(record)
        args = ["eval", expr or ""] if mode == "eval" else ["continue"]
        for host, records in sorted(remote.items()):
            rows += _remote(host, records, args)
    rows.sort(key=lambda r: (r["rank"], r["host"], r["pid"]))
    return rows


def fanout_command(mode: str, expr: str | None, job: str | None, ranks: frozenset[int] | None, pid: int | None,
                   as_json: bool, local_only: bool, out: TextIO | None = None) -> int:
    """``eval``/``continue``: 0 all answered, 1 some failed (errors shown per rank), 2 no session."""
    out = out or sys.stdout
    try:
        rows = fanout(mode, expr, job, ranks, pid, local_only)
    except ValueError as exc:
        log(str(exc))
        return EXIT_NO_SESSION
    if as_json:
        for row in rows:
            out.write(json.dumps(row) + "\n")
    elif rows:
        header = ["rank", "host", "pid", "where", "value" if mode == "eval" else "result"]
        table = [[str(r["rank"]), r["host"], str(r["pid"]), r.get("where", ""),
                  (r.get("value") or "") if r.get("ok") else f"! {r.get('error')}"] for r in rows]
        print_table(f"{expr}" if mode == "eval" else "continue", header, table, out)
    if not rows:
        log("no waiting session" + ("" if ranks is None else f" for rank(s) {','.join(map(str, sorted(ranks)))}"))
        return EXIT_NO_SESSION
    return EXIT_OK if all(r.get("ok") for r in rows) else EXIT_ERROR
