#!/usr/bin/env bash
# MindSpeed-MM (multimodal models) on MindSpore, in one command (docs/workspace.md):
#
#   source auto_convert_mm.sh [--workspace DIR] [--mirror DIR] [--force] [-j N]
#
# Clones the repositories pinned in workspaces/mm.yaml into the workspace (default: the current
# directory), applies patches/, converts them to MindSpore (mindtorch), writes <workspace>/set_env.sh
# and loads it into this shell. Safe to source again (finished work is skipped), from any directory;
# it never exits your shell and leaves its options alone. `bash auto_convert_mm.sh ...` does the
# same work and prints how to load the environment.
if [ -n "${BASH_VERSION:-}" ]; then
    . "$(builtin cd -- "$(dirname -- "${BASH_SOURCE[0]}")" >/dev/null 2>&1 && pwd)/tools/workspace/auto_convert.sh" &&
        __ms_ws_main mm "${BASH_SOURCE[0]}" "$@"
else
    echo "auto_convert_mm.sh: needs bash: source it from bash, or run: bash auto_convert_mm.sh" >&2
    false
fi
