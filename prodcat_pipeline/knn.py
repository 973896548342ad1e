"""`prodcat knn-eval`: a FAISS k-nearest-neighbour baseline on the same cache (train split = the index)."""

from __future__ import annotations

import json
import logging
import math
import numbers
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import KnnConfig, PipelineConfig
from .errors import ProdcatError
from .metrics import macro_f1_fast
from .run_dirs import holds_run_folders, prepare_run_folder

log = logging.getLogger(__name__)

K_CANDIDATES = (5, 10, 20, 50, 100)  # searched on validation when knn.k is None (capped at the train size)
T_CANDIDATES = (0.02, 0.03, 0.05, 0.07, 0.1, 0.2)  # searched when knn.temperature is None
FALLBACK_K, FALLBACK_T = 20, 0.07  # without a validation split: within ~0.004 macro-F1 of the best on real data
WEIGHTINGS = ("softmax", "distance", "uniform")
KNN_FILE = "knn.json"
KNN_FORMAT = 1
INDEX_FIELDS = ("nlist", "nprobe", "hnsw_m", "ef_search")  # knn.json's "index": {"type": flat|ivf|hnsw, these}


class KnnClassifier:
    """k-NN vote over cosine similarity with FAISS. `index`: flat (exact inner product on L2-normalised
    vectors), ivf (IndexIVFFlat, `nlist` cells, `nprobe` searched) or hnsw (IndexHNSWFlat, `hnsw_m`,
    `ef_search`). `weighting`: softmax (each of the k neighbours votes exp(cos/temperature) for its label,
    the kNN protocol of self-supervised learning), distance (votes max(cos, 0)) or uniform (votes 1).

    Example:
        >>> clf = KnnClassifier(k=20, temperature=0.07).fit(X_train, y_train, n_classes=12)
        >>> clf.predict_proba(X_test)  # float32 (n, 12), rows sum to 1
    """

    def __init__(
        self,
        k: int = FALLBACK_K,
        temperature: float = FALLBACK_T,
        index: str = "flat",
        weighting: str = "softmax",
        nlist: int = 1024,
        nprobe: int = 16,
        hnsw_m: int = 32,
        ef_search: int = 128,
        threads: int | None = None,
    ):
        self.k, self.temperature, self.index, self.weighting = k, temperature, index, weighting
        self.nlist, self.nprobe, self.hnsw_m, self.ef_search = nlist, nprobe, hnsw_m, ef_search
        self.threads = threads

    @classmethod
    def from_config(cls, cfg: KnnConfig) -> KnnClassifier:
        """The classifier of a `knn` section; a k or temperature left to be chosen starts at the fallback."""
        settings = cfg.model_dump()
        settings["k"] = cfg.k if cfg.k is not None else FALLBACK_K
        settings["temperature"] = cfg.temperature if cfg.temperature is not None else FALLBACK_T
        return cls(**settings)

    def fit(self, X: np.ndarray, y: np.ndarray, n_classes: int | None = None) -> KnnClassifier:
        """Index X. `n_classes`: the number of labels (pass len(label_names): a class may have no train row);
        default max(y) + 1."""
        import faiss

        self._check_params()
        if self.threads:
            faiss.omp_set_num_threads(self.threads)
        X = _prepare(X)
        y = np.asarray(y).astype(np.int64)
        if len(X) != len(y):
            raise ProdcatError(f"X has {len(X)} rows but y has {len(y)}")
        if len(X) == 0:
            raise ProdcatError("cannot fit k-NN on an empty training split")
        n_classes = int(y.max()) + 1 if n_classes is None else int(n_classes)
        if y.min() < 0 or y.max() >= n_classes:
            raise ProdcatError(
                f"labels must lie in 0..{n_classes - 1} (n_classes={n_classes}), got {y.min()}..{y.max()}"
            )
        d = X.shape[1]
        t = time.perf_counter()
        if self.index == "flat":
            index = faiss.IndexFlatIP(d)
        elif self.index == "ivf":
            nlist = max(1, min(self.nlist, len(X) // 39))  # FAISS wants ~39 training points per cell
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
            index.train(X)
            index.nprobe = min(self.nprobe, nlist)
        else:
            index = faiss.IndexHNSWFlat(d, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efSearch = self.ef_search
        index.add(X)
        self.build_seconds_ = time.perf_counter() - t
        self.index_ = index
        self.labels_ = y
        self.n_classes_ = n_classes
        return self

    def _check_params(self) -> None:
        if self.index not in ("flat", "ivf", "hnsw"):
            raise ProdcatError(f"unknown k-NN index '{self.index}': flat, ivf or hnsw")
        if self.weighting not in WEIGHTINGS:
            raise ProdcatError(f"unknown k-NN weighting '{self.weighting}': softmax, distance or uniform")
        if not (isinstance(self.k, numbers.Integral) and self.k > 0):
            raise ProdcatError(f"k must be a positive integer, got {self.k!r}")
        if not (
            isinstance(self.temperature, numbers.Real) and math.isfinite(self.temperature) and self.temperature > 0
        ):
            raise ProdcatError(f"temperature must be a finite number > 0, got {self.temperature!r}")

    def kneighbors(self, X: np.ndarray, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(cosine similarities, train row ids) of the k nearest train rows, best first; id -1 = none."""
        self._check_fitted()
        X = _prepare(X)
        if X.shape[1] != self.index_.d:
            raise ProdcatError(f"X has {X.shape[1]} columns but the k-NN index holds {self.index_.d}-d vectors")
        t = time.perf_counter()
        sims, ids = self.index_.search(X, max(1, min(int(k or self.k), self.index_.ntotal)))  # no -1 padding
        self.search_seconds_ = time.perf_counter() - t
        return sims, ids

    def _check_fitted(self) -> None:
        if not hasattr(self, "index_"):
            raise ProdcatError("this KnnClassifier is not fitted yet: call fit(X, y) first")

    def proba_from_neighbours(self, sims: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """predict_proba from a kneighbors() result with at least k columns (only the first k vote)."""
        p = neighbour_proba(sims, ids, self.labels_, self.n_classes_, self.k, self.temperature, self.weighting)
        return p.astype(np.float32)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """float32 (n, n_classes): each row's normalised votes (uniform for a row without any neighbour)."""
        return self.proba_from_neighbours(*self.kneighbors(X))

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.predict_proba(X).argmax(1)


def _prepare(X: np.ndarray) -> np.ndarray:
    X = np.ascontiguousarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ProdcatError(f"expected a 2-D array of vectors (n, dim), got shape {X.shape}; reshape one with x[None]")
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.maximum(norms, 1e-12)


def neighbour_proba(
    sims: np.ndarray, ids: np.ndarray, labels: np.ndarray, n_classes: int, k: int, temperature: float, weighting: str
) -> np.ndarray:
    """(n, n_classes) float64: `neighbour_scores` normalised per row. Rows with no neighbour get 1/n_classes."""
    scores = neighbour_scores(sims, ids, labels, n_classes, k, temperature, weighting)
    total = scores.sum(1, keepdims=True)
    return np.where(total > 0, scores / np.where(total > 0, total, 1.0), 1.0 / n_classes)


def neighbour_scores(
    sims: np.ndarray, ids: np.ndarray, labels: np.ndarray, n_classes: int, k: int, temperature: float, weighting: str
) -> np.ndarray:
    """(n, n_classes) float64 vote totals: the first k neighbours of each row vote for their label, exp(cos/T)
    (softmax), max(cos, 0) (distance) or 1 (uniform). Their argmax is the prediction."""
    sims = np.asarray(sims[:, :k], dtype=np.float64)
    ids = np.asarray(ids[:, :k])
    valid = ids >= 0
    if weighting == "softmax":  # exp((cos - best)/T): the same ratios as exp(cos/T), and no overflow at small T
        best = np.where(valid, sims, -np.inf).max(1, initial=-np.inf, keepdims=True)
        best = np.where(np.isfinite(best), best, 0.0)
        votes = np.exp((np.where(valid, sims, best) - best) / temperature)
    elif weighting == "distance":
        votes = sims.clip(min=0) + 1e-6  # all-zero similarities still vote
    else:
        votes = np.ones_like(sims)
    votes = np.where(valid, votes, 0.0)
    n = len(ids)
    cell = (np.arange(n)[:, None] * n_classes + labels[ids.clip(0)]).ravel()  # row * n_classes + label
    return np.bincount(cell, weights=votes.ravel(), minlength=n * n_classes).reshape(n, n_classes)


def score_grid(clf: KnnClassifier, sims, ids, y, ks, temperatures) -> tuple[int, float, list[dict]]:
    """(k, T, table): the (k, T) with the best macro-F1 on (sims, ids, y), one neighbour list with >= max(ks)
    columns; ties go to the smaller k, then to the temperature nearest the fallback 0.07. `table` has one
    {"k", "temperature", "macro_f1", "micro_f1"} per pair, in the order of ks and temperatures."""
    table = []
    for k in ks:
        for t in temperatures:
            pred = neighbour_scores(sims, ids, clf.labels_, clf.n_classes_, k, t, clf.weighting).argmax(1)
            row = {"k": int(k), "temperature": float(t), "macro_f1": macro_f1_fast(y, pred, clf.n_classes_)}
            table.append(row | {"micro_f1": float((pred == y).sum() / max(len(y), 1))})  # = accuracy
    best = min(table, key=lambda r: (-r["macro_f1"], r["k"], abs(math.log(r["temperature"] / FALLBACK_T))))
    return best["k"], best["temperature"], table


def _search_grid(clf, X_val, y_val, ks, temperatures):
    clf._check_fitted()
    y_val = np.asarray(y_val, np.int64)
    if len(y_val) != len(X_val) or (len(y_val) and not 0 <= y_val.min() <= y_val.max() < clf.n_classes_):
        raise ProdcatError(f"y_val must hold one label id in 0..{clf.n_classes_ - 1} per row of X_val ({len(X_val)})")
    ks = sorted({max(1, min(int(k), len(clf.labels_))) for k in ks})
    temperatures = list(temperatures) if clf.weighting == "softmax" else [clf.temperature]
    sims, ids = clf.kneighbors(X_val, max(ks))  # the one search: every smaller k is a prefix of it
    return (*score_grid(clf, sims, ids, y_val, ks, temperatures), sims, ids)


def select_k_temperature(
    clf: KnnClassifier, X_val: np.ndarray, y_val: np.ndarray, ks=K_CANDIDATES, temperatures=T_CANDIDATES
) -> tuple[int, float, list[dict]]:
    """(k, T, table) with the best validation macro-F1 of a fitted classifier; one FAISS search with the
    largest k (ks capped at the train size). The temperature is searched only for softmax weighting (else T is
    clf.temperature). The classifier is not changed: set clf.k, clf.temperature = k, T to use them.

    Example:
        >>> k, t, table = select_k_temperature(clf, X_val, y_val)
    """
    k, t, table, _, _ = _search_grid(clf, X_val, y_val, ks, temperatures)
    return k, t, table


@dataclass
class KnnResult:
    out_dir: Path
    metrics: dict
    build_seconds: float
    search_seconds: float
    classifier: KnnClassifier | None = None


def _choose(clf: KnnClassifier, kc: KnnConfig, val, candidates=None) -> tuple[dict, list[dict] | None, tuple | None]:
    """Set clf.k and clf.temperature: a value set in the config is kept; the others are chosen on the
    validation split (`val` = (X, y), or None: fallbacks) among `candidates` = (ks, temperatures), by default
    K_CANDIDATES x T_CANDIDATES. Returns (how each was chosen, table, neighbours)."""
    search_k = kc.k is None and val is not None
    search_t = kc.temperature is None and val is not None and clf.weighting == "softmax"  # else T has no effect
    how = {
        "k": "validation" if search_k else "fallback" if kc.k is None else "set",
        "temperature": "validation" if search_t else "fallback" if kc.temperature is None else "set",
    }
    if not (search_k or search_t):
        return how, None, None
    all_ks, all_ts = candidates or (K_CANDIDATES, T_CANDIDATES)
    ks = all_ks if search_k else [clf.k]
    ts = all_ts if search_t else [clf.temperature]
    clf.k, clf.temperature, table, sims, ids = _search_grid(clf, *val, ks, ts)
    if not search_k:
        clf.k = kc.k  # as set (the search capped its candidates at the train size; predictions are the same)
    log.info("k-NN: chose k=%d, T=%g on validation (macro-F1 %.4f)", clf.k, clf.temperature,
             max(r["macro_f1"] for r in table))  # fmt: skip
    return how, table, (sims, ids)


@holds_run_folders
def knn_eval(
    config: PipelineConfig | None = None,
    *,
    out: str | Path | None = None,
    cached=None,
    show_progress: bool | None = None,
    candidates: tuple[list, list] | None = None,
    overwrite: bool = False,
) -> KnnResult:
    """Fit FAISS k-NN on the train split's cached vectors, choose k and T on validation (unless set; among
    `candidates` = (ks, temperatures) when given), evaluate validation and test; write metrics.json and
    knn.json (what load_knn rebuilds the classifier from) into `out` (a folder holding a run is refused unless
    `overwrite`). metrics["knn"]["validation_search"] holds the score of every (k, T) tried."""
    from .atomic import write_json_atomic
    from .cache import TRAINING_COLUMNS, open_cache
    from .config import load_config
    from .metrics import classification_metrics
    from .provenance import command_line

    config = config or load_config()
    out = Path(out or Path(config.out) / "knn")
    prepare_run_folder(out, overwrite=overwrite)
    if cached is None:
        cached, _ = open_cache(config, columns=TRAINING_COLUMNS, show_progress=show_progress)
    X_train, y_train = cached.split_arrays("train")
    kc = config.knn
    if kc.k is not None and kc.k > len(X_train) > 0:  # the search is capped at the train size (kneighbors)
        log.warning("knn.k=%d is more than the %d training rows: every training row votes", kc.k, len(X_train))
    clf = KnnClassifier.from_config(kc).fit(X_train, y_train, n_classes=len(cached.label_names))
    val = cached.split_arrays("validation") if cached.mask("validation").any() else None
    how, table, neighbours = _choose(clf, kc, val, candidates)
    search_seconds = clf.search_seconds_ if neighbours else 0.0
    metrics, tc = {}, config.train
    for split in ("validation", "test"):
        if not cached.mask(split).any():
            continue
        X, y = val if split == "validation" else cached.split_arrays(split)
        if split == "validation" and neighbours:  # the selection's neighbour list: no second search
            pred = clf.proba_from_neighbours(*neighbours).argmax(1)
        else:
            pred = clf.predict(X)
            search_seconds += clf.search_seconds_
        langs = None if tc.no_lang_metrics else cached.column("language", split)
        metrics[split] = classification_metrics(
            y, pred, cached.label_names, langs, lang_min_samples=tc.lang_min_samples
        )
    chosen = {"k": clf.k, "temperature": clf.temperature, "k_chosen_by": how["k"]}
    chosen["temperature_chosen_by"] = how["temperature"]
    metrics.update(
        head="knn",
        encoder=cached.encoder.get("name"),
        cache_key=cached.key,
        dataset=cached.dataset.get("source"),
        epochs_run=0,
        train_seconds=round(clf.build_seconds_, 3),
        index_build_seconds=round(clf.build_seconds_, 3),
        search_seconds=round(search_seconds, 3),
        knn={**kc.model_dump(), **chosen, **({"validation_search": table} if table else {})},
        label_names=cached.label_names,
        command=command_line(),
    )
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "metrics.json", metrics)
    write_json_atomic(out / KNN_FILE, knn_document(clf, config, cached, how))
    return KnnResult(out, metrics, clf.build_seconds_, search_seconds, clf)


def knn_document(clf: KnnClassifier, config: PipelineConfig, cached, how: dict | None = None) -> dict:
    """knn.json: the settings that rebuild `clf` from the train split of the cache `cached.key`."""
    return {
        "format": KNN_FORMAT,
        "head": "knn",
        "k": int(clf.k),
        "temperature": float(clf.temperature),
        "weighting": clf.weighting,
        "index": {"type": clf.index, **{name: getattr(clf, name) for name in INDEX_FIELDS}},
        "chosen_by": how or {},
        "config": config.model_dump(mode="json"),
        "cache_key": cached.key,
        "encoder": cached.encoder,
        "label_names": list(cached.label_names),
    }


def load_knn(run_folder: str | Path, cached) -> KnnClassifier:
    """The fitted classifier of a knn-eval run folder (or its knn.json): its k, T and index settings, refit on
    the train split of `cached`, which must be the cache it was made from.

    Example:
        >>> clf = load_knn("runs/sample/knn", load_cache(cfg))
        >>> clf.predict_proba(X)
    """
    run = Path(run_folder)
    path = run if run.is_file() else run / KNN_FILE
    doc, settings = read_knn_document(path)
    return refit_knn(path, doc, settings, cached)


def refit_knn(path: Path, doc: dict, settings: KnnConfig, cached) -> KnnClassifier:
    """The classifier a checked knn.json (`read_knn_document`) describes, fitted on the train split of `cached`,
    which must be the cache it was made from."""
    if doc["cache_key"] != cached.key:
        raise ProdcatError(
            f"{path} was made from vectors of encoder '{doc['encoder'].get('name')}' (cache {doc['cache_key']}), "
            f"not '{cached.encoder.get('name')}' (cache {cached.key}); use the same --model and data"
        )
    if doc["label_names"] != list(cached.label_names):
        raise ProdcatError(f"{path} was made for {len(doc['label_names'])} other labels than this dataset's "
                           f"{len(cached.label_names)}; use the dataset it was made from")  # fmt: skip
    X_train, y_train = cached.split_arrays("train")
    return KnnClassifier.from_config(settings).fit(X_train, y_train, n_classes=len(doc["label_names"]))


def read_knn_document(path: Path) -> tuple[dict, KnnConfig]:
    """(knn.json as a dict, its k-NN settings validated), or ProdcatError naming the file and the fix."""
    from pydantic import ValidationError

    fix = "run `prodcat knn-eval` again to rewrite it"
    if not path.is_file():
        raise ProdcatError(f"no k-NN model at {path}: run `prodcat knn-eval --out {path.parent}` first")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProdcatError(f"cannot read {path}: not valid JSON ({type(exc).__name__}); {fix}") from exc
    if not isinstance(doc, dict) or doc.get("head") != "knn" or doc.get("format") != KNN_FORMAT:
        raise ProdcatError(f'{path} is not a prodcat k-NN file (format {KNN_FORMAT}, "head": "knn"); {fix}')
    missing = [key for key in ("k", "temperature", "weighting", "index", "cache_key", "encoder", "label_names")
               if key not in doc]  # fmt: skip
    if missing:
        raise ProdcatError(f"{path} lacks {', '.join(missing)}; {fix}")
    index = doc["index"] if isinstance(doc["index"], dict) else {}
    kinds = {"cache_key": str, "encoder": dict, "label_names": list}
    wrong = [key for key, kind in kinds.items() if not isinstance(doc[key], kind)] + ([] if index else ["index"])
    if wrong:
        raise ProdcatError(f"{path} has a malformed {', '.join(wrong)}; {fix}")
    fields = {name: index[name] for name in INDEX_FIELDS if name in index}
    try:
        settings = KnnConfig(k=doc["k"], temperature=doc["temperature"], weighting=doc["weighting"],
                             index=index.get("type"), **fields)  # fmt: skip
    except ValidationError as exc:
        from .config import _describe

        raise ProdcatError(f"{path}: {_describe(exc)}; {fix}") from None
    if settings.k is None or settings.temperature is None:
        raise ProdcatError(f"{path}: k and temperature must be numbers, got {doc['k']!r} and {doc['temperature']!r}")
    return doc, settings
