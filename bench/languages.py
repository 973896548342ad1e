"""Minority languages: is a language setting of `prodcat train` worth more than its noise? Each setting is
trained for several seeds and scored on validation resamples, next to plain v2 on the same rows.

    .venv/bin/python bench/languages.py [--seeds 0,1,2] [--resamples 200] [--work DIR] [--epochs N] [--reuse]

Data: ../shared/data/google_taxonomy (7 languages, one row per category and language). The training set
is English-skewed like the reference corpus: every English training row plus the training rows of 10 % of
the categories in each other language (sha1 of "skew:<group_id>" mod 10 == 0); validation is the whole
validation split. The derived parquet, the cache (`<work>/cache`) and the runs live in `--work`, outside
the repository (default `$PRODCAT_CACHE/bench-languages` or ~/.cache/prodcat/bench-languages).

Every setting is the v2 head with its defaults plus the setting's flags; the best epoch is picked on
validation macro-F1, as `prodcat train` does. Spread, two kinds: std over seeds, and a 95 % interval over
`--resamples` bootstrap resamples of the validation *categories* (a category's translations move together;
in one language that is a resample of its rows). Each resample scores the mean over seeds; the Δ column
resamples the same categories for both settings (paired). Writes bench/out/languages.json and .png and
prints the markdown tables of BENCHMARKS.md §5. Skips cleanly when ../shared/data is absent.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TAXONOMY = ROOT.parent / "shared" / "data" / "google_taxonomy" / "google_taxonomy.parquet"
OUT = ROOT / "bench" / "out"
NON_EN = ["de", "fr", "es", "it", "nl", "ja"]
METRICS = ["overall", "en", "non-en", *NON_EN]  # macro-F1 on all rows, English, non-English pooled, each
LABELS = {"non-en": "non-en (pooled)"}  # column headings where they differ from the JSON keys
BASELINE = "plain v2"  # every Δ is against it, so it always runs

SETTINGS: dict[str, dict] = {
    "plain v2": {},
    "centring + T=0.5": {"lang_centering": True, "lang_sampling_temp": 0.5},
    "align": {"lang_align": True},
}


def skewed_taxonomy(work: Path) -> Path:
    """The English-skewed copy of the taxonomy (outside the repository, in `work`)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    path = work / "taxonomy_en_skewed.parquet"
    if path.exists():
        return path
    t = pq.read_table(TAXONOMY, columns=["text", "label", "language", "group_id", "split"])
    groups = t["group_id"].to_pylist()
    keep_group = np.array([int(hashlib.sha1(f"skew:{g}".encode()).hexdigest(), 16) % 10 == 0 for g in groups])
    is_train = pc.equal(t["split"], "train").to_numpy(zero_copy_only=False)
    is_en = pc.equal(t["language"], "en").to_numpy(zero_copy_only=False)
    work.mkdir(parents=True, exist_ok=True)
    pq.write_table(t.filter(pa.array(~is_train | is_en | keep_group)), path)
    return path


def dataset_config(work: Path, epochs: int | None = None):
    """Plain v2 (the head's defaults) on the skewed taxonomy; a setting adds its flags to `train`."""
    from prodcat_pipeline.config import load_config

    overrides = {"data.path": str(skewed_taxonomy(work)), "data.cluster_column": "group_id"}
    overrides |= {"cache.dir": str(work / "cache"), "train.head": "v2", "train.save_every": 0}
    overrides |= {"train.lang_min_samples": 20, "train.device": "cpu", "train.epochs": epochs}
    return load_config(None, overrides)


def validation_predictions(run_dir: Path, rows) -> np.ndarray:
    """Predicted label ids of a run's best head on the validation rows."""
    from prodcat_pipeline.checkpoint import head_from_checkpoint, read_checkpoint
    from prodcat_pipeline.inference import predict_logits

    head = head_from_checkpoint(read_checkpoint(run_dir / "best.pt"))
    return predict_logits(head, rows.X, rows.lang_ids, "cpu").argmax(1)


