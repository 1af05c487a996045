"""Workspace driver: pinned repositories, patches, conversion and PYTHONPATH in one command.

``source auto_convert_llm.sh`` (or ``_mm``/``_rl``) runs :func:`tools.workspace.cli.main`, which
reads a manifest from ``workspaces/``, brings every repository to its pin, applies the patches,
converts with the engine from :mod:`tools.convert` and writes ``<workspace>/set_env.sh``.
Each stage is a git commit in the repository, and a state file records what is done, so a run
can be repeated or interrupted at any point. See ``docs/workspace.md``.
"""
