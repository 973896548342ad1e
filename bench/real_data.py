"""Heads vs baselines on the real data in ../shared/data (validation protocol: fit on train, report validation).

    .venv/bin/python bench/real_data.py [--models use-multilingual,minilm] [--epochs 40]

For MWPD2020 (English offers, 37 GS1 classes) and the Google taxonomy (7 languages, 21 classes) it trains
prodcat's linear, v2 and v3 heads and the FAISS k-NN baseline on one embedding cache, and measures in the
same run two baselines: scikit-learn LogisticRegression on the same cached vectors (C picked on
validation, like the heads' early stopping) and fastText supervised on the raw titles (when installed).
Prints one table per dataset (validation macro-F1, micro-F1, non-English mean) and the best head's margin.
Skips cleanly when ../shared/data is absent.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
DATASETS = {
    "mwpd": {
        "path": SHARED / "mwpd2020_task2_wdc_gs1" / "mwpd2020_task2.parquet",
        "data": {"text_column": "title", "cluster_column": "source_id"},
    },
    "taxonomy": {
        "path": SHARED / "google_taxonomy" / "google_taxonomy.parquet",
        "data": {"text_column": "text", "cluster_column": "group_id"},
    },
}


def logistic_regression(cached):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    X, y = cached.split_arrays("train")
    Xv, yv = cached.split_arrays("validation")
    best = None
    t = time.perf_counter()
    for C in (1.0, 10.0, 100.0):
        clf = LogisticRegression(C=C, max_iter=2000).fit(X, y)
        pred = clf.predict(Xv)
        score = f1_score(yv, pred, average="macro", zero_division=0)
        if best is None or score > best[0]:
            best = (score, C, pred)
    return best[2], yv, time.perf_counter() - t, f"C={best[1]:g}"


def fasttext_baseline(path, text_column, cached):
    try:
        import fasttext
    except ImportError:
        return None
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    texts = pc.replace_substring_regex(pc.utf8_lower(table[text_column]), r"\s+", " ").to_pylist()
    labels = cached.rows["label"].to_numpy()  # same row order as the file
    split = table["split"].to_pylist()
    with tempfile.TemporaryDirectory() as tmp:
        train_file = Path(tmp) / "train.txt"
        with open(train_file, "w", encoding="utf-8") as fh:
            for t, y, s in zip(texts, labels, split, strict=True):
                if s == "train":
                    fh.write(f"__label__{y} {t}\n")
        t0 = time.perf_counter()
        model = fasttext.train_supervised(
            str(train_file), epoch=25, lr=0.5, wordNgrams=2, minn=2, maxn=5, dim=100, verbose=0, thread=2, seed=0
        )
        seconds = time.perf_counter() - t0
    val = [i for i, s in enumerate(split) if s == "validation"]
    # the low-level call: fastText's own predict() breaks on NumPy 2 (np.array(copy=False))
    pred = np.array([int(model.f.predict(texts[i], 1, 0.0, "strict")[0][1].replace("__label__", "")) for i in val])
    return pred, labels[val], seconds


def row(name, y_true, y_pred, languages, seconds, note=""):
    from sklearn.metrics import f1_score

    from prodcat_pipeline.metrics import non_english_mean, per_language_f1

    per_lang = per_language_f1(y_true, y_pred, languages, lang_min_samples=20) if languages is not None else {}
    return {
        "model": name,
        "val_macro_f1": f1_score(y_true, y_pred, average="macro", zero_division=0),
        "val_micro_f1": f1_score(y_true, y_pred, average="micro", zero_division=0),
        "non_en_macro_f1": non_english_mean(per_lang),
        "seconds": seconds,
        "note": note,
    }


def from_metrics(m, note=""):
    from prodcat_pipeline.metrics import non_english_mean

    v = m["validation"]
    return {
        "model": m["head"],
        "val_macro_f1": v["macro_f1"],
        "val_micro_f1": v["micro_f1"],
        "non_en_macro_f1": non_english_mean(v.get("per_language", {})),
        "seconds": m["train_seconds"],
        "note": note,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="use-multilingual", help="comma-separated encoders")
    ap.add_argument("--datasets", default="mwpd,taxonomy")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "real_data"))
    args = ap.parse_args(argv)
    if not SHARED.exists():
        print(f"skipped: {SHARED} not found (the real data lives beside the project root)")
        return 0

    from prodcat_pipeline.config import PipelineConfig, train_config_for
    from prodcat_pipeline.embedder import embed
    from prodcat_pipeline.knn import knn_eval
    from prodcat_pipeline.pipeline import format_markdown
    from prodcat_pipeline.trainer import train

    for ds_name in args.datasets.split(","):
        spec = DATASETS[ds_name]
        if not spec["path"].exists():
            print(f"skipped {ds_name}: {spec['path']} not found")
            continue
        for model in args.models.split(","):
            cfg = PipelineConfig()
            cfg.data.path = str(spec["path"])
            for k, v in spec["data"].items():
                setattr(cfg.data, k, v)
            cfg.encoder.model = model
            cfg.cache.dir = args.cache_dir
            cfg.train.epochs = args.epochs
            cfg.train.early_stopping_patience = 8
            cfg.train.batch_size = 128
            cfg.train.lr = 2e-3
            cfg.train.lr_warmup_steps = 50
            cfg.train.label_smoothing = 0.05
            cfg.train.classifier_dropout = 0.2
            cfg.train.lang_min_samples = 20
            cfg.head_overrides = {"linear": {"lr": 2e-2}}
            out = Path(args.out) / ds_name / model
            emb = embed(cfg)
            cached = emb.cached
            langs_val = cached.column("language", "validation")
            rows = []
            for head in ("linear", "v2", "v3"):
                res = train(train_config_for(cfg, head), out=out / head, cached=cached)
                rows.append(from_metrics(res.metrics, f"best epoch {res.best_epoch}/{res.epochs_run}"))
            rows.append(from_metrics(knn_eval(cfg, out=out / "knn", cached=cached).metrics, "k=10 flat"))
            pred, yv, secs, note = logistic_regression(cached)
            rows.append(row("sklearn LogisticRegression", yv, pred, langs_val, secs, note))
            ft = fasttext_baseline(spec["path"], cfg.data.text_column, cached)
            if ft is not None:
                rows.append(row("fastText (raw titles)", ft[1], ft[0], langs_val, ft[2], "epoch 25, wordNgrams 2"))
            best_head = max((r for r in rows[:3]), key=lambda r: r["val_macro_f1"])
            best_base = max((r for r in rows[4:]), key=lambda r: r["val_macro_f1"])
            print(f"\n### {ds_name} — encoder {model} ({emb.rows:,} rows, {emb.unique_texts:,} distinct titles)\n")
            print(format_markdown(rows))
            margin = best_head["val_macro_f1"] - best_base["val_macro_f1"]
            print(
                f"best head {best_head['model']} vs best baseline {best_base['model']}: "
                f"{margin:+.4f} validation macro-F1 (ratio {best_head['val_macro_f1'] / best_base['val_macro_f1']:.3f}x)"
            )
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
