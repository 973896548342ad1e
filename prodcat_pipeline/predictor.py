"""`prodcat predict`: classify new titles with a trained run (its encoder, its best checkpoint)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .errors import ProdcatError


def run_config(ckpt: dict):
    """The configuration a checkpoint was trained with, validated again (a tampered one is refused)."""
    from .config import PipelineConfig

    if not isinstance(ckpt.get("config"), dict):
        raise ProdcatError("the checkpoint holds no configuration: it was not written by `prodcat train`")
    return PipelineConfig.from_resolved(ckpt["config"])


class Predictor:
    """A trained run ready to classify raw titles: loads the run's encoder and best head once.

    Example:
        >>> p = Predictor("runs/pipeline/v2")
        >>> p.predict(["Damen Laufschuhe schwarz Gr. 39"], top_k=3)[0]["label"]
    """

    def __init__(self, run: str | Path, *, device: str | None = None, batch_size: int | None = None):
        from .checkpoint import head_from_checkpoint, load_checkpoint
        from .encoders import identify, load_encoder, resolve_device

        self.ckpt = load_checkpoint(run)
        enc = self.ckpt["encoder"]
        identity = identify(enc["name"])
        if enc.get("fingerprint") and identity.fingerprint != enc["fingerprint"]:
            raise ProdcatError(
                f"the encoder '{enc['name']}' found here has other weights ({identity.fingerprint}) than the one "
                f"this run was trained on ({enc['fingerprint']}); install the same version"
            )
        self.device = resolve_device(device)
        self.config = run_config(self.ckpt)
        self.normalize = self.config.encoder.normalize
        self.dtype = np.dtype(self.config.cache.dtype)
        self.batch_size = batch_size or self.config.encoder.batch_size
        self.encoder = load_encoder(enc["name"], device=self.device, precision=self.config.encoder.precision)
        self.head = head_from_checkpoint(self.ckpt, self.device)
        self.label_names = self.ckpt["label_names"]
        self.languages = self.ckpt["languages"]

    def predict(self, titles: list[str], *, top_k: int = 3, languages: list[str] | None = None) -> list[dict]:
        import pyarrow as pa

        from .inference import predict_logits, softmax
        from .text import preprocess_texts

        if not titles:
            return []
        clean = preprocess_texts(pa.array(titles, pa.string())).to_pylist()
        # vectors go through the same dtype as the cache, so prediction sees what training saw
        X = (
            self.encoder.encode(
                clean,
                batch_size=self.batch_size,
                normalize_embeddings=self.normalize,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            .astype(self.dtype)
            .astype(np.float32)
        )
        lang_ids = None
        if self.head.transform.centring:
            if languages is None:
                from .language import detect_languages

                languages = detect_languages(pa.array(clean)).to_pylist()
            index = {c: i for i, c in enumerate(self.languages)}
            lang_ids = np.array([index.get(c, -1) for c in languages], dtype=np.int64)
        logits = predict_logits(self.head, X, lang_ids, self.device)
        probs = softmax(logits)
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
