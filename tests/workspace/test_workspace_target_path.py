"""A workspace converts its repositories against its own (patched) target, not the installed one.

The target here is a tiny package in a git repository without rules (as mindtorch is in the
shipped manifests), patched by the workspace; the converted repository's rules retarget `acl` to
it. Nothing is downloaded, and MindSpore is not imported.
"""
from __future__ import annotations

import json
from pathlib import Path

from conftest import World, git, make_patch, make_upstream

TARGET_INIT = "def f():\n    return 1\n"
RULES = "version: 1\nimports:\n  - {id: PRB001, module: acl, target: probe_target_xyz}\n"


def test_conversion_checks_apis_against_the_workspaces_patched_target(world: World) -> None:
    probe, consumer = world.upstream / "probe", world.upstream / "consumer"
    world.pins["probe"], _ = make_upstream(probe, {"probe_target_xyz/__init__.py": TARGET_INIT}, "v1")
    world.pins["consumer"], _ = make_upstream(consumer, {
        "consumer/__init__.py": "import acl\n\nSOC = acl.get_soc_name()\nacl.missing_api()\n"}, "v1")
    for repo in (probe, consumer):
        git(world.root, "clone", "-q", "--bare", str(repo), str(world.mirror / f"{repo.name}.git"))
    patch = world.add_patch("probe", "0001-soc.patch", make_patch(probe, world.pins["probe"], {
        "probe_target_xyz/__init__.py": (TARGET_INIT, TARGET_INIT + "\n\ndef get_soc_name():\n    return ''\n")}))
    rules = world.manifest_dir / "probe_rules.yaml"
    rules.write_text(RULES)
    manifest = world.write_manifest([
        world.git_repo("probe", patches=str(patch.parent)),  # the target: never converted, listed first
        {**world.git_repo("consumer"), "rules": [str(rules)]},
    ])

    result = world.source(world.std_args(manifest))
    assert result.alive == 0, result
    summary = json.loads((world.ws / ".ms-workspace" / "reports" / "consumer" / "summary.json").read_text())
    target = summary["targets"]["probe_target_xyz"]
    assert target["available"] is True
    assert Path(target["path"]) == world.ws / "probe" / "probe_target_xyz" / "__init__.py"
    # get_soc_name exists only in the patched target; an unpatched or an absent one would differ.
    assert summary["apis"]["acl.get_soc_name"]["status"] == "retargeted"
    assert summary["apis"]["acl.missing_api"]["status"] == "unsupported"
    assert world.state()["repos"]["consumer"]["stages"]["converted"]["unsupported"] == 1
    assert "import probe_target_xyz as acl" in (world.ws / "consumer" / "consumer" / "__init__.py").read_text()
