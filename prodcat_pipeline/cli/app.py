"""The `prodcat` Typer app: errors become one line, help is plain text grouped by topic (80 columns),
and every `--long_option` is also accepted as `--long-option`."""

from __future__ import annotations

import typer
from typer.core import TyperCommand, TyperGroup

from ..errors import ProdcatError

INTERRUPT_HINTS = {
    "embed": "finished shards are kept; run the same command to encode the rest",
    "train": "finished epochs are kept; run the same command with --resume to continue",
    "run": "the cache is kept; run the same command with --overwrite to continue (heads are retrained)",
    "predict": "nothing was written to --output (a file appears only when complete)",
}


class Group(TyperGroup):
    """Turns library errors into one `Error: ...` line and exit 1 — the one place that does."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ProdcatError as exc:
            typer.echo(f"Error: {exc}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            hint = INTERRUPT_HINTS.get(ctx.invoked_subcommand or "", "everything written so far is kept")
            typer.echo(f"Interrupted: {hint}.", err=True)
            raise typer.Exit(130) from None


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
