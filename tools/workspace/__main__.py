"""``python -m tools.workspace <llm|mm|rl> [options]``: the driver behind ``auto_convert_*.sh``."""
import sys

from tools.workspace.cli import main

sys.exit(main(sys.argv[1:]))
