"""Minority languages: what each language-aware technique of `prodcat train` is worth on an English-skewed
training set, next to the plain v2 head in the same run.

    .venv/bin/python bench/languages.py [--seeds 0,1,2] [--datasets taxonomy,mwpd]

taxonomy: ../shared/data/google_taxonomy (7 languages, parallel). The training set mimics the reference
corpus: every English training row plus 10 % of the training rows of each other language, chosen by a fixed
hash of `group_id` (sha1 of "skew:<group_id>" mod 10 == 0); validation is untouched. mwpd: the English
MWPD2020 offers, to show English does not lose. Each variant is trained with the v2 head (the v3 rows with
v3) for every seed and
the validation macro-F1 is averaged over seeds: English, each other language, and their mean.
"best combination" is picked on validation: the variant with the highest non-English mean among those that
keep English within 0.01 of plain v2. Skips cleanly when ../shared/data is absent.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "bench" / "out" / "languages"
NON_EN = ["de", "fr", "es", "it", "nl", "ja"]

# name -> (train overrides, needs the plain run of the same seed as init_from/teacher)
VARIANTS: dict[str, dict] = {
    "plain v2": {},
    "sampling T=0.5": {"lang_sampling_temp": 0.5},
    "sampling T=0": {"lang_sampling_temp": 0.0},
    "loss weights auto": {"lang_loss_weights": "auto"},
    "class weights per language": {"lang_class_weights": True},
    "centring": {"lang_centering": True},
    "centring + remove 2 directions": {"lang_centering": True, "lang_remove_directions": 2},
    "fine-tune non-English": {"init_from": "@plain", "languages": NON_EN, "epochs": 10, "lr": 3e-4},
    "fine-tune + KL to plain": {
        "init_from": "@plain",
        "languages": NON_EN,
        "epochs": 10,
        "lr": 3e-4,
        "teacher": "@plain",
        "kl_weight": 1.0,
    },
    "focal gamma 1": {"focal_gamma": 1.0},
    "combo: centring + T=0.5 + auto": {"lang_centering": True, "lang_sampling_temp": 0.5, "lang_loss_weights": "auto"},
    "combo: centring + T=0.5": {"lang_centering": True, "lang_sampling_temp": 0.5},
    "combo: centring + T=0": {"lang_centering": True, "lang_sampling_temp": 0.0},
    "v3 SupCon label positives": {"head": "v3"},
    "v3 + cross-language positives": {"head": "v3", "cross_lang_positives": True},
    "v3 + cross-language + centring + T=0.5": {
        "head": "v3",
        "cross_lang_positives": True,
        "lang_centering": True,
        "lang_sampling_temp": 0.5,
    },
}


def skewed_taxonomy() -> Path:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    path = OUT / "taxonomy_en_skewed.parquet"
    if path.exists():
        return path
    t = pq.read_table(
        SHARED / "google_taxonomy" / "google_taxonomy.parquet",
        columns=["text", "label", "language", "group_id", "split"],
    )
    keep_group = np.array(
        [int(hashlib.sha1(f"skew:{g}".encode()).hexdigest(), 16) % 10 == 0 for g in t["group_id"].to_pylist()]
    )
    is_train = pc.equal(t["split"], "train").to_numpy(zero_copy_only=False)
    is_en = pc.equal(t["language"], "en").to_numpy(zero_copy_only=False)
    keep = ~is_train | is_en | keep_group
    OUT.mkdir(parents=True, exist_ok=True)
    pq.write_table(t.filter(pa.array(keep)), path)
    return path


def dataset_config(name: str):
    from prodcat_pipeline.config import load_config

    if name == "taxonomy":
        data = {"data.path": str(skewed_taxonomy()), "data.cluster_column": "group_id"}
    else:
        data = {"data.path": str(SHARED / "mwpd2020_task2_wdc_gs1" / "mwpd2020_task2.parquet")}
        data |= {"data.text_column": "title", "data.cluster_column": "source_id"}
    train = {"head": "v2", "epochs": 30, "batch_size": 128, "lr": 2e-3, "lr_warmup_steps": 50}
    train |= {"early_stopping_patience": 6, "label_smoothing": 0.05, "classifier_dropout": 0.2}
    train |= {"lang_min_samples": 20, "save_every": 0}
    return load_config(None, data | {f"train.{k}": v for k, v in train.items()})


def _scorer(results: dict[str, list[dict]]):
    """score(variant, language) -> validation macro-F1 of that language, averaged over seeds."""

    def score(name: str, code: str) -> float | None:
        vals = [m["per_language"][code]["macro_f1"] for m in results[name] if code in m.get("per_language", {})]
        return float(np.mean(vals)) if vals else None

    return score


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="taxonomy,mwpd")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    args = ap.parse_args(argv)
    if not SHARED.exists():
        print(f"skipped: {SHARED} not found (the real data lives beside the project root)")
        return 0

    from prodcat_pipeline.embedder import embed
    from prodcat_pipeline.trainer import train

    seeds = [int(s) for s in args.seeds.split(",")]
    names = [v for v in args.variants.split(",") if v]
    print(
        f"# minority languages — {time.strftime('%Y-%m-%d %H:%M')} — v2 head, encoder use-multilingual, "
        f"validation macro-F1, mean of seeds {seeds}\n"
    )
    for ds in args.datasets.split(","):
        base = dataset_config(ds)
        cached = embed(base, show_progress=False).cached
        counts = {}
        for code, split in zip(cached.column("language"), cached.column("split"), strict=True):
            if split == "train":
                counts[code] = counts.get(code, 0) + 1
        top = sorted(counts.items(), key=lambda kv: -kv[1])[:8]
        print(f"## {ds}: training rows by language: " + ", ".join(f"{k} {v:,}" for k, v in top) + "\n")
        results: dict[str, list[dict]] = {}
        for name in names:
            for seed in seeds:
                cfg = base.model_copy(deep=True)
                cfg.train.seed = seed
                for key, value in VARIANTS[name].items():
                    if value == "@plain":
                        value = str(OUT / ds / f"plain v2-{seed}")
                    setattr(cfg.train, key, value)
                run = train(cfg, out=OUT / ds / f"{name}-{seed}", cached=cached, show_progress=False)
                results.setdefault(name, []).append(run.metrics["validation"])
        langs = [c for c in ["en", *NON_EN] if any(c in m.get("per_language", {}) for m in results["plain v2"])]
        non_en = [c for c in langs if c != "en"]

        score = _scorer(results)

        def mean_non_en(name, score=score, non_en=non_en):
            vals = [v for v in (score(name, c) for c in non_en) if v is not None]
            return float(np.mean(vals)) if vals else None

        plain_en, plain_non = score("plain v2", "en"), mean_non_en("plain v2")
        header = ["variant", "overall", *langs] + (["non-en mean", "Δ non-en", "Δ en"] if non_en else ["Δ en"])
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
        for name in names:
            overall = float(np.mean([m["macro_f1"] for m in results[name]]))
            cells = [name, f"{overall:.4f}"] + [
                f"{score(name, c):.4f}" if score(name, c) is not None else "–" for c in langs
            ]
            d_en = score(name, "en") - plain_en
            if non_en:
                mn = mean_non_en(name)
                cells += [f"{mn:.4f}", f"{mn - plain_non:+.4f}", f"{d_en:+.4f}"]
            else:
                cells += [f"{d_en:+.4f}"]
            print("| " + " | ".join(cells) + " |")
        if non_en:
            ok = [n for n in names if n != "plain v2" and score(n, "en") >= plain_en - 0.01]
            if ok:
                best = max(ok, key=mean_non_en)
                print(
                    f"\nbest on validation with English within 0.01: **{best}**: non-English mean "
                    f"{mean_non_en(best):.4f} vs {plain_non:.4f} plain ({mean_non_en(best) - plain_non:+.4f}), "
                    f"English {score(best, 'en') - plain_en:+.4f}"
                )
        print(flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
