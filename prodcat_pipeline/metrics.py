"""Evaluation metrics (scikit-learn): macro/micro-F1, accuracy, per class, confusion, per language."""

from __future__ import annotations

import numpy as np


def classification_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    label_names: list[str],
    languages: np.ndarray | None = None,
    *,
    lang_min_samples: int = 20,
) -> dict:
    """The metrics.json block for one split. Per-language entries need `lang_min_samples` rows."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    labels = np.arange(len(label_names))
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if len(y_true) == 0:
        return {"macro_f1": None, "micro_f1": None, "accuracy": None, "support": 0}
    out = {  # macro-F1 over the classes seen in y_true or y_pred (scikit-learn's default)
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "micro_f1": float(f1_score(y_true, y_pred, labels=labels, average="micro", zero_division=0)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "support": int(len(y_true)),
    }
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    out["per_class"] = {
        name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, name in enumerate(label_names)
    }
    out["confusion"] = confusion_matrix(y_true, y_pred, labels=labels).tolist()
    if languages is not None:
        out["per_language"] = per_language_f1(y_true, y_pred, languages, lang_min_samples=lang_min_samples)
    return out


def per_language_f1(y_true, y_pred, languages, *, lang_min_samples: int = 20) -> dict:
    from sklearn.metrics import f1_score

    languages = np.asarray(languages, dtype=object)
    out = {}
    codes, counts = np.unique(languages, return_counts=True)
    for code, count in sorted(zip(codes, counts, strict=True), key=lambda t: -t[1]):
        if count < lang_min_samples:
            continue
        m = languages == code
        out[str(code)] = {
            "macro_f1": float(f1_score(y_true[m], y_pred[m], average="macro", zero_division=0)),
            "micro_f1": float(f1_score(y_true[m], y_pred[m], average="micro", zero_division=0)),
            "support": int(count),
        }
    return out


def non_english_mean(per_language: dict) -> float | None:
    vals = [v["macro_f1"] for k, v in per_language.items() if k != "en"]
    return float(np.mean(vals)) if vals else None


def macro_f1_fast(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Macro-F1 from one bincount, equal to scikit-learn's f1_score(average="macro") (classes present in y_true
    or y_pred): for scoring many candidate predictions (tuning, ensemble weights) without sklearn's overhead."""
    cm = np.bincount(np.asarray(y_true) * n_classes + np.asarray(y_pred), minlength=n_classes * n_classes)
    cm = cm.reshape(n_classes, n_classes)
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(0) + cm.sum(1)  # 2tp + fp + fn
    present = denom > 0
    return float((2 * tp[present] / denom[present]).mean()) if present.any() else 0.0
