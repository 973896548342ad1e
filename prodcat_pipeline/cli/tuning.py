"""`prodcat tune` and `prodcat ensemble`: search heads on the cache, and average runs."""

from __future__ import annotations

from typing import Annotated

import typer

from ..errors import ProdcatError
from .app import command
from .commands import TRAIN_FIELDS, _resolve, _setup_logging
from .options import CONFIG, DATA, ENCODER, KNN, OVERWRITE, Opt, _opt, with_options
from .render import comparison_table

TUNE = [
    _opt("heads", "tune.heads", str, "--heads", panel="Tuning",
         help="Comma-separated heads to search: linear, v2, v3, knn (default linear,v2,knn)."),
    _opt("trials", "tune.trials", int, "--trials", "-n", panel="Tuning", help="Trials per head (default 20)."),
    _opt("parallel", "tune.parallel", int, "--parallel", panel="Tuning",
         help="linear/v2 trials trained together in one batched pass (default 8; 1 = one at a time)."),
    Opt("ensemble", "tune.ensemble", bool | None, typer.Option("--ensemble/--no-ensemble", rich_help_panel="Tuning",
        help="Also average the best heads and the k-NN, weights chosen on validation.")),
    Opt("pruning", "tune.pruning", bool | None, typer.Option("--pruning/--no-pruning", rich_help_panel="Tuning",
        help="Stop trials trailing the median at the same epoch (default on).")),
    _opt("out", None, str, "--out", "-o", help="Output folder (default runs/tune).", panel="Output"),
    OVERWRITE,
]  # fmt: skip
# the training flags fix a setting for every head's trials (a searched setting is still searched)
TUNE_TRAIN = [o for o in TRAIN_FIELDS if o.name in ("seed", "device", "batch_size", "lang_min_samples")]


@command("tune")
@with_options(DATA, ENCODER, TUNE, TUNE_TRAIN, [o for o in KNN if o.name in ("index",)], CONFIG)
def tune_command(**kw):
    """Search each head's settings on the cached vectors (Optuna), selected on validation macro-F1.

    Writes <out>/trials.csv, tune.png, comparison.md/png, one run folder per head and <out>/best
    (a run folder that `predict` accepts). Narrow the search spaces in pipeline.yaml (tune.space).

    Example: prodcat tune --data data/lspc_sample --heads linear,v2,knn --trials 20 --ensemble
    """
    _setup_logging(bool(kw.get("verbose")))
    from ..tuner import tune

    config = _resolve(tune_command, kw)
    result = tune(config, out=kw.get("out"), overwrite=bool(kw.get("overwrite")))
    comparison_table(result.rows)
    done = sum(r.get("state") == "complete" for r in result.trials)
    typer.echo(f"{len(result.trials)} trials ({done} complete, {len(result.trials) - done} pruned); "
               f"best: {result.best} (validation macro-F1 {result.best_val_macro_f1:.4f})")  # fmt: skip
    typer.echo(f"results: {result.out_dir}/trials.csv, tune.png, comparison.md; best run: {result.out_dir}/best")


@command("ensemble")
def ensemble_command(
    runs: Annotated[str, typer.Option("--runs", "-r", help="Comma-separated run folders (heads, k-NN, ensembles).")],
    out: Annotated[str, typer.Option("--out", "-o", help="Folder for the ensemble run.")] = "runs/ensemble",
    device: Annotated[str | None, typer.Option("--device", help="cpu, cuda, cuda:N.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log each step.")] = False,
):
    """Average the class probabilities of several runs of one dataset and encoder, weights chosen on
    validation macro-F1; the result is a run folder that `predict` accepts.

    Example: prodcat ensemble --runs runs/sample/v2,runs/sample/knn --out runs/sample/ensemble
    """
    _setup_logging(verbose)
    from ..encoders import resolve_device
    from ..ensembles import ensemble
    from .render import metrics_table

    paths = [p.strip() for p in runs.split(",") if p.strip()]
    if len(paths) < 2:
        raise ProdcatError("--runs needs at least two run folders, comma-separated")
    result = ensemble(paths, out=out, device=resolve_device(device))
    metrics_table(result.metrics)
    typer.echo("weights: " + ", ".join(f"{n} {w:.2f}" for n, w in result.weights.items()))
    typer.echo(f"ensemble run: {result.out_dir}")
