#!/usr/bin/env bash
# Create (or complete) a virtual environment of the project and print its python.
#
#   bash tools/setup_env.sh               # the project's: tools, MindSpore 2.7.0, mindtorch
#                                         #   -> <repo>/.venv, or $MS_CONVERT_VENV
#   bash tools/setup_env.sh --reference   # the PyTorch reference: unconverted Megatron-core runs
#                                         #   on PyTorch 2.13 CPU in it, never seeing mindtorch
#                                         #   -> <repo>/.venv-torch, or $MS_TORCH_REFERENCE_VENV
#
# Run as a program (never sourced), so its `set -e` cannot leak into a user's shell.
# Re-running is cheap: a stamp file records what was installed.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MINDNLP_PIN="mindnlp==0.5.1"   # ships the maintained mindtorch (see requirements-runtime.txt)
REFERENCE_PINS="torch==2.13.0 numpy==1.26.4 packaging==26.0"

if [ "${1:-}" = "--reference" ]; then
    venv="${MS_TORCH_REFERENCE_VENV:-$repo/.venv-torch}"
    want="$REFERENCE_PINS"
    what="the PyTorch reference environment"
else
    venv="${MS_CONVERT_VENV:-$repo/.venv}"
    want="$(cat "$repo/requirements.txt" "$repo/requirements-runtime.txt" | sha256sum | cut -c1-16)-$MINDNLP_PIN"
    what="the Python environment"
fi
stamp="$venv/.ms-installed"
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    echo "$venv/bin/python"
    exit 0
fi
{
    echo "setting up $what in $venv (one time, about a minute)"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)
    if [ "${1:-}" = "--reference" ]; then
        # shellcheck disable=SC2086
        "${pip[@]}" $REFERENCE_PINS
        "$venv/bin/python" -c "import torch"
    else
        "${pip[@]}" -r "$repo/requirements.txt" -r "$repo/requirements-runtime.txt"
        "${pip[@]}" --no-deps "$MINDNLP_PIN"
        "$venv/bin/python" -c "import mindtorch"
    fi
} >&2
echo "$want" > "$stamp"
echo "$venv/bin/python"
