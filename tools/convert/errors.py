"""Errors the engine raises on bad *input* (rule files, arguments), as opposed to per-file failures."""


class RuleError(Exception):
    """An invalid rule file: the message names the file, the line and the field."""


class UsageError(Exception):
    """A command line that cannot be carried out (for example an output inside the input)."""
