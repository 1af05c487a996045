"""tools/setup_env.sh's check that Megatron's dataset helpers can be compiled (make, g++, pybind11,
python3-config, the Python headers), which a fresh machine once lacked: pybind11 was not installed
and the DeepSeek-V3 example stopped at its first dataset."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def check_build(venv: Path, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("MS_CONVERT_") and k != "CXX"}
    full.update(MS_CONVERT_VENV=str(venv), **env)
    return subprocess.run(["bash", str(REPO_ROOT / "tools" / "setup_env.sh"), "--check-build"], env=full,
                          capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)


def test_the_project_environment_compiles_a_pybind11_module_as_megatron_does():
    ok = check_build(Path(sys.prefix))
    assert ok.returncode == 0, ok.stderr


def test_a_failing_compiler_fails_in_one_line_naming_the_system_packages():
    proc = check_build(Path(sys.prefix), CXX="false")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("tools/setup_env.sh: cannot compile a pybind11 module the way Megatron compiles its "
                               "dataset helpers (make: *** ")
    assert lines[0].endswith("install a C++ compiler, make and the Python headers "
                             "(Debian: apt-get install -y make g++ python3-dev) and run this again")


def test_an_environment_without_pybind11_fails_in_one_line_naming_it(tmp_path):
    bare = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    proc = check_build(bare, TMPDIR=str(scratch))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"tools/setup_env.sh: {bare} has no pybind11, with which Megatron compiles its dataset helpers: install it "
        f"({bare}/bin/python -m pip install -r {REPO_ROOT}/requirements-runtime.txt)"]
    assert list(scratch.iterdir()) == []   # the probe's folder is removed


def test_a_missing_compiler_fails_in_one_line_naming_it():
    proc = check_build(Path(sys.prefix), CXX="no-such-g++")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "tools/setup_env.sh: 'no-such-g++' not found; Megatron compiles its dataset helpers with make, g++ and "
        "python3-config at run time: install them (Debian: apt-get install -y make g++ python3-dev) and run this again"]


def test_check_build_without_an_environment_says_to_set_it_up_first(tmp_path):
    proc = check_build(tmp_path / "none")
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"tools/setup_env.sh: no environment at {tmp_path / 'none'}: run bash tools/setup_env.sh first"
