"""Run the differential op cases on one side and print ``OPDIFF_REPORT {json}``.

    python op_cases_run.py mindtorch      # in a workspace (source set_env.sh): mindtorch's torch proxy
    python op_cases_run.py pytorch        # in the PyTorch reference environment

The side is named, and verified before any case runs, so that a comparison of PyTorch with itself (a
missing proxy) or of mindtorch with itself cannot pass unnoticed.
"""
from __future__ import annotations

import json
import sys
import time

if __name__ == "__main__":
    wanted = sys.argv[1] if len(sys.argv) > 1 else ""
    if wanted not in ("mindtorch", "pytorch"):
        raise SystemExit("usage: op_cases_run.py mindtorch|pytorch")
    if wanted == "mindtorch":
        import mindtorch  # noqa: F401  (first: installs the `torch` import proxy)
    import torch

    import op_cases
    if op_cases.side() != wanted or (wanted == "pytorch" and "mindtorch" in sys.modules):
        raise SystemExit(f"asked for {wanted}, but `torch` is {torch!r}")
    start = time.perf_counter()
    cases = op_cases.run_cases()
    print("OPDIFF_REPORT " + json.dumps({"side": wanted, "seconds": round(time.perf_counter() - start, 2),
                                         "cases": cases}))
