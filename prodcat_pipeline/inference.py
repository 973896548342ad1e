"""Running a trained head: logits and probabilities in batches, and the metrics of one split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class EvalSet:
    """One split's rows as a head sees them: vectors (cache dtype), label ids, language ids and codes."""

    X: np.ndarray
    y: np.ndarray
    lang_ids: np.ndarray
    lang_codes: np.ndarray


def predict_logits(head, X: np.ndarray, lang_ids: np.ndarray | None, device: str, amp_dtype=None, batch: int = 8192):
    """Logits of `head` for vectors X (numpy), in batches, without gradients."""
    import torch

    head.eval()
    out = np.empty((len(X), head.classifier.out_features), dtype=np.float32)
    with torch.inference_mode():
        for s in range(0, len(X), batch):
            xb = torch.from_numpy(np.ascontiguousarray(X[s : s + batch])).to(device)
            lb = torch.from_numpy(np.asarray(lang_ids[s : s + batch])).to(device) if lang_ids is not None else None
            with torch.autocast(xb.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits, _ = head(xb, lb)
            out[s : s + batch] = logits.float().cpu().numpy()
    return out


def autocast_dtype(tc, device: str):
    """The autocast dtype `train` trains and evaluates under: None (train.amp off), bf16, or fp16 on CUDA
    without bf16."""
    import torch

    if not tc.amp:
        return None
    if device.startswith("cuda") and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax; overflowing logits (a broken head) give NaN rows, which callers refuse."""
    with np.errstate(invalid="ignore", over="ignore"):
        z = logits - logits.max(1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(1, keepdims=True)


def evaluate_head(
    head,
    rows: EvalSet,
    label_names: list[str],
    device: str,
    *,
    amp_dtype=None,
    lang_metrics: bool = True,
    lang_min_samples: int = 20,
) -> tuple[dict, np.ndarray]:
    """(metrics.json block, predicted label ids) of `head` on one split."""
    from .metrics import classification_metrics

    pred = predict_logits(head, rows.X, rows.lang_ids, device, amp_dtype).argmax(1)
    langs = rows.lang_codes if lang_metrics else None
    return classification_metrics(rows.y, pred, label_names, langs, lang_min_samples=lang_min_samples), pred
