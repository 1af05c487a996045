"""``python -m tools.workspace <llm|mm|rl> [options]``: the same as ``python -m tools.convert workspace``."""
import sys

from tools.workspace.cli import main

sys.exit(main(sys.argv[1:]))
