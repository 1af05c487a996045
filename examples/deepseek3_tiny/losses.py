"""Print the per-step table of a tiny DeepSeek-V3 run from its logs (Megatron's iteration lines).

Usage: python losses.py WORK/logs/train.log [WORK/logs/resume.log] [--markdown]
Prints step, lm loss, MTP loss, grad norm, learning rate and step time; exits 1 if a log has no
iteration line or a loss is not finite, so it doubles as a check of a run.
"""
from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path

LINE = re.compile(r"iteration\s+(\d+)/\s*(\d+)")
FIELDS = {
    "ms": re.compile(r"elapsed time per iteration \(ms\): ([\d.]+)"),
    "lr": re.compile(r"learning rate: ([\d.E+-]+)"),
    "lm": re.compile(r"lm loss: ([\d.E+-]+|nan|inf)"),
    "mtp": re.compile(r"mtp_1 loss: ([\d.E+-]+|nan|inf)"),
    "grad": re.compile(r"grad norm: ([\d.E+-]+|nan|inf)"),
}


def parse(log: Path) -> list[dict]:
    """The iteration lines of one log, as dicts of floats (missing fields are None)."""
    rows = []
    for line in log.read_text(errors="replace").splitlines():
        m = LINE.search(line)
        if not m or "lm loss" not in line:
            continue
        row: dict = {"step": int(m.group(1)), "log": log.name}
        for key, pattern in FIELDS.items():
            f = pattern.search(line)
            row[key] = float(f.group(1)) if f else None
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logs", nargs="+", type=Path)
    parser.add_argument("--markdown", action="store_true", help="a Markdown table")
    args = parser.parse_args(argv)
    status = 0
    rows = []
    for log in args.logs:
        found = parse(log)
        if not found:
            print(f"{log}: no iteration lines (did the run start training?)", file=sys.stderr)
            status = 1
        rows.extend(found)
    if args.markdown:
        print("| step | log | lm loss | MTP loss | grad norm | learning rate | ms/step |")
        print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        cells = [str(r["step"]), r["log"], f"{r['lm']:.4f}", f"{r['mtp']:.4f}" if r["mtp"] is not None else "-",
                 f"{r['grad']:.3f}" if r["grad"] is not None else "-", f"{r['lr']:.3e}", f"{r['ms']:.0f}"]
        print("| " + " | ".join(cells) + " |" if args.markdown else "\t".join(cells))
        if not all(math.isfinite(v) for v in (r["lm"], r["mtp"] or 0.0)):
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
