"""The commands: each parses its options, resolves one configuration, calls the library and renders."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from .app import Command, Group, app, command
from .options import (
    CONFIG,
    DATA,
    EMBED,
    ENCODER,
    KNN,
    OUT,
    OVERWRITE,
    RESUME,
    Opt,
    config_overrides,
    train_fields,
    with_options,
)
from .render import comparison_table, metrics_table

TRAIN_FIELDS = train_fields()
HEADS = Opt("heads", "heads", str | None, typer.Option("--heads", rich_help_panel="Output",
            help="Comma-separated heads to train (default: linear,v2,v3)."))  # fmt: skip
RUN_KNN = Opt("knn", "run_knn", bool | None, typer.Option("--knn/--no-knn", rich_help_panel="Output",
              help="Also run the k-NN baseline (default on)."))  # fmt: skip
RUN_LOGREG = Opt("logreg", "run_logreg", bool | None, typer.Option("--logreg/--no-logreg", rich_help_panel="Output",
                 help="Also fit the LogisticRegression baseline on the cache (default on)."))  # fmt: skip


def _setup_logging(verbose: bool, train_progress: bool = False) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s", force=True
    )
    if train_progress:  # one line per epoch even without --verbose
        logging.getLogger("prodcat_pipeline.trainer").setLevel(logging.INFO)


def _resolve(fn, kw: dict, notes: str = ""):
    """The one resolved configuration: --config, else ./pipeline.yaml when present (announced), then flags."""
    from ..config import load_config

    path, found = kw.get("config"), ""
    if path is None and not kw.get("no_config") and Path("pipeline.yaml").is_file():
        path, found = Path("pipeline.yaml"), " (found in the current folder; --no-config ignores it)"
    config = load_config(path, config_overrides(fn, kw))  # a bad file fails here, naming itself
    if path is not None:
        typer.echo(f"config: {path}{found}", err=True)
    for head in {"train": [config.train.head], "run": config.heads}.get(notes, []):
        for note in config.shadowed_settings(head):
            typer.echo(f"note: {note}", err=True)
    return config


def _check_up_front(config, kw: dict, out: str | Path | None = None):
    """What would otherwise fail after minutes of encoding: the cache folder, the output folder (`out`) and the
    devices. Returns `config`."""
    from .options import check_device, check_target

    if config.cache.dir:  # a read-only cache that holds everything is fine: only its kind is checked here
        check_target(config.cache.dir, "--cache-dir", folder=True, write=False)
    if out is not None:
        check_target(out, "--out", folder=True)
    for section in ("encoder", "train"):
        check_device(getattr(config, section).device, "--device" if kw.get("device") else f"{section}.device")
    return config


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


@command("embed")
@with_options(DATA, ENCODER, EMBED, CONFIG)
def embed_command(**kw):
    """Encode every distinct title once into the sharded embedding cache (resumable, incremental).

    Example: prodcat embed --data data/lspc_sample --model use-multilingual
    """
    _setup_logging(bool(kw.get("verbose")))
    from ..embedder import embed

    result = embed(_check_up_front(_resolve(embed_command, kw), kw))
    typer.echo(
        f"{result.rows:,} rows, {result.unique_texts:,} distinct titles: encoded {result.encoded:,}, "
        f"reused {result.reused:,} from the cache"
        + (f" ({result.titles_per_second:,.0f} titles/s)" if result.encoded else "")
    )
    if result.split_made:
        typer.echo("note: no split in the data: made a grouped 85/5/10 split by cluster")
    if result.language_detected:
        typer.echo("note: no language column: languages detected with py3langid")
    typer.echo(f"cache: {result.cache_dir}")


@command("train")
@with_options(DATA, ENCODER, [OUT, OVERWRITE, RESUME], TRAIN_FIELDS, CONFIG)
def train_command(**kw):
    """Train a head on cached vectors (encodes the dataset first only if no cache exists).

    Example: prodcat train --head v3 --data data/lspc_sample --out runs/v3 --epochs 10 --amp
    """
    # pyarrow's first to_numpy imports pandas (~0.5 s) and building a torch optimizer imports torch._dynamo
    # (~1 s): start both now so they overlap with torch's own import and the cache loading
    _preload_in_background("pandas", "torch._dynamo")
    _setup_logging(bool(kw.get("verbose")), train_progress=True)
    from ..trainer import train

    config = _resolve(train_command, kw, notes="train")
    _check_up_front(config, kw, kw.get("out") or Path(config.out) / config.train.head)
    result = train(config, out=kw.get("out"), resume=bool(kw.get("resume")), overwrite=bool(kw.get("overwrite")))
    typer.echo(
        "encoded the dataset into the cache first (later runs reuse it)"
        if result.cache_built
        else "reused the embedding cache: no titles re-encoded"
    )
    metrics_table(result.metrics, config.train.lang_top_k)
    typer.echo(f"run: {result.out_dir} (best epoch {result.best_epoch}/{result.epochs_run}, "
               f"{result.train_seconds:.1f}s)")  # fmt: skip


@command("knn-eval")
@with_options(DATA, ENCODER, [OUT, OVERWRITE], KNN, CONFIG)
def knn_eval_command(**kw):
    """k-nearest-neighbour baseline (FAISS) on the same cache: the train split is the index; each neighbour
    votes exp(cos/T), k and T chosen on validation unless set.

    Example: prodcat knn-eval --data data/lspc_sample --index flat
    """
    _setup_logging(bool(kw.get("verbose")))
    from ..knn import knn_eval

    config = _resolve(knn_eval_command, kw)
    _check_up_front(config, kw, kw.get("out") or Path(config.out) / "knn")
    result = knn_eval(config, out=kw.get("out"), overwrite=bool(kw.get("overwrite")))
    metrics_table(result.metrics, config.train.lang_top_k)
    knn = result.metrics["knn"]
    vote = f", T={knn['temperature']:g} ({knn['temperature_chosen_by']})" if knn["weighting"] == "softmax" else ""
    typer.echo(f"k={knn['k']} ({knn['k_chosen_by']}){vote}, {knn['weighting']} votes")
    typer.echo(f"index build {result.build_seconds:.2f}s, search {result.search_seconds:.2f}s; "
               f"metrics: {result.out_dir}")  # fmt: skip


@command("run")
@with_options(
    DATA,
    ENCODER,
    [Opt("out", "out", str | None, OUT.option), OVERWRITE, HEADS, RUN_KNN, RUN_LOGREG],
    TRAIN_FIELDS,
    CONFIG,
)
def run_command(**kw):
    """The whole pipeline: embed, train each head, k-NN, a LogisticRegression baseline, one comparison table and
    plot.

    Every training flag applies to each head on top of its own defaults, exactly as in `prodcat train`.

    Example: prodcat run --config pipeline.yaml
    """
    _setup_logging(bool(kw.get("verbose")))
    from ..pipeline import run

    config = _resolve(run_command, kw, notes="run")
    _check_up_front(config, kw, config.out)
    result = run(config, overwrite=bool(kw.get("overwrite")))
    typer.echo(f"embed: {result.encoded:,} titles encoded ({result.embed_seconds:.1f}s; "
               "cached titles are never re-encoded)")  # fmt: skip
    comparison_table(result.rows)
    typer.echo(f"results: {result.out_dir}/comparison.md, comparison.png, <head>/metrics.json")


config_app = typer.Typer(
    cls=Group, help="Inspect the configuration.", no_args_is_help=True, add_completion=False, rich_markup_mode=None
)
app.add_typer(config_app, name="config")


@config_app.command("show", cls=Command, context_settings={"help_option_names": ["-h", "--help"]})
@with_options(DATA, ENCODER, TRAIN_FIELDS, CONFIG)
def config_show_command(**kw):
    """Print the resolved configuration as YAML: defaults < pipeline.yaml < the head's defaults <
    head_overrides < flags.

    Example: prodcat config show --head linear --lr 0.1
    """
    from ..config_yaml import to_yaml

    typer.echo(to_yaml(_resolve(config_show_command, kw, notes="train")), nl=False)
