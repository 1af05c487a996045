"""``python -m tools.debug stacks``: where every rank of a running job is, without a breakpoint.

For each rank process registered by the agent (``tools.debug.agent``), the client sends the
stacks signal, whose faulthandler handler writes every thread's Python stack into the rank's
``.stacks`` file from C (so a rank blocked inside a collective, a lock or a ``recv`` answers),
and reads the rank's collectives page (which collective each thread waits in, if the transport
reports it). Ranks with the same stacks are grouped, and the groups are printed side by side:
"ranks 0,2,3 wait in barrier(); rank 1 sleeps in load_batch()" is the usual answer to a hang.

A pid is signalled only if its registration's start time matches the live process (a recycled
pid is never signalled); ranks on other nodes are asked through ssh (``tools.debug.remote``).
"""
from __future__ import annotations

import fcntl
import json
import linecache
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from tools.debug.agent import AgentRecord, read_agents
from tools.debug.barrier import process_start_time
from tools.debug.collectives import read_page
from tools.debug.registry import candidate_base_dirs, job_dirs, pid_alive
from tools.debug.run import is_wrapper_frame
from tools.debug.settings import hostname, log

_THREAD = re.compile(r"^(Current thread|Thread) (0x[0-9a-fA-F]+) \(most recent call first\):$")
_FRAME = re.compile(r'^  File "(.*)", line (\d+) in (.*)$')
STABLE = 0.15  # seconds without growth after which a dump is complete (faulthandler has no end marker)


def parse_faulthandler(text: str) -> list[dict[str, Any]]:
    """faulthandler's all-threads dump as [{"ident", "current", "frames": [{file, line, function}]}],
    frames innermost first as faulthandler writes them."""
    threads: list[dict[str, Any]] = []
    for line in text.splitlines():
        head = _THREAD.match(line)
        if head:
            threads.append({"ident": int(head.group(2), 16), "current": head.group(1) == "Current thread", "frames": []})
            continue
        frame = _FRAME.match(line)
        if frame and threads:
            threads[-1]["frames"].append({"file": frame.group(1), "line": int(frame.group(2)), "function": frame.group(3)})
    return threads


def why_not_signalled(agent: AgentRecord) -> str | None:
    """Why this registration cannot be signalled, or None."""
    if agent.stacks_signal is None:
        return "the program handles the stacks signal itself"
    if not pid_alive(agent.pid):
        return "exited"
    started = process_start_time(agent.pid)
    if started and abs(started - agent.started) > 1.0:
        return "exited (its pid now belongs to another process)"
    return None


def _prune(agent: AgentRecord) -> None:
    for suffix in (".json", ".stacks", ".coll"):
        try:
            agent.path(suffix).unlink()
        except OSError:
            pass


def collect_local(agents: list[AgentRecord], timeout: float = 2.0) -> list[dict[str, Any]]:
    """Signal every (local) agent at once, then read each dump when it stops growing."""
    results: list[dict[str, Any]] = []
    pending: list[tuple[AgentRecord, Any, dict[str, Any]]] = []
    for agent in agents:
        entry: dict[str, Any] = {"rank": agent.rank, "pid": agent.pid, "host": agent.host, "job": agent.job,
                                 "argv": agent.argv, "threads": [], "error": None}
        results.append(entry)
        why = why_not_signalled(agent)
        if why is not None:
            entry["error"] = why
            if why.startswith("exited"):
                _prune(agent)
            continue
        try:
            handle = open(agent.path(".stacks"), "r+b")
            fcntl.flock(handle, fcntl.LOCK_EX)  # one dump at a time per rank, across clients
            handle.truncate(0)  # the rank appends (O_APPEND): truncating under it is safe
            os.kill(agent.pid, agent.stacks_signal)  # type: ignore[arg-type]
        except OSError as exc:
            entry["error"] = f"cannot ask it: {exc.strerror or exc}"
            continue
        pending.append((agent, handle, entry))
    deadline = time.monotonic() + timeout
    sizes = {id(h): (-1, time.monotonic()) for _, h, _ in pending}
    while pending:
        now = time.monotonic()
        for item in list(pending):
            agent, handle, entry = item
            size = os.fstat(handle.fileno()).st_size
            last, since = sizes[id(handle)]
            if size != last:
                sizes[id(handle)] = (size, now)
                continue
            if size > 0 and now - since >= STABLE or now > deadline:
                handle.seek(0)
                text = handle.read().decode("utf-8", "replace")
                handle.close()
                pending.remove(item)
                entry["threads"] = _annotate(agent, parse_faulthandler(text))
                if not entry["threads"]:
                    entry["error"] = f"no answer within {timeout:g} s"
        time.sleep(0.01)
    return results


