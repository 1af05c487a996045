"""Command line: ``python -m tools.debug {list,attach,launch}``."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one sub-command; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.debug",
        description="Distributed debugger: breakpoints in any rank of a multi-process job (see docs/debugger.md).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p_list = sub.add_parser("list", help="show breakpoints waiting for a client (rank, pid, file:line, since)")
    p_list.add_argument("--job", help="only this job (default: $MS_DEBUG_JOB, else all jobs)")
    p_list.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")

    p_attach = sub.add_parser("attach", help="interactive pdb prompt in a waiting rank")
    p_attach.add_argument("rank", type=int)
    p_attach.add_argument("--pid", type=int, help="pick the process (e.g. a rank's data-loader worker)")
    p_attach.add_argument("--job", help="pick the job when several are waiting (default: $MS_DEBUG_JOB)")
    p_attach.add_argument("--secret-file", help="file holding the job secret (default: $MS_DEBUG_SECRET, else the job dir)")
    p_attach.add_argument(
        "--wait", type=float, default=0.0, metavar="SECONDS", help="wait up to SECONDS for the rank to reach a breakpoint"
    )

    p_launch = sub.add_parser("launch", help="run N local ranks of a program (RANK, WORLD_SIZE, ... set)")
    p_launch.add_argument("-n", "--nproc", type=int, required=True, help="number of ranks")
    p_launch.add_argument("--job", help="job id (default: launch-<pid>-<time>)")
    p_launch.add_argument("--keep", action="store_true", help="keep the job directory when the job ends")
    p_launch.add_argument("program", nargs=argparse.REMAINDER, help="-- script.py args | -- -m module args | -- cmd args")

    args = parser.parse_args(argv)
    if args.command == "list":
        from tools.debug.client import list_sessions

        return list_sessions(args.job, args.json)
    if args.command == "attach":
        from tools.debug.client import attach

        return attach(args.rank, pid=args.pid, job=args.job, secret_file=args.secret_file, wait=args.wait)
    from tools.debug.launch import launch

    program = args.program[1:] if args.program[:1] == ["--"] else args.program
    if not program:
        parser.error("launch needs a program after --")
    return launch(args.nproc, program, job=args.job, keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
