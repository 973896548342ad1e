"""`prodcat predict`, `prodcat eval` and `prodcat export`: using, scoring and shipping a trained model."""

from __future__ import annotations

from typing import Annotated

import typer

from ..errors import ProdcatError
from .app import command
from .commands import _setup_logging

RunOpt = Annotated[str | None, typer.Option("--run", "-r", rich_help_panel="Model",
                  help="Run folder (train, knn-eval, tune, ensemble) or exported model folder.")]  # fmt: skip
ModelOpt = Annotated[str | None, typer.Option("--model", "-m", help="Same as --run.", rich_help_panel="Model")]
DeviceOpt = Annotated[str | None, typer.Option("--device", help="cpu, cuda, cuda:N.", rich_help_panel="Model")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Log each step.")]
MAX_BATCH = 1 << 24  # rows or titles at a time: more is a typo, and would not fit in memory anyway


def _model_path(run: str | None, model: str | None) -> str:
    if bool(run) == bool(model):
        raise ProdcatError("give the model with --model (or --run), once")
    return run or model


@command("predict")
def predict_command(
    run: RunOpt = None,
    model: ModelOpt = None,
    input: Annotated[str, typer.Option("--input", "-i", rich_help_panel="Input",  # noqa: A002
                     help="'-' (stdin) or .txt: one title per line; or .csv, .tsv, .parquet, .jsonl.")] = "-",
    text_column: Annotated[str, typer.Option("--text-column", help="Title column of a table input.",
                           rich_help_panel="Input")] = "text",
    id_column: Annotated[str | None, typer.Option("--id-column", rich_help_panel="Input",
                         help="Column copied into each output row (e.g. sku) to join predictions back.")] = None,
    keep_columns: Annotated[str | None, typer.Option("--keep-columns", rich_help_panel="Input",
                            help="Comma-separated columns copied into the output too.")] = None,
    language_column: Annotated[str | None, typer.Option("--language-column", rich_help_panel="Input",
                               help="Each title's language (else detected among the model's languages).")] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="Output file ('-' = stdout).",
                      rich_help_panel="Output")] = "-",
    format: Annotated[str | None, typer.Option("--format", rich_help_panel="Output",  # noqa: A002
                      help="jsonl, csv or parquet (default: from --output's extension, else jsonl).")] = None,
    top_k: Annotated[int, typer.Option("--top-k", help="Labels listed per title.", rich_help_panel="Output")] = 3,
    threshold: Annotated[float | None, typer.Option("--threshold", rich_help_panel="Output",
                         help="Abstain (empty label, a reason) when the top probability is below it.")] = None,
    batch_rows: Annotated[int, typer.Option("--batch-rows", help="Rows read and classified at a time.",
                          rich_help_panel="Output", min=1)] = 8192,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Titles per encode batch.",
                          rich_help_panel="Model")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", rich_help_panel="Model",
                        help="Encode every title, even those already in the embedding cache.")] = False,
    trust_remote_code: Annotated[bool, typer.Option("--trust-remote-code", rich_help_panel="Model",
                                 help="Let the model's encoder run code it ships (default: refused).")] = False,
    device: DeviceOpt = None,
    verbose: VerboseOpt = False,
):  # fmt: skip
    """Classify titles with a trained model: one output row per input row, in input order, joinable by
    --id-column; empty titles get no label and a reason.

    Example: prodcat predict --model models/v2 -i catalogue.csv --id-column sku -o predictions.parquet
    """
    _setup_logging(verbose)
    from ..classifier import Classifier
    from ..predict_io import InputSpec, output_format
    from ..predictor import predict_file
    from .options import check_device, check_target

    # every flag is checked before the model loads and anything is read or written
    if top_k < 1:
        raise ProdcatError(f"--top-k must be at least 1, got {top_k}")
    if threshold is not None and not 0.0 <= threshold <= 1.0:  # NaN fails this too
        raise ProdcatError(f"--threshold must be a probability between 0 and 1, got {threshold}")
    if batch_rows > MAX_BATCH:
        raise ProdcatError(f"--batch-rows must be at most {MAX_BATCH:,}, got {batch_rows:,}")
    if batch_size is not None and not 1 <= batch_size <= MAX_BATCH:
        raise ProdcatError(f"--batch-size must be between 1 and {MAX_BATCH:,}, got {batch_size:,}")
    output_format(output, format)  # a bad --format or --output fails before the model loads
    if output != "-":
        check_target(output, "--output", folder=False)
    check_device(device)
    keep = tuple(c.strip() for c in (keep_columns or "").split(",") if c.strip())
    spec = InputSpec(input, text_column, id_column, keep, language_column)
    clf = Classifier.from_pretrained(_model_path(run, model), device=device, use_cache=not no_cache,
                                     batch_size=batch_size, trust_remote_code=trust_remote_code)  # fmt: skip
    result = predict_file(clf, spec, output, fmt=format, top_k=top_k, threshold=threshold, batch_rows=batch_rows)
    if output != "-" or verbose:
        typer.echo(f"{result.rows:,} rows: {result.predicted:,} labelled, {result.abstained:,} below the threshold, "
                   f"{result.skipped:,} without a usable title; {result.encoded:,} titles encoded "
                   f"(the rest read from the cache){'' if output == '-' else f'; written to {output}'}",
                   err=True)  # fmt: skip


