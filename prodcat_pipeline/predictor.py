"""`prodcat predict`: classify new titles with a trained run (its encoder, its best checkpoint)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .errors import ProdcatError


class Predictor:
    """A run ready to classify raw titles: loads the run's encoder(s) and its model (a head's best checkpoint,
    a k-NN or an ensemble) once.

    Example:
        >>> p = Predictor("runs/pipeline/v2")
        >>> p.predict(["Damen Laufschuhe schwarz Gr. 39"], top_k=3)[0]["label"]
    """

    def __init__(self, run: str | Path, *, device: str | None = None, batch_size: int | None = None):
        from .combined import check_encoders, load_encoders
        from .encoders import resolve_device
        from .models import open_run

        self.device = resolve_device(device)
        self.model = open_run(run, device=self.device)
        check_encoders(self.model.encoder)  # each encoder of a combined cache too
        self.config = self.model.config
        self.batch_size = batch_size or self.config.encoder.batch_size
        self.encoders = load_encoders(self.config, self.device, self.model.encoder)  # one per listed encoder
        self.label_names = self.model.label_names

    def predict(self, titles: list[str], *, top_k: int = 3, languages: list[str] | None = None) -> list[dict]:
        import pyarrow as pa

        from .combined import encode_titles
        from .text import preprocess_texts

        if not titles:
            return []
        # preprocessed, rounded through the cache dtype (and combined) as the cache holds them: what training saw
        X = encode_titles(self.config, self.encoders, titles, batch_size=self.batch_size)
        if self.model.needs_languages and languages is None:
            from .language import detect_languages

            languages = detect_languages(preprocess_texts(pa.array(titles, pa.string()))).to_pylist()
        probs = self.model.proba(X, languages)
        k = max(1, min(top_k, probs.shape[1]))
        top = np.argsort(-probs, axis=1)[:, :k]
        return [
            {
                "text": t,
                "label": self.label_names[top[i, 0]],
                "probability": float(probs[i, top[i, 0]]),
                "top_k": [{"label": self.label_names[j], "probability": float(probs[i, j])} for j in top[i]],
            }
            for i, t in enumerate(titles)
        ]


def read_titles(source: str, text_column: str = "text") -> list[str]:
    """Titles from '-' (stdin, one per line), a .txt file (one per line) or a CSV/Parquet/JSONL file."""
    if source == "-":
        return [line.rstrip("\n") for line in sys.stdin if line.strip()]
    path = Path(source)
    if not path.exists():
        raise ProdcatError(f"input file not found: {source}")
    if path.suffix.lower() in (".parquet", ".pq", ".csv", ".tsv", ".jsonl", ".json"):
        from .data import _read_table

        table = _read_table(path)
        if text_column not in table.column_names:
            raise ProdcatError(
                f"{source} has no text column '{text_column}' (columns found: {', '.join(table.column_names)}); "
                "pick another with --text-column"
            )
        return ["" if t is None else str(t) for t in table[text_column].to_pylist()]
    try:
        return [line.rstrip("\n") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError as exc:
        raise ProdcatError(f"{source} is not UTF-8 text: {exc.reason}") from exc


def write_predictions(rows: list[dict], out, fmt: str = "jsonl") -> None:
    """JSONL (one object per title) or CSV (text, label, probability, top_k as label:prob;...)."""
    import csv
    import json

    if fmt == "jsonl":
        for r in rows:
            out.write(json.dumps(r, ensure_ascii=False) + "\n")
    elif fmt == "csv":
        w = csv.writer(out)
        w.writerow(["text", "label", "probability", "top_k"])
        for r in rows:
            top = ";".join(f"{t['label']}:{t['probability']:.4f}" for t in r["top_k"])
            w.writerow([r["text"], r["label"], f"{r['probability']:.6f}", top])
    else:
        raise ProdcatError(f"unknown output format '{fmt}': jsonl or csv")


def predict(titles, run: str | Path, *, top_k: int = 3, device: str | None = None, batch_size: int | None = None):
    """Classify `titles` (a list of strings or a file path) with the run at `run`; returns one dict per title."""
    if isinstance(titles, (str, Path)):
        titles = read_titles(str(titles))
    return Predictor(run, device=device, batch_size=batch_size).predict(list(titles), top_k=top_k)
