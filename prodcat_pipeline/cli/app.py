"""The `prodcat` Typer app: errors become one line, help is plain text grouped by topic (80 columns),
and every `--long_option` is also accepted as `--long-option`."""

from __future__ import annotations

import errno

import typer
from typer.core import TyperCommand, TyperGroup

from ..errors import ProdcatError

INTERRUPT_HINTS = {
    "embed": "finished shards are kept; run the same command to encode the rest",
    "train": "finished epochs are kept; run the same command with --resume to continue",
    "run": "the cache is kept; run the same command with --overwrite to continue (heads are retrained)",
    "predict": "nothing was written to --output (a file appears only when complete)",
    "knn-eval": "nothing was written; run the same command with --overwrite to start again",
    "tune": "finished trials are kept in --out; run the same command with --overwrite to start again",
    "eval": "nothing was written (files appear only when complete)",
    "export": "nothing was written to --out (the folder appears only when complete)",
    "ensemble": "nothing was written to --out (the folder appears only when complete)",
}


class Group(TyperGroup):
    """Turns library errors into one `Error: ...` line and exit 1 — the one place that does."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ProdcatError as exc:
            _fail(str(exc))
        except BrokenPipeError:  # `prodcat predict ... | head`: main() exits quietly
            raise
        except OSError as exc:  # permissions, a file where a folder should be, a full or read-only disk ...
            _fail(os_error_message(exc))
        except MemoryError as exc:
            _fail(memory_message(exc))
        except RuntimeError as exc:  # torch's out-of-memory errors are RuntimeErrors, not MemoryErrors
            if type(exc).__name__ != "OutOfMemoryError":
                raise
            _fail(memory_message(exc))
        except KeyboardInterrupt:
            hint = INTERRUPT_HINTS.get(ctx.invoked_subcommand or "", "everything written so far is kept")
            typer.echo(f"Interrupted: {hint}.", err=True)
            raise typer.Exit(130) from None


def _fail(message: str):
    """One `Error: ...` line on stderr (a message is never split over lines), exit 1."""
    typer.echo("Error: " + " ".join(message.split("\n")).strip(), err=True)
    raise typer.Exit(1) from None


OS_HINTS = {
    errno.EACCES: "check its permissions or choose another path",
    errno.EPERM: "check its permissions or choose another path",
    errno.EROFS: "the file system is read-only: choose another path",
    errno.ENOSPC: "the disk is full: free some space or choose another folder",
    errno.EDQUOT: "the disk quota is used up: free some space or choose another folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "a folder is where a file should be",
}


def os_error_message(exc: OSError) -> str:
    """`<what failed>: <path>` (both paths of a rename), plus what to do for the common cases."""
    what = exc.strerror or (str(exc).splitlines() or [""])[0] or type(exc).__name__
    paths = [str(p) for p in (exc.filename, exc.filename2) if p not in (None, "")]
    hint = OS_HINTS.get(exc.errno)
    return what + (f": {' -> '.join(paths)}" if paths else "") + (f" ({hint})" if hint else "")


def memory_message(exc: BaseException) -> str:
    first = (str(exc).splitlines() or [""])[0].strip()
    return (f"out of memory{f' ({first[:200]})' if first else ''}: try a smaller --batch-size or --batch-rows, "
            "or fewer rows at a time")  # fmt: skip


class Command(TyperCommand):
    """Plain click help (wraps at 80 columns) with options grouped under headings; `--a_b` means `--a-b`."""

    def parse_args(self, ctx, args):
        names = {n for p in self.params for n in (*getattr(p, "opts", ()), *getattr(p, "secondary_opts", ()))}
        fixed, literal = [], False
        for arg in args:
            if arg == "--":
                literal = True
            if not literal and arg.startswith("--") and "_" in arg:
                name, eq, value = arg.partition("=")
                if name not in names and name.replace("_", "-") in names:
                    arg = name.replace("_", "-") + eq + value
            fixed.append(arg)
        return super().parse_args(ctx, fixed)

    def format_options(self, ctx, formatter):
        groups: dict[str, list] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                groups.setdefault(getattr(param, "rich_help_panel", None) or "Options", []).append(record)
        for title, records in groups.items():
            with formatter.section(title):
                formatter.write_dl(records)


app = typer.Typer(
    cls=Group,
    help="prodcat: encode product titles once into an embedding cache, then train and compare heads fast.",
    no_args_is_help=True,
    add_completion=True,  # prodcat --install-completion (bash, zsh, fish, PowerShell)
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 80},
)


def _print_version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", is_eager=True, callback=_print_version
    ),  # fmt: skip
):
    """prodcat: encode product titles once into an embedding cache, then train and compare heads fast."""


def command(name: str):
    """Register a command with prodcat's Command class."""
    return app.command(name, cls=Command, context_settings={"help_option_names": ["-h", "--help"]})
