"""Heads vs baselines on the real data in ../shared/data (validation protocol: fit on train, report validation).

    .venv/bin/python bench/real_data.py [--models use-multilingual,minilm] [--seeds 0,1,2] [--cache-dir DIR]

For MWPD2020 (English offers, 37 GS1 classes) and the Google taxonomy (7 languages, 21 classes) it trains
prodcat's linear, v2 and v3 heads with their own defaults (no flags) over several seeds and runs the k-NN
with its defaults (`knn_eval`: k and temperature chosen on validation) on one embedding cache, and
measures in the same run three baselines: scikit-learn LogisticRegression on the same cached vectors
(the package's `baselines.logistic_regression`: unit-normalised vectors, C from LR_CS picked on
validation, like the heads' best epoch), the k-NN of the issue's table (k=10, votes exp(cos/0.1)) and
fastText supervised on the raw titles (when installed, same seeds). Prints one table per dataset
(validation macro-F1, micro-F1, non-English mean: mean ± population std over seeds), the default linear
head's gap to LogisticRegression, the default k-NN's gap to the table k-NN and the best head's margin over
the best baseline. Skips cleanly when ../shared/data is absent.
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
LR_CS = (1.0, 3.0, 10.0, 30.0, 100.0)  # LogisticRegression's C grid (picked on validation) in every real-data bench
HEADS = ("linear", "v2", "v3")
KNN = "knn"  # the k-NN with its defaults: k and temperature chosen on validation
TABLE_KNN = "knn k=10, exp(cos/0.1) (issue table)"
LOGREG = "sklearn LogisticRegression"
FASTTEXT = "fastText (raw titles)"


def mean_std(values, ddof: int = 0) -> str:
    """The cell "mean ± std" of the values that are not None (ddof 0: population std, as BENCHMARKS §2 and
    §6 report; ddof 1: sample std); one value: the mean alone; none: "–"."""
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    return f"{np.mean(values):.4f}" + (f" ± {np.std(values, ddof=ddof):.4f}" if len(values) > 1 else "")


def table_knn(cached, langs_val) -> dict:
    """The temperature-weighted k-NN of the issue's baseline table: k=10, votes exp(cos/0.1)."""
    from prodcat_pipeline.knn import KnnClassifier

    X, y = cached.split_arrays("train")
    Xv, yv = cached.split_arrays("validation")
    clf = KnnClassifier(k=10, temperature=0.1, weighting="softmax").fit(X, y, n_classes=len(cached.label_names))
    return scores(yv, clf.predict(Xv), langs_val)


def fasttext_baseline(path, text_column, cached, seed: int = 0):
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
            str(train_file), epoch=25, lr=0.5, wordNgrams=2, minn=2, maxn=5, dim=100, verbose=0, thread=1, seed=seed
        )
        seconds = time.perf_counter() - t0
    val = [i for i, s in enumerate(split) if s == "validation"]
    # the low-level call: fastText's own predict() breaks on NumPy 2 (np.array(copy=False))
    pred = np.array([int(model.f.predict(texts[i], 1, 0.0, "strict")[0][1].replace("__label__", "")) for i in val])
    return pred, labels[val], seconds


def scores(y_true, y_pred, languages) -> dict:
    from sklearn.metrics import f1_score

    from prodcat_pipeline.metrics import non_english_mean, per_language_f1

    per_lang = per_language_f1(y_true, y_pred, languages, lang_min_samples=20) if languages is not None else {}
    return {
        "macro": f1_score(y_true, y_pred, average="macro", zero_division=0),
        "micro": f1_score(y_true, y_pred, average="micro", zero_division=0),
        "non_en": non_english_mean(per_lang),
    }


def from_metrics(m) -> dict:
    from prodcat_pipeline.metrics import non_english_mean

    v = m["validation"]
    return {"macro": v["macro_f1"], "micro": v["micro_f1"], "non_en": non_english_mean(v.get("per_language", {}))}


def summary(name: str, runs: list[dict], seconds: float | None, note: str) -> dict:
    """One table row: mean ± spread (population std over seeds; one run: no spread) of each score; seconds
    None (not measured) prints "–"."""

    def cell(key):
        return mean_std([r[key] for r in runs])

    mean = float(np.mean([r["macro"] for r in runs]))
    return {"model": name, "val_macro_f1": cell("macro"), "val_micro_f1": cell("micro"),
            "non_en_macro_f1": cell("non_en"), "seconds": "–" if seconds is None else f"{seconds:.2f}",
            "note": note, "_mean": mean, "_std": float(np.std([r["macro"] for r in runs]))}  # fmt: skip


