"""The command line that started this process, recorded in what it writes (checkpoints, metrics, model cards),
so a model says how it was made. Library calls record None: they were not started by a command."""

from __future__ import annotations

import shlex

_COMMAND: str | None = None


def set_command(argv: list[str]) -> None:
    """Called once by the `prodcat` entry point with sys.argv."""
    global _COMMAND
    _COMMAND = shlex.join(["prodcat", *argv[1:]])


def command_line() -> str | None:
    return _COMMAND
