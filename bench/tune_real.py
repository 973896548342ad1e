"""`prodcat tune` on the real data in ../shared/data, over several seeds (validation protocol: every choice —
trials, best epoch, k-NN k and temperature, ensemble weights — is made on validation, which is reported).

    .venv/bin/python bench/tune_real.py [--datasets mwpd,taxonomy] [--models use-multilingual,use-multilingual+minilm]
                                        [--seeds 0,1,2] [--trials 16] [--heads linear,v2,knn] [--cache-dir DIR]

Per dataset and encoder (a+b = the two concatenated) it runs `tune` with --ensemble once per seed (the seed
drives Optuna's sampler and every trial) and prints validation macro-F1 (mean ± population std over seeds)
of each head's best, of each head's trial 0 (its defaults, trained by the batched trainer for linear and
v2), the ensemble's weights and the overall best, next to the baselines of the same run: LogisticRegression
on the same vectors (the package's, C from real_data.LR_CS picked on validation), the k-NN of the issue's
table (k=10, exp(cos/0.1)), the k-NN with its defaults (k and T chosen on validation), and fastText on the
raw titles when installed. Skips cleanly when ../shared/data is absent. Writes <--out>.json
(bench/out/tune_real.json by default): one entry per "<dataset>/<model>", kept across invocations, so runs
of one dataset or encoder at a time add up instead of overwriting each other.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_data import (  # noqa: E402
    LR_CS,
    SHARED,
    each_dataset_and_encoder,
    fasttext_baseline,
    mean_std,
    real_data_args,
    scores,
    table_knn,
)


def trial_zero(trials: list[dict]) -> dict[str, float | None]:
    """Validation macro-F1 of each searched head's trial 0 (its defaults); None when it was pruned."""
    return {r["head"]: r.get("val_macro_f1") for r in trials if r["trial"] == 0 and r["head"] != "knn"}


def ensemble_weights(run_dir: Path) -> dict[str, float]:
    """Member name -> weight of the ensemble a tune run wrote (<run_dir>/ensemble/ensemble.json); {} if none."""
    path = run_dir / "ensemble" / "ensemble.json"
    if not path.exists():
        return {}
    return {m["name"]: float(m["weight"]) for m in json.loads(path.read_text())["members"]}


def save_summary(path: Path, results: dict) -> None:
    """Merge `results` ({"<dataset>/<model>": entry}) into the JSON at `path` and write it atomically."""
    from prodcat_pipeline.atomic import write_json_atomic

    old = json.loads(path.read_text()) if path.exists() else {}
    if isinstance(old, list):  # the earlier format: a list of entries
        old = {f"{e['dataset']}/{e['model']}": e for e in old}
    write_json_atomic(path, json.loads(json.dumps(old | results, default=float)))