@command("eval")
def eval_command(
    run: RunOpt = None,
    model: ModelOpt = None,
    data: Annotated[str | None, typer.Option("--data", "-d", rich_help_panel="Data",
                    help="Labelled data (any format prodcat reads; default: the run's own dataset).")] = None,
    split: Annotated[str | None, typer.Option("--split", rich_help_panel="Data",
                     help="Split to score, or all (default: test when the data has splits, else all).")] = None,
    text_column: Annotated[str | None, typer.Option("--text-column", help="Title column.",
                           rich_help_panel="Data")] = None,
    label_column: Annotated[str | None, typer.Option("--label-column", help="Label column.",
                            rich_help_panel="Data")] = None,
    language_column: Annotated[str | None, typer.Option("--language-column", help="Language column.",
                               rich_help_panel="Data")] = None,
    out: Annotated[str | None, typer.Option("--out", "-o", rich_help_panel="Output",
                   help="Folder for metrics.json, report.txt, confusion.png (default <run>/eval/<data>-<split>).")] = None,
    cache_dir: Annotated[str | None, typer.Option("--cache-dir", help="Cache root (default: the run's).",
                         rich_help_panel="Data")] = None,
    device: DeviceOpt = None,
    verbose: VerboseOpt = False,
):  # fmt: skip
    """Score a trained model on labelled data: per-class report, per-language F1, metrics.json and a
    confusion matrix. Only titles not in the cache yet are encoded.

    Example: prodcat eval --run runs/sample/v2 --data new_labelled.parquet
    """
    _setup_logging(verbose)
    from ..evaluation import evaluate
    from .options import check_device, check_target
    from .render import metrics_table

    check_device(device)
    if out is not None:
        check_target(out, "--out", folder=True)
    if cache_dir is not None:
        check_target(cache_dir, "--cache-dir", folder=True, write=False)
    overrides = {"text_column": text_column, "label_column": label_column, "language_column": language_column}
    result = evaluate(_model_path(run, model), data, split=split, out=out, data_overrides=overrides,
                      cache_dir=cache_dir, device=device)  # fmt: skip
    typer.echo(result.report)
    metrics_table(result.metrics, splits=(result.split,))
    typer.echo(f"results: {result.out_dir}/metrics.json, report.txt, confusion.png")


@command("export")
def export_command(
    run: Annotated[str, typer.Option("--run", "-r", help="Run folder to export.")],
    out: Annotated[str, typer.Option("--out", "-o", help="Model folder to write.")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a model already at --out.")] = False,
    verbose: VerboseOpt = False,
):
    """Write a run as a portable model: safetensors weights, prodcat_model.json, metrics.json and a README.md
    model card; `predict --model` and Classifier.from_pretrained load it without the cache.

    Example: prodcat export --run runs/sample/v2 --out models/sample-v2
    """
    _setup_logging(verbose)
    from ..export import export_model
    from .options import check_target

    check_target(out, "--out", folder=True)
    path = export_model(run, out, overwrite=overwrite)
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    typer.echo(f"model: {path} ({size / 1e6:.1f} MB; README.md is its model card)")
