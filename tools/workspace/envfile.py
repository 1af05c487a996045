"""``<workspace>/set_env.sh``: the environment of a workspace, safe to source any number of times.

The file is POSIX sh (bash, zsh and dash can source it). It puts the workspace's PYTHONPATH
entries first, in manifest order, and the Python environment's ``bin`` first on PATH, removing
earlier copies of the same entries instead of stacking them, so sourcing it twice (or after
re-entering a container whose profile already sourced it) changes nothing. It sets no shell
options and leaves only the variables it exports.

Every value in it is data, whatever the workspace path holds (quotes, ``$(...)``, a newline, bytes
that are not UTF-8): values are single-quoted (literal in every POSIX shell and in zsh), and
comments, which quoting cannot protect (a newline ends a comment and the rest of the path would
run as a command), show control characters as escapes.
"""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

from tools.convert.fsio import atomic_write
from tools.workspace.manifest import Manifest

_PREPEND = r'''
# __ms_ws_prepend VAR ENTRY...: ENTRY... first in VAR, in this order, each once; empty items dropped.
__ms_ws_prepend() {
    __ms_ws_var=$1; shift
    eval "__ms_ws_rest=\${$__ms_ws_var-}"
    __ms_ws_new=
    for __ms_ws_item in "$@"; do
        case ":$__ms_ws_new:" in *":$__ms_ws_item:"*) ;; *) __ms_ws_new="${__ms_ws_new:+$__ms_ws_new:}$__ms_ws_item" ;; esac
    done
    while [ -n "$__ms_ws_rest" ]; do
        case $__ms_ws_rest in
            *:*) __ms_ws_item=${__ms_ws_rest%%:*}; __ms_ws_rest=${__ms_ws_rest#*:} ;;
            *) __ms_ws_item=$__ms_ws_rest; __ms_ws_rest= ;;
        esac
        if [ -n "$__ms_ws_item" ]; then
            case ":$__ms_ws_new:" in *":$__ms_ws_item:"*) ;; *) __ms_ws_new="$__ms_ws_new:$__ms_ws_item" ;; esac
        fi
    done
    export "$__ms_ws_var=$__ms_ws_new"
    unset __ms_ws_var __ms_ws_rest __ms_ws_new __ms_ws_item
}
'''


def python_bin_dir() -> Path | None:
    """The ``bin`` of the virtual environment running this driver (None outside a venv): put on
    PATH so that ``python`` in the user's shell is the one with MindSpore and the tools."""
    if sys.prefix == sys.base_prefix:
        return None
    return Path(sys.executable).parent


def pythonpath_entries(workspace: Path, manifest: Manifest) -> list[Path]:
    """The workspace's PYTHONPATH entries, in manifest order (repositories, then their entries)."""
    entries: list[Path] = []
    for spec in manifest.repos:
        for entry in spec.pythonpath:
            path = workspace / spec.name if entry in (".", "./") else workspace / spec.name / entry
            if path not in entries:
                entries.append(path)
    return entries


def comment(text: str) -> str:
    """A shell comment line that stays one line: characters that are not printable (newline,
    carriage return, other controls, undecodable bytes) are written as Python escapes."""
    return "# " + "".join(ch if ch.isprintable() else ch.encode("unicode_escape", "backslashreplace").decode("ascii")
                          for ch in text)


def render(workspace: Path, manifest: Manifest, bin_dir: Path | None) -> str:
    q = shlex.quote
    lines = [
        comment(f"Environment of the MindSpeed-Core-MS workspace {workspace} (manifest {manifest.name}). "
                "Generated: do not edit."),
        comment(f"Load it in any shell, as often as you like:  source {q(str(workspace / 'set_env.sh'))}"),
        _PREPEND.strip("\n"),
        "__ms_ws_prepend PYTHONPATH " + " ".join(q(str(p)) for p in pythonpath_entries(workspace, manifest)),
    ]
    if bin_dir is not None:
        lines.append(f"__ms_ws_prepend PATH {q(str(bin_dir))}")
    lines += [
        f"export MS_CONVERT_WORKSPACE={q(str(workspace))}",
        "unset -f __ms_ws_prepend",
        "",
    ]
    return "\n".join(lines)


def write(workspace: Path, manifest: Manifest, bin_dir: Path | None = None) -> Path:
    """Write ``<workspace>/set_env.sh`` atomically and return its path."""
    path = workspace / "set_env.sh"
    # surrogateescape: a path that is not UTF-8 is written back as the bytes it was read from
    atomic_write(path, render(workspace, manifest, bin_dir).encode("utf-8", "surrogateescape"))
    return path
