"""prodcat: classify multilingual product titles; encode once into an embedding cache, train heads fast."""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = [
    "embed",
    "load_cache",
    "load_dataset",
    "load_config",
    "train",
    "knn_eval",
    "predict",
    "predict_file",
    "Classifier",
    "evaluate",
    "export_model",
    "run",
    "tune",
    "ensemble",
    "open_run",
    "ProdcatError",
]

_LAZY = {
    "embed": ".embedder",
    "load_cache": ".reader",
    "load_dataset": ".data",
    "load_config": ".config",
    "train": ".trainer",
    "knn_eval": ".knn",
    "predict": ".predictor",
    "predict_file": ".predictor",
    "Classifier": ".classifier",
    "evaluate": ".evaluation",
    "export_model": ".export",
    "run": ".pipeline",
    "tune": ".tuner",
    "ensemble": ".ensembles",
    "open_run": ".models",
    "ProdcatError": ".errors",
}

if TYPE_CHECKING:  # pragma: no cover
    from .classifier import Classifier
    from .config import load_config
    from .data import load_dataset
    from .embedder import embed
    from .errors import ProdcatError
    from .reader import load_cache


def __getattr__(name: str):
    # heavy dependencies (torch, sentence-transformers) load on first use, so `prodcat --help` is instant
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'prodcat_pipeline' has no attribute {name!r}")
