"""The JSON schema of a rule file. Rule files hold data only: names, dotted paths, source text."""
from __future__ import annotations

from typing import Any

_ID = {"type": "string", "pattern": "^[A-Z]{2,6}[0-9]{3}$"}
_DOTTED = {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"}
_TARGET = {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*(:[A-Za-z_][A-Za-z0-9_]*)?$"}
_IDENT = {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}
_TEXT = {"type": "string", "minLength": 1}

RULE_FILE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["version"],
    "properties": {
        "version": {"const": 1},
        "description": _TEXT,
        "imports": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id", "module", "target"],
                "properties": {"id": _ID, "module": _DOTTED, "target": _DOTTED, "note": _TEXT},
            },
        },
        "apis": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id", "api"],
                "properties": {
                    "id": _ID,
                    "api": _DOTTED,
                    "target": _TARGET,
                    "args": {"type": "array", "items": _IDENT},
                    "kwargs_rename": {"type": "object", "additionalProperties": _IDENT},
                    "kwargs_drop": {"type": "array", "items": _IDENT},
                    "defaults": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean", "null"]}},
                    "unsupported_args": {"type": "object", "additionalProperties": {"type": "string"}},
                    "unsupported": {"type": "boolean"},
                    "hint": _TEXT,
                    "note": _TEXT,
                },
                "oneOf": [
                    {"required": ["target"], "properties": {"unsupported": {"const": False}}},
                    {"required": ["unsupported", "hint"], "properties": {"unsupported": {"const": True}},
                     "not": {"required": ["target"]}},
                ],
            },
        },
        "scoped": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id", "path", "action", "reason"],
                "properties": {
                    "id": _ID,
                    "path": _TEXT,
                    "within": _DOTTED,
                    "action": {"enum": ["replace_call", "replace_expr", "remove_stmt", "remove_decorator",
                                        "insert_import", "replace_body"]},
                    "match": _TEXT,
                    "replace": {"type": "string"},
                    "keep_docstring": {"type": "boolean"},
                    "expect_body": {"type": "string", "pattern": "^[0-9a-f]{12}$"},
                    "reason": _TEXT,
                },
                "allOf": [
                    {"if": {"properties": {"action": {"enum": ["replace_call", "replace_expr"]}}},
                     "then": {"required": ["match", "replace"]}},
                    {"if": {"properties": {"action": {"enum": ["remove_stmt", "remove_decorator"]}}},
                     "then": {"required": ["match"], "not": {"required": ["replace"]}}},
                    {"if": {"properties": {"action": {"const": "insert_import"}}},
                     "then": {"required": ["replace"], "not": {"required": ["match"]}}},
                    {"if": {"properties": {"action": {"const": "replace_body"}}},
                     "then": {"required": ["within", "replace"], "not": {"required": ["match"]}},
                     "else": {"not": {"required": ["expect_body"]}}},
                ],
            },
        },
        "transforms": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id", "transform", "reason"],
                "properties": {"id": _ID, "transform": _IDENT, "path": _TEXT, "reason": _TEXT},
            },
        },
    },
}