def main(argv=None) -> int:
    ap = real_data_args(__doc__.splitlines()[0], "tune_real", models="use-multilingual,use-multilingual+minilm")
    ap.add_argument("--trials", type=int, default=16, help="trials per head")
    ap.add_argument("--heads", default="linear,v2,knn")
    args = ap.parse_args(argv)
    if not SHARED.exists():
        print(f"skipped: {SHARED} not found (the real data lives beside the project root)")
        return 0

    from prodcat_pipeline.baselines import logistic_regression
    from prodcat_pipeline.cache import open_cache
    from prodcat_pipeline.config import load_config
    from prodcat_pipeline.knn import knn_eval
    from prodcat_pipeline.tuner import tune

    seeds = [int(s) for s in args.seeds.split(",")]
    summary = Path(args.out).with_suffix(".json")  # bench/out/tune_real.json by default
    for ds_name, spec, model, overrides, out in each_dataset_and_encoder(args):
        overrides |= {"tune.heads": args.heads, "tune.trials": args.trials, "tune.ensemble": True, "run_logreg": False}
        cfg = load_config(None, overrides)
        cached, _ = open_cache(cfg)
        langs = cached.column("language", "validation")
        lr_metrics = logistic_regression(cached, cfg, Cs=LR_CS)
        lr = lr_metrics["validation"]["macro_f1"]
        knn_table = table_knn(cached, langs)["macro"]
        knn_default = knn_eval(cfg, out=out / "knn-default", cached=cached).metrics
        ft = []
        if "," not in model:
            for seed in seeds:
                got = fasttext_baseline(spec["path"], cfg.data.text_column, cached, seed)
                if got is not None:
                    ft.append(scores(got[1], got[0], langs)["macro"])
        runs = []
        for seed in seeds:
            c = load_config(None, overrides | {"train.seed": seed})
            t = time.perf_counter()
            res = tune(c, out=out / f"seed{seed}", show_progress=False)
            by_head = {r["head"]: r["val_macro_f1"] for r in res.rows}
            runs.append({"seed": seed, "best": res.best, "best_val": res.best_val_macro_f1, "by_head": by_head,
                         "trial0": trial_zero(res.trials), "weights": ensemble_weights(out / f"seed{seed}"),
                         "seconds": time.perf_counter() - t, "trials": len(res.trials)})  # fmt: skip
            print(f"{ds_name} {model} seed {seed}: best {res.best} {res.best_val_macro_f1:.4f} "
                  f"({runs[-1]['seconds']:.0f}s) {by_head} trial 0 {runs[-1]['trial0']} "
                  f"weights {runs[-1]['weights']}", flush=True)  # fmt: skip
        baseline = max([lr, knn_table, *([np.mean(ft)] if ft else [])])
        best = [r["best_val"] for r in runs]
        entry = {"dataset": ds_name, "model": model, "seeds": seeds, "trials_per_head": args.trials,
                 "logreg": lr, "logreg_C": lr_metrics["C"], "knn_table": knn_table, "fasttext": ft, "runs": runs,
                 "knn_default": knn_default["validation"]["macro_f1"],
                 "knn_default_k_t": [knn_default["knn"]["k"], knn_default["knn"]["temperature"]],
                 "best_baseline": baseline, "margin": float(np.mean(best) - baseline)}  # fmt: skip
        heads = list(runs[0]["by_head"])
        print(f"\n### {ds_name} — {model}: validation macro-F1, {len(seeds)} seeds, {args.trials} trials/head "
              "(mean ± population std)\n")  # fmt: skip
        print("| row | validation macro-F1 |\n|---|---|")
        for h in heads:
            print(f"| tune: best {h} | {mean_std([r['by_head'].get(h) for r in runs])} |")
        print(f"| **tune: best overall** ({', '.join(r['best'] for r in runs)}) | **{mean_std(best)}** |")
        for h in runs[0]["trial0"]:
            print(f"| default {h} (trial 0) | {mean_std([r['trial0'].get(h) for r in runs])} |")
        for name in runs[0]["weights"]:
            print(f"| ensemble weight of {name} | {mean_std([r['weights'].get(name) for r in runs])} |")
        print(f"| LogisticRegression (C on validation: {lr_metrics['C']:g}) | {lr:.4f} |")
        print(f"| k-NN k=10, exp(cos/0.1) (issue table) | {knn_table:.4f} |")
        kd = knn_default["knn"]
        print(f"| k-NN with its defaults (chose k={kd['k']}, T={kd['temperature']}) | "
              f"{knn_default['validation']['macro_f1']:.4f} |")  # fmt: skip
        if ft:
            print(f"| fastText (raw titles) | {mean_std(ft)} |")
        print(f"\nmargin of tune's best over the best baseline ({baseline:.4f}): "
              f"{np.mean(best) - baseline:+.4f} (spread ±{np.std(best):.4f}); mean seconds per tune "
              f"{np.mean([r['seconds'] for r in runs]):.0f}\n", flush=True)  # fmt: skip
        save_summary(summary, {f"{ds_name}/{model}": entry})  # after each dataset and encoder
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