def metric_masks(codes: np.ndarray) -> dict[str, np.ndarray]:
    return {"overall": np.ones(len(codes), bool), "en": codes == "en", "non-en": codes != "en"} | {
        c: codes == c for c in NON_EN
    }


def resample_indices(groups: np.ndarray, n: int, seed: int = 0) -> list[np.ndarray]:
    """`n` bootstrap resamples of the validation rows, drawn by category (group_id) with replacement."""
    order = np.argsort(groups, kind="stable")
    uniq, starts = np.unique(groups[order], return_index=True)
    bounds = np.append(starts, len(order))
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        pick = rng.integers(0, len(uniq), len(uniq))
        out.append(np.concatenate([order[bounds[g] : bounds[g + 1]] for g in pick]))
    return out


def score_runs(y, codes, preds: dict, resamples, n_classes: int) -> dict:
    """{setting: {metric: {"seeds": [...], "boot": [...] (seed mean per resample)}}}."""
    from prodcat_pipeline.metrics import macro_f1_fast

    masks = metric_masks(codes)
    out = {}
    for name, runs in preds.items():
        out[name] = {}
        for metric, mask in masks.items():
            seeds = [macro_f1_fast(y[mask], p[mask], n_classes) for p in runs]
            boot = []
            for idx in resamples:
                idx = idx[mask[idx]]
                boot.append(float(np.mean([macro_f1_fast(y[idx], p[idx], n_classes) for p in runs])))
            out[name][metric] = {"seeds": seeds, "boot": boot}
    return out


def summarise(scores: dict) -> dict:
    """Mean ± sample std over seeds (ddof=1), bootstrap 95 % interval, and the paired Δ against plain v2."""
    base = scores[BASELINE]
    summary = {}
    for name, per_metric in scores.items():
        summary[name] = {}
        for metric, s in per_metric.items():
            seeds, boot = np.array(s["seeds"]), np.array(s["boot"])
            d_seeds = seeds - np.array(base[metric]["seeds"])
            d_boot = boot - np.array(base[metric]["boot"])
            summary[name][metric] = {
                "seeds": [round(float(v), 5) for v in seeds],
                "mean": float(seeds.mean()),
                "std": float(seeds.std(ddof=1)) if len(seeds) > 1 else 0.0,
                "ci95": [float(v) for v in np.percentile(boot, [2.5, 97.5])],
                "delta": float(d_seeds.mean()),
                "delta_std": float(d_seeds.std(ddof=1)) if len(seeds) > 1 else 0.0,
                "delta_ci95": [float(v) for v in np.percentile(d_boot, [2.5, 97.5])],
            }
    return summary


def beats_spread(m: dict) -> bool:
    """A gain counts when its paired 95 % interval is above 0 and it exceeds its std over seeds."""
    return m["delta_ci95"][0] > 0 and m["delta"] > m["delta_std"]


