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


def _project_copy(root: Path) -> Path:
    """The parts of this checkout setup_env.sh reads (itself, the requirements, mindtorch's series)."""
    repo = root / "repo"
    (repo / "tools").mkdir(parents=True)
    (repo / "patches" / "mindtorch").mkdir(parents=True)
    (repo / "tools" / "setup_env.sh").write_bytes((REPO_ROOT / "tools" / "setup_env.sh").read_bytes())
    for name in ("requirements.txt", "requirements-runtime.txt"):
        (repo / name).write_bytes((REPO_ROOT / name).read_bytes())
    for patch in sorted((REPO_ROOT / "patches" / "mindtorch").glob("*.patch")):
        (repo / "patches" / "mindtorch" / patch.name).write_bytes(patch.read_bytes())
    return repo


def _venv_over_the_project_one(root: Path) -> tuple[Path, Path]:
    """A new venv that sees this environment's packages through a .pth file, so that pip finds every
    requirement satisfied and setup_env.sh's own work (the venv's mindtorch, patched) is what runs."""
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "project-env.pth").write_text(next(p for p in sys.path if p.endswith("site-packages")) + "\n")
    return venv, site


def _setup(repo: Path, venv: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MS_CONVERT_")}
    env.update(MS_CONVERT_VENV=str(venv))
    return subprocess.run(["bash", str(repo / "tools" / "setup_env.sh")], env=env, capture_output=True, text=True,
                          timeout=900, stdin=subprocess.DEVNULL)


def test_the_venvs_mindtorch_gets_the_series_and_a_patch_that_does_not_apply_changes_nothing(tmp_path):
    repo = _project_copy(tmp_path)
    venv, site = _venv_over_the_project_one(tmp_path)
    broken = repo / "patches" / "mindtorch" / "0999-broken.patch"
    broken.write_text("--- a/mindtorch/__init__.py\n+++ b/mindtorch/__init__.py\n@@ -1,1 +1,1 @@\n-no such line\n+x\n")

    failed = _setup(repo, venv)
    assert failed.returncode == 1
    assert (f"tools/setup_env.sh: {broken} does not apply to mindtorch from mindnlp==0.5.1: fix the patch "
            "(patches/README.md) and run this again") in failed.stderr.splitlines()
    assert not (site / "mindtorch").exists()
    assert not list(site.glob(".mindtorch-stage*"))          # the staging folder is removed

    broken.unlink()
    done = _setup(repo, venv)
    assert done.returncode == 0, done.stderr
    generator = (site / "mindtorch" / "_C" / "__init__.py").read_text()
    assert "GeneratorOp(self._seed, self._offset)" in generator   # patch 0010, which 2.10 needs to import it

    # The series changes (as a patch is edited): the next run redoes it from mindnlp's mindtorch.
    # Reinstalling in place once kept the files a patch had added (0002 adds one), and the series
    # then failed with "already exists in working directory".
    first = sorted((repo / "patches" / "mindtorch").glob("*.patch"))[0]
    first.write_bytes(b"An edited header.\n\n" + first.read_bytes())
    again = _setup(repo, venv)
    assert again.returncode == 0, again.stderr
    assert not list(site.glob(".mindtorch-stage*")) and not (site / "mindtorch.previous").exists()
