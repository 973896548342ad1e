"""Grouped train/validation/test splits: whole groups (product clusters) are dealt to splits so that each
stratum's *rows* follow the wanted fractions. Shared by the data loader and the synthetic-data generator."""

from __future__ import annotations

import numpy as np

SPLITS = ("train", "validation", "test")


def assign_by_rows(sizes: np.ndarray, fractions, rng: np.random.Generator) -> np.ndarray:
    """Give each group a class (an index into `fractions`) so that the classes' row shares follow
    `fractions`: groups in random order, each to the class its row midpoint falls into."""
    perm = rng.permutation(len(sizes))
    s = sizes[perm].astype(np.float64)
    mid = (np.cumsum(s) - s / 2) / max(s.sum(), 1.0)
    out = np.empty(len(sizes), dtype=np.int64)
    out[perm] = np.minimum(np.searchsorted(np.cumsum(fractions), mid, side="right"), len(fractions) - 1)
    return out


def split_groups(sizes: np.ndarray, strata: np.ndarray, fractions, seed: int) -> np.ndarray:
    """Split index (0 train, 1 validation, 2 test) of every group.

    `sizes`: rows per group; `strata`: each group's stratum code (e.g. its label); `fractions`: one
    (train, validation, test) triple, or one row per stratum code. Within each stratum the rows split by
    the fractions (seeded); a stratum with at least three groups gets at least one group in every split
    whose fraction is above 0.
    """
    rng = np.random.default_rng(seed)
    table = np.atleast_2d(np.asarray(fractions, dtype=np.float64))
    out = np.zeros(len(sizes), dtype=np.int64)
    for stratum in np.unique(strata):
        idx = np.flatnonzero(strata == stratum)
        wanted = table[stratum if len(table) > 1 else 0]
        d = assign_by_rows(sizes[idx], wanted, rng)
        if len(idx) >= len(SPLITS):
            for k in np.flatnonzero(wanted > 0):
                if not (d == k).any():  # move the fullest split's smallest group here
                    donors = np.flatnonzero(d == np.bincount(d, minlength=len(SPLITS)).argmax())
                    d[donors[np.argmin(sizes[idx][donors])]] = k
        out[idx] = d
    return out
