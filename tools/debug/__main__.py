"""Command line: ``python -m tools.debug {list,attach,stacks,eval,continue,break,launch,run,clean}``."""
from __future__ import annotations

import argparse
import sys


def _ranks(text: str):
    from tools.debug.rank import parse_ranks

    try:
        return parse_ranks(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a rank list like 1,3 or 0-3 or all") from None


def _program(parser: argparse.ArgumentParser, raw: list[str], command: str) -> list[str]:
    program = raw[1:] if raw[:1] == ["--"] else raw
    if not program:
        parser.error(f"{command} needs a program after --")
    return program


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one sub-command; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.debug",
        description="Distributed debugger: breakpoints, stacks and post-mortems in any rank of a multi-process job "
        "(see docs/debugger.md).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p_list = sub.add_parser("list", help="show sessions (rank, host, pid, file:line, why stopped, since)")
    p_list.add_argument("--job", help="only this job (default: $MS_DEBUG_JOB, else all jobs)")
    p_list.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")

    p_attach = sub.add_parser("attach", help="interactive pdb prompt in a waiting rank (ssh to its node if needed)")
    p_attach.add_argument("rank", type=int)
    p_attach.add_argument("--pid", type=int, help="pick the process (e.g. a rank's data-loader worker)")
    p_attach.add_argument("--job", help="pick the job when several are waiting (default: $MS_DEBUG_JOB)")
    p_attach.add_argument("--secret-file", help="file holding the job secret (default: $MS_DEBUG_SECRET, else the job dir)")
    p_attach.add_argument(
        "--wait", type=float, default=0.0, metavar="SECONDS", help="wait up to SECONDS for the rank to reach a breakpoint"
    )
    p_attach.add_argument("--print-command", action="store_true",
                          help="for a rank on another node: print the ssh command instead of running it")

    p_stacks = sub.add_parser("stacks", help="Python stack of every thread of every rank of a running job")
    p_stacks.add_argument("--job", help="only this job (default: $MS_DEBUG_JOB, else all jobs)")
    p_stacks.add_argument("--ranks", type=_ranks, help="only these ranks (1,3 or 0-3)")
    p_stacks.add_argument("--json", action="store_true", help="one JSON object per rank")
    p_stacks.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for the ranks' dumps (2)")
    p_stacks.add_argument("--local-only", action="store_true", help="only ranks of this node (what ssh runs remotely)")

    p_eval = sub.add_parser("eval", help="evaluate an expression in every stopped rank; values side by side")
    p_eval.add_argument("expr")
    p_cont = sub.add_parser("continue", help="let every (or the chosen) stopped rank continue")
    for p in (p_eval, p_cont):
        p.add_argument("--job", help="the job (default: $MS_DEBUG_JOB, else the only one with sessions)")
        p.add_argument("--ranks", type=_ranks, help="only these ranks (1,3 or 0-3)")
        p.add_argument("--pid", type=int, help="only this process (e.g. a subprocess of a rank)")
        p.add_argument("--json", action="store_true", help="one JSON object per rank")
        p.add_argument("--local-only", action="store_true", help="only sessions of this node (what ssh runs remotely)")

    p_break = sub.add_parser("break", help="open a session in a running rank (signal), then attach")
    p_break.add_argument("rank", type=int)
    p_break.add_argument("--job", help="the job (default: $MS_DEBUG_JOB)")
    p_break.add_argument("--pid", type=int, help="the process, when the rank has several registered")
    p_break.add_argument("--print-command", action="store_true", help="for another node: print the ssh command")

    p_launch = sub.add_parser("launch", help="run N local ranks of a program (RANK, WORLD_SIZE, ... set)")
    p_launch.add_argument("-n", "--nproc", type=int, required=True, help="number of ranks")
    p_launch.add_argument("--job", help="job id (default: launch-<pid>-<time>)")
    p_launch.add_argument("--keep", action="store_true", help="keep the job directory when the job ends")
    p_launch.add_argument("--post-mortem", action="store_true", help="an uncaught exception in a rank opens a session")
    p_launch.add_argument("program", nargs=argparse.REMAINDER, help="-- script.py args | -- -m module args | -- cmd args")

    p_run = sub.add_parser("run", help="run a program in this process with the rank agent (for any launcher)")
    p_run.add_argument("--post-mortem", action="store_true", help="an uncaught exception opens a session")
    p_run.add_argument("program", nargs=argparse.REMAINDER, help="-- script.py args | -- -m module args")

    p_clean = sub.add_parser("clean", help="remove job directories no live process uses")
    p_clean.add_argument("--job", help="only this job")
    p_clean.add_argument("--older-than", type=float, default=60.0, metavar="SECONDS",
                         help="only directories unchanged for SECONDS (60)")
    p_clean.add_argument("--all-hosts", action="store_true", help="also directories with records of other nodes")
    p_clean.add_argument("--dry-run", action="store_true", help="only say what would be removed")

    args = parser.parse_args(argv)
    if args.command == "list":
        from tools.debug.client import list_sessions

        return list_sessions(args.job, args.json)
    if args.command == "attach":
        from tools.debug.client import attach

        return attach(args.rank, pid=args.pid, job=args.job, secret_file=args.secret_file, wait=args.wait,
                      print_only=args.print_command)
    if args.command == "stacks":
        from tools.debug.stacks import stacks_command

        return stacks_command(args.job, args.ranks, args.json, args.local_only, args.timeout)
    if args.command in ("eval", "continue"):
        from tools.debug.fanout import fanout_command

        return fanout_command(args.command, getattr(args, "expr", None), args.job, args.ranks, args.pid, args.json,
                              args.local_only)
    if args.command == "break":
        from tools.debug.interrupt import break_command

        return break_command(args.rank, args.job, args.pid, print_only=args.print_command)
    if args.command == "clean":
        from tools.debug.clean import clean

        return clean(args.job, args.older_than, args.all_hosts, args.dry_run)
    if args.command == "run":
        from tools.debug.run import program_error, run

        program = _program(parser, args.program, "run")
        if (why := program_error(program)) is not None:
            print(f"[ms-debug] {why}", file=sys.stderr)
            return 2  # what python itself returns for a missing script
        return run(program, post_mortem=args.post_mortem or None)
    from tools.debug.launch import launch

    return launch(args.nproc, _program(parser, args.program, "launch"), job=args.job, keep=args.keep,
                  post_mortem=args.post_mortem)


if __name__ == "__main__":
    sys.exit(main())
