#!/usr/bin/env bash
# Create (or complete) the PyTorch reference environment and print its python.
#
#   bash tools/setup_reference_env.sh      # -> <repo>/.venv-torch, or $MS_TORCH_REFERENCE_VENV
#
# The reference side of the runtime tests and benchmarks runs *unconverted* Megatron-core on real
# PyTorch 2.13 (CPU), in its own environment so that it never sees mindtorch. Run as a program.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${MS_TORCH_REFERENCE_VENV:-$repo/.venv-torch}"
want="torch==2.13.0 numpy==1.26.4 packaging==26.0"
stamp="$venv/.ms-reference-installed"
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    echo "$venv/bin/python"
    exit 0
fi
{
    echo "setting up the PyTorch reference environment in $venv (one time)"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    # shellcheck disable=SC2086
    "$venv/bin/python" -m pip install -q --disable-pip-version-check $want
    "$venv/bin/python" -c "import torch"
} >&2
echo "$want" > "$stamp"
echo "$venv/bin/python"
