"""k-NN: prodcat's FAISS classifier against scikit-learn's brute-force cosine k-NN on the same cached vectors
(identical predictions expected; target ≥ 10x faster), then FAISS exact vs IVF and HNSW on the full 952k
synthetic cache: build time, search time and recall@k of the approximate indexes against the exact one.

    .venv/bin/python bench/knn_speed.py [--sk-train 100000] [--sk-queries 5000] [--queries 10000] [--k 10]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic import synthetic_cache  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--sk-train", type=int, default=100_000)
    ap.add_argument("--sk-queries", type=int, default=5_000)
    ap.add_argument("--queries", type=int, default=10_000)
    ap.add_argument("--skip-hnsw", action="store_true")
    args = ap.parse_args(argv)

    from sklearn.neighbors import KNeighborsClassifier

    from prodcat_pipeline.knn import KnnClassifier

    print(f"# k-NN — {time.strftime('%Y-%m-%d %H:%M')}\n")
    _, cached = synthetic_cache(args.dim)
    X, y = cached.split_arrays("train")
    Xq, yq = cached.split_arrays("validation")
    rng = np.random.default_rng(0)

    # ---- prodcat (FAISS flat) vs scikit-learn brute cosine, same subset, same k, uniform votes
    sub = rng.choice(len(X), args.sk_train, replace=False)
    q = rng.choice(len(Xq), args.sk_queries, replace=False)
    t = time.perf_counter()
    ours = KnnClassifier(k=args.k, weighting="uniform").fit(X[sub], y[sub])
    pred_ours = ours.predict(Xq[q])
    t_ours = time.perf_counter() - t
    t = time.perf_counter()
    sk = KNeighborsClassifier(n_neighbors=args.k, algorithm="brute", metric="cosine", weights="uniform").fit(
        X[sub], y[sub]
    )
    pred_sk = sk.predict(Xq[q])
    t_sk = time.perf_counter() - t
    agree = float(np.mean(pred_ours == pred_sk))
    print("| k-NN (fit + predict) | train | queries | seconds | predictions equal to sklearn | speed-up |")
    print("|---|---:|---:|---:|---:|---:|")
    print(
        f"| sklearn KNeighborsClassifier brute cosine | {args.sk_train:,} | {args.sk_queries:,} | {t_sk:.2f} | – | 1x |"
    )
    print(
        f"| prodcat KnnClassifier (FAISS IndexFlatIP) | {args.sk_train:,} | {args.sk_queries:,} | {t_ours:.2f} | "
        f"{agree:.2%} | {t_sk / t_ours:.1f}x |\n",
        flush=True,
    )

    # ---- exact vs approximate on the full cache
    q = rng.choice(len(Xq), min(args.queries, len(Xq)), replace=False)
    Q = Xq[q]
    exact = KnnClassifier(k=args.k, index="flat").fit(X, y)
    _, ids_exact = exact.kneighbors(Q)
    rows = [
        ("flat (exact)", exact.build_seconds_, exact.search_seconds_, 1.0, float(np.mean(exact.predict(Q) == yq[q])))
    ]
    variants = [
        ("ivf nlist=1024 nprobe=16", dict(index="ivf", nlist=1024, nprobe=16)),
        ("ivf nlist=1024 nprobe=64", dict(index="ivf", nlist=1024, nprobe=64)),
    ]
    if not args.skip_hnsw:
        variants.append(("hnsw M=16 efSearch=128", dict(index="hnsw", hnsw_m=16, ef_search=128)))
    for name, kw in variants:
        clf = KnnClassifier(k=args.k, **kw).fit(X, y)
        _, ids = clf.kneighbors(Q)
        recall = np.mean([len(set(a) & set(b)) / args.k for a, b in zip(ids, ids_exact, strict=True)])
        acc = float(np.mean(clf.predict(Q) == yq[q]))
        rows.append((name, clf.build_seconds_, clf.search_seconds_, float(recall), acc))
        print(f"  {name}: built", flush=True)
    print(
        f"\n| index ({len(X):,} x {X.shape[1]} train vectors, {len(Q):,} queries, k={args.k}) | build s | search s | "
        f"queries/s | recall@{args.k} vs exact | accuracy |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, build, search, recall, acc in rows:
        print(f"| {name} | {build:.1f} | {search:.2f} | {len(Q) / search:,.0f} | {recall:.3f} | {acc:.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
