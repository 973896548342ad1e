"""`prodcat tune` on the real data in ../shared/data, over several seeds (validation protocol: every choice —
trials, best epoch, k-NN k and temperature, ensemble weights — is made on validation, which is reported).

    .venv/bin/python bench/tune_real.py [--datasets mwpd,taxonomy] [--models use-multilingual,use-multilingual+minilm]
                                        [--seeds 0,1,2] [--trials 16] [--heads linear,v2,knn]

Per dataset and encoder (a+b = the two concatenated) it runs `tune` with --ensemble once per seed (the seed
drives Optuna's sampler and every trial) and prints validation macro-F1 (mean ± std over seeds) of each head's
best, the k-NN, the ensemble and the overall best, next to the baselines of the same run: LogisticRegression
on the same vectors (C picked on validation), the k-NN of the issue's table (k=10, exp(cos/0.1)), and fastText
on the raw titles when installed. Skips cleanly when ../shared/data is absent. Writes <--out>.json (bench/out/tune_real.json).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_data import SHARED, each_dataset_and_encoder, fasttext_baseline, real_data_args, scores, table_knn  # noqa: E402


def mean_std(values) -> str:
    values = [v for v in values if v is not None]
    return f"{np.mean(values):.4f} ± {np.std(values):.4f}" if values else "–"


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
    from prodcat_pipeline.tune import tune

    seeds = [int(s) for s in args.seeds.split(",")]
    results = []
    for ds_name, spec, model, overrides, out in each_dataset_and_encoder(args):
        overrides |= {"tune.heads": args.heads, "tune.trials": args.trials, "tune.ensemble": True, "run_logreg": False}
        cfg = load_config(None, overrides)
        cached, _ = open_cache(cfg)
        langs = cached.column("language", "validation")
        lr = logistic_regression(cached, cfg, Cs=(1.0, 3.0, 10.0, 30.0))["validation"]["macro_f1"]
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
                         "seconds": time.perf_counter() - t, "trials": len(res.trials)})  # fmt: skip
            print(f"{ds_name} {model} seed {seed}: best {res.best} {res.best_val_macro_f1:.4f} "
                  f"({runs[-1]['seconds']:.0f}s) {by_head}", flush=True)  # fmt: skip
        baseline = max([lr, knn_table, *([np.mean(ft)] if ft else [])])
        best = [r["best_val"] for r in runs]
        results.append({"dataset": ds_name, "model": model, "logreg": lr, "knn_table": knn_table, "fasttext": ft,
                        "runs": runs, "knn_default": knn_default["validation"]["macro_f1"],
                        "knn_default_k_t": [knn_default["knn"]["k"], knn_default["knn"]["temperature"]],
                        "best_baseline": baseline, "margin": float(np.mean(best) - baseline)})  # fmt: skip
        heads = [h for h in runs[0]["by_head"]]
        print(f"\n### {ds_name} — {model}: validation macro-F1, {len(seeds)} seeds, {args.trials} trials/head\n")
        print("| row | validation macro-F1 |\n|---|---|")
        for h in heads:
            print(f"| tune: best {h} | {mean_std([r['by_head'].get(h) for r in runs])} |")
        print(f"| **tune: best overall** ({', '.join(r['best'] for r in runs)}) | **{mean_std(best)}** |")
        print(f"| LogisticRegression (C on validation) | {lr:.4f} |")
        print(f"| k-NN k=10, exp(cos/0.1) (issue table) | {knn_table:.4f} |")
        kd = knn_default["knn"]
        print(f"| k-NN with its defaults (chose k={kd['k']}, T={kd['temperature']}) | "
              f"{knn_default['validation']['macro_f1']:.4f} |")  # fmt: skip
        if ft:
            print(f"| fastText (raw titles) | {mean_std(ft)} |")
        print(f"\nmargin of tune's best over the best baseline ({baseline:.4f}): "
              f"{np.mean(best) - baseline:+.4f} (spread ±{np.std(best):.4f}); mean seconds per tune "
              f"{np.mean([r['seconds'] for r in runs]):.0f}\n", flush=True)  # fmt: skip
    summary = Path(args.out).with_suffix(".json")  # bench/out/tune_real.json by default
    summary.parent.mkdir(parents=True, exist_ok=True)
    summary.write_text(json.dumps(results, indent=2, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
