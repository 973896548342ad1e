"""`prodcat eval`: score a trained model (run folder or exported model) on any labelled data prodcat reads,
through the same embedding cache (only titles not cached yet are encoded). Writes metrics.json (a run's
shape), report.txt (scikit-learn's per-class report) and confusion.png into the output folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ProdcatError

PROBA_ROWS = 65536  # rows scored at a time: bounds the gathered vectors' memory


@dataclass
class EvalResult:
    out_dir: Path
    split: str
    metrics: dict  # the content of metrics.json
    report: str  # scikit-learn's classification_report
    cache_built: bool  # True when the data had to be encoded into the cache first


def evaluate(
    run: str | Path,
    data: str | Path | None = None,
    *,
    split: str | None = None,
    out: str | Path | None = None,
    data_overrides: dict | None = None,
    cache_dir: str | None = None,
    device: str | None = None,
    show_progress: bool | None = None,
) -> EvalResult:
    """Score the model at `run` on `data` (default: the run's own dataset) and write the results.

    `split`: a split name, or "all"; default the test split when the data has its own splits, else all
    rows. `data_overrides` sets data.* keys (text_column, label_column, ...). Scores on a run's own test split
    equal its metrics.json.

    Example:
        >>> evaluate("runs/sample/v2", "new_labelled.parquet").metrics["all"]["macro_f1"]
    """
    from .cache import TRAINING_COLUMNS, open_cache
    from .encoders import resolve_device
    from .metrics import classification_metrics
    from .models import open_run

    device = resolve_device(device)
    model = open_run(run, device=device)
    config = _eval_config(model.config, data, data_overrides, cache_dir)
    cached, built = open_cache(config, columns=TRAINING_COLUMNS, show_progress=show_progress)
    split = _choose_split(cached, split)
    mask = np.ones(len(cached.rows), dtype=bool) if split == "all" else cached.mask(split)
    y = _model_label_ids(cached, model.label_names, mask)
    vec, langs = cached.column("vec")[mask], cached.column("language")[mask]
    pred = np.concatenate([
        _finite(model.proba(cached.store.gather(vec[s : s + PROBA_ROWS]), langs[s : s + PROBA_ROWS]), run).argmax(1)
        for s in range(0, len(vec), PROBA_ROWS)
    ]) if len(vec) else np.zeros(0, dtype=np.int64)  # fmt: skip
    tc = model.config.train
    block = classification_metrics(y, pred, model.label_names, None if tc.no_lang_metrics else langs,
                                   lang_min_samples=tc.lang_min_samples)  # fmt: skip
    metrics = {split: block, "head": model.name, "kind": model.kind, "run": str(run), "split": split,
               "dataset": cached.dataset.get("source"), "encoder": cached.encoder.get("name"),
               "cache_key": cached.key, "label_names": list(model.label_names)}  # fmt: skip
    out_dir = Path(out) if out else _default_out(Path(run), cached.dataset.get("source"), split)
    report = _write(out_dir, metrics, y, pred, model.label_names)
    return EvalResult(out_dir, split, metrics, report, built)


def _finite(proba: np.ndarray, run) -> np.ndarray:
    if not np.isfinite(proba).all():
        raise ProdcatError(f"the model at {run} gives non-finite probabilities (NaN or inf in its weights?); "
                           "retrain it, e.g. with a lower --lr")  # fmt: skip
    return proba


def _eval_config(config, data, overrides: dict | None, cache_dir: str | None):
    """The model's configuration pointed at the data to score (same encoder, cache settings, preprocessing)."""
    config = config.model_copy(deep=True)
    if data is not None:
        config.data = config.data.model_validate({**config.data.model_dump(), "path": str(data),
                                                  **{k: v for k, v in (overrides or {}).items() if v is not None}})  # fmt: skip
    if cache_dir is not None:
        config.cache.dir = cache_dir
    return config


def _choose_split(cached, split: str | None) -> str:
    import pyarrow.compute as pc

    present = sorted(pc.unique(cached.rows["split"]).drop_null().to_pylist())
    if split is None:
        return "test" if "test" in present and not cached.dataset.get("split_made") else "all"
    if split != "all" and split not in present:
        raise ProdcatError(f"the data has no split '{split}' (splits: {', '.join(present)}, or all)")
    return split


def _model_label_ids(cached, model_labels: list[str], mask: np.ndarray) -> np.ndarray:
    """The rows' labels as the model's label ids (matched by name); labels the model never learned fail."""
    index = {name: i for i, name in enumerate(model_labels)}
    mapping = np.array([index.get(name, -1) for name in cached.label_names], dtype=np.int64)
    labels = cached.column("label")[mask]
    unknown = sorted({cached.label_names[i] for i in np.unique(labels) if mapping[i] < 0})
    if unknown:
        raise ProdcatError(
            f"the data has labels the model does not predict: {', '.join(unknown[:5])}"
            f"{' ...' if len(unknown) > 5 else ''} (the model knows: {', '.join(model_labels[:8])}"
            f"{' ...' if len(model_labels) > 8 else ''}); evaluate on data with the model's label set"
        )
    return mapping[labels]


def _default_out(run: Path, source: str | None, split: str) -> Path:
    import re

    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(source or "data").stem or "data")[:60]
    return (run.parent if run.is_file() else run) / "eval" / f"{name}-{split}"


def _write(out_dir: Path, metrics: dict, y: np.ndarray, pred: np.ndarray, label_names: list[str]) -> str:
    from sklearn.metrics import classification_report

    from .atomic import write_atomic, write_json_atomic

    labels = list(range(len(label_names)))
    report = classification_report(y, pred, labels=labels, target_names=label_names, digits=4, zero_division=0)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / "metrics.json", metrics)
    write_atomic(out_dir / "report.txt", lambda p: p.write_text(report, encoding="utf-8"))
    write_atomic(out_dir / "confusion.png", lambda p: confusion_plot(y, pred, label_names, p))
    return report


def confusion_plot(y: np.ndarray, pred: np.ndarray, label_names: list[str], path: Path) -> None:
    """Row-normalised confusion matrix (each true class sums to 1), readable from 2 to ~40 classes: cells are
    annotated up to 15 classes, the figure grows with the class count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix

    n = len(label_names)
    cm = confusion_matrix(y, pred, labels=list(range(n)), normalize="true") if len(y) else np.zeros((n, n))
    size = min(max(4.0, 0.42 * n + 2.5), 22.0)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    image = ax.imshow(cm, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    font = max(7, min(10, 300 // max(n, 1)))
    ax.set_xticks(range(n), label_names, rotation=60 if n > 6 else 30, ha="right", fontsize=font)
    ax.set_yticks(range(n), label_names, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 15:
        for i in range(n):
            for j in range(n):
                if cm[i, j] >= 0.005:
                    ax.text(j, i, f"{cm[i, j]:.2f}", ha="center", va="center", fontsize=font - 1,
                            color="white" if cm[i, j] > 0.6 else "black")  # fmt: skip
    ax.set_title(f"confusion (row-normalised), {len(y):,} rows")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)
