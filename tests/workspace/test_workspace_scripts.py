"""The real auto_convert_*.sh, sourced in a real interactive bash, against real git repositories.

Each test asserts what the user would see: the shell survives (``SHELL_ALIVE <status>``), the
message names the cause, nothing of theirs is lost, and running the same command again completes.
"""
from __future__ import annotations

import fcntl
import subprocess
import os
import re
import time
from pathlib import Path

from conftest import REPO_ROOT, World, commit_files, git, make_patch, make_upstream

# Printed in the same shell before and after `source`: must not change.
SHELL_SNAPSHOT = 'echo "OPTS[$-]"; set +o; shopt -p; trap -p; declare -F | grep __ms_ws_ || true; pwd'


def snapshot(text: str, marker: str) -> str:
    return text.split(f"{marker}\n", 1)[1].split(f"END{marker}\n", 1)[0]


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD")


def log_subjects(repo: Path, since: str) -> list[str]:
    return git(repo, "log", "--format=%s", f"{since}..HEAD").splitlines()


def test_source_sets_up_the_workspace_and_leaves_the_shell_as_it_was(world: World) -> None:
    good = world.add_patch("Megatron-LM", "0001-mark.patch", make_patch(
        world.upstream / "Megatron-LM", world.pins["Megatron-LM"],
        {"megatron/core/__init__.py": ("import torch\n", "import torch\n\nPATCHED = True\n")}))
    manifest = world.default_manifest(rules=True, patches=str(good.parent))
    world.ws.mkdir()
    pre = f"set -u; set -o pipefail; trap 'echo bye' USR1; export PYTHONPATH=/opt/user/lib\necho SNAP\n{SHELL_SNAPSHOT}\necho ENDSNAP"
    post = (f"echo SNAP2\n{SHELL_SNAPSHOT}\necho ENDSNAP2\n"
            'echo "PP=$PYTHONPATH"\n'
            'python -c "import megatron.core as m, mindspeed_llm, six; print(\'FILE=\' + m.__file__); print(\'ADD=\', m.add_one([1.0, 2.0])); print(\'PATCHED=\', m.PATCHED)"\n')
    # From the workspace folder (the default workspace), with the script given by its path elsewhere.
    result = world.source(f"--mirror {world.mirror} --manifest {manifest} -j 2", cwd=world.ws, pre=pre, post=post)
    assert result.alive == 0, result
    assert snapshot(result.stdout, "SNAP") == snapshot(result.stdout, "SNAP2"), result
    ws = world.ws
    assert f"PP={ws}/six:{ws}/Megatron-LM:{ws}/MindSpeed-LLM:/opt/user/lib\n" in result.stdout
    assert f"FILE={ws}/Megatron-LM/megatron/core/__init__.py" in result.stdout, result
    assert "ADD= [2.0, 3.0]" in result.stdout and "PATCHED= True" in result.stdout, result

    repo = ws / "Megatron-LM"
    pin = world.pins["Megatron-LM"]
    assert log_subjects(repo, pin) == [
        "ms-workspace: converted (rules " + world.state()["repos"]["Megatron-LM"]["stages"]["converted"]["rules"] + ")",
        "ms-workspace: patches applied (1)",
    ]
    assert git(repo, "rev-parse", "HEAD~2") == pin
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD") == "ms-workspace"
    assert git(repo, "status", "--porcelain") == ""
    diff = git(repo, "diff", pin, "--", "megatron/core/tensor_parallel/layers.py")
    assert "mindtorch" in diff and "-import torch" in diff
    six_repo = ws / "six"
    assert (six_repo / "six.py").is_file() and list(six_repo.glob("six-1.17.0.dist-info"))
    assert git(six_repo, "log", "--format=%s") == "six==1.17.0 from PyPI"

    reports = ws / ".ms-workspace" / "reports" / "Megatron-LM"
    assert {p.name for p in reports.iterdir()} >= {"change_list.csv", "unsupported_api.csv", "summary.json"}
    assert list((ws / ".ms-workspace" / "logs").glob("*.log"))
    for column in ("repository", "pin", "stage", "files converted", "unsupported APIs", "time"):
        assert column in result.stderr
    assert re.search(r"Megatron-LM\s+│\s+release \(" + pin[:10] + r"\)\s+│\s+converted", result.stderr), result.stderr
    assert not (ws / ".ms-workspace" / "tmp").exists()