def _annotate(agent: AgentRecord, threads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Thread names, source lines and the collective each thread waits in (from its page);
    the outermost frames of ``python -m tools.debug run`` are left out."""
    calls = read_page(agent.path(".coll")) or {}
    for thread in threads:
        while thread["frames"] and is_wrapper_frame(thread["frames"][-1]["file"]):
            thread["frames"].pop()
        call = calls.get(thread["ident"])
        thread["collective"] = call
        if thread["ident"] == agent.main_thread:
            thread["name"] = "MainThread"
        elif call:
            thread["name"] = call.get("thread")
        else:  # faulthandler has no names: say which function the thread runs
            targets = [f["function"] for f in thread["frames"] if os.path.basename(f["file"]) != "threading.py"]
            thread["name"] = f"thread 0x{thread['ident']:x} ({targets[-1]})" if targets else None
        for frame in thread["frames"]:
            frame["source"] = linecache.getline(frame["file"], frame["line"]).strip()
    threads.sort(key=lambda t: t["ident"] != agent.main_thread)  # the main thread first
    return threads


def _remote(host: str, agents: list[AgentRecord], job: str, timeout: float) -> list[dict[str, Any]]:
    from tools.debug.remote import remote_json

    ranks = ",".join(str(a.rank) for a in agents)
    rows, missing = remote_json(host, ["stacks", "--job", job, "--ranks", ranks, "--timeout", f"{timeout:g}"],
                                agents[0].python, agents[0].root, Path(agents[0].job_dir).parent, f"rank(s) {ranks}")
    seen = {row.get("pid") for row in rows}
    rows += [{"rank": a.rank, "pid": a.pid, "host": host, "job": a.job, "threads": [], "error": missing}
             for a in agents if a.pid not in seen]
    return rows


def collect(job: str | None, ranks: frozenset[int] | None, timeout: float = 2.0, local_only: bool = False,
            errors: list[str] | None = None) -> list[dict[str, Any]]:
    """Stacks of every registered rank of ``job`` (or of every job), this node's and others'."""
    agents = [a for a in read_agents(job_dirs(candidate_base_dirs(), job, errors), errors)
              if ranks is None or a.rank in ranks]
    here = hostname()
    results = collect_local([a for a in agents if a.host == here], timeout)
    if not local_only:
        by_host: dict[tuple[str, str], list[AgentRecord]] = {}
        for agent in agents:
            if agent.host != here:
                by_host.setdefault((agent.host, agent.job), []).append(agent)
        for (host, job_id), group in sorted(by_host.items()):
            results.extend(_remote(host, group, job_id, timeout))
    results.sort(key=lambda r: (r["job"], r["rank"], r["host"], r["pid"]))
    return results


# --- rendering -----------------------------------------------------------------------------------
def _collective_text(call: dict[str, Any] | None, now: float) -> str:
    if not call:
        return ""
    details = ", ".join(f"{k}={v}" for k, v in (call.get("details") or {}).items())
    return f"in collective {call['op']}({details}) for {now - float(call.get('since', now)):.1f} s"


def _signature(entry: dict[str, Any]) -> tuple:
    return tuple(
        (t.get("name"), tuple((f["file"], f["line"], f["function"]) for f in t["frames"]),
         (t.get("collective") or {}).get("op"))
        for t in entry["threads"]
    ) + ((entry["error"],) if entry["error"] else ())


def _cell(entry: dict[str, Any], now: float) -> str:
    if entry["error"]:
        return f"({entry['error']})"
    lines = []
    for thread in entry["threads"]:
        name = thread.get("name") or f"thread 0x{thread['ident']:x}"
        lines.append(f"{name}:")
        if thread.get("collective"):
            lines.append(f"  {_collective_text(thread['collective'], now)}")
        for frame in thread["frames"]:
            lines.append(f"  {frame['function']}  {os.path.basename(frame['file'])}:{frame['line']}")
            if frame.get("source"):
                lines.append(f"      {frame['source']}")
        lines.append("")
    return "\n".join(lines).rstrip()


def _fmt_ranks(ranks: list[int]) -> str:
    return ",".join(str(r) for r in ranks)


def render(results: list[dict[str, Any]], out: TextIO) -> None:
    """Ranks with identical stacks grouped; the groups side by side, innermost frame first."""
    from tools.debug.client import print_table

    now = time.time()
    for job in sorted({r["job"] for r in results}):
        groups: dict[tuple, list[dict[str, Any]]] = {}
        for entry in (r for r in results if r["job"] == job):
            groups.setdefault(_signature(entry), []).append(entry)
        ordered = sorted(groups.values(), key=lambda g: g[0]["rank"])
        header = []
        for group in ordered:
            hosts = sorted({e["host"] for e in group})
            header.append(f"rank{'s' if len(group) > 1 else ''} {_fmt_ranks([e['rank'] for e in group])}"
                          f" ({', '.join(hosts)}; pid {_fmt_ranks([e['pid'] for e in group])})")
        print_table(f"job {job}: Python stacks, most recent call first", header,
                    [[_cell(group[0], now) for group in ordered]], out, upper=False)


def stacks_command(job: str | None, ranks: frozenset[int] | None, as_json: bool, local_only: bool,
                   timeout: float, out: TextIO | None = None) -> int:
    """``python -m tools.debug stacks``: 0 when every rank answered, 1 otherwise, 2 no ranks."""
    from tools.debug.client import job_filter

    out = out or sys.stdout
    job = job_filter(job)
    errors: list[str] = []
    results = collect(job, ranks, timeout, local_only, errors)
    for error in errors:
        log(error)
    if as_json:
        for entry in results:
            out.write(json.dumps(entry) + "\n")
    elif results:
        render(results, out)
    if not results:
        log("no registered ranks" + (f" in job {job}" if job else "") +
            " (start the job with `python -m tools.debug launch`, or its ranks with `python -m tools.debug run --`)")
        return 2
    return 1 if errors or any(e["error"] for e in results) else 0
