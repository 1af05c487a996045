"""The driver's parts on their own: shipped manifests, manifest errors, patch parsing and safety,
set_env.sh in several shells, abbreviated pins, and the Python environment bootstrap."""
from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT, World, git
from tools.workspace import envfile
from tools.workspace.errors import ManifestError, RepoError
from tools.workspace.gitutil import EXCLUDES
from tools.workspace.manifest import GitSource, Manifest, PypiSource, load_manifest, manifest_path
from tools.workspace.patches import parse, unsafe_path
from tools.workspace.sources import resolve_abbrev

# The pins of the 2.2.0 generation (upstream release notes), as the issue gives them.
PINS = {
    "llm": {
        "MindSpeed-LLM": ("https://gitcode.com/Ascend/MindSpeed-LLM.git", "53f3639c3da9c000a187c44cc0c08d55026ddded"),
        "MindSpeed": ("https://gitcode.com/Ascend/MindSpeed.git", "f321067c6fd1e32ad74848416942bdb899cf9627"),
        "Megatron-LM": ("https://github.com/NVIDIA/Megatron-LM.git", "a845aa7e12b3a117e24c2352b9e3e60bad2e3a17"),
        "transformers": "transformers==4.55.4",
        "accelerate": "accelerate==1.11.0", "peft": "peft==0.7.1",
        "mindtorch": "mindnlp==0.5.1",
    },
    "mm": {
        "MindSpeed-MM": ("https://gitcode.com/Ascend/MindSpeed-MM.git", "4c75a551092cf0a510be45277d31e248cd616816"),
        "MindSpeed": ("https://gitcode.com/Ascend/MindSpeed.git", "f321067c6fd1e32ad74848416942bdb899cf9627"),
        "Megatron-LM": ("https://github.com/NVIDIA/Megatron-LM.git", "a845aa7e12b3a117e24c2352b9e3e60bad2e3a17"),
        "transformers": "transformers==4.53.0", "diffusers": "diffusers==0.30.3",
        "accelerate": "accelerate==0.32.1", "peft": "peft==0.7.1", "mindtorch": "mindnlp==0.5.1",
        "torchvision": "torchvision==0.22.1", "timm": "timm==1.0.8",   # MindSpeed-MM's data and embeddings
    },
    "rl": {
        "MindSpeed-RL": ("https://gitcode.com/Ascend/MindSpeed-RL.git", "194b52b7b34b69963f21bee0d13d01c155cd2db2"),
        "MindSpeed": ("https://gitcode.com/Ascend/MindSpeed.git", "ca70c1338f1b3d1ce46a0ea426e5779ae1312e2e"),
        "Megatron-LM": ("https://github.com/NVIDIA/Megatron-LM.git", "baf94af3c667248865f23df73b9fb8e2395e6fd0"),
        "MindSpeed-LLM": ("https://gitcode.com/Ascend/MindSpeed-LLM.git", "bf1e61f4f9dc1baa3124a69c5e15af5a2e46b731"),
        "vllm": ("https://github.com/vllm-project/vllm.git", "b6553be1bc75f046b00046a4ad7576364d03c835"),
        "vllm-ascend": ("https://github.com/vllm-project/vllm-ascend.git", "8c7bc45"),
        "transformers": "transformers==4.52.1", "mindtorch": "mindnlp==0.5.1",
    },
}


@pytest.mark.parametrize("kind", sorted(PINS))
def test_shipped_manifests_hold_the_release_pins(kind: str) -> None:
    manifest = load_manifest(manifest_path(kind))
    assert manifest.name == kind
    repos = {spec.name: spec for spec in manifest.repos}
    assert set(repos) == set(PINS[kind])
    for name, want in PINS[kind].items():
        src = repos[name].source
        if isinstance(want, tuple):
            assert isinstance(src, GitSource) and (src.url, src.pin) == want
        else:
            assert isinstance(src, PypiSource) and src.requirement == want and src.sha256
    assert repos["mindtorch"].source.take == ("mindtorch",) and not repos["mindtorch"].rules  # the target
    assert manifest.repos[0].name == "mindtorch"  # first on PYTHONPATH
    assert repos["mindtorch"].patches  # patches/mindtorch: what Megatron needs of it on MindSpore
    for spec in manifest.repos:
        if spec.name != "mindtorch":
            extra = ["megatron_core.yaml"] if spec.name == "Megatron-LM" and kind in ("llm", "mm") else []
            if spec.name.startswith("MindSpeed"):
                extra = ["ascend_runtime.yaml"]    # CANN's pyACL imports (MindSpeed, MindSpeed-LLM, -MM, -RL)
            assert [p.name for p in spec.rules] == ["torch_imports.yaml", "torch_api.yaml", *extra]
            assert all(p.is_file() and p.parent == REPO_ROOT / "rules" for p in spec.rules)