def real_data_args(description: str, out_name: str, models: str = "use-multilingual") -> argparse.ArgumentParser:
    """The options every real-data benchmark shares; add its own before parsing."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--models", default=models,
                    help="comma-separated encoders; use-multilingual+minilm = the two concatenated")  # fmt: skip
    ap.add_argument("--datasets", default="mwpd,taxonomy")
    ap.add_argument("--seeds", default="0,1,2", help="seeds of every head (and fastText)")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / out_name))
    return ap


def each_dataset_and_encoder(args):
    """(dataset name, its spec, encoder list, base config overrides, output folder) for every requested
    dataset present on disk and every encoder (a+b: the two concatenated); skips MiniLM on the
    multilingual taxonomy set."""
    for ds_name in args.datasets.split(","):
        spec = DATASETS[ds_name]
        if not spec["path"].exists():
            print(f"skipped {ds_name}: {spec['path']} not found")
            continue
        for name in args.models.split(","):
            model = name.replace("+", ",")
            if ds_name == "taxonomy" and "minilm" in model:
                print(f"skipped {ds_name} with {name}: MiniLM is English-only")
                continue
            overrides = {f"data.{k}": v for k, v in spec["data"].items()}
            overrides |= {"data.path": str(spec["path"]), "encoder.model": model, "cache.dir": args.cache_dir}
            yield ds_name, spec, model, overrides, Path(args.out) / ds_name / name


def main(argv=None) -> int:
    ap = real_data_args(__doc__.splitlines()[0], "real_data")
    args = ap.parse_args(argv)
    if not SHARED.exists():
        print(f"skipped: {SHARED} not found (the real data lives beside the project root)")
        return 0

    from prodcat_pipeline.baselines import logistic_regression
    from prodcat_pipeline.config import load_config
    from prodcat_pipeline.embedder import embed
    from prodcat_pipeline.knn import knn_eval
    from prodcat_pipeline.pipeline import format_markdown
    from prodcat_pipeline.trainer import train

    seeds = [int(x) for x in args.seeds.split(",")]
    for ds_name, spec, model, overrides, out in each_dataset_and_encoder(args):
        cfg = load_config(None, overrides)  # every head with its own defaults: no flags, no tuning
        emb = embed(cfg)
        cached = emb.cached
        langs_val = cached.column("language", "validation")
        rows = []
        for head in HEADS:
            runs, secs = [], []
            for seed in seeds:
                c = cfg.for_head(head)
                c.train.seed = seed
                res = train(c, out=out / f"{head}-{seed}", cached=cached, show_progress=False)
                runs.append(from_metrics(res.metrics))
                secs.append(res.train_seconds)
            t = c.train
            note = f"defaults: lr {t.lr:g}, {t.epochs} epochs, wd {t.weight_decay:g}, {len(seeds)} seeds"
            rows.append(summary(head, runs, float(np.mean(secs)), note))
        knn = knn_eval(cfg, out=out / "knn", cached=cached)
        rows.append(summary(KNN, [from_metrics(knn.metrics)], knn.build_seconds + knn.search_seconds,
                            f"k={knn.metrics['knn']['k']} T={knn.metrics['knn']['temperature']} (chosen on validation)"))  # fmt: skip
        rows.append(summary(TABLE_KNN, [table_knn(cached, langs_val)], None,
                            "the temperature-weighted k-NN the defaults are judged against"))  # fmt: skip
        lr = logistic_regression(cached, cfg, Cs=LR_CS)
        rows.append(
            summary(LOGREG, [from_metrics(lr)], lr["train_seconds"], f"C={lr['C']:g} (seconds: the whole C search)")
        )
        ft_runs, ft_secs = [], []
        for seed in seeds:
            ft = fasttext_baseline(spec["path"], cfg.data.text_column, cached, seed)
            if ft is not None:
                ft_runs.append(scores(ft[1], ft[0], langs_val))
                ft_secs.append(ft[2])
        if ft_runs:
            rows.append(summary(FASTTEXT, ft_runs, float(np.mean(ft_secs)),
                                f"epoch 25, wordNgrams 2, {len(ft_runs)} seeds"))  # fmt: skip
        print(f"\n### {ds_name} — encoder {model} ({emb.rows:,} rows, {emb.unique_texts:,} distinct titles)\n")
        print(format_markdown([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]))
        by = {r["model"]: r for r in rows}
        lin = by["linear"]
        gap = lin["_mean"] - by[LOGREG]["_mean"]
        print(
            f"default linear head vs LogisticRegression (same vectors): {gap:+.4f} validation macro-F1 "
            f"(linear spread ±{lin['_std']:.4f}) → {'not' if gap >= -0.01 else 'MORE than'} 0.01 below it"
        )
        best_head = max((by[n] for n in (*HEADS, KNN)), key=lambda r: r["_mean"])  # the default k-NN included
        best_base = max((by[n] for n in (LOGREG, TABLE_KNN, FASTTEXT) if n in by), key=lambda r: r["_mean"])
        knn_gap = by[KNN]["_mean"] - by[TABLE_KNN]["_mean"]
        print(f"default k-NN (k, T chosen on validation) vs k=10 exp(cos/0.1): {knn_gap:+.4f} → "
              f"{'not' if knn_gap >= -0.01 else 'MORE than'} 0.01 below it")  # fmt: skip
        print(
            f"best head {best_head['model']} vs best baseline {best_base['model']}: "
            f"{best_head['_mean'] - best_base['_mean']:+.4f} validation macro-F1"
        )
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
