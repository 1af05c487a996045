"""Compare the two sides' differential op reports (op_cases_run.py) against each other, the inventory
(op_inventory.json) and the known differences (op_known_differences.json). Used by
test_op_differential.py, and runnable on two saved reports to print the numbers and every difference:

    python tests/runtime/op_cases_compare.py ms.txt pt.txt
    python tests/runtime/op_cases_compare.py --table      # the known differences as a markdown table

A difference is (case, label, path, message): ``path`` is where in the label's observation the two
sides differ (``.out.values``, ``.grad.inputs``, ``.input_after``, ``.error`` when mindtorch raised).
Numbers are compared within the case's tolerance (float64 1e-6, float32 1e-5, relative to the largest
reference magnitude, at least 1) by test_mindtorch_compat's comparison; everything else exactly.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))   # the checkout: testbed imports tools.corpora

from test_mindtorch_compat import _mismatches  # noqa: E402

TOL = {"float64": 1e-6, "float32": 1e-5}
INVENTORY = HERE / "op_inventory.json"
KNOWN = HERE / "op_known_differences.json"


@dataclass(frozen=True)
class Difference:
    case: str
    label: str
    path: str
    message: str


def read_report(text: str, tag: str = "OPDIFF_REPORT") -> dict:
    lines = [line for line in text.splitlines() if line.startswith(tag + " ")]
    if not lines:
        raise ValueError(f"no {tag} line in:\n{text[-3000:]}")
    return json.loads(lines[-1][len(tag) + 1:])


def differences(ms: dict, pt: dict) -> list[Difference]:
    """Every place where mindtorch's observation is not PyTorch's."""
    out = []
    for case, ref in pt["cases"].items():
        got_case = ms["cases"].get(case)
        if got_case is None:
            out.append(Difference(case, "<case>", ".error", "did not run on mindtorch"))
            continue
        tol = TOL[ref["dtype"]]
        for label, want in ref["labels"].items():
            got = got_case["labels"].get(label, {"error": "label not recorded (the case stopped before it)"})
            out.extend(_label_differences(case, label, got, want, tol))
    return out


def _label_differences(case: str, label: str, got, want, tol: float) -> list[Difference]:
    if isinstance(got, dict) and "error" in got and not (isinstance(want, dict) and "error" in want):
        return [Difference(case, label, ".error", got["error"])]
    found = []
    for line in _mismatches(got, want, tol):
        path, _, message = line.partition(": ")
        # an error inside (a gradient that raised) is reported at its parent, with mindtorch's message
        if path.endswith(".inputs") or ".inputs[" in path:
            parent = path[:path.index(".inputs")]
            node = _at(got, parent)
            if isinstance(node, dict) and "error" in node:
                path, message = parent + ".error", node["error"]
        found.append(Difference(case, label, path, message.strip()))
    return list(dict.fromkeys(found))


def _at(obs, path: str):
    for key in path.strip(".").split("."):
        if not isinstance(obs, dict) or key not in obs:
            return None
        obs = obs[key]
    return obs


def load_known() -> list[dict]:
    return json.loads(KNOWN.read_text())["differences"]


def explained(diff: Difference, known: list[dict]) -> dict | None:
    """The known-differences entry that explains this difference: same case and label, and the
    difference's path starts with the entry's path."""
    for entry in known:
        if entry["case"] == diff.case and entry["label"] == diff.label and diff.path.startswith(entry["path"]):
            return entry
    return None


def stale(known: list[dict], diffs: list[Difference]) -> list[dict]:
    """Known differences that no longer differ (xpass): the table must lose them. Entries marked
    nondeterministic (uninitialised memory can agree by chance) are never stale."""
    return [e for e in known if not e.get("nondeterministic")
            and not any(e["case"] == d.case and e["label"] == d.label and d.path.startswith(e["path"]) for d in diffs)]


def markdown_table(known: list[dict]) -> str:
    """The known differences grouped by reason, as docs/op_differential.md shows them."""
    groups: dict[tuple[str, str], list[str]] = {}
    for e in known:
        labels = groups.setdefault((e["kind"], e["reason"]), [])
        if f"`{e['label']}`" not in labels:
            labels.append(f"`{e['label']}`")
    order = ["bug", "missing", "precision", "aliasing", "intended"]
    rows = ["| kind | what differs, and why | call patterns (case labels) |", "| --- | --- | --- |"]
    for (kind, reason), labels in sorted(groups.items(), key=lambda kv: (order.index(kv[0][0]), kv[0][1])):
        rows.append(f"| {kind} | {reason} | {', '.join(labels)} |")
    return "\n".join(rows)


def coverage(report: dict, excluded: dict[str, str]) -> dict:
    """The inventory's entries covered by a case, excluded with a reason, or neither; with call counts."""
    inventory = json.loads(INVENTORY.read_text())
    entries = {**{n: e["calls"] for n, e in inventory["functions"].items()},
               **{n: e["calls"] for n, e in inventory["methods"].items()}}
    covered = {name for c in report["cases"].values() for name in c["covers"]}
    return {
        "entries": entries,
        "covered": sorted(n for n in entries if n in covered),
        "excluded": sorted(n for n in entries if n in excluded and n not in covered),
        "neither": sorted(n for n in entries if n not in covered and n not in excluded),
        "both": sorted(n for n in entries if n in covered and n in excluded),
        "excluded_not_in_inventory": sorted(n for n in excluded if n not in entries),
        "covers_not_in_inventory": sorted(n for n in covered if n not in entries),
    }


