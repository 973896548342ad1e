"""`prodcat ensemble`: average the class probabilities of several runs (heads, k-NN) with weights chosen on
validation macro-F1, into a run folder that `predict` accepts."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ProdcatError
from .reader import CachedDataset

log = logging.getLogger(__name__)

MEMBER_FILES = ("best.pt", "knn.json", "ensemble.json", "metrics.json", "config.yaml", "members")


@dataclass
class EnsembleResult:
    out_dir: Path
    metrics: dict
    weights: dict[str, float]  # member name -> weight


def split_probabilities(model, cached: CachedDataset, split: str) -> np.ndarray:
    """A model's class probabilities for one split of the cache."""
    X, _ = cached.split_arrays(split)
    return model.proba(X, cached.column("language", split))


def greedy_weights(probs: list[np.ndarray], y: np.ndarray, n_classes: int, rounds: int = 25) -> np.ndarray:
    """Ensemble selection (Caruana et al. 2004): start from the best member, then repeatedly add (with
    replacement) the member whose addition scores best on validation macro-F1; the weights are how often each
    was picked, at the best-scoring round."""
    from .metrics import macro_f1_fast

    def score(p):
        return macro_f1_fast(y, p.argmax(1), n_classes)

    counts = np.zeros(len(probs))
    first = int(np.argmax([score(p) for p in probs]))
    counts[first], total = 1, probs[first].astype(np.float64)
    best = (score(total), counts.copy())
    for _ in range(rounds):
        trial = [score(total + p) for p in probs]
        i = int(np.argmax(trial))
        counts[i] += 1
        total = total + probs[i]
        if trial[i] > best[0] + 1e-12:
            best = (trial[i], counts.copy())
    return best[1] / best[1].sum()


def ensemble(
    runs: list[str | Path], *, out: str | Path, cached: CachedDataset | None = None, device: str = "cpu"
) -> EnsembleResult:
    """Weights for `runs` chosen on the validation split of their cache; writes `out` (members copied inside,
    ensemble.json, metrics.json) atomically."""
    from .atomic import atomic_folder, write_json_atomic
    from .cache import TRAINING_COLUMNS
    from .metrics import classification_metrics
    from .models import ENSEMBLE_FORMAT, check_same_space, open_run
    from .reader import load_cache

    if len(runs) < 2:
        raise ProdcatError("an ensemble needs at least two runs: --runs A,B[,...]")
    models = [open_run(r, cached=cached, device=device) for r in runs]
    check_same_space(models)
    if cached is None:
        cached = load_cache(models[0].config, columns=TRAINING_COLUMNS)
    if models[0].cache_key != cached.key:
        raise ProdcatError("the runs were trained on another cache than the one given")
    if not cached.mask("validation").any():
        raise ProdcatError("the dataset has no validation split: ensemble weights are chosen on it")
    n = len(cached.label_names)
    y_val = cached.column("label", "validation")
    val_probs = [split_probabilities(m, cached, "validation") for m in models]
    weights = greedy_weights(val_probs, y_val, n)
    names = _member_names(runs, models)
    tc = models[0].config.train
    metrics = {}
    for split in ("validation", "test"):
        if not cached.mask(split).any():
            continue
        probs = val_probs if split == "validation" else [split_probabilities(m, cached, split) for m in models]
        avg = sum(w * p for w, p in zip(weights, probs, strict=True))
        langs = None if tc.no_lang_metrics else cached.column("language", split)
        metrics[split] = classification_metrics(
            cached.column("label", split), avg.argmax(1), cached.label_names, langs,
            lang_min_samples=tc.lang_min_samples,
        )  # fmt: skip
    members = [{"name": nm, "path": f"members/{nm}", "weight": float(w), "source": str(r)}
               for nm, w, r in zip(names, weights, runs, strict=True)]  # fmt: skip
    metrics |= {"head": "ensemble", "members": members, "encoder": cached.encoder.get("name"),
                "cache_key": cached.key, "label_names": cached.label_names}  # fmt: skip
    spec = {"format": ENSEMBLE_FORMAT, "members": [{k: m[k] for k in ("name", "path", "weight")} for m in members]}
    with atomic_folder(out) as tmp:
        for name, run in zip(names, runs, strict=True):
            _copy_run(Path(run), tmp / "members" / name)
        write_json_atomic(tmp / "ensemble.json", spec)
        write_json_atomic(tmp / "metrics.json", metrics)
    log.info("ensemble weights: %s", ", ".join(f"{n}={w:.2f}" for n, w in zip(names, weights, strict=True)))
    return EnsembleResult(Path(out), metrics, dict(zip(names, map(float, weights), strict=True)))


def _member_names(runs, models) -> list[str]:
    names, seen = [], set()
    for run, model in zip(runs, models, strict=True):
        base = Path(run).name or model.name
        name, i = base, 2
        while name in seen:
            name, i = f"{base}-{i}", i + 1
        seen.add(name)
        names.append(name)
    return names


def _copy_run(src: Path, dst: Path) -> None:
    """What predicting needs from a run (not last.pt or per-epoch checkpoints)."""
    if src.is_file():  # a checkpoint file
        dst.mkdir(parents=True)
        shutil.copy2(src, dst / "best.pt")
        return
    dst.mkdir(parents=True)
    for name in MEMBER_FILES:
        p = src / name
        if p.is_dir():
            shutil.copytree(p, dst / name)
        elif p.exists():
            shutil.copy2(p, dst / name)
