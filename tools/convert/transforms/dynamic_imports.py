"""``importlib.import_module("torch.nn")`` and friends: retarget the module named by the string.

By default the engine only *reports* dynamic imports of retargeted modules (a string is not an
import statement, and availability probes such as ``find_spec("torch")`` may be meant to look
for the real torch). A rule file that wants them converted names this transform.
"""
from __future__ import annotations

from ..edits import Edit
from ..families.context import FileContext


def retarget_dynamic_imports(ctx: FileContext) -> list[Edit]:
    edits: list[Edit] = []
    for dyn in ctx.analysis.dynamic:
        new_module = ctx.rules.retarget(dyn.module)
        if new_module == dyn.module:
            continue
        arg = dyn.node.args[0]
        old = ctx.idx.text(arg)
        if dyn.module not in old:
            continue  # an implicitly concatenated or escaped literal: leave it to the report
        start, end = ctx.idx.span(arg)
        edits.append(Edit(start, end, old.replace(dyn.module, new_module, 1), arg.lineno, arg.end_lineno,
                          "transform:retarget_dynamic_imports", f"{dyn.how}({dyn.module!r}) -> {new_module!r}",
                          "", family="transform"))
    return edits
