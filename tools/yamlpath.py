"""Where in a YAML file a field is: for one-line errors that name the file, the line and the field.

Shared by the rule loader (tools/convert) and the manifest loader (tools/workspace): both load
data with ``yaml.safe_load``, validate it, and point at the offending field with ``yaml.compose``.
"""
from __future__ import annotations

from typing import Any, Sequence

import yaml


def compose(text: str) -> yaml.Node | None:
    """The node tree of ``text`` (safe loader), or None if it does not parse."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None


def line_of(node: yaml.Node | None, path: Sequence[Any]) -> int | None:
    """The 1-based line of the node at ``path`` (keys and indexes), or of its nearest parent."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in path:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if k.value == key:
                    node, line = v, k.start_mark.line + 1  # the key's line
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def field_name(path: Sequence[Any]) -> str:
    """``["apis", 3, "target"]`` -> ``apis[3].target``."""
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out or "(top level)"