def _error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    return str(info.value).replace(str(path), "M")


GIT = "    source: {kind: git, url: u, commit: " + "a" * 40 + "}\n"


@pytest.mark.parametrize("text, message", [
    ("name: t\nrepos:\n  - name: a\n    sorce: {}\n",
     "M:4: repos[0].sorce: unknown field (allowed: name, source, patches, rules, pythonpath)"),
    ("name: t\nrepos:\n  - name: a\n" + GIT + "  - name: a\n" + GIT,
     "M:5: repos[1].name: repository 'a' is listed twice"),
    ("name: t\nrepos:\n  - name: a\n" + GIT + "    pythonpath: [../up]\n",
     "M:5: repos[0].pythonpath[0]: '../up' must be a relative path inside the repository"),
    ("name: t\nrepos:\n  - name: a\n    source: {kind: pypi, requirement: six==1.17.0, take: [/etc]}\n",
     "M:4: repos[0].source.take[0]: '/etc' must be a relative path inside the distribution"),
    ("name: t\nrepos:\n  - name: a\n    source: {kind: pypi, requirement: six, take: [six.py]}\n",
     "M:4: repos[0].source.requirement: 'six' does not match"),
    ("name: t\nrepos:\n  - name: a\n" + GIT + "    patches: nowhere\n",
     "M:5: repos[0].patches: "),
    ("name: t\nrepos:\n  - name: a\n" + GIT + "    rules: [r.yaml]\n",
     "M:5: repos[0].rules[0]: rule file "),
    ("name: t\nrepos:\n  - name: a\n    source: {kind: svn, url: u}\n",
     "M:4: repos[0].source.kind: 'svn' is not one of ['git', 'pypi']"),
    ("name: t\nrepos: [\n", "M:3: not valid YAML"),
    # the strict loader (tools/yamlpath): a repeated key used to win silently, an alias could expand without bound
    ("name: t\nrepos:\n  - name: a\n" + GIT + "    rules: [x.yaml]\n    rules: []\n",
     "M:6: duplicate key 'rules' (first given at line 5): the last one would silently win; keep one"),
    ("name: t\nname: u\nrepos:\n  - name: a\n" + GIT, "M:2: duplicate key 'name' (first given at line 1)"),
    ("name: &n t\nrepos:\n  - name: *n\n" + GIT, "M:3: alias *n is not allowed"),
    ("name: t\nrepos: []\n", "M:2: repos: [] should be non-empty"),
    # `$` in the schema's patterns also matches before a final newline: refused on their own
    ('name: "t\\n"\nrepos:\n  - name: a\n' + GIT,
     "M:1: name: 't\\n' holds a control character (a newline, tab, ...): write it on one line"),
    ('name: t\nrepos:\n  - name: "a\\n"\n' + GIT, "M:3: repos[0].name: 'a\\n' holds a control character"),
    ("name: t\nrepos:\n  - name: a\n    source: {kind: git, url: u, commit: \"" + "a" * 40 + "\\n\"}\n",
     "M:4: repos[0].source.commit: 'aaaa"),
    ('name: t\nrepos:\n  - name: a\n' + GIT + '    pythonpath: ["src\\tx"]\n',
     "M:5: repos[0].pythonpath[0]: 'src\\tx' holds a control character"),
])
def test_manifest_errors_name_file_line_and_field(tmp_path: Path, text: str, message: str) -> None:
    assert _error(tmp_path, text).startswith(message)


def test_manifest_paths_are_relative_to_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "p" / "Repo").mkdir(parents=True)
    (tmp_path / "p" / "Repo" / "0002-b.patch").write_text("x")
    (tmp_path / "p" / "Repo" / "0001-a.patch").write_text("x")
    (tmp_path / "r.yaml").write_text("rules: []\n")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "m.yaml").write_text("name: t\nrepos:\n  - name: Repo\n" + GIT + "    patches: ../p/Repo\n    rules: [../r.yaml]\n")
    (spec,) = load_manifest(sub / "m.yaml").repos
    assert [p.name for p in spec.patches] == ["0001-a.patch", "0002-b.patch"]
    assert spec.rules == (tmp_path / "r.yaml",)
    assert spec.pythonpath == (".",)