def test_second_source_skips_finished_work_in_seconds(world: World) -> None:
    manifest = world.default_manifest(rules=True)
    first = world.source(world.std_args(manifest))
    assert first.alive == 0, first
    heads = {name: head(world.ws / name) for name in ("six", "Megatron-LM", "MindSpeed-LLM")}
    state = world.state()
    started = time.monotonic()
    second = world.source(world.std_args(manifest), post='echo "PP=$PYTHONPATH"')
    elapsed = time.monotonic() - started
    assert second.alive == 0, second
    assert second.stderr.count("up to date") >= 3, second.stderr
    assert "convert (rules" not in second.stderr and "clone" not in second.stderr
    assert {name: head(world.ws / name) for name in heads} == heads
    assert world.state()["repos"] == state["repos"]
    assert elapsed < 15, f"second source took {elapsed:.1f}s"
    pythonpath = second.stdout.split("PP=", 1)[1].splitlines()[0].split(":")
    assert len(pythonpath) == len(set(pythonpath)) == 3


def test_run_directly_does_the_work_and_says_how_to_load_it(world: World) -> None:
    import subprocess

    manifest = world.default_manifest()
    proc = subprocess.run(["bash", str(REPO_ROOT / "auto_convert_llm.sh"), *world.std_args(manifest).split()],
                          cwd=world.root, env=world.env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"source {world.ws}/set_env.sh" in proc.stderr
    assert (world.ws / "Megatron-LM" / "megatron" / "core" / "__init__.py").is_file()
    # set_env.sh, sourced twice on top of an existing PYTHONPATH: workspace first, no duplicates.
    out = subprocess.run(
        ["bash", "-c", f"export PYTHONPATH=/a:{world.ws}/six:/b; . {world.ws}/set_env.sh; . {world.ws}/set_env.sh; "
                       'echo "$PYTHONPATH"; echo "$PATH"'],
        env=world.env(), capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == f"{world.ws}/six:{world.ws}/Megatron-LM:{world.ws}/MindSpeed-LLM:/a:/b"
    path = out[1].split(":")
    assert (Path(path[0]) / "python").exists() and path.count(path[0]) == 1  # the driver's venv, once


def test_clone_failure_is_retried_then_reported_and_a_rerun_completes(world: World) -> None:
    missing = world.root / "nowhere" / "MindSpeed-LLM.git"
    url = missing.as_uri()
    manifest = world.write_manifest([
        world.git_repo("Megatron-LM", url=(world.upstream / "Megatron-LM").as_uri()),
        world.git_repo("MindSpeed-LLM", url=url),
    ])
    args = f"--workspace {world.ws} --manifest {manifest} --retries 3"
    result = world.source(args, post='echo "PP=${PYTHONPATH:-unset}"')
    assert result.alive == 1, result
    assert "PP=unset" in result.stdout
    assert f"git clone {url} failed after 3 attempts" in result.stderr, result.stderr
    assert "does not appear to be a git repository" in result.stderr  # git's own message
    assert "auto_convert_llm.sh: failed (status 1)" in result.stderr
    log = next((world.ws / ".ms-workspace" / "logs").glob("*.log")).read_text()
    assert log.count("(attempt ") == 3
    assert not (world.ws / "MindSpeed-LLM").exists()
    assert not list((world.ws / ".ms-workspace").glob("tmp/*"))
    assert (world.ws / "Megatron-LM" / "megatron").is_dir()  # the good repository is done
    assert not (world.ws / "set_env.sh").exists()

    git(world.root, "clone", "-q", "--bare", str(world.upstream / "MindSpeed-LLM"), str(missing))
    again = world.source(args)
    assert again.alive == 0, again
    assert head(world.ws / "MindSpeed-LLM") == world.pins["MindSpeed-LLM"]
    assert "Megatron-LM" in again.stderr and "up to date" in again.stderr


def test_mirror_without_the_pinned_commit_says_so_by_name(world: World) -> None:
    newer = commit_files(world.upstream / "Megatron-LM", {"megatron/new.py": "import torch\n"}, "newer")
    manifest = world.write_manifest([world.git_repo("Megatron-LM", commit=newer)])
    result = world.source(world.std_args(manifest))
    assert result.alive == 1, result
    assert f"Megatron-LM: the mirror {world.mirror}/Megatron-LM.git does not have the pinned commit {newer} (release)" in result.stderr
    assert not (world.ws / "Megatron-LM").exists()
    git(world.mirror / "Megatron-LM.git", "fetch", "-q", str(world.upstream / "Megatron-LM"), "main:main")
    again = world.source(world.std_args(manifest))
    assert again.alive == 0, again
    assert head(world.ws / "Megatron-LM") == newer


def test_mirror_without_the_repository_names_it(world: World) -> None:
    manifest = world.write_manifest([world.git_repo("MindSpeed", commit=world.pins["Megatron-LM"])])
    result = world.source(world.std_args(manifest))
    assert result.alive == 1
    assert f"MindSpeed: the mirror {world.mirror} has no repository MindSpeed or MindSpeed.git" in result.stderr


def test_patch_conflict_names_patch_and_hunk_and_keeps_the_last_good_stage(world: World) -> None:
    mg = world.upstream / "Megatron-LM"
    world.add_patch("Megatron-LM", "0001-mark.patch", make_patch(mg, world.pins["Megatron-LM"], {
        "megatron/core/__init__.py": ("import torch\n", "import torch\n\nPATCHED = True\n")}))
    # Made against a file that differs from the pin in its second hunk's context: does not apply.
    other = commit_files(mg, {"megatron/core/tensor_parallel/layers.py": (
        mg / "megatron/core/tensor_parallel/layers.py").read_text().replace("return F.linear", "return  F.linear")}, "drift")
    second = make_patch(mg, other, {"megatron/core/tensor_parallel/layers.py": (
        "        return  F.linear(x, self.weight)\n", "        return  F.linear(x, self.weight) * 2\n")})
    bad = world.add_patch("Megatron-LM", "0002-scale.patch", second)
    manifest = world.default_manifest(patches=str(bad.parent))
    result = world.source(world.std_args(manifest), post='echo "PP=${PYTHONPATH:-unset}"')
    assert result.alive == 1, result
    assert "PP=unset" in result.stdout
    hunk_line = second.splitlines().index(next(l for l in second.splitlines() if l.startswith("@@"))) + 1
    assert f"Megatron-LM: patch {bad} does not apply: hunk #1 at line {hunk_line} of the patch" in result.stderr, result.stderr
    assert "megatron/core/tensor_parallel/layers.py" in result.stderr
    repo = world.ws / "Megatron-LM"
    assert head(repo) == world.pins["Megatron-LM"] and git(repo, "status", "--porcelain") == ""
    assert head(world.ws / "MindSpeed-LLM") == world.pins["MindSpeed-LLM"]  # the others are done
    state = world.state()["repos"]["Megatron-LM"]
    assert "patched" not in state["stages"] and "in_progress" not in state

    bad.write_text(make_patch(mg, world.pins["Megatron-LM"], {"megatron/core/tensor_parallel/layers.py": (
        "        return F.linear(x, self.weight)\n", "        return F.linear(x, self.weight) * 2\n")}))
    again = world.source(world.std_args(manifest))
    assert again.alive == 0, again
    assert log_subjects(repo, world.pins["Megatron-LM"]) == ["ms-workspace: patches applied (2)"]
    assert "* 2" in (repo / "megatron/core/tensor_parallel/layers.py").read_text()
    assert "PATCHED = True" in (repo / "megatron/core/__init__.py").read_text()


def test_patch_that_leaves_the_repository_is_refused(world: World) -> None:
    escape = world.root / "escape.py"
    text = ("diff --git a/../escape.py b/../escape.py\nnew file mode 100644\n--- /dev/null\n+++ b/../escape.py\n"
            "@@ -0,0 +1 @@\n+print('outside')\n")
    patch = world.add_patch("Megatron-LM", "0001-escape.patch", text)
    manifest = world.write_manifest([world.git_repo("Megatron-LM", patches=str(patch))])
    result = world.source(world.std_args(manifest))
    assert result.alive == 1
    assert f"Megatron-LM: patch {patch} is refused: it touches the path ../escape.py, which leaves the repository" in result.stderr
    assert not escape.exists()
    assert head(world.ws / "Megatron-LM") == world.pins["Megatron-LM"]


def test_hand_edits_are_never_overwritten_and_force_keeps_them_aside(world: World) -> None:
    manifest = world.default_manifest()
    assert world.source(world.std_args(manifest)).alive == 0
    repo = world.ws / "Megatron-LM"
    edited = repo / "megatron" / "core" / "__init__.py"
    edited.write_text(edited.read_text() + "\nMY_EDIT = 1\n")
    (repo / "my_notes.txt").write_text("mine\n")
    (repo / "megatron" / "__pycache__").mkdir()
    (repo / "megatron" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")

    # Nothing to do for that repository: it is kept, and the run says it was changed by hand.
    same = world.source(world.std_args(manifest))
    assert same.alive == 0, same
    assert "Megatron-LM: changed by hand since the run that set it up, kept as it is" in same.stderr

    # Work to do (a new patch): refused, nothing touched.
    patch = world.add_patch("Megatron-LM", "0001-readme.patch", make_patch(
        world.upstream / "Megatron-LM", world.pins["Megatron-LM"], {"README.md": ("# Megatron", "# Patched Megatron")}))
    manifest = world.default_manifest(patches=str(patch.parent))
    refused = world.source(world.std_args(manifest))
    assert refused.alive == 1, refused
    assert f"Megatron-LM: {repo} was changed by hand (1 changed file(s) (megatron/core/__init__.py) and 1 untracked path(s) (my_notes.txt))" in refused.stderr
    assert "--force" in refused.stderr
    assert "MY_EDIT = 1" in edited.read_text() and (repo / "my_notes.txt").exists()
    assert head(repo) == world.pins["Megatron-LM"]

    forced = world.source(world.std_args(manifest, "--force"))
    assert forced.alive == 0, forced
    backups = list((world.ws / ".ms-workspace" / "backup").glob("Megatron-LM-*"))
    assert len(backups) == 1
    assert "MY_EDIT = 1" in (backups[0] / "megatron/core/__init__.py").read_text()
    assert (backups[0] / "my_notes.txt").read_text() == "mine\n"
    assert "MY_EDIT" not in edited.read_text() and git(repo, "status", "--porcelain") == ""
    assert (repo / "README.md").read_text().startswith("# Patched Megatron")


def test_extra_commits_by_the_user_are_kept(world: World) -> None:
    manifest = world.default_manifest()
    assert world.source(world.std_args(manifest)).alive == 0
    repo = world.ws / "MindSpeed-LLM"
    mine = commit_files(repo, {"mine.py": "x = 1\n"}, "my work")
    patch = world.add_patch("MindSpeed-LLM", "0001.patch", make_patch(
        world.upstream / "MindSpeed-LLM", world.pins["MindSpeed-LLM"], {"README.md": ("# MindSpeed", "# Patched")}))
    manifest = world.write_manifest([world.six(), world.git_repo("Megatron-LM"),
                                     world.git_repo("MindSpeed-LLM", patches=str(patch))])
    result = world.source(world.std_args(manifest))
    assert result.alive == 1
    assert f"HEAD is {mine[:10]} on branch ms-workspace, the workspace left it at {world.pins['MindSpeed-LLM'][:10]}" in result.stderr
    assert head(repo) == mine


def test_changed_pin_replaces_a_clean_copy(world: World) -> None:
    manifest = world.default_manifest()
    assert world.source(world.std_args(manifest)).alive == 0
    (world.ws / "Megatron-LM" / "megatron" / "__pycache__").mkdir()
    (world.ws / "Megatron-LM" / "megatron" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    later = world.later["Megatron-LM"]
    manifest = world.write_manifest([world.six(), world.git_repo("Megatron-LM", commit=later),
                                     world.git_repo("MindSpeed-LLM")])
    result = world.source(world.std_args(manifest))
    assert result.alive == 0, result
    assert head(world.ws / "Megatron-LM") == later
    assert world.state()["repos"]["Megatron-LM"]["stages"]["fetched"]["commit"] == later
    (old,) = (world.ws / ".ms-workspace" / "backup").glob("Megatron-LM-*")  # kept, with its ignored files
    assert head(old) == world.pins["Megatron-LM"] and (old / "megatron" / "__pycache__" / "x.pyc").exists()
    assert f"moved {world.ws / 'Megatron-LM'} (the manifest's pin changed) to {old}" in result.stderr


def test_abbreviated_pin_is_resolved_only_from_a_mirror(world: World) -> None:
    pin = world.pins["MindSpeed-LLM"]
    manifest = world.write_manifest([world.git_repo("MindSpeed-LLM", abbrev=pin[:7])])
    ok = world.source(world.std_args(manifest))
    assert ok.alive == 0, ok
    assert head(world.ws / "MindSpeed-LLM") == pin
    assert world.state()["repos"]["MindSpeed-LLM"]["stages"]["fetched"]["commit"] == pin
    assert f"the abbreviated pin {pin[:7]} is {pin} (write `commit: {pin}` in the manifest" in ok.stderr

    other_ws = world.root / "ws-net"
    refused = world.source(f"--workspace {other_ws} --manifest {manifest}")
    assert refused.alive == 1
    assert f"MindSpeed-LLM: the manifest pins only the abbreviated commit {pin[:7]}; it is resolved only from a mirror" in refused.stderr
    assert not (other_ws / "MindSpeed-LLM").exists()


def test_pypi_source_from_the_mirrors_package_folder_and_its_checksum(world: World) -> None:
    import subprocess
    import sys

    (world.mirror / "pypi").mkdir()
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(world.mirror / "pypi"),
                    "six==1.17.0"], check=True, capture_output=True)
    wheel = next((world.mirror / "pypi").glob("six-1.17.0-*.whl"))
    digest = __import__("hashlib").sha256(wheel.read_bytes()).hexdigest()
    manifest = world.write_manifest([world.six(sha256=digest)])
    # An index that cannot be reached: only the mirror's folder can provide the wheel.
    env = world.env(PIP_INDEX_URL="http://127.0.0.1:9/simple", PIP_RETRIES="0", PIP_TIMEOUT="1")
    ok = world.source(world.std_args(manifest), env=env, post="python -c 'import six; print(\"SIX=\" + six.__file__)'")
    assert ok.alive == 0, ok
    assert f"SIX={world.ws}/six/six.py" in ok.stdout

    wrong = world.write_manifest([world.six(sha256="0" * 64)])
    other = world.root / "ws2"
    bad = world.source(f"--mirror {world.mirror} --workspace {other} --manifest {wrong}", env=env)
    assert bad.alive == 1
    assert f"has sha256 {digest}, the manifest pins {'0' * 64}" in bad.stderr
    assert not (other / "six").exists()


def test_bad_manifest_is_one_clear_line(world: World) -> None:
    manifest = world.manifest_dir / "bad.yaml"
    manifest.write_text("name: t\nrepos:\n  - name: Megatron-LM\n    source:\n      kind: git\n"
                        "      url: https://example.invalid/x.git\n      commit: main\n")
    result = world.source(world.std_args(manifest), pre="set -u")
    assert result.alive == 2, result
    assert f"error: {manifest}:7: repos[0].source.commit: 'main' does not match '^[0-9a-f]{{40}}$'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_second_run_at_the_same_time_is_refused(world: World) -> None:
    manifest = world.default_manifest()
    lock = world.ws / ".ms-workspace" / "lock"
    lock.parent.mkdir(parents=True)
    with open(lock, "w") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        fh.write(str(os.getpid()))
        fh.flush()
        result = world.source(world.std_args(manifest))
    assert result.alive == 2
    assert f"another run is working in {world.ws} (pid {os.getpid()})" in result.stderr
    assert not (world.ws / "Megatron-LM").exists()


def test_sourcing_from_inside_a_workspace_repository_is_refused(world: World) -> None:
    manifest = world.default_manifest()
    assert world.source(world.std_args(manifest)).alive == 0
    inside = world.ws / "MindSpeed-LLM"
    result = world.source(f"--mirror {world.mirror} --manifest {manifest}", cwd=inside)
    assert result.alive == 2
    assert f"{inside} is inside the workspace {world.ws}; run from {world.ws} or pass --workspace {world.ws}" in result.stderr
    assert not (inside / ".ms-workspace").exists() and git(inside, "status", "--porcelain") == ""


def test_a_workspace_is_for_one_manifest(world: World) -> None:
    manifest = world.default_manifest()
    assert world.source(world.std_args(manifest)).alive == 0
    other = world.write_manifest([world.six()], name="otherws", file="other.yaml")
    result = world.source(world.std_args(other))
    assert result.alive == 2
    assert f"{world.ws} was set up with the testws manifest, not otherws" in result.stderr


def test_all_three_scripts_reach_their_manifest(world: World) -> None:
    for kind in ("llm", "mm", "rl"):
        result = world.source("--status --workspace " + str(world.root / f"ws-{kind}"), script=f"auto_convert_{kind}.sh")
        assert result.alive == 0, result
        assert f"({kind})" in result.stderr and "mindtorch" in result.stderr and "not started" in result.stderr
        assert not (world.root / f"ws-{kind}").exists()


def test_a_lost_state_file_is_rebuilt_from_the_repositories(world: World) -> None:
    patch = world.add_patch("Megatron-LM", "0001-readme.patch", make_patch(
        world.upstream / "Megatron-LM", world.pins["Megatron-LM"], {"README.md": ("# Megatron", "# Patched Megatron")}))
    manifest = world.default_manifest(patches=str(patch.parent))
    assert world.source(world.std_args(manifest)).alive == 0
    trees = {name: git(world.ws / name, "rev-parse", "HEAD^{tree}") for name in ("six", "Megatron-LM", "MindSpeed-LLM")}
    (world.ws / ".ms-workspace" / "state.json").unlink()
    again = world.source(world.std_args(manifest))
    assert again.alive == 0, again
    assert again.stderr.count("adopted") >= 3, again.stderr
    assert {name: git(world.ws / name, "rev-parse", "HEAD^{tree}") for name in trees} == trees
    assert log_subjects(world.ws / "Megatron-LM", world.pins["Megatron-LM"]) == ["ms-workspace: patches applied (1)"]


def test_a_foreign_clone_in_the_way_is_kept(world: World) -> None:
    world.ws.mkdir()
    git(world.root, "clone", "-q", str(world.upstream / "Megatron-LM"), str(world.ws / "Megatron-LM"))  # at main
    manifest = world.default_manifest()
    result = world.source(world.std_args(manifest))
    assert result.alive == 1
    assert (f"Megatron-LM: {world.ws / 'Megatron-LM'} is in the way: it was not made by this workspace "
            f"(HEAD {world.later['Megatron-LM'][:10]}, pin release") in result.stderr
    assert "--force" in result.stderr
    assert head(world.ws / "Megatron-LM") == world.later["Megatron-LM"]


def test_from_the_network_only_the_pinned_commit_is_fetched_else_the_whole_repository(world: World) -> None:
    upstream = world.upstream / "Megatron-LM"
    manifest = world.write_manifest([world.git_repo("Megatron-LM", url=upstream.as_uri())])
    shallow = world.source(f"--workspace {world.ws} --manifest {manifest}")
    assert shallow.alive == 0, shallow
    repo = world.ws / "Megatron-LM"
    assert head(repo) == world.pins["Megatron-LM"] and git(repo, "rev-parse", "--is-shallow-repository") == "true"

    # A server that refuses fetching by id (protocol v0, no allowReachableSHA1InWant), and a pin
    # that is no branch or tag tip: the whole repository is cloned, and the pin is still verified.
    middle = commit_files(upstream, {"megatron/mid.py": "import torch\n"}, "middle")
    commit_files(upstream, {"megatron/top.py": "import torch\n"}, "top")
    env = world.env(GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0="protocol.version", GIT_CONFIG_VALUE_0="0")
    other = world.root / "ws-v0"
    manifest = world.write_manifest([world.git_repo("Megatron-LM", url=upstream.as_uri(), commit=middle)], file="v0.yaml")
    full = world.source(f"--workspace {other} --manifest {manifest}", env=env)
    assert full.alive == 0, full
    assert head(other / "Megatron-LM") == middle
    assert git(other / "Megatron-LM", "rev-parse", "--is-shallow-repository") == "false"
    log = next((other / ".ms-workspace" / "logs").glob("*.log")).read_text()
    assert "fetching only" in log and "cloning the whole repository" in log


def test_a_clone_killed_midway_never_takes_the_repositorys_place(world: World) -> None:
    import signal
    import subprocess

    # A slow server: git runs this hook for the pack of every fetch from the mirror.
    hook = world.root / "slow-pack.sh"
    hook.write_text('#!/bin/sh\nsleep 2\nexec "$@"\n')
    hook.chmod(0o755)
    config = world.root / "slow.gitconfig"
    config.write_text(f"[uploadpack]\n\tpackObjectsHook = {hook}\n")
    manifest = world.default_manifest()
    command = f"source {REPO_ROOT / 'auto_convert_llm.sh'} {world.std_args(manifest)}\necho \"SHELL_ALIVE $?\"\n"
    proc = subprocess.Popen(["bash", "-i", "-c", command], cwd=world.root, env=world.env(GIT_CONFIG_GLOBAL=str(config)),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    scratch = world.ws / ".ms-workspace" / "tmp"
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline and not list(scratch.glob("Megatron-LM.fetch-*")):
        time.sleep(0.01)
    time.sleep(0.5)  # inside the clone, waiting for the pack
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert list(scratch.glob("Megatron-LM.fetch-*")), "the run was not killed during its clone"
    assert not (world.ws / "Megatron-LM").exists()

    again = world.source(world.std_args(manifest))
    assert again.alive == 0, again
    assert head(world.ws / "Megatron-LM") == world.pins["Megatron-LM"]
    assert git(world.ws / "Megatron-LM", "status", "--porcelain") == ""
    assert not scratch.exists()


def test_a_workspace_path_with_a_newline_is_data_from_the_script_to_set_env(world: World) -> None:
    """The path goes through the driver, its --env-out file, the script and set_env.sh: nothing in
    it runs, and the environment names the workspace exactly."""
    manifest = world.default_manifest()
    ws = world.root / "ws\ntouch pwned\n#"
    env = world.env(WS=str(ws))
    result = world.source(f'--mirror {world.mirror} --manifest {manifest} -j 2 --workspace "$WS"', env=env,
                          post='printf "PP=%s|\\n" "$PYTHONPATH"; printf "WS=%s|\\n" "$MS_CONVERT_WORKSPACE"')
    assert result.alive == 0, result
    assert not list(world.root.rglob("pwned")), result
    assert f"PP={ws}/six:{ws}/Megatron-LM:{ws}/MindSpeed-LLM|\n" in result.stdout, result
    assert f"WS={ws}|\n" in result.stdout
    again = subprocess.run(["bash", "-c", '. "$WS/set_env.sh" && printf "%s" "$MS_CONVERT_WORKSPACE"'], cwd=world.root,
                           env=env, capture_output=True, text=True, check=True)
    assert again.stdout == str(ws) and not list(world.root.rglob("pwned"))


def test_under_set_e_a_failing_source_is_handled_by_the_caller_as_documented(world: World) -> None:
    """docs/workspace.md: the script never exits and leaves `set -e` alone; its failure status is
    the caller's, and under `set -e` bash ends the shell on it unless it is handled (`|| true`)."""
    good = world.write_manifest([world.git_repo("Megatron-LM")])
    bad = world.manifest_dir / "bad.yaml"
    bad.write_text("name: t\nrepos: []\n")
    ok = world.source(world.std_args(good), pre="set -e", post='echo "OPTS[$-]"')
    assert ok.alive == 0 and "e" in ok.after("SHELL_ALIVE 0").split("OPTS[", 1)[1].split("]")[0], ok
    unhandled = world.source(world.std_args(bad), pre="set -e")
    assert unhandled.alive is None and f"{bad}:2: repos: [] should be non-empty" in unhandled.stderr, unhandled
    handled = world.source(world.std_args(bad) + ' || echo "HANDLED $?"', pre="set -e", post='echo "OPTS[$-]"')
    assert "HANDLED 2\n" in handled.stdout and handled.alive == 0, handled
    assert "e" in handled.stdout.split("OPTS[", 1)[1].split("]")[0]


def test_files_the_conversion_could_not_convert_are_noted_on_every_run(world: World) -> None:
    """A file the engine cannot parse stays as upstream wrote it; the stage is still 'converted',
    so the run says how many files failed and where the reasons are, each time it runs."""
    legacy = world.upstream / "legacy"
    world.pins["legacy"], _ = make_upstream(legacy, {
        "legacy/__init__.py": "import torch\n",
        "legacy/py2.py": "import torch\nprint 'python 2'\n"}, "v1")
    git(world.root, "clone", "-q", "--bare", str(legacy), str(world.mirror / "legacy.git"))
    manifest = world.write_manifest([world.git_repo("legacy", rules=True)])
    note = (f"note: legacy: 1 file(s) could not be converted and are as upstream wrote them; which and why: "
            f"{world.ws}/.ms-workspace/reports/legacy/summary.json (failures)")
    for _ in range(2):
        result = world.source(world.std_args(manifest))
        assert result.alive == 0, result
        assert note in " ".join(result.stderr.split()), result.stderr
    assert world.state()["repos"]["legacy"]["stages"]["converted"]["files_failed"] == 1
    assert (world.ws / "legacy" / "legacy" / "py2.py").read_text() == "import torch\nprint 'python 2'\n"
