"""Synthetic LSPC-style data made by the project itself (not part of the runtime pipeline): the bundled
sample in data/lspc_sample and the 952k-row corpus of the scale benchmarks.

    python -m prodcat_pipeline.synthetic --rows 6000 --seed 0 --out data/lspc_sample
"""

from __future__ import annotations

import argparse

import numpy as np
import pyarrow as pa

from ..splits import SPLITS, split_groups
from .datasetdict import write_lspc_datasetdict
from .titles import generate_titles
from .vocab import LABEL_NAMES, LANGUAGE_P, LANGUAGES

__all__ = ["LABEL_NAMES", "LANGUAGES", "LANGUAGE_P", "SPLITS", "generate_titles", "split_by_cluster",
           "write_lspc_datasetdict", "main"]  # fmt: skip


def split_by_cluster(
    table: pa.Table, fractions=(0.85, 0.05, 0.10), seed: int = 0, minority_fractions=None
) -> dict[str, pa.Table]:
    """Deal whole clusters to train/validation/test (the loader's grouped split, stratified by language), so
    each language's rows split by `fractions` (`minority_fractions` for every language but English); a
    language with at least three clusters gets at least one in every split."""
    clusters = table.column("cluster").to_numpy()
    ids, first, inv, sizes = np.unique(clusters, return_index=True, return_inverse=True, return_counts=True)
    langs = np.array([LANGUAGES.index(c) for c in table.column("language").to_pylist()])[first]
    per_language = np.array([fractions if code == "en" or minority_fractions is None else minority_fractions
                             for code in LANGUAGES])  # fmt: skip
    rows = split_groups(sizes, langs, per_language, seed)[inv.ravel()]
    return {name: table.filter(pa.array(rows == i)) for i, name in enumerate(SPLITS)}


def _fractions(text: str) -> tuple[float, float, float]:
    parts = tuple(float(p) for p in text.split(","))
    if len(parts) != 3 or abs(sum(parts) - 1) > 1e-6 or min(parts) < 0:
        raise argparse.ArgumentTypeError(f"expected three fractions summing to 1, like 0.6,0.2,0.2; got {text}")
    return parts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m prodcat_pipeline.synthetic", description=__doc__)
    ap.add_argument("--rows", type=int, default=6000, help="number of offers to generate (default 6000)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ap.add_argument("--duplicate-rate", type=float, default=0.3, help="share of exact-duplicate offers")
    ap.add_argument("--split", type=_fractions, default=(0.85, 0.05, 0.10), help="train,validation,test shares")
    ap.add_argument(
        "--minority-split", type=_fractions, default=None,
        help="shares for the non-English languages (default: --split), e.g. 0.6,0.2,0.2 so small languages "
        "have enough validation and test rows to be measured",
    )  # fmt: skip
    ap.add_argument("--out", default="data/lspc_sample", help="output DatasetDict folder")
    args = ap.parse_args(argv)
    table = generate_titles(args.rows, seed=args.seed, duplicate_rate=args.duplicate_rate)
    splits = split_by_cluster(table, args.split, seed=args.seed, minority_fractions=args.minority_split)
    out = write_lspc_datasetdict(splits, args.out, LABEL_NAMES)
    print(f"wrote {out}: " + ", ".join(f"{k}={v.num_rows}" for k, v in splits.items()))
    return 0
