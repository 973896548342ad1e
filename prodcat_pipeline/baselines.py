"""A simple baseline on the same cached vectors: scikit-learn LogisticRegression, so every comparison table
shows whether the heads earn their keep."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from .config import PipelineConfig
from .reader import CachedDataset

log = logging.getLogger(__name__)

LOGREG_CS = (1.0, 10.0)  # chosen on validation; the best C on the real sets was 3-10 (BENCHMARKS.md)
LOGREG_MAX_ROWS = 200_000  # lbfgs on more rows than this costs minutes; a seeded sample is fitted instead


def logistic_regression(
    cached: CachedDataset,
    config: PipelineConfig,
    *,
    out: str | Path | None = None,
    Cs: tuple[float, ...] = LOGREG_CS,
    max_rows: int = LOGREG_MAX_ROWS,
) -> dict:
    """Metrics (the metrics.json shape, head "logreg") of multinomial LogisticRegression (lbfgs) on the
    L2-normalised cached vectors, C chosen on validation macro-F1 among `Cs`; written to `out/metrics.json`
    when `out` is given."""
    from sklearn.linear_model import LogisticRegression

    from .metrics import classification_metrics, macro_f1_fast

    t = time.perf_counter()
    X, y = cached.split_arrays("train")
    if len(y) > max_rows:
        keep = np.sort(np.random.default_rng(config.train.seed).choice(len(y), max_rows, replace=False))
        X, y = X[keep], y[keep]
    X = _unit(X)
    evals = {s: cached.split_arrays(s) for s in ("validation", "test") if cached.mask(s).any()}
    evals = {s: (_unit(Xs), ys) for s, (Xs, ys) in evals.items()}
    n = len(cached.label_names)
    best = None
    for C in Cs if "validation" in evals else Cs[-1:]:
        clf = LogisticRegression(C=C, max_iter=2000, random_state=config.train.seed).fit(X, y)
        Xv, yv = evals.get("validation", (X, y))
        score = macro_f1_fast(yv, clf.predict(Xv), n)
        log.info("logreg C=%g: validation macro-F1 %.4f", C, score)
        if best is None or score > best[0]:
            best = (score, C, clf)
    _, C, clf = best
    tc = config.train
    metrics = {}
    for split, (Xs, ys) in evals.items():
        langs = None if tc.no_lang_metrics else cached.column("language", split)
        metrics[split] = classification_metrics(
            ys, clf.predict(Xs), cached.label_names, langs, lang_min_samples=tc.lang_min_samples
        )
    seconds = round(time.perf_counter() - t, 3)
    metrics |= {"head": "logreg", "C": C, "train_rows": int(len(y)), "train_seconds": seconds,
                      "encoder": cached.encoder.get("name"), "cache_key": cached.key,
                      "label_names": cached.label_names}  # fmt: skip
    if out is not None:
        from .atomic import write_json_atomic

        write_json_atomic(Path(out) / "metrics.json", metrics)
    return metrics


def _unit(X: np.ndarray) -> np.ndarray:
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
