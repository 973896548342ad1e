"""The `prodcat` command line: a thin layer that parses options, calls the library and renders results."""

from __future__ import annotations

import signal
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
    except SystemExit as exc:  # how every command ends: its exit status is set
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C during interpreter teardown changes nothing
        if exc.code == 130:  # interrupted and reported: the unwinding already saved or removed what it had to;
            _exit_now(130)  # skip the ~2 s teardown, in which 3 of 24 soak Ctrl-Cs still ended as SIGINT, not 130
        raise


def _exit_now(code: int) -> None:
    import logging
    import os

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
