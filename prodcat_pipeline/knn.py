"""`prodcat knn-eval`: a FAISS k-nearest-neighbour baseline on the same cache (train split = the index)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import KnnConfig, PipelineConfig
from .errors import ProdcatError

log = logging.getLogger(__name__)


class KnnClassifier:
    """k-NN vote over cosine similarity with FAISS. `index`: flat (exact inner product on L2-normalised
    vectors), ivf (IndexIVFFlat, `nlist` cells, `nprobe` searched) or hnsw (IndexHNSWFlat, `hnsw_m`,
    `ef_search`). `weighting`: distance (each neighbour votes with its similarity) or uniform.

    Example:
        >>> clf = KnnClassifier(k=10).fit(X_train, y_train)
        >>> clf.predict(X_test)
    """

    def __init__(
        self,
        k: int = 10,
        index: str = "flat",
        weighting: str = "distance",
        nlist: int = 1024,
        nprobe: int = 16,
        hnsw_m: int = 32,
        ef_search: int = 128,
        threads: int | None = None,
    ):
        self.k, self.index, self.weighting = k, index, weighting
        self.nlist, self.nprobe, self.hnsw_m, self.ef_search = nlist, nprobe, hnsw_m, ef_search
        self.threads = threads

    @classmethod
    def from_config(cls, cfg: KnnConfig) -> KnnClassifier:
        return cls(**cfg.model_dump())

    def fit(self, X: np.ndarray, y: np.ndarray) -> KnnClassifier:
        import faiss

        if self.threads:
            faiss.omp_set_num_threads(self.threads)
        X = _prepare(X)
        y = np.asarray(y)
        if len(X) != len(y):
            raise ProdcatError(f"X has {len(X)} rows but y has {len(y)}")
        if len(X) == 0:
            raise ProdcatError("cannot fit k-NN on an empty training split")
        d = X.shape[1]
        t = time.perf_counter()
        if self.index == "flat":
            index = faiss.IndexFlatIP(d)
        elif self.index == "ivf":
            nlist = max(1, min(self.nlist, len(X) // 39))  # FAISS wants ~39 training points per cell
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
            index.train(X)
            index.nprobe = min(self.nprobe, nlist)
        elif self.index == "hnsw":
            index = faiss.IndexHNSWFlat(d, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efSearch = self.ef_search
        else:
            raise ProdcatError(f"unknown k-NN index '{self.index}': flat, ivf or hnsw")
        index.add(X)
        self.build_seconds_ = time.perf_counter() - t
        self.index_ = index
        self.labels_ = y.astype(np.int64)
        self.n_classes_ = int(self.labels_.max()) + 1
        return self

    def kneighbors(self, X: np.ndarray, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        if not hasattr(self, "index_"):
            raise ProdcatError("this KnnClassifier is not fitted yet: call fit(X, y) first")
        t = time.perf_counter()
        sims, ids = self.index_.search(_prepare(X), k or self.k)
        self.search_seconds_ = time.perf_counter() - t
        return sims, ids

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        sims, ids = self.kneighbors(X)
        valid = ids >= 0
        votes = np.where(valid, sims.clip(min=0) if self.weighting == "distance" else 1.0, 0.0)
        if self.weighting == "distance":
            votes = votes + valid * 1e-6  # all-zero similarities still vote
        scores = np.zeros((len(ids), self.n_classes_), dtype=np.float64)
        np.add.at(
            scores, (np.repeat(np.arange(len(ids)), ids.shape[1]), self.labels_[ids.clip(0)].ravel()), votes.ravel()
        )
        return scores / scores.sum(1, keepdims=True).clip(1e-12)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.predict_proba(X).argmax(1)


def _prepare(X: np.ndarray) -> np.ndarray:
    X = np.ascontiguousarray(X, dtype=np.float32)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.maximum(norms, 1e-12)


@dataclass
class KnnResult:
    out_dir: Path
    metrics: dict
    build_seconds: float
    search_seconds: float


def knn_eval(
    config: PipelineConfig | None = None,
    *,
    out: str | Path | None = None,
    cached=None,
    show_progress: bool | None = None,
) -> KnnResult:
    """Fit FAISS k-NN on the train split's cached vectors; evaluate validation and test; write metrics.json."""
    from .atomic import write_json_atomic
    from .cache import TRAINING_COLUMNS, open_cache
    from .config import load_config
    from .metrics import classification_metrics

    config = config or load_config()
    out = Path(out or Path(config.out) / "knn")
    if cached is None:
        cached, _ = open_cache(config, columns=TRAINING_COLUMNS, show_progress=show_progress)
    X_train, y_train = cached.split_arrays("train")
    clf = KnnClassifier.from_config(config.knn).fit(X_train, y_train)
    metrics, search_seconds = {}, 0.0
    tc = config.train
    for split in ("validation", "test"):
        m = cached.mask(split)
        if not m.any():
            continue
        X, y = cached.split_arrays(split)
        pred = clf.predict(X)
        search_seconds += clf.search_seconds_
        langs = None if tc.no_lang_metrics else cached.column("language", split)
        metrics[split] = classification_metrics(
            y, pred, cached.label_names, langs, lang_min_samples=tc.lang_min_samples
        )
    metrics.update(
        head="knn",
        encoder=cached.encoder.get("name"),
        cache_key=cached.key,
        dataset=cached.dataset.get("source"),
        epochs_run=0,
        train_seconds=round(clf.build_seconds_, 3),
        index_build_seconds=round(clf.build_seconds_, 3),
        search_seconds=round(search_seconds, 3),
        knn=config.knn.model_dump(),
        label_names=cached.label_names,
    )
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "metrics.json", metrics)
    return KnnResult(out, metrics, clf.build_seconds_, search_seconds)