def test_patch_parsing_skips_hunk_bodies_and_finds_every_path() -> None:
    text = (
        "diff --git a/src/a.py b/src/a.py\n--- a/src/a.py\n+++ b/src/a.py\n"
        "@@ -1,3 +1,3 @@\n x = 1\n--- this removed line is not a header\n+++ nor is this added one\n y = 2\n"
        "@@ -10 +10 @@\n-old\n+new\n"
        "diff --git a/old.py b/new.py\nsimilarity index 90%\nrename from old.py\nrename to new.py\n"
        "--- \"a/t\\303\\251st.py\"\n+++ \"b/t\\303\\251st.py\"\n@@ -1 +1 @@\n-a\n+b\n"
        "--- a/sp ace.py\t2024-01-01\n+++ b/sp ace.py\t\n@@ -1 +1 @@\n-a\n+b\n"
    )
    parsed = parse(text)
    assert set(parsed.paths) == {"src/a.py", "old.py", "new.py", "tést.py", "sp ace.py"}
    assert [(h.path, h.old_start, h.line) for h in parsed.hunks] == [
        ("src/a.py", 1, 4), ("src/a.py", 10, 9), ("tést.py", 1, 18), ("sp ace.py", 1, 23)]


@pytest.mark.parametrize("path, bad", [
    ("megatron/core/x.py", False), ("a/..b/c.py", False), ("/etc/passwd", True), ("../x.py", True),
    ("a/../../x.py", True), (".git/hooks/post-checkout", True), ("C:\\x.py", True), ("a\\..\\..\\x", True), ("", True),
])
def test_unsafe_patch_paths(path: str, bad: bool) -> None:
    assert (unsafe_path(path) is not None) == bad


def _manifest(tmp_path: Path, entries: list[tuple[str, str]]) -> Manifest:
    repos = "".join(f"  - name: {name}\n" + GIT + f"    pythonpath: {pp}\n" for name, pp in entries)
    (tmp_path / "m.yaml").write_text("name: t\nrepos:\n" + repos)
    return load_manifest(tmp_path / "m.yaml")


