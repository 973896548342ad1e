"""`prodcat predict`: classify a file (or stdin) of titles, streamed in batches, one output row per input row
in input order, joined back to the input by its id and kept columns."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .classifier import Classifier, topk_rows
from .errors import ProdcatError
from .predict_io import InputSpec, PredictionWriter, count_rows, output_format, read_batches

OUTPUT_FIELDS = ("text", "label", "probability", "top_k", "language", "reason")  # a kept column so named: input_<name>


@dataclass
class PredictResult:
    rows: int
    predicted: int  # rows with a label
    abstained: int  # rows below --threshold
    skipped: int  # rows without a usable title
    encoded: int  # titles encoded (the rest were read from the cache)
    output: str


def predict_file(
    model: str | Path | Classifier,
    spec: InputSpec,
    output: str = "-",
    *,
    fmt: str | None = None,
    top_k: int = 3,
    threshold: float | None = None,
    batch_rows: int = 8192,
    device: str | None = None,
    show_progress: bool | None = None,
) -> PredictResult:
    """Classify every row of `spec.source` with `model` (a Classifier, model or run folder) into `output`.

    Each output row holds the carried columns, text, label, probability, top_k, the language used (for a
    language-aware head) and a reason when it has no label (empty or unreadable title, below `threshold`).
    """
    from .progress import progress_bar

    fmt = output_format(output, fmt)
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ProdcatError(f"--threshold must be a probability between 0 and 1, got {threshold}")
    clf = model if isinstance(model, Classifier) else Classifier.from_pretrained(model, device=device)
    batches = read_batches(spec, batch_rows)  # a missing file or column fails here, before any output exists
    first = next(batches, None)
    totals = {"rows": 0, "predicted": 0, "abstained": 0, "skipped": 0}
    with _open_output(output, fmt) as target, PredictionWriter(target, fmt) as writer:
        show = sys.stderr.isatty() if show_progress is None else show_progress  # counting reads the whole file
        with progress_bar(count_rows(spec) if show else 0, "predict", "rows", show) as advance:
            for batch in _chain(first, batches):
                rows = _predict_batch(clf, batch, top_k, threshold, totals)
                writer.write(rows)
                advance(len(rows))
    return PredictResult(totals["rows"], totals["predicted"], totals["abstained"], totals["skipped"],
                         clf.vectorizer.encoded, output)  # fmt: skip


def prediction_fields(top: list[tuple[str, float]]) -> dict:
    """label, probability and top_k of one title from its (label, probability) pairs, best first ([]: none)."""
    label, probability = top[0] if top else (None, None)
    return {"label": label, "probability": probability,
            "top_k": [{"label": lab, "probability": p} for lab, p in top]}  # fmt: skip


def _chain(first, rest):
    if first is not None:
        yield first
        yield from rest


def _predict_batch(clf: Classifier, batch, top_k: int, threshold: float | None, totals: dict) -> list[dict]:
    titles = batch.titles
    reasons = list(batch.reasons)
    usable = [i for i, t in enumerate(titles) if t is not None and t.strip()]
    for i, t in enumerate(titles):
        if t is not None and not t.strip():
            reasons[i] = "empty title"
    proba = np.zeros((len(titles), len(clf.classes_)))
    langs: list = [None] * len(titles)
    if usable:
        given = [batch.languages[i] for i in usable] if batch.languages is not None else None
        given = clf.languages_for([titles[i] for i in usable], given)  # detected once, reported below
        proba[usable] = clf.predict_proba([titles[i] for i in usable], given)
        for j, i in enumerate(usable):
            langs[i] = given[j] if given is not None else None
    tops = topk_rows(proba, clf.classes_, top_k)
    rows = []
    carried = {c: f"input_{c}" if c in OUTPUT_FIELDS else c for c in batch.carry}
    for i, title in enumerate(titles):
        row = {name: batch.carry[c][i] for c, name in carried.items()}
        row["text"] = title
        row |= prediction_fields(tops[i])
        if tops[i] and threshold is not None and row["probability"] < threshold:
            row["label"], reasons[i] = None, f"below threshold {threshold:g}"
        if clf.needs_languages:
            row["language"] = langs[i]
        row["reason"] = reasons[i]
        rows.append(row)
    totals["rows"] += len(rows)
    totals["predicted"] += sum(r["label"] is not None for r in rows)
    totals["skipped"] += len(titles) - len(usable)
    totals["abstained"] += sum(1 for i in usable if rows[i]["label"] is None)
    return rows


class _open_output:  # noqa: N801 - a context manager used like open()
    """stdout, or a temporary file beside `output` renamed onto it only when everything was written."""

    def __init__(self, output: str, fmt: str):
        self.output, self.fmt, self._atomic = output, fmt, None

    def __enter__(self):
        from .atomic import atomic_path

        if self.output == "-":
            return sys.stdout
        path = Path(self.output)
        if path.is_dir():
            raise ProdcatError(f"--output {path} is a folder: give a file name such as {path}/predictions.jsonl")
        self._atomic = atomic_path(path)
        tmp = self._atomic.__enter__()
        self._fh = str(tmp) if self.fmt == "parquet" else open(tmp, "w", encoding="utf-8", newline="")  # noqa: SIM115
        return self._fh

    def __exit__(self, *exc):
        if self._atomic is None:
            sys.stdout.flush()
            return False
        if not isinstance(self._fh, str):
            self._fh.close()
        return self._atomic.__exit__(*exc)


class Predictor:
    """A run or exported model answering with one dict per title (text, label, probability, top_k): the
    dict-shaped face of `Classifier`.

    Example:
        >>> Predictor("runs/sample/v2").predict(["Damen Laufschuhe schwarz Gr. 39"], top_k=3)[0]["label"]
    """

    def __init__(self, run: str | Path, *, device: str | None = None, batch_size: int | None = None):
        self.classifier = Classifier.from_pretrained(run, device=device, batch_size=batch_size)
        self.model, self.config = self.classifier.model, self.classifier.model.config
        self.label_names = list(self.classifier.classes_)

    def predict(self, titles: list[str], *, top_k: int = 3, languages: list[str] | None = None) -> list[dict]:
        proba = self.classifier.predict_proba(list(titles), languages)
        tops = topk_rows(proba, self.classifier.classes_, top_k)
        return [{"text": title} | prediction_fields(top) for title, top in zip(titles, tops, strict=True)]


def predict(titles, run: str | Path, *, top_k: int = 3, device: str | None = None, batch_size: int | None = None):
    """Classify `titles` (a list of strings, or a file of them as `prodcat predict --input` reads it) with the
    model or run at `run`; returns one dict per title."""
    if isinstance(titles, (str, Path)):
        titles = [t or "" for batch in read_batches(InputSpec(str(titles))) for t in batch.titles]
    return Predictor(run, device=device, batch_size=batch_size).predict(list(titles), top_k=top_k)
