"""The `prodcat` command line: a thin layer that parses options, calls the library and renders results."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from .errors import ProdcatError


class _Group(TyperGroup):
    """Turns library errors into one `Error: ...` line and exit 1 — the one place that does."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ProdcatError as exc:
            typer.echo(f"Error: {exc}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.echo("Interrupted: everything written so far is kept; run the same command to resume.", err=True)
            raise typer.Exit(130) from None


app = typer.Typer(
    cls=_Group,
    help="prodcat: encode product titles once into an embedding cache, then train and compare heads fast.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# ---------------------------------------------------------------- options shared by several commands
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="pipeline.yaml to read (flags override it).")]
DataOpt = Annotated[
    str | None,
    typer.Option(
        "--data",
        "-d",
        help="Dataset: a save_to_disk DatasetDict folder, a Parquet/CSV/JSONL file, or a folder of split files.",
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="Encoder: use-multilingual (default), minilm, or any sentence-transformers id/path.",
    ),
]
CacheDirOpt = Annotated[
    str | None,
    typer.Option("--cache-dir", "--cache_dir", help="Cache root (default $PRODCAT_CACHE or ~/.cache/prodcat)."),
]
DeviceOpt = Annotated[str | None, typer.Option("--device", help="cpu, cuda, cuda:1 ... (default: CUDA when present).")]
TextColOpt = Annotated[
    str | None,
    typer.Option("--text-column", "--text_column", help="Column holding the title (default text)."),
]
LabelColOpt = Annotated[
    str | None,
    typer.Option("--label-column", "--label_column", help="Column holding the label (default label)."),
]
LangColOpt = Annotated[
    str | None,
    typer.Option("--language-column", "--language_column", help="Language column [language]; detected if absent."),
]
ClusterColOpt = Annotated[
    str | None,
    typer.Option(
        "--cluster-column",
        "--cluster_column",
        help="Product-cluster column for grouped splits (default cluster).",
    ),
]
DropEmptyOpt = Annotated[
    bool | None,
    typer.Option("--drop-empty/--no-drop-empty", help="Drop rows with empty titles instead of failing."),
]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens step by step.")]


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        force=True,
    )


def data_overrides(data, text_column, label_column, language_column, cluster_column, drop_empty) -> dict:
    return {
        "data.path": data,
        "data.text_column": text_column,
        "data.label_column": label_column,
        "data.language_column": language_column,
        "data.cluster_column": cluster_column,
        "data.drop_empty": drop_empty,
    }


def resolve_config(config: Path | None, overrides: dict):
    from .config import load_config

    if config is None and Path("pipeline.yaml").exists() and overrides.get("data.path") is None:
        config = Path("pipeline.yaml")
    return load_config(config, overrides)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.", is_eager=True)] = False,
):
    """prodcat: encode product titles once into an embedding cache, then train and compare heads fast."""
    if version:
        from . import __version__

        typer.echo(__version__)
        raise typer.Exit()


@app.command()
def embed(
    data: DataOpt = None,
    model: ModelOpt = None,
    cache_dir: CacheDirOpt = None,
    batch_size: Annotated[
        int | None,
        typer.Option("--batch-size", "--batch_size", help="Titles per encode batch (default 128)."),
    ] = None,
    shard_size: Annotated[
        int | None,
        typer.Option("--shard-size", "--shard_size", help="Distinct titles per cache shard (default 65536)."),
    ] = None,
    dtype: Annotated[
        str | None, typer.Option("--dtype", help="Stored vector type: float16 (default) or float32.")
    ] = None,
    device: DeviceOpt = None,
    text_column: TextColOpt = None,
    label_column: LabelColOpt = None,
    language_column: LangColOpt = None,
    cluster_column: ClusterColOpt = None,
    drop_empty: DropEmptyOpt = None,
    config: ConfigOpt = None,
    verbose: VerboseOpt = False,
):
    """Encode every distinct title once into the sharded embedding cache (resumable, incremental).

    Example: prodcat embed --data data/lspc_sample --model use-multilingual
    """
    _setup_logging(verbose)
    from .embedder import embed as run_embed

    overrides = data_overrides(data, text_column, label_column, language_column, cluster_column, drop_empty)
    overrides |= {
        "encoder.model": model,
        "encoder.batch_size": batch_size,
        "encoder.device": device,
        "cache.dir": cache_dir,
        "cache.shard_size": shard_size,
        "cache.dtype": dtype,
    }
    cfg = resolve_config(config, overrides)
    result = run_embed(cfg)
    notes = []
    if result.split_made:
        notes.append("no split in the data: made a grouped 85/5/10 split by cluster")
    if result.language_detected:
        notes.append("no language column: languages detected with py3langid")
    typer.echo(
        f"{result.rows:,} rows, {result.unique_texts:,} distinct titles: encoded {result.encoded:,}, "
        f"reused {result.reused:,} from the cache"
        + (f" ({result.titles_per_second:,.0f} titles/s)" if result.encoded else "")
    )
    for note in notes:
        typer.echo(f"note: {note}")
    typer.echo(f"cache: {result.cache_dir}")


def main() -> None:  # console-script entry point
    try:
        app()
    except BrokenPipeError:  # e.g. `prodcat predict ... | head`
        sys.exit(0)


if __name__ == "__main__":
    main()
