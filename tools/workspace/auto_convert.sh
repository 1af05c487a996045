# Functions behind auto_convert_llm.sh, auto_convert_mm.sh and auto_convert_rl.sh, which source
# this file and call `__ms_ws_main <kind> <script> "$@"`. Only functions are defined here.
#
# They run inside the user's own shell when the user types `source auto_convert_llm.sh`, so they
# never `exit`, never set `-e`/`-u`/`pipefail` or traps, never `cd`, and use `local` variables;
# every command that can fail is tested by an `if` or `||`, so that even a caller's own `set -e`
# cannot turn a failure inside them into the end of their shell. They leave no function behind.
# The status __ms_ws_main returns is the caller's to handle: under `set -e`, bash ends the shell
# on a failing `source` as on any failing command (docs/workspace.md: `source ... || true`).

# True when python $1 can run the driver and the converted code (no import is done: find_spec).
__ms_ws_has_deps() {
    "$1" -c 'import importlib.util as u, sys
sys.exit(0 if all(u.find_spec(m) for m in ("yaml", "jsonschema", "rich", "git", "libcst", "mindspore")) else 1)' \
        >/dev/null 2>&1
}

# Print the python to use: $MS_CONVERT_PYTHON, else python3 on PATH when it has the dependencies,
# else the project's virtual environment (created on first use by tools/setup_env.sh).
__ms_ws_python() {
    local checkout="$1" candidate
    if [ -n "${MS_CONVERT_PYTHON:-}" ]; then
        printf '%s\n' "$MS_CONVERT_PYTHON"
        return 0
    fi
    for candidate in python3 python; do
        candidate="$(type -P "$candidate" 2>/dev/null)" || continue
        if [ -n "$candidate" ] && __ms_ws_has_deps "$candidate"; then
            printf '%s\n' "$candidate"
            return 0
        fi
    done
    command bash "$checkout/tools/setup_env.sh"
}

__ms_ws_run() {
    local kind="$1" script="$2"
    shift 2
    local name checkout python out result status sourced=no
    name="${script##*/}"
    # Sourced when the script is not the program bash runs (interactive shell or another script).
    if [ "$script" != "$0" ]; then sourced=yes; fi
    if ! checkout="$(builtin cd -- "$(dirname -- "$script")" >/dev/null 2>&1 && pwd)"; then
        printf '%s: cannot find its own folder from %s\n' "$name" "$script" >&2
        return 1
    fi
    if ! python="$(__ms_ws_python "$checkout")"; then
        printf '%s: could not set up the Python environment (bash %s/tools/setup_env.sh failed); nothing was changed\n' \
            "$name" "$checkout" >&2
        return 1
    fi
    python="${python##*$'\n'}"
    # The driver runs in the foreground (not inside $(...)), so that on Ctrl-C it can finish
    # cleanly and this function still reports; it writes set_env.sh's path into $result.
    if ! result="$(mktemp "${TMPDIR:-/tmp}/ms-workspace.XXXXXX")"; then
        printf '%s: cannot create a temporary file in %s\n' "$name" "${TMPDIR:-/tmp}" >&2
        return 1
    fi
    if PYTHONPATH="$checkout" "$python" -m tools.workspace "$kind" --env-out "$result" "$@"; then
        status=0
    else
        status=$?
    fi
    out=""
    if [ -s "$result" ]; then
        # the whole file, not one line: the path may hold a newline ($(...) drops only the last ones)
        out="$(<"$result")" || out=""
    fi
    rm -f -- "$result"
    if [ "$status" -eq 130 ]; then
        printf '%s: interrupted; the environment of this shell was not changed; run it again to complete\n' "$name" >&2
        return "$status"
    elif [ "$status" -ne 0 ]; then
        printf '%s: failed (status %s); the environment of this shell was not changed\n' "$name" "$status" >&2
        return "$status"
    fi
    if [ -z "$out" ]; then
        return 0  # --help, --status: nothing to load
    fi
    if [ ! -f "$out" ]; then
        printf '%s: the driver named an environment file that does not exist: %s\n' "$name" "$out" >&2
        return 1
    fi
    if [ "$sourced" = yes ]; then
        # shellcheck source=/dev/null
        if ! . "$out"; then
            printf '%s: sourcing %s failed\n' "$name" "$out" >&2
            return 1
        fi
        printf '%s: environment loaded into this shell. After re-entering the container: source %s\n' "$name" "$out" >&2
    else
        printf '%s: done. Load the environment into your shell with:\n    source %s\n' "$name" "$out" >&2
    fi
    return 0
}

# __ms_ws_main KIND SCRIPT [ARGS...]: run the workspace driver, load set_env.sh when sourced,
# then remove these functions again. Its status is the run's status.
__ms_ws_main() {
    local status=0
    __ms_ws_run "$@" || status=$?
    unset -f __ms_ws_has_deps __ms_ws_python __ms_ws_run __ms_ws_main
    return "$status"
}
