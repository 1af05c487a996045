"""A workspace converts its repositories against its own (patched) target, not the installed one.

The target here is a tiny package in a git repository without rules (as mindtorch is in the
shipped manifests), patched by the workspace; the converted repository's rules retarget `acl` to
it. Nothing is downloaded, and MindSpore is not imported.
"""
from __future__ import annotations

import json
from pathlib import Path

from conftest import World, commit_files, git, make_patch, make_upstream

TARGET_INIT = "def f():\n    return 1\n"
SOC = "\n\ndef get_soc_name():\n    return ''\n"
RULES = "version: 1\nimports:\n  - {id: PRB001, module: acl, target: probe_target_xyz}\n"


def _probe_workspace(world: World) -> Path:
    """Upstreams `probe` (the target, patched by 0001 to add get_soc_name) and `consumer` (retargeted
    to it by RULES), their mirror and the manifest: probe first, never converted."""
    probe, consumer = world.upstream / "probe", world.upstream / "consumer"
    world.pins["probe"], _ = make_upstream(probe, {"probe_target_xyz/__init__.py": TARGET_INIT}, "v1")
    world.pins["consumer"], _ = make_upstream(consumer, {
        "consumer/__init__.py": "import acl\n\nSOC = acl.get_soc_name()\nacl.missing_api()\n"}, "v1")
    for repo in (probe, consumer):
        git(world.root, "clone", "-q", "--bare", str(repo), str(world.mirror / f"{repo.name}.git"))
    patch = world.add_patch("probe", "0001-soc.patch", make_patch(probe, world.pins["probe"], {
        "probe_target_xyz/__init__.py": (TARGET_INIT, TARGET_INIT + SOC)}))
    rules = world.manifest_dir / "probe_rules.yaml"
    rules.write_text(RULES)
    return world.write_manifest([
        world.git_repo("probe", patches=str(patch.parent)),  # the target: never converted, listed first
        {**world.git_repo("consumer"), "rules": [str(rules)]},
    ])


def _summary(world: World) -> dict:
    return json.loads((world.ws / ".ms-workspace" / "reports" / "consumer" / "summary.json").read_text())


def test_conversion_checks_apis_against_the_workspaces_patched_target(world: World) -> None:
    manifest = _probe_workspace(world)
    result = world.source(world.std_args(manifest))
    assert result.alive == 0, result
    summary = _summary(world)
    target = summary["targets"]["probe_target_xyz"]
    assert target["available"] is True
    assert Path(target["path"]) == world.ws / "probe" / "probe_target_xyz" / "__init__.py"
    # get_soc_name exists only in the patched target; an unpatched or an absent one would differ.
    assert summary["apis"]["acl.get_soc_name"]["status"] == "retargeted"
    assert summary["apis"]["acl.missing_api"]["status"] == "unsupported"
    assert world.state()["repos"]["consumer"]["stages"]["converted"]["unsupported"] == 1
    assert "import probe_target_xyz as acl" in (world.ws / "consumer" / "consumer" / "__init__.py").read_text()


def test_a_changed_target_patch_series_converts_the_dependent_repository_again(world: World) -> None:
    manifest = _probe_workspace(world)
    assert world.source(world.std_args(manifest)).alive == 0
    first = world.state()["repos"]["consumer"]["stages"]["converted"]
    assert first["targets"] == [{"name": "probe", "source": world.pins["probe"], "patches": first["targets"][0]["patches"]}]
    assert _summary(world)["apis"]["acl.missing_api"]["status"] == "unsupported"

    again = world.source(world.std_args(manifest))  # nothing changed: nothing converted
    assert again.alive == 0, again
    assert again.stderr.count("up to date") >= 2 and "converted again" not in again.stderr, again
    assert world.state()["repos"]["consumer"]["stages"]["converted"] == first

    # A second target patch, made on top of the first, adds the API the consumer lacked.
    probe = world.upstream / "probe"
    git(probe, "checkout", "-q", "-b", "with-0001", world.pins["probe"])
    patched = commit_files(probe, {"probe_target_xyz/__init__.py": TARGET_INIT + SOC}, "0001 applied")
    world.add_patch("probe", "0002-missing.patch", make_patch(probe, patched, {
        "probe_target_xyz/__init__.py": (SOC, SOC + "\n\ndef missing_api():\n    return None\n")}))
    result = world.source(world.std_args(manifest))
    assert result.alive == 0, result
    assert "converted again: target probe changed (patches)" in result.stderr, result
    converted = world.state()["repos"]["consumer"]["stages"]["converted"]
    assert converted["targets"] != first["targets"] and converted["at"] != first["at"]
    assert converted["unsupported"] == 0
    summary = _summary(world)
    assert summary["apis"]["acl.missing_api"]["status"] == "retargeted"
    assert summary["apis"]["acl.get_soc_name"]["status"] == "retargeted"

    last = world.source(world.std_args(manifest))
    assert last.alive == 0 and "converted again" not in last.stderr, last
    assert world.state()["repos"]["consumer"]["stages"]["converted"] == converted
