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
    typer.Option(
        "--language-column", "--language_column", help="Language column (default language); detected if absent."
    ),
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


def _preload_in_background(*modules: str) -> None:
    import importlib.util
    import threading

    def load():
        for module in modules:
            try:
                if importlib.util.find_spec(module.split(".")[0]) is not None:
                    __import__(module)
            except Exception:  # only a head start: the real import reports any problem
                pass

    threading.Thread(target=load, daemon=True).start()


def _setup_logging(verbose: bool, train_progress: bool = False) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        force=True,
    )
    if train_progress:  # one line per epoch even without --verbose
        logging.getLogger("prodcat_pipeline.trainer").setLevel(logging.INFO)


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


def _print_version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", is_eager=True, callback=_print_version)
    ] = False,
):
    """prodcat: encode product titles once into an embedding cache, then train and compare heads fast."""


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
    workers: Annotated[
        int | None, typer.Option("--workers", help="Encoding processes (default: one per core for use-multilingual).")
    ] = None,
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
        "encoder.workers": workers,
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


# ---------------------------------------------------------------- train: one flag per TrainConfig field
def _train_field_parameters() -> list:
    """`--field_name` and `--field-name` options generated from TrainConfig, so flags and config never drift."""
    import inspect
    import typing

    from .config import TrainConfig

    params = []
    for name, field in TrainConfig.model_fields.items():
        dash, under = "--" + name.replace("_", "-"), "--" + name
        names = [dash] if dash == under else [dash, under]
        ann = field.annotation
        origin = typing.get_origin(ann)
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        if ann is bool:
            py_type = bool | None
        elif origin is typing.Literal:
            py_type = str | None
        elif ann in (int, float, str):
            py_type = ann | None
        elif args and args[0] in (int, float, str):
            py_type = args[0] | None
        else:  # list[str]: comma-separated on the command line
            py_type = str | None
        default = field.default
        help_text = f"{field.description} (default: {default})" if default not in (None, False) else field.description
        option = typer.Option(*names, help=help_text, rich_help_panel="Training")
        params.append(
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[py_type, option])
        )
    return params


def _common_train_parameters() -> list:
    import inspect

    def p(name, ann):
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ann)

    return [
        p("data", DataOpt),
        p("model", ModelOpt),
        p("cache_dir", CacheDirOpt),
        p(
            "out",
            Annotated[str | None, typer.Option("--out", "-o", help="Run folder for checkpoints and metrics.json.")],
        ),
        p(
            "resume",
            Annotated[
                bool | None, typer.Option("--resume", help="Continue the run in --out from its last checkpoint.")
            ],
        ),
        p("text_column", TextColOpt),
        p("label_column", LabelColOpt),
        p("language_column", LangColOpt),
        p("cluster_column", ClusterColOpt),
        p("drop_empty", DropEmptyOpt),
        p("config", ConfigOpt),
        p("verbose", VerboseOpt),
    ]


def _train_command(**kw):
    """Train a head on cached vectors (encodes the dataset first only if no cache exists).

    Example: prodcat train --head v3 --data data/lspc_sample --out runs/v3 --epochs 10 --batch_size 256 --amp
    """
    # pyarrow's first to_numpy imports pandas (~0.5 s) and building a torch optimizer imports torch._dynamo
    # (~1 s): start both now so they overlap with torch's own import and the cache loading
    _preload_in_background("pandas", "torch._dynamo")
    from .config import TrainConfig
    from .trainer import train as run_train

    _setup_logging(bool(kw.pop("verbose")), train_progress=True)
    overrides = data_overrides(
        kw.pop("data"),
        kw.pop("text_column"),
        kw.pop("label_column"),
        kw.pop("language_column"),
        kw.pop("cluster_column"),
        kw.pop("drop_empty"),
    )
    overrides |= {"encoder.model": kw.pop("model"), "cache.dir": kw.pop("cache_dir")}
    out, resume, config = kw.pop("out"), bool(kw.pop("resume")), kw.pop("config")
    for name, value in kw.items():
        if name == "languages" and value is not None:
            value = [s.strip() for s in value.split(",") if s.strip()]
        if name in TrainConfig.model_fields:
            overrides[f"train.{name}"] = value
    cfg = resolve_config(config, overrides)
    result = run_train(cfg, out=out, resume=resume)
    if result.cache_built:
        typer.echo("encoded the dataset into the cache first (later runs reuse it)")
    else:
        typer.echo("reused the embedding cache: no titles re-encoded")
    _print_metrics_table(result.metrics, cfg.train.lang_top_k)
    typer.echo(
        f"run: {result.out_dir} (best epoch {result.best_epoch}/{result.epochs_run}, {result.train_seconds:.1f}s)"
    )


