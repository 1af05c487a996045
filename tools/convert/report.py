"""Reports: change_list.csv, unsupported_api.csv (the columns of Ascend's transplant tool) and
summary.json; and the summary table on a terminal."""
from __future__ import annotations

import csv
import io
import json
from collections import Counter
from pathlib import Path

from .model import Category, FileResult, SkipReason, Status
from .fsio import atomic_write

CHANGE_COLUMNS = ["File", "Start Line", "End Line", "Operation Type", "Message"]
UNSUPPORTED_COLUMNS = ["File", "Start Line", "End Line", "API", "Tips"]


def unsupported_rows(results: list[FileResult], provided: dict[str, bool], retarget) -> list[list]:
    """Uses a rule marks unsupported, dynamic imports, and uses the installed target lacks."""
    rows = []
    for r in results:
        for api, line, end, category, rule, hint in r.uses:
            if category == Category.UNSUPPORTED:
                rows.append([r.path, line, end, api, hint or f"marked unsupported by {rule}"])
            elif category == Category.RETARGETED and provided.get(retarget(api)) is False:
                rows.append([r.path, line, end, api, f"not provided by the installed {retarget(api).split('.')[0]} "
                             "and no rule covers it: add an API rule or a patch to the target"])
    return rows


def summarize(results: list[FileResult], provided: dict[str, bool], modules: dict, retarget, *,
              extra: dict, unmatched: list[dict], unsupported_count: int) -> dict:
    status = Counter(r.status for r in results)
    apis: dict[str, dict] = {}
    totals = Counter()
    for r in results:
        for api, _line, _end, category, rule, _hint in r.uses:
            if category == Category.RETARGETED and provided.get(retarget(api)) is False:
                category = Category.UNSUPPORTED
            elif category == Category.RETARGETED and retarget(api) not in provided:
                category = "retargeted-unverified"
            entry = apis.setdefault(api, {"uses": 0, "status": category, "rule": rule})
            entry["uses"] += 1
            totals[category] += 1
    total = sum(totals.values())
    mapped = totals["rewritten"] + totals["retargeted"] + totals["retargeted-unverified"]
    by_op = Counter(c.op for r in results for c in r.changes)
    skip_reasons = Counter(r.reason for r in results if r.status == Status.SKIPPED)
    return {
        **extra,
        "files_seen": len(results),
        "files_parsed": sum(r.parsed for r in results),
        "files_changed": status[Status.CHANGED],
        "files_unchanged": status[Status.UNCHANGED],
        "files_skipped": status[Status.SKIPPED],
        "files_failed": status[Status.FAILED],
        "failures": [{"file": r.path, "reason": r.reason} for r in results if r.status == Status.FAILED],
        "skipped": [{"file": r.path, "reason": r.reason} for r in results
                    if r.status == Status.SKIPPED and r.reason != SkipReason.NO_TRIGGER],
        "skip_reasons": dict(skip_reasons),
        "changes": sum(by_op.values()),
        "changes_by_operation": dict(sorted(by_op.items())),
        "opted_out_edits": sum(r.opted_out for r in results),
        "api_uses": {"total": total, "rewritten": totals["rewritten"], "retargeted": totals["retargeted"],
                     "retargeted_unverified": totals["retargeted-unverified"], "unsupported": totals["unsupported"]},
        "conversion_rate": round(mapped / total, 4) if total else 1.0,
        "unsupported_api_uses": unsupported_count,
        "unmatched_rules": unmatched,
        "targets": modules,
        "apis": dict(sorted(apis.items())),
    }


def _csv(rows: list[list], header: list[str]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    # A file name that is not UTF-8 (os.walk gives it surrogate-escaped) is written as its own bytes.
    return buf.getvalue().encode("utf-8", "surrogateescape")


def write_reports(folder: Path, results: list[FileResult], unsupported: list[list], summary: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    changes = [[r.path, c.line, c.end_line, c.op, c.message] for r in results for c in r.changes]
    atomic_write(folder / "change_list.csv", _csv(changes, CHANGE_COLUMNS))
    atomic_write(folder / "unsupported_api.csv", _csv(unsupported, UNSUPPORTED_COLUMNS))
    atomic_write(folder / "summary.json", json.dumps(summary, indent=2, sort_keys=False).encode() + b"\n")


def shown(text: str) -> str:
    """``text`` safe to print on a terminal as one line: a file name with a newline, a control
    character or bytes that are not UTF-8 (surrogate-escaped) is shown as a quoted Python string
    literal, so one file is one line and nothing reaches the terminal as a control sequence."""
    return text if text.isprintable() else repr(text)


def print_summary(console, summary: dict, report_dir: Path | None) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="conversion summary", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    uses = summary["api_uses"]
    for label, value in [
        ("files seen", summary["files_seen"]), ("parsed", summary["files_parsed"]),
        ("changed", summary["files_changed"]), ("skipped", summary["files_skipped"]),
        ("failed", summary["files_failed"]), ("edits", summary["changes"]),
        ("torch API uses", uses["total"]), ("  rewritten by a rule", uses["rewritten"]),
        ("  retargeted by import", uses["retargeted"] + uses["retargeted_unverified"]),
        ("  unsupported", uses["unsupported"]), ("conversion rate", f"{summary['conversion_rate']:.1%}"),
        ("time", f"{summary['elapsed_s']:.2f} s"),
    ]:
        table.add_row(label, str(value))
    console.print(table)
    for f in summary["failures"][:20]:
        console.print(f"[red]failed[/red] {escape(shown(f['file']))}: {escape(shown(f['reason']))}")
    if len(summary["failures"]) > 20:
        console.print(f"... and {len(summary['failures']) - 20} more failures (see summary.json)")
    for u in summary["unmatched_rules"]:
        console.print(f"[yellow]drift[/yellow] {escape(shown(u['message']))}")
    for root, info in summary.get("targets", {}).items():
        if not info.get("available"):
            console.print(f"[yellow]note[/yellow] {escape(root)}: {escape(shown(info.get('error', 'not available')))}; "
                          "APIs it would provide are reported as unverified")
    for warning in summary.get("warnings", []):
        console.print(f"[yellow]warning[/yellow] {escape(shown(warning))}")
    if report_dir is not None:
        console.print(f"reports: {escape(shown(str(report_dir)))}")
