"""The escape hatch: named transforms, written in Python, referenced from YAML by name.

A transform is a function ``(ctx: FileContext) -> list[Edit]``. Like every rule family it reports
edits; it never mutates anything. Register it in :data:`TRANSFORMS` under the name rule files use.
"""
from __future__ import annotations

from typing import Callable

from ..edits import Edit
from ..families.context import FileContext
from .dynamic_imports import retarget_dynamic_imports

TRANSFORMS: dict[str, Callable[[FileContext], list[Edit]]] = {
    "retarget_dynamic_imports": retarget_dynamic_imports,
}
