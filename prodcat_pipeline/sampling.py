"""Language-aware training: temperature sampling over languages, loss weights, centring statistics, maps onto
English."""

from __future__ import annotations

import numpy as np

from .errors import ProdcatError


class LanguageSampler:
    """Per-epoch order of training rows.

    With temperature T = 1 an epoch is a plain permutation (natural frequencies). Otherwise each row is
    drawn with replacement with probability q_lang / n_lang, where q_lang is proportional to n_lang ** T:
    T = 0 gives every language the same share, 0 < T < 1 flattens the skew.
    """

    def __init__(self, lang_ids: np.ndarray, n_languages: int, temperature: float = 1.0):
        self.n = len(lang_ids)
        self.temperature = float(temperature)
        self.probabilities = None
        if self.temperature != 1.0:
            counts = np.bincount(lang_ids[lang_ids >= 0], minlength=n_languages).astype(np.float64)
            share = np.where(counts > 0, counts**self.temperature, 0.0)
            share /= share.sum()
            per_row = np.where(lang_ids >= 0, share[lang_ids.clip(0)] / counts[lang_ids.clip(0)].clip(1), 0.0)
            self.language_share = share
            self.probabilities = per_row / per_row.sum()

    def epoch_order(self, rng: np.random.Generator) -> np.ndarray:
        if self.probabilities is None:
            return rng.permutation(self.n)
        return rng.choice(self.n, size=self.n, replace=True, p=self.probabilities)


def sample_weights(
    labels: np.ndarray,
    lang_ids: np.ndarray,
    n_classes: int,
    lang_loss_weights: str | dict[str, float] | None,
    languages: list[str],
    lang_class_weights: bool = False,
) -> np.ndarray | None:
    """Per-row loss weights (None = all ones).

    `auto`: each language weighted by sqrt(n_largest / n_lang), capped at 10; explicit {code: weight} pairs
    (validated by the config) set them directly (unlisted languages keep 1). `lang_class_weights`: within each language, class c
    is weighted n_lang / (k_lang * n_lang_c) (balanced), capped at 10.
    """
    if not lang_loss_weights and not lang_class_weights:
        return None
    w = np.ones(len(labels), dtype=np.float64)
    counts = np.bincount(lang_ids[lang_ids >= 0], minlength=len(languages)).astype(np.float64)
    if lang_loss_weights:
        if lang_loss_weights == "auto":
            per_lang = np.sqrt(counts.max() / counts.clip(1)).clip(max=10.0)
        else:
            unknown = [code for code in lang_loss_weights if code not in languages]
            if unknown:
                raise ProdcatError(
                    f"train.lang_loss_weights: language '{unknown[0]}' is not in the training data "
                    f"({', '.join(languages)})"
                )
            per_lang = np.array([lang_loss_weights.get(code, 1.0) for code in languages])
        w *= np.where(lang_ids >= 0, per_lang[lang_ids.clip(0)], 1.0)
    if lang_class_weights:
        pair = lang_ids.clip(0) * n_classes + labels
        pair_counts = np.bincount(pair, minlength=len(languages) * n_classes).reshape(len(languages), n_classes)
        k = (pair_counts > 0).sum(1).clip(1)
        cw = (pair_counts.sum(1, keepdims=True) / (k[:, None] * pair_counts.clip(1))).clip(max=10.0)
        w *= cw[lang_ids.clip(0), labels]
    if not w.sum() > 0:
        raise ProdcatError("language/class loss weights are 0 for every training row: give some language a weight > 0")
    return (w / w.mean()).astype(np.float32)


