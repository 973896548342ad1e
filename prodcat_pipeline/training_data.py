"""What the training loop reads: the training rows of a cached dataset as tensors (vectors stay
memory-mapped in the cache's dtype; batches gather rows by index), plus the evaluation splits."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .config import TrainConfig
from .errors import ProdcatError
from .inference import EvalSet
from .reader import CachedDataset, ResidentVectors, ShardedVectors, training_vectors


def dictionary_codes(column) -> np.ndarray:
    """Integer code per row (pyarrow dictionary encoding: no per-row Python)."""
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(pc.fill_null(pc.cast(column, "string"), "")).combine_chunks()
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)


def language_ids(cached: CachedDataset, train_mask: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Languages of the training split by frequency, and every row's index into that list (-1: unseen)."""
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(pc.fill_null(cached.rows["language"], "und")).combine_chunks()
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    names = encoded.dictionary.to_pylist()
    counts = np.bincount(codes[train_mask], minlength=len(names))
    order = [i for i in np.argsort(-counts, kind="stable") if counts[i] > 0]
    remap = np.full(len(names), -1, dtype=np.int64)
    remap[order] = np.arange(len(order))
    return [str(names[i]) for i in order], remap[codes]


@dataclass
class TrainingData:
    """Training rows as tensors on the training device, and lazily gathered evaluation splits."""

    cached: CachedDataset
    X: ShardedVectors | ResidentVectors  # take(vec) -> batch of vectors (CombinedVectors for several encoders)
    vec: object  # torch int64: each training row's index into X
    y: object  # torch int64 labels
    lang: object  # torch int64 language ids (index into `languages`)
    cluster: object  # torch int64 cluster codes
    weights: object | None  # torch float32 per-row loss weights
    y_np: np.ndarray
    lang_np: np.ndarray
    cluster_np: np.ndarray
    languages: list[str]  # training languages by frequency
    row_vec: np.ndarray  # every dataset row's vector index
    train_mask: np.ndarray
    lang_ids_all: np.ndarray
    teacher: object | None = None  # torch float32 teacher logits per training row
    built_for: tuple = ()  # data_settings(tc, device) of the build: what may reuse this view
    fitted: dict = field(default_factory=dict, repr=False)  # what callers fitted on these rows, to reuse (multihead)
    _eval: dict = field(default_factory=dict, repr=False)

    @property
    def n_rows(self) -> int:
        return len(self.y_np)

    @property
    def n_classes(self) -> int:
        return len(self.cached.label_names)

    def train_vectors(self) -> np.ndarray:
        """The training rows as one float32 array (only for the options that need them all at once)."""
        return self.cached.store.gather(self.row_vec[self.train_mask])

    def eval_splits(self) -> list[str]:
        return [s for s in ("validation", "test") if self.cached.mask(s).any()]

    def eval_set(self, split: str) -> EvalSet:
        """A split's rows, gathered on first use (so they do not delay the first training step)."""
        if split not in self._eval:
            m = self.cached.mask(split)
            dtype = np.dtype(self.cached.store.manifest.get("dtype", "float32"))
            self._eval[split] = EvalSet(
                self.cached.store.gather(self.row_vec[m], dtype),
                self.cached.column("label")[m],
                self.lang_ids_all[m],
                self.cached.column("language")[m],
            )
        return self._eval[split]


def data_settings(tc: TrainConfig, device: str) -> tuple:
    """The settings a training data view depends on (two configs with equal ones can share one view)."""
    return (device, tc.languages, tc.lang_loss_weights, tc.lang_class_weights)


def build_training_data(cached: CachedDataset, tc: TrainConfig, device: str) -> TrainingData:
    """The training view of `cached` for `tc` (language filter, loss weights) on `device`.

    The cache's shards are memory-mapped in their dtype (float16): nothing is copied or re-encoded before
    the first step; each batch gathers its rows by vector index and is cast as it is taken. An accelerator
    gets the training rows as one resident tensor instead.
    """
    import torch

    from .sampling import sample_weights

    train_mask = cached.mask("train")
    languages, lang_ids_all = language_ids(cached, train_mask)
    if tc.languages:
        unknown = [c for c in tc.languages if c not in languages]
        if unknown:
            raise ProdcatError(
                f"train.languages: {', '.join(unknown)} not in the training split; its languages: {', '.join(languages)}"
            )
        train_mask = train_mask & np.isin(lang_ids_all, [languages.index(c) for c in tc.languages])
    row_vec = cached.column("vec").astype(np.int64)
    y_np = cached.column("label")[train_mask]
    if len(np.unique(y_np)) < 2:
        raise ProdcatError("the training split needs at least two labels")
    if device == "cpu":
        X, vec = training_vectors(cached.store), torch.from_numpy(row_vec[train_mask])
    else:
        dtype = np.dtype(cached.store.manifest.get("dtype", "float32"))
        X = ResidentVectors(cached.store.gather(row_vec[train_mask], dtype=dtype), device)
        vec = torch.arange(int(train_mask.sum()), device=device)
    lang_np = lang_ids_all[train_mask]
    cluster_np = dictionary_codes(cached.rows["cluster"])[train_mask]
    weights = sample_weights(
        y_np, lang_np, len(cached.label_names), tc.lang_loss_weights, languages, tc.lang_class_weights
    )
    return TrainingData(
        cached=cached,
        X=X,
        vec=vec,
        y=torch.from_numpy(y_np).to(device),
        lang=torch.from_numpy(lang_np).to(device),
        cluster=torch.from_numpy(cluster_np).to(device),
        weights=torch.from_numpy(weights).to(device) if weights is not None else None,
        y_np=y_np,
        lang_np=lang_np,
        cluster_np=cluster_np,
        languages=languages,
        row_vec=row_vec,
        train_mask=train_mask,
        lang_ids_all=lang_ids_all,
        built_for=data_settings(tc, device),
    )