def _register_train() -> None:
    import inspect

    _train_command.__signature__ = inspect.Signature(_common_train_parameters() + _train_field_parameters())
    app.command("train", context_settings={"help_option_names": ["-h", "--help"]})(_train_command)


def _print_metrics_table(metrics: dict, lang_top_k: int = 10) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{metrics['head']} on {metrics.get('encoder')}")
    table.add_column("split")
    for col in ("macro-F1", "micro-F1", "accuracy", "rows"):
        table.add_column(col, justify="right")
    for split in ("validation", "test"):
        m = metrics.get(split)
        if not m or m.get("macro_f1") is None:
            continue
        table.add_row(
            split, f"{m['macro_f1']:.4f}", f"{m['micro_f1']:.4f}", f"{m['accuracy']:.4f}", f"{m['support']:,}"
        )
        for code, lm in list(m.get("per_language", {}).items())[:lang_top_k]:
            table.add_row(
                f"  {split}/{code}", f"{lm['macro_f1']:.4f}", f"{lm['micro_f1']:.4f}", "", f"{lm['support']:,}"
            )
    Console().print(table)


@app.command("knn-eval")
def knn_eval_command(
    data: DataOpt = None,
    model: ModelOpt = None,
    cache_dir: CacheDirOpt = None,
    out: Annotated[str | None, typer.Option("--out", "-o", help="Folder for metrics.json.")] = None,
    k: Annotated[int | None, typer.Option("--k", help="Neighbours that vote (default 10).")] = None,
    index: Annotated[str | None, typer.Option("--index", help="flat (exact, default), ivf or hnsw.")] = None,
    weighting: Annotated[str | None, typer.Option("--weighting", help="distance (default) or uniform votes.")] = None,
    nprobe: Annotated[int | None, typer.Option("--nprobe", help="IVF cells searched (default 16).")] = None,
    ef_search: Annotated[
        int | None, typer.Option("--ef-search", "--ef_search", help="HNSW search depth (default 128).")
    ] = None,
    text_column: TextColOpt = None,
    label_column: LabelColOpt = None,
    language_column: LangColOpt = None,
    cluster_column: ClusterColOpt = None,
    config: ConfigOpt = None,
    verbose: VerboseOpt = False,
):
    """k-nearest-neighbour baseline (FAISS) on the same cache: train split as the index.

    Example: prodcat knn-eval --data data/lspc_sample --k 10 --index flat
    """
    _setup_logging(verbose)
    from .knn import knn_eval

    overrides = data_overrides(data, text_column, label_column, language_column, cluster_column, None)
    overrides |= {
        "encoder.model": model,
        "cache.dir": cache_dir,
        "knn.k": k,
        "knn.index": index,
        "knn.weighting": weighting,
        "knn.nprobe": nprobe,
        "knn.ef_search": ef_search,
    }
    cfg = resolve_config(config, overrides)
    result = knn_eval(cfg, out=out)
    _print_metrics_table(result.metrics, cfg.train.lang_top_k)
    typer.echo(
        f"index build {result.build_seconds:.2f}s, search {result.search_seconds:.2f}s; metrics: {result.out_dir}"
    )