def language_statistics(X: np.ndarray, lang_ids: np.ndarray, n_languages: int, n_directions: int = 0):
    """Mean vector per language (on the training rows) and the top `n_directions` directions that separate
    the languages' means (principal axes of the centred means), as orthonormal rows."""
    dim = X.shape[1]
    means = np.zeros((n_languages, dim), dtype=np.float32)
    for i in range(n_languages):
        m = lang_ids == i
        if m.any():
            means[i] = X[m].mean(0, dtype=np.float64)
    directions = np.zeros((n_directions, dim), dtype=np.float32)
    if n_directions:
        present = means[np.bincount(lang_ids[lang_ids >= 0], minlength=n_languages) > 0]
        centred = present - present.mean(0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        k = min(n_directions, len(vt))
        directions[:k] = vt[:k]
    return means, directions


ALIGN_RIDGE = 10.0  # lambda of alignment_maps: best of 0.1-30 on the taxonomy validation split (BENCHMARKS §5)
ALIGN_MIN_PAIRS = 50  # a language with fewer pairs keeps the identity


def alignment_maps(
    X: np.ndarray,
    lang_ids: np.ndarray,
    clusters: np.ndarray,
    n_languages: int,
    pivot: int,
    ridge: float = ALIGN_RIDGE,
    min_pairs: int = ALIGN_MIN_PAIRS,
) -> np.ndarray:
    """(n_languages, dim, dim) linear maps of each language onto the `pivot` language (English).

    Pairs come from clusters: a row of language L whose cluster also holds pivot rows is paired with the
    mean pivot vector of that cluster. W_L = argmin ||X_L W - Y||^2 + ridge ||W - I||^2, i.e.
    (X_L'X_L + ridge I)^-1 (X_L'Y + ridge I): shrunk towards the identity, so few pairs change little. The
    pivot, languages with fewer than `min_pairs` pairs, and rows without a cluster (code < 0) keep I."""
    dim = X.shape[1]
    maps = np.tile(np.eye(dim, dtype=np.float32), (n_languages, 1, 1))
    on_pivot = (lang_ids == pivot) & (clusters >= 0)
    codes, inverse = np.unique(clusters[on_pivot], return_inverse=True)
    if not len(codes):
        return maps
    targets = np.zeros((len(codes), dim))
    np.add.at(targets, inverse, X[on_pivot])
    targets /= np.bincount(inverse)[:, None]
    eye = np.eye(dim)
    for i in range(n_languages):
        rows = np.flatnonzero((lang_ids == i) & (clusters >= 0)) if i != pivot else np.empty(0, np.int64)
        at = np.searchsorted(codes, clusters[rows]).clip(max=len(codes) - 1)
        paired = codes[at] == clusters[rows]
        if paired.sum() < min_pairs:
            continue
        A, B = X[rows[paired]].astype(np.float64), targets[at[paired]]
        maps[i] = np.linalg.solve(A.T @ A + ridge * eye, A.T @ B + ridge * eye)
    return maps


def pair_with_cluster_mates(
    anchors: np.ndarray, clusters: np.ndarray, labels: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """[a1, m1, a2, m2, ...]: each anchor row followed by a mate, so every contrastive batch holds positives.

    The mate is another row of the anchor's cluster (for parallel data: the same product in another
    language) or, for a row alone in its cluster, a random row with the same label. The result has the
    length of `anchors` (it takes the first half of them as anchors)."""
    n = len(anchors)
    anchors = anchors[: (n + 1) // 2]
    mates = _random_mates(anchors, clusters, rng)
    alone = mates == anchors
    if alone.any():
        mates[alone] = _random_mates(anchors[alone], labels, rng)
    out = np.empty(2 * len(anchors), dtype=np.int64)
    out[0::2], out[1::2] = anchors, mates
    return out[:n]


def _random_mates(rows: np.ndarray, groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each row, a uniformly drawn *other* member of its group (itself when the group has one member)."""
    order = np.argsort(groups, kind="stable")
    sorted_groups = groups[order]
    starts = np.searchsorted(sorted_groups, groups[rows], side="left")
    sizes = np.searchsorted(sorted_groups, groups[rows], side="right") - starts
    position = np.empty(len(groups), dtype=np.int64)
    position[order] = np.arange(len(groups))
    own = position[rows] - starts
    step = 1 + (rng.random(len(rows)) * np.maximum(sizes - 1, 1)).astype(np.int64)
    pick = np.where(sizes > 1, (own + step) % sizes, own)
    return order[starts + pick]
