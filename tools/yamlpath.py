"""Load project YAML strictly, and say where in a YAML file a field is, for one-line errors that
name the file, the line and the field.

Shared by the rule loader (tools/convert) and the manifest loader (tools/workspace). :func:`load`
keeps ``yaml.safe_load``'s semantics (the same types, the same values) and refuses three things
safe_load lets through: a key given twice in one mapping (the last one silently won), aliases
(``*name``: a few hundred bytes of nested aliases expand to gigabytes; no project file uses them)
and nesting deeper than :data:`MAX_DEPTH`. It parses once and returns the node tree as well, so
:func:`line_of` can point at a field without composing the text again.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import yaml

MAX_DEPTH = 64          # project files nest 5 levels deep; a deeper document is an accident or an attack
MAX_MESSAGE = 200       # characters of a YAML problem quoted in an error line


class YamlError(ValueError):
    """A YAML file that cannot be loaded: the message is one line, ``path:line: what``."""


class _Refused(yaml.MarkedYAMLError):
    pass


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` without duplicate keys, aliases and unbounded nesting."""

    _depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _Refused(problem=f"alias *{event.anchor} is not allowed (aliases can expand without bound): "
                           "write the value out", problem_mark=event.start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(problem=f"nested more than {MAX_DEPTH} levels deep",
                               problem_mark=self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, yaml.Node] = {}
            for key_node, _value in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:
                    continue    # an unhashable key: the base constructor reports it
                if first is not key_node:
                    raise _Refused(problem=f"duplicate key {one_line(repr(key), 60)} (first given at line "
                                   f"{first.start_mark.line + 1}): the last one would silently win; keep one",
                                   problem_mark=key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def load(text: str, path: Path | str) -> tuple[Any, yaml.Node | None]:
    """The data of ``text`` (``yaml.safe_load`` semantics) and its node tree, or :class:`YamlError`:
    ``path:line: not valid YAML: problem`` (one line, bounded)."""
    loader = StrictLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        what = "" if isinstance(exc, _Refused) else "not valid YAML: "
        problem = getattr(exc, "problem", None) or str(exc)
        raise YamlError(f"{where}: {what}{one_line(problem)}") from None
    except RecursionError:   # deep nesting inside one flow collection can still recurse in the parser
        raise YamlError(f"{path}: nested too deeply") from None
    finally:
        loader.dispose()
    return data, node


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


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """An error detail made safe to print: one line, at most ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."
