"""The command line an upstream MindSpeed-LLM example script would launch, and edits to it.

Upstream's `examples/mindspore/*/*.sh` build their arguments in shell variables (`GPT_ARGS="..."`,
`TP=8`, `$(($NPUS_PER_NODE*$NNODES))`) and end in `msrun $DISTRIBUTED_ARGS pretrain_gpt.py $GPT_ARGS
...`. Rather than re-implementing shell expansion, :func:`launch_argv` lets bash itself run the
script with `msrun`, `torchrun`, `python`, `source`, `mkdir` and `tee` defined as shell functions
that do nothing but record the launched command (so nothing is launched, no Ascend toolkit is
sourced and nothing is written), in an empty environment and an empty folder. What comes back is
exactly the argument list the script would hand to its entry point.

:class:`Flags` is that list as ordered `--flag value...` groups, with the three edits a family
file asks for: replace a flag's values, add a flag, drop a flag.
"""
from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

# Shell functions standing in for every command upstream's scripts run. The launchers record their
# arguments NUL-separated on fd 3, an empty word after each launch; the first argument ending in
# .py is the entry point.
_PRELUDE = r"""
__record() { printf '%s\0' "$@" >&3; printf '\0' >&3; }
msrun() { __record "$@"; }
torchrun() { __record "$@"; }
python() { __record "$@"; }
python3() { __record "$@"; }
source() { :; }
mkdir() { :; }
tee() { cat >/dev/null; }
"""


class ScriptError(ValueError):
    """An upstream script that does not yield one launch of a Python entry point."""


def launch_argv(script: Path) -> tuple[str, list[str]]:
    """(entry point relative to MindSpeed-LLM's root, its arguments) as `script` would launch them,
    expanded by bash."""
    script = script.resolve()
    if not script.is_file():
        raise ScriptError(f"{script}: no such upstream script (is the workspace converted?)")
    with tempfile.TemporaryDirectory(prefix="upstream_flags_") as tmp:
        out = Path(tmp) / "argv"
        command = _PRELUDE + f'exec 3>"{out}"\n. "{script}" >/dev/null 2>&1\n'
        proc = subprocess.run(["bash", "--noprofile", "--norc", "-c", command], cwd=tmp,
                              env={"PATH": "/usr/bin:/bin", "HOME": tmp}, capture_output=True, text=True,
                              timeout=60, stdin=subprocess.DEVNULL)
        words = out.read_bytes().decode() if out.exists() else ""
    if proc.returncode not in (0, 1) and not words:
        raise ScriptError(f"{script}: bash could not read it (status {proc.returncode}): {proc.stderr.strip()[:200]}")
    launches = [launch.split("\0") for launch in words.split("\0\0") if launch.strip("\0")]
    if len(launches) != 1:
        raise ScriptError(f"{script}: launches {len(launches)} commands; this reads scripts that launch one")
    items = launches[0]
    entries = [i for i, w in enumerate(items) if w.endswith(".py")]
    if not entries:
        raise ScriptError(f"{script}: launches no Python entry point through msrun/torchrun/python")
    first = entries[0]
    rest = items[first + 1:]
    entry = items[first]
    # `$basepath/pretrain_gpt.py` with basepath unset expands to `/pretrain_gpt.py`: take the name.
    return (Path(entry).name if entry.startswith("/") else entry.removeprefix("./")), rest


Value = list[str]


@dataclass
class Flags:
    """An argument list as ordered (flag, values) groups: `--spec a b` is ("--spec", ["a", "b"])."""

    groups: list[tuple[str, Value]] = field(default_factory=list)

    @classmethod
    def parse(cls, argv: list[str]) -> "Flags":
        groups: list[tuple[str, Value]] = []
        for word in argv:
            if word.startswith("--"):
                name, eq, value = word.partition("=")
                groups.append((name, [value] if eq else []))
            elif groups:
                groups[-1][1].append(word)
            else:
                raise ScriptError(f"argument {word!r} before any --flag")
        return cls(groups)

    def names(self) -> list[str]:
        return [name for name, _ in self.groups]

    def __contains__(self, name: str) -> bool:
        return name in self.names()

    def get(self, name: str) -> Value | None:
        for flag, values in self.groups:
            if flag == name:
                return values
        return None

    def set(self, name: str, values: Value) -> None:
        """Replace every occurrence of `name` by one with `values` (where the first was), or append it."""
        if name in self:
            at = self.names().index(name)
            self.groups = [g for g in self.groups if g[0] != name]
            self.groups.insert(at, (name, list(values)))
        else:
            self.groups.append((name, list(values)))

    def drop(self, name: str) -> None:
        self.groups = [g for g in self.groups if g[0] != name]

    def argv(self) -> list[str]:
        return [word for name, values in self.groups for word in (name, *values)]
