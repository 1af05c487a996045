#!/usr/bin/env bash
# Create (or complete) the project's virtual environment and print its python.
#
#   bash tools/setup_env.sh            # -> <repo>/.venv, or $MS_CONVERT_VENV when set
#
# Run as a program (never sourced), so its `set -e` cannot leak into a user's shell.
# Re-running is cheap: a stamp file records the hash of the requirement files installed.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${MS_CONVERT_VENV:-$repo/.venv}"
MINDNLP_PIN="mindnlp==0.5.1"   # ships the maintained mindtorch (see requirements-runtime.txt)

want="$(cat "$repo/requirements.txt" "$repo/requirements-runtime.txt" | sha256sum | cut -c1-16)-$MINDNLP_PIN"
stamp="$venv/.ms-convert-installed"
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    echo "$venv/bin/python"
    exit 0
fi
{
    echo "setting up the Python environment in $venv (one time, about a minute)"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$repo/requirements.txt" -r "$repo/requirements-runtime.txt"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps "$MINDNLP_PIN"
    "$venv/bin/python" -c "import mindtorch" 
} >&2
echo "$want" > "$stamp"
echo "$venv/bin/python"