def print_tables(summary: dict) -> None:
    header = "| setting | " + " | ".join(LABELS.get(m, m) for m in METRICS) + " |"
    rule = "|---|" + "---:|" * len(METRICS)
    print("macro-F1, mean ± sample std (ddof=1) over seeds [bootstrap 95 % interval]\n")
    print(header + "\n" + rule)
    for name, m in summary.items():
        cells = [
            f"{m[k]['mean']:.4f} ± {m[k]['std']:.4f} [{m[k]['ci95'][0]:.3f}, {m[k]['ci95'][1]:.3f}]" for k in METRICS
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(
        "\nΔ vs plain v2, mean ± sample std (ddof=1) over seeds [paired bootstrap 95 % interval]; "
        "* = beats the spread\n"
    )
    print(header + "\n" + rule)
    for name, m in summary.items():
        if name == BASELINE:
            continue
        cells = [
            f"{m[k]['delta']:+.4f} ± {m[k]['delta_std']:.4f} [{m[k]['delta_ci95'][0]:+.3f}, "
            f"{m[k]['delta_ci95'][1]:+.3f}]{' *' if beats_spread(m[k]) else ''}"
            for k in METRICS
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in summary if n != BASELINE]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    x = np.arange(len(METRICS))
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        m = summary[name]
        mid = np.array([m[k]["delta"] for k in METRICS])
        lo = mid - np.array([m[k]["delta_ci95"][0] for k in METRICS])
        hi = np.array([m[k]["delta_ci95"][1] for k in METRICS]) - mid
        ax.errorbar(x + (i - (len(names) - 1) / 2) * width, mid, yerr=[lo, hi], fmt="o", capsize=3, label=name)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(x, [LABELS.get(m, m) for m in METRICS])
    ax.set_ylabel("Δ validation macro-F1 vs plain v2")
    ax.set_title("Language settings vs plain v2 (mean over seeds; bars: paired bootstrap 95 % interval)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cache_root = Path(os.environ.get("PRODCAT_CACHE", Path.home() / ".cache" / "prodcat"))
    ap.add_argument("--work", type=Path, default=cache_root / "bench-languages")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--resamples", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=None, help="default: the v2 head's (30)")
    ap.add_argument("--settings", default=",".join(SETTINGS), help=f"comma-separated, of: {', '.join(SETTINGS)} "
                    f"({BASELINE!r} always runs: it is the Δ baseline)")  # fmt: skip
    ap.add_argument("--reuse", action="store_true", help="score finished runs in --work again instead of training")
    args = ap.parse_args(argv)
    names = [n for n in args.settings.split(",") if n]
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        ap.error(f"--settings: unknown {', '.join(map(repr, unknown))}; choose from {', '.join(SETTINGS)}")
    names = [BASELINE, *dict.fromkeys(n for n in names if n != BASELINE)]
    if not TAXONOMY.exists():
        print(f"skipped: {TAXONOMY} not found (the real data lives beside the project root)")
        return 0

    from prodcat_pipeline.cache import TRAINING_COLUMNS, open_cache
    from prodcat_pipeline.trainer import train
    from prodcat_pipeline.training_data import build_training_data

    seeds = [int(s) for s in args.seeds.split(",")]
    base = dataset_config(args.work, args.epochs)
    cached, _ = open_cache(base, columns=TRAINING_COLUMNS, show_progress=False)
    rows = build_training_data(cached, base.train, "cpu").eval_set("validation")
    groups = np.asarray(cached.column("cluster")[cached.mask("validation")], dtype=str)
    t0 = time.perf_counter()
    preds: dict[str, list[np.ndarray]] = {}
    for name in names:
        for seed in seeds:
            cfg = base.model_copy(deep=True)
            cfg.train.seed = seed
            for key, value in SETTINGS[name].items():
                setattr(cfg.train, key, value)
            out = args.work / "runs" / f"{name}-{seed}"
            if not (args.reuse and (out / "metrics.json").exists()):
                train(cfg, out=out, cached=cached, show_progress=False)
            preds.setdefault(name, []).append(validation_predictions(out, rows))
    train_minutes = (time.perf_counter() - t0) / 60
    codes = np.asarray(rows.lang_codes, dtype=object)
    resamples = resample_indices(groups, args.resamples)
    summary = summarise(score_runs(rows.y, codes, preds, resamples, len(cached.label_names)))

    counts = {c: int(((cached.column("language") == c) & cached.mask("train")).sum()) for c in ["en", *NON_EN]}
    print(
        f"# minority languages — {time.strftime('%Y-%m-%d %H:%M')} — v2 head ({base.train.epochs} epochs), "
        f"seeds {seeds}, {args.resamples} category resamples, {train_minutes:.1f} min of training\n"
    )
    print("training rows: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()) + "\n")
    print_tables(summary)
    OUT.mkdir(parents=True, exist_ok=True)
    report = {"settings": {n: SETTINGS[n] for n in names}, "seeds": seeds, "resamples": args.resamples}
    report |= {"epochs": base.train.epochs, "training_rows": counts, "summary": summary}
    (OUT / "languages.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    plot(summary, OUT / "languages.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