@pytest.mark.parametrize("shell", ["bash", "sh", "dash", "zsh"])
def test_set_env_is_idempotent_in_posix_shells(tmp_path: Path, shell: str) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    ws = tmp_path / "my ws"
    ws.mkdir()
    manifest = _manifest(tmp_path, [("Megatron-LM", '["."]'), ("transformers", '[src, "."]')])
    env_path = envfile.write(ws, manifest, Path("/opt/venv/bin"))
    script = (f'set -u; . "{env_path}"; . "{env_path}"; printf "%s\\n" "$PYTHONPATH" "$PATH" "$MS_CONVERT_WORKSPACE"; '
              'command -v __ms_ws_prepend >/dev/null && echo LEFTOVER || true')
    base = {"PATH": "/usr/bin:/bin:/opt/venv/bin"}
    out = subprocess.run([shell, "-c", script], env=base, capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == f"{ws}/Megatron-LM:{ws}/transformers/src:{ws}/transformers"  # no trailing ':' (= cwd)
    assert out[1] == "/opt/venv/bin:/usr/bin:/bin"
    assert out[2] == str(ws) and "LEFTOVER" not in out
    # An existing PYTHONPATH keeps its own entries, after the workspace's, without duplicates.
    again = subprocess.run([shell, "-c", script], env={**base, "PYTHONPATH": f"/x::{ws}/Megatron-LM:/y"},
                           capture_output=True, text=True, check=True).stdout.splitlines()
    assert again[0] == f"{ws}/Megatron-LM:{ws}/transformers/src:{ws}/transformers:/x:/y"


def test_engine_temp_files_are_excluded() -> None:
    from tools.convert.walk import TMP_SUFFIX

    assert any(fnmatch.fnmatch(f".layers.py.k2j3{TMP_SUFFIX}", pattern) for pattern in EXCLUDES)


def test_abbreviated_pin_must_match_exactly_one_commit(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q")
    stream = "".join(
        f"commit refs/heads/main\ncommitter T <t@t> {1_000_000 + i} +0000\ndata {len(str(i))}\n{i}\n\n" for i in range(1200)
    )
    subprocess.run(["git", "fast-import", "--quiet"], cwd=repo, input=stream, text=True, check=True)
    commits = git(repo, "rev-list", "main").splitlines()
    seen: dict[str, str] = {}
    prefix = next(c[:4] for c in commits if seen.setdefault(c[:4], c) != c)
    with pytest.raises(RepoError, match=f"the abbreviated pin {prefix} matches 2 commits"):
        resolve_abbrev(repo, prefix, "vllm-ascend")
    assert resolve_abbrev(repo, commits[0][:12], "vllm-ascend") == commits[0]
    absent = next(p for p in ("0000000", "fffffff", "1234567") if not any(c.startswith(p) for c in commits))
    with pytest.raises(RepoError, match=f"has no commit starting with {absent}"):
        resolve_abbrev(repo, absent, "vllm-ascend")


def test_missing_python_dependencies_are_set_up_by_the_project_script(world: World) -> None:
    """No python with the dependencies on PATH: the script gets one from tools/setup_env.sh."""
    manifest = world.write_manifest([world.six()])
    git_dir = str(Path(shutil.which("git")).parent)
    env = world.env(PATH=f"/usr/bin:/bin:{git_dir}")
    probe = subprocess.run(["bash", "-c", "command -v python3 && python3 -c 'import yaml, git, libcst, mindspore'"],
                           env=env, capture_output=True, text=True)
    if probe.returncode == 0:
        pytest.skip("the system python3 already has the dependencies")
    result = world.source(world.std_args(manifest), env=env, post='command -v python')
    assert result.alive == 0, result
    venv_python = Path(os.environ.get("MS_CONVERT_VENV", REPO_ROOT / ".venv")) / "bin" / "python"
    log = next((world.ws / ".ms-workspace" / "logs").glob("*.log")).read_text()
    assert f"python {venv_python}" in log
    assert result.stdout.strip().splitlines()[-1] == str(venv_python)  # set_env.sh put it first on PATH


@pytest.mark.parametrize("shell", ["bash", "sh", "dash", "zsh"])
@pytest.mark.parametrize("name", [b"ws\ntouch pwned\n#", b"ws'$(touch pwned)'\n`touch pwned`#", b"ws-\xff-latin1"],
                         ids=["newline", "quotes", "not-utf8"])
def test_set_env_holds_any_workspace_path_as_data(tmp_path: Path, shell: str, name: bytes) -> None:
    """Every value in set_env.sh, comments included, stays data: a newline in the workspace path
    used to end a comment line and run the rest of it when the file was sourced."""
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    ws = tmp_path / os.fsdecode(name)
    ws.mkdir()
    manifest = _manifest(tmp_path, [("Megatron-LM", '["."]')])
    env_path = envfile.write(ws, manifest, ws / "venv" / "bin")
    script = '. "$ENV_FILE" && printf "%s\\0" "$PYTHONPATH" "$PATH" "$MS_CONVERT_WORKSPACE"'
    proc = subprocess.run([shell, "-c", script], cwd=tmp_path, capture_output=True, check=True,
                          env={"PATH": "/usr/bin:/bin", "ENV_FILE": os.fsencode(env_path)})
    assert not (tmp_path / "pwned").exists() and not (ws / "pwned").exists(), proc.stderr
    assert proc.stdout.split(b"\0")[:3] == [os.fsencode(ws / "Megatron-LM"), os.fsencode(ws / "venv" / "bin") + b":/usr/bin:/bin",
                                             os.fsencode(ws)]
    assert proc.stderr == b""


@pytest.mark.parametrize("name, message", [
    (b"a:b", "contains ':', which separates PYTHONPATH entries"),
    (b"ws-\xff", "is not valid UTF-8, which git's messages about it must be"),  # gitpython failed on git's output
])
def test_a_workspace_path_python_or_git_cannot_hold_is_refused_before_anything_is_written(
        tmp_path: Path, name: bytes, message: str) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text("name: t\nrepos:\n  - name: a\n" + GIT)
    ws = os.fsencode(tmp_path) + b"/" + name
    proc = subprocess.run([sys.executable, "-m", "tools.workspace", "--manifest", str(manifest), "--workspace", ws],
                          cwd=REPO_ROOT, capture_output=True, text=True, errors="backslashreplace",
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert proc.returncode == 2 and proc.stdout == ""
    shown = ws.decode("utf-8", "backslashreplace")
    assert f"error: the workspace path {shown} {message}" in " ".join(proc.stderr.split())
    assert not os.path.exists(ws)


@pytest.mark.parametrize("args", [["--help"], ["--status"]])
def test_the_engine_is_imported_only_to_convert(tmp_path: Path, args: list[str]) -> None:
    """--help and --status (and any run without rules) never load the conversion engine (libcst,
    the rule model): the driver imports it only when a rule set is loaded or a conversion runs."""
    manifest = tmp_path / "m.yaml"
    manifest.write_text("name: t\nrepos:\n  - name: a\n" + GIT)
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "tools.workspace", "--manifest", str(manifest),
                           "--workspace", str(tmp_path / "ws"), *args],
                          cwd=REPO_ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert proc.returncode == 0, proc.stderr
    imported = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "tools.workspace.cli" in imported
    assert not {"tools.convert.api", "tools.convert.runner", "libcst"} & imported