def keywords_not_exercised(report: dict) -> list[tuple[str, str, int]]:
    """(entry, keyword, call sites) for each keyword the inventory's call sites pass to a covered entry that
    no label of a covering case shows as ``keyword=`` (the labels are the call patterns, as written)."""
    inventory = json.loads(INVENTORY.read_text())
    labels: dict[str, list[str]] = {}
    for c in report["cases"].values():
        for name in c["covers"]:
            labels.setdefault(name, []).extend(c["labels"])
    return [(name, kw, count) for kind in ("functions", "methods") for name, e in inventory[kind].items()
            if name in labels for kw, count in e["keywords"].items()
            if kw != "**" and not any(f"{kw}=" in label for label in labels[name])]


def summary(ms: dict, pt: dict) -> str:
    from op_cases_excluded import EXCLUDED
    cov = coverage(pt, EXCLUDED)
    entries = cov["entries"]
    inventory = json.loads(INVENTORY.read_text())
    lines = []
    for kind in ("functions", "methods"):
        names = inventory[kind]
        n_cov = [n for n in names if n in cov["covered"]]
        lines.append(f"{kind}: {len(n_cov)} of {len(names)} covered, "
                     f"{sum(entries[n] for n in n_cov)} of {sum(entries[n] for n in names)} calls")
    labels = sum(len(c["labels"]) for c in pt["cases"].values())
    diffs = differences(ms, pt)
    known = load_known()
    unexplained = [d for d in diffs if explained(d, known) is None]
    labels_differing = {(d.case, d.label) for d in diffs}
    lines.append(f"{len(pt['cases'])} cases, {labels} call patterns; {len(labels_differing)} differ "
                 f"({len(diffs)} differences, {len(unexplained)} not in op_known_differences.json); "
                 f"mindtorch {ms['seconds']} s, PyTorch {pt['seconds']} s")
    for d in diffs:
        mark = " " if explained(d, known) else "!"
        lines.append(f"{mark} {d.case} | {d.label} | {d.path} | {d.message[:160]}")
    for e in stale(known, diffs):
        lines.append(f"stale (now matches PyTorch): {e['case']} | {e['label']} | {e['path']}")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:] == ["--table"]:
        print(markdown_table(load_known()))
    else:
        ms_report, pt_report = (read_report(Path(p).read_text()) for p in sys.argv[1:3])
        print(summary(ms_report, pt_report))
