#!/usr/bin/env bash
# Create (or complete) a virtual environment of the project and print its python.
#
#   bash tools/setup_env.sh               # the project's: tools, MindSpore 2.7.0, mindtorch
#                                         #   -> <repo>/.venv, or $MS_CONVERT_VENV
#   bash tools/setup_env.sh --reference   # the PyTorch reference: unconverted Megatron-core runs
#                                         #   on PyTorch 2.13 CPU in it, never seeing mindtorch
#                                         #   -> <repo>/.venv-torch, or $MS_TORCH_REFERENCE_VENV
#   bash tools/setup_env.sh --check-build # only the check that Megatron's dataset helpers can be
#                                         #   compiled with the project's environment (done on setup)
#
# Run as a program (never sourced), so its `set -e` cannot leak into a user's shell.
# Re-running is cheap: a stamp file records what was installed.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MINDNLP_PIN="mindnlp==0.5.1"   # ships the maintained mindtorch (see requirements-runtime.txt)
# the PyTorch side of the tests: torch, and unconverted transformers with its dependencies (the HF round
# trip compares against transformers 4.55.4; the MM vision tower puts the workspace's 4.53.0 first on
# PYTHONPATH and needs only the dependencies, which both versions accept, and pillow for its image)
REFERENCE_PINS="torch==2.13.0 numpy==1.26.4 packaging==26.0 transformers==4.55.4 safetensors==0.8.0 tokenizers==0.21.4 huggingface-hub==0.36.2 pillow==13.0.0"

if [ "${1:-}" = "--reference" ]; then
    venv="${MS_TORCH_REFERENCE_VENV:-$repo/.venv-torch}"
    want="$REFERENCE_PINS"
    what="the PyTorch reference environment"
else
    venv="${MS_CONVERT_VENV:-$repo/.venv}"
    want="$(cat "$repo/requirements.txt" "$repo/requirements-runtime.txt" "$repo"/patches/mindtorch/*.patch | sha256sum | cut -c1-16)-$MINDNLP_PIN"
    what="the Python environment"
fi
stamp="$venv/.ms-installed"

# Megatron compiles its dataset index helpers the first time a run builds its datasets: `make` in
# megatron/core/datasets with `python3 -m pybind11 --includes`, `python3-config --extension-suffix`
# and $(CXX), the python3 being the environment's (set_env.sh puts its bin/ first on PATH). Do the
# same with a one-function module now, so a machine without the system parts fails here, in one
# line naming what to install, instead of in the middle of a training run.
check_helpers_build() {
    local tool probe out cxx="${CXX:-g++}"
    for tool in make "${cxx%% *}" python3-config; do
        if ! PATH="$venv/bin:$PATH" command -v "$tool" >/dev/null 2>&1; then
            echo "tools/setup_env.sh: '$tool' not found; Megatron compiles its dataset helpers with make, g++ and python3-config at run time: install them (Debian: apt-get install -y make g++ python3-dev) and run this again" >&2
            return 1
        fi
    done
    probe="$(mktemp -d "${TMPDIR:-/tmp}/ms-setup-probe.XXXXXX")"
    printf '%s\n' '#include <pybind11/pybind11.h>' 'PYBIND11_MODULE(ms_setup_probe, m) { m.def("one", [] { return 1; }); }' \
        > "$probe/probe.cpp"
    {   # Megatron's Makefile, for this one source (\t: a recipe line starts with a tab)
        printf '%s\n' 'CPPFLAGS += $(shell python3 -m pybind11 --includes)'
        printf '%s\n' 'ms_setup_probe$(shell python3-config --extension-suffix): probe.cpp'
        printf '\t%s\n' '$(CXX) -O0 -shared -std=c++11 -fPIC $(CPPFLAGS) $< -o $@'
    } > "$probe/Makefile"
    if ! out="$(PATH="$venv/bin:$PATH" make -s -C "$probe" 2>&1)" ||
        ! out="$(cd "$probe" && "$venv/bin/python" -c 'import ms_setup_probe; assert ms_setup_probe.one() == 1' 2>&1)"; then
        out="$(printf '%s\n' "$out" | grep -m1 -iE 'error|no module|not found' || printf '%s\n' "$out" | tail -n1)"
        rm -rf -- "$probe"
        if [[ "$out" == *"No module named pybind11"* ]]; then
            echo "tools/setup_env.sh: $venv has no pybind11, with which Megatron compiles its dataset helpers: install it ($venv/bin/python -m pip install -r $repo/requirements-runtime.txt)" >&2
            return 1
        fi
        echo "tools/setup_env.sh: cannot compile a pybind11 module the way Megatron compiles its dataset helpers ($out): install a C++ compiler, make and the Python headers (Debian: apt-get install -y make g++ python3-dev) and run this again" >&2
        return 1
    fi
    rm -rf -- "$probe"
}
# The venv's mindtorch becomes mindnlp's with the project's series applied: patched in a staging
# folder beside it (git apply outside any repository, cwd /, since the venv may sit inside this
# checkout, where git would read the patch's paths relative to the checkout), then swapped in, so an
# interrupted or failed run leaves the previous mindtorch in place (files a patch added never
# survive into the next series, as they would with an in-place reinstall).
apply_mindtorch_patches() {
    local site stage patch
    site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    stage="$(mktemp -d "$site/.mindtorch-stage.XXXXXX")"
    if ! "${pip[@]}" --no-deps --no-compile --target "$stage" "$MINDNLP_PIN" >/dev/null; then
        rm -rf -- "$stage"
        echo "tools/setup_env.sh: cannot download $MINDNLP_PIN (mindtorch) into $stage: check the network or pip's index and run this again" >&2
        return 1
    fi
    for patch in "$repo"/patches/mindtorch/*.patch; do
        if ! (cd / && GIT_CEILING_DIRECTORIES=/ git apply --unsafe-paths --whitespace=nowarn \
                --directory="${stage#/}" "$patch"); then
            rm -rf -- "$stage"
            echo "tools/setup_env.sh: $patch does not apply to mindtorch from $MINDNLP_PIN: fix the patch (patches/README.md) and run this again" >&2
            return 1
        fi
    done
    rm -rf -- "$site/mindtorch.previous"
    if [ -d "$site/mindtorch" ]; then mv -- "$site/mindtorch" "$site/mindtorch.previous"; fi
    mv -- "$stage/mindtorch" "$site/mindtorch"
    rm -rf -- "$site/mindtorch.previous" "$stage"
}
if [ "${1:-}" = "--check-build" ]; then
    if [ ! -x "$venv/bin/python" ]; then
        echo "tools/setup_env.sh: no environment at $venv: run bash tools/setup_env.sh first" >&2
        exit 1
    fi
    check_helpers_build
    exit 0
fi
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
        # mindtorch as a workspace has it: mindnlp's, fresh, with the project's patch series (the
        # pinned MindSpore needs patch 0010 to import it at all). Tools that check rules against
        # "the installed mindtorch" and tests that import it then see the workspaces' runtime.
        "${pip[@]}" --no-deps "$MINDNLP_PIN"
        apply_mindtorch_patches
        "$venv/bin/python" -c "import mindtorch"
        check_helpers_build
    fi
} >&2
echo "$want" > "$stamp"
echo "$venv/bin/python"
