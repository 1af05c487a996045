"""``python -m tools.convert``: convert trees, check and list rule files (workspaces: ``python -m tools.workspace``)."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .errors import RuleError, UsageError

EXIT_OK, EXIT_CHANGES, EXIT_USAGE, EXIT_FILE_FAILURES, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def _ids(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _rules_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rules", action="append", type=Path, metavar="PATH",
                   help="rule file or folder of *.yaml (repeatable; default: the project's rules/)")
    p.add_argument("--select", type=_ids, default=[], metavar="IDS",
                   help="comma-separated rule ids, id prefixes or families (imports, apis, scoped, transforms)")
    p.add_argument("--ignore", type=_ids, default=[], metavar="IDS", help="like --select, to leave rules out")


def _target_path_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target-path", action="append", type=Path, default=[], metavar="DIR",
                   help="check the targets against the mindtorch found first in DIR, like a PYTHONPATH entry "
                        "(repeatable, searched in order, before the installed packages), e.g. a workspace's "
                        "patched copy: --target-path <workspace>/mindtorch. Only this option adds it: "
                        "$MS_CONVERT_WORKSPACE is not consulted (an inherited PYTHONPATH still applies)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.convert",
        description="Convert PyTorch / torch_npu code to MindSpore's mindtorch with declarative rules.",
        epilog="exit status: 0 done, 1 --check found changes, 2 bad arguments or rule files, "
               "3 done but some files failed (see the report; --check too: they could not be checked), "
               "130 interrupted",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    conv = sub.add_parser("convert", help="convert a source tree in place or into an output tree",
                          description="Convert every .py file under PATH. Files with nothing to convert stay "
                                      "byte-identical. Writes are atomic; an interrupted run can simply be re-run.")
    conv.add_argument("path", type=Path, help="root of the tree to convert")
    conv.add_argument("-o", "--output", type=Path, help="write a converted copy here instead of converting in place")
    _rules_args(conv)
    conv.add_argument("-j", "--jobs", type=int, default=None, help="worker processes (default: CPU count)")
    mode = conv.add_mutually_exclusive_group()
    mode.add_argument("--diff", action="store_true", help="print a unified diff; write nothing")
    mode.add_argument("--check", action="store_true",
                      help="exit 1 if anything would change (3 if some files cannot be converted); write nothing")
    conv.add_argument("--report-dir", type=Path,
                      help="where to write change_list.csv, unsupported_api.csv, summary.json "
                           "(default: <tree>/.ms-convert/report)")
    conv.add_argument("--cache-dir", type=Path, help="cache folder (default: <tree>/.ms-convert/cache)")
    conv.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    conv.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                      help="skip paths matching this glob (relative to PATH; repeatable)")
    conv.add_argument("--max-file-size", type=int, default=8 * 1024 * 1024, metavar="BYTES",
                      help="skip larger files (reported)")
    conv.add_argument("--no-introspect", action="store_true",
                      help="do not check retargeted APIs against the installed mindtorch")
    _target_path_arg(conv)
    conv.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary table")

    rules = sub.add_parser("rules", help="validate rule files, check targets, list rules")
    rsub = rules.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    check = rsub.add_parser("check", help="validate rule files and check every target against the installed mindtorch")
    _rules_args(check)
    check.add_argument("--no-introspect", action="store_true", help="only validate the files")
    _target_path_arg(check)
    lst = rsub.add_parser("list", help="list the rules")
    _rules_args(lst)
    fp = rsub.add_parser("fingerprint", help="print the body fingerprint a replace_body rule expects (expect_body)")
    fp.add_argument("file", type=Path, help="the upstream source file")
    fp.add_argument("within", help="qualified function name, e.g. Class.method")
    fp.add_argument("--no-keep-docstring", action="store_true", help="the rule has keep_docstring: false")

    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    from rich.console import Console
    console = Console(stderr=True, soft_wrap=True)
    try:
        if args.command == "convert":
            return _convert(args, console)
        if args.rules_command == "check":
            from .checkrules import check_rules
            return check_rules(args.rules, args.select, args.ignore, not args.no_introspect, console,
                               target_path=args.target_path)
        if args.rules_command == "fingerprint":
            from .checkrules import fingerprint
            return fingerprint(args.file, args.within, not args.no_keep_docstring)
        from .checkrules import list_rules
        return list_rules(args.rules, args.select, args.ignore, console)
    except (RuleError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted: every file is either old or new; run the same command again to finish",
              file=sys.stderr)
        return EXIT_INTERRUPTED


def _convert(args, console) -> int:
    from .report import shown
    from .ruleset import load_rules
    from .runner import RunOptions, run

    rules = load_rules(args.rules, args.select, args.ignore)
    interactive = console.is_terminal and not args.quiet
    result = run(args.path, rules, RunOptions(
        output=args.output, jobs=args.jobs, report_dir=args.report_dir, cache_dir=args.cache_dir,
        use_cache=not args.no_cache, diff=args.diff, check=args.check, excludes=tuple(args.exclude),
        max_file_size=args.max_file_size, progress=interactive, introspect=not args.no_introspect,
        console=None if args.quiet else console, target_path=tuple(args.target_path),
    ))
    if args.diff:
        sys.stdout.write(result.diff)
    if args.quiet:   # the summary table is not printed: still say what went wrong, one line each
        for f in result.summary["failures"]:
            print(f"failed {shown(f['file'])}: {shown(f['reason'])}", file=sys.stderr)
        for warning in result.summary["warnings"]:
            print(f"warning: {shown(warning)}", file=sys.stderr)
    failed = result.summary["files_failed"]
    if args.check:
        changed = [r.path for r in result.results if r.status == "changed"]
        for path in changed:
            print(f"would convert {shown(path)}")
        if failed:   # not a clean bill: these files could not be checked
            return EXIT_FILE_FAILURES
        return EXIT_CHANGES if changed else EXIT_OK
    return EXIT_FILE_FAILURES if failed else EXIT_OK
