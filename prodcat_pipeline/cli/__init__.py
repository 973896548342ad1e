"""The `prodcat` command line: a thin layer that parses options, calls the library and renders results."""

from __future__ import annotations

import sys

from . import cache_commands, commands, production, tuning  # noqa: F401 - registers the commands on the app
from .app import app

__all__ = ["app", "main"]


def main() -> None:  # console-script entry point
    from ..provenance import set_command

    set_command(sys.argv)
    try:
        app()
    except BrokenPipeError:  # e.g. `prodcat predict ... | head`
        sys.exit(0)