@app.command()
def predict(
    run: Annotated[str, typer.Option("--run", "-r", help="Run folder written by `prodcat train` (uses best.pt).")],
    input: Annotated[
        str, typer.Option("--input", "-i", help="Titles: '-' for stdin (one per line), .txt, .csv, .parquet or .jsonl.")
    ] = "-",
    output: Annotated[str, typer.Option("--output", help="Where to write predictions ('-' = stdout).")] = "-",
    format: Annotated[str, typer.Option("--format", help="jsonl (default) or csv.")] = "jsonl",
    top_k: Annotated[int, typer.Option("--top-k", "--top_k", help="Labels listed per title.")] = 3,
    text_column: Annotated[
        str, typer.Option("--text-column", "--text_column", help="Text column of a CSV/Parquet/JSONL input.")
    ] = "text",
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", "--batch_size", help="Titles per encode batch.")
    ] = None,
    device: DeviceOpt = None,
    verbose: VerboseOpt = False,
):
    """Classify new titles with a trained run: its encoder, its best head; JSONL or CSV out.

    Example: echo "Damen Laufschuhe schwarz" | prodcat predict --run runs/pipeline/v2
    """
    _setup_logging(verbose)
    from .predictor import Predictor, read_titles, write_predictions

    if format not in ("jsonl", "csv"):
        raise ProdcatError(f"unknown --format '{format}': jsonl or csv")
    titles = read_titles(input, text_column)
    rows = Predictor(run, device=device, batch_size=batch_size).predict(titles, top_k=top_k)
    if output == "-":
        write_predictions(rows, sys.stdout, format)
    else:
        from .atomic import atomic_path

        with atomic_path(output) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
            write_predictions(rows, fh, format)
        typer.echo(f"{len(rows):,} predictions written to {output}", err=True)


@app.command("run")
def run_command(
    config: ConfigOpt = None,
    data: DataOpt = None,
    model: ModelOpt = None,
    cache_dir: CacheDirOpt = None,
    out: Annotated[
        str | None, typer.Option("--out", "-o", help="Folder for one run per head plus the comparison.")
    ] = None,
    heads: Annotated[
        str | None, typer.Option("--heads", help="Comma-separated heads to train (default: linear,v2,v3).")
    ] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Epochs per head.")] = None,
    knn: Annotated[bool | None, typer.Option("--knn/--no-knn", help="Also run the k-NN baseline.")] = None,
    verbose: VerboseOpt = False,
):
    """The whole pipeline from pipeline.yaml: embed, train each head, k-NN, one comparison table and plot.

    Example: prodcat run --config pipeline.yaml
    """
    _setup_logging(verbose)
    from .pipeline import run

    overrides = {
        "data.path": data,
        "encoder.model": model,
        "cache.dir": cache_dir,
        "out": out,
        "heads": [h.strip() for h in heads.split(",") if h.strip()] if heads else None,
        "train.epochs": epochs,
        "run_knn": knn,
    }
    cfg = resolve_config(config, overrides)
    result = run(cfg)
    typer.echo(
        f"embed: {result.encoded:,} titles encoded ({result.embed_seconds:.1f}s; cached titles are never re-encoded)"
    )
    _print_comparison(result.rows)
    typer.echo(f"results: {result.out_dir}/comparison.md, comparison.png, <head>/metrics.json")


def _cell(key: str, value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.2f}" if key.endswith("seconds") else f"{value:.4f}"
    return str(value)


def _print_comparison(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    if not rows:
        return
    table = Table(title="comparison (validation / test)")
    for key in rows[0]:
        table.add_column(key.replace("_", " "), justify="left" if key == "head" else "right")
    for r in rows:
        table.add_row(*(_cell(k, v) for k, v in r.items()))
    Console().print(table)


_register_train()


def main() -> None:  # console-script entry point
    try:
        app()
    except BrokenPipeError:  # e.g. `prodcat predict ... | head`
        sys.exit(0)


if __name__ == "__main__":
    main()
