"""The `prodcat` command line: a thin layer that parses options, calls the library and renders results."""

from __future__ import annotations

import sys

from . import commands, tuning  # noqa: F401 - registers the commands on the app
from .app import app

__all__ = ["app", "main"]


def main() -> None:  # console-script entry point
    try:
        app()
    except BrokenPipeError:  # e.g. `prodcat predict ... | head`
        sys.exit(0)
