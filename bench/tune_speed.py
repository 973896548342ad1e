"""Batched tuning trials at the reference size: T heads trained together by `train_many` against one head
per `train` run, and the 16-trial v2 sweep against the machine's matmul peak (measured in the same run).

    .venv/bin/python bench/tune_speed.py [--trials 16] [--batch-size 256] [--v2-batches 400] [--full]

Results go to bench/out/tune_speed.json, one entry per batch size.

(a) linear: one trial with the normal trainer vs a 16-trial sweep with `train_many` (per-epoch time; target
    ≤ 3x one trial). (b) v2 (hidden 512): a 16-trial sweep vs 16x one trial with the normal trainer, and
    vs the FLOP limit: every Linear(i, o) costs 2·i·o FLOPs per row forward and 4·i·o backward, so a v2
    trial costs 3 × 2 × (384·512 + 512·384 + 384·6) = 2,373,120 FLOPs per training row (LayerNorm, GELU,
    biases and the loss not counted; train_speed.flops_per_row); ratio = epoch seconds / (FLOPs ÷ peak),
    target ≤ 1.5. The peak is a 4096² torch.mm on torch.get_num_threads() threads, best of 3 (bf16 rows
    use the bf16 peak). A second, stricter ratio counts only the FLOPs `train_many` runs: 5 of the 6 large
    products (LayerNorm folded into layer 1, whose input gradient is never computed: 2·384·512 FLOPs per
    row fewer, 1,979,904 per row).

Every time is a training pass alone (no validation), from the second epoch (the first also copies the
memory-mapped shards into one tensor). The v2 sweeps run `--v2-batches` batches per epoch by default
(`train_many(max_batches=...)`) and are scaled to the full epoch; `--full` runs whole epochs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from synthetic import OUT, synthetic_cache  # noqa: E402
from train_speed import flops_per_row, matmul_peak  # noqa: E402

LINEAR_GRID = [
    {"lr": lr, "weight_decay": wd, "label_smoothing": ls}
    for lr in (0.01, 0.03, 0.1, 0.3)
    for wd in (0.01, 0.05)
    for ls in (0.0, 0.1)
]
V2_GRID = [
    {"lr": lr, "classifier_dropout": p, "weight_decay": wd}
    for lr in (3e-4, 1e-3, 3e-3, 1e-2)
    for p in (0.1, 0.3)
    for wd in (0.01, 0.05)
]


V2_HIDDEN = 512


def n_batches(rows: int, batch_size: int) -> int:
    """Batches of one epoch (the last one partial)."""
    return -(-rows // batch_size)


def normal_epoch(cfg, cached, head: str, epochs: int, tmp: Path, **train) -> float:
    """Seconds of the last epoch's training pass of one `train` run."""
    from prodcat_pipeline.trainer import train as train_one

    c = cfg.for_head(head)
    for key, value in {"epochs": epochs, "save_every": 0, "no_lang_metrics": True, **train}.items():
        setattr(c.train, key, value)
    res = train_one(c, out=tmp / f"{head}-normal", cached=cached, show_progress=False)
    return res.history[-1]["seconds"]


def many_epoch(
    cfg, cached, head: str, trials: list[dict], epochs: int, max_batches, epoch_batches: int, **train
) -> tuple[float, list]:
    """Seconds of the last epoch's training pass of one `train_many` group (scaled to the `epoch_batches` of
    a whole epoch when capped at `max_batches`), and the results."""
    from prodcat_pipeline.multihead import train_many

    c = cfg.for_head(head)
    for key, value in {"epochs": epochs, **train}.items():
        setattr(c.train, key, value)
    results = train_many(c, trials, cached=cached, show_progress=False, max_batches=max_batches)
    last = results[0].history[-1]
    return last["group_train_seconds"] * epoch_batches / min(max_batches or epoch_batches, epoch_batches), results


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def run_sweeps(cfg, cached, args, tmp: Path, epoch_batches: int) -> tuple[dict, dict]:
    """Per-epoch seconds of every measured configuration, and the v2 sweeps' best validation macro-F1."""
    T, bs, cap, nb = args.trials, args.batch_size, None if args.full else args.v2_batches, epoch_batches
    secs, best = {}, {}
    secs["linear one"] = normal_epoch(cfg, cached, "linear", 2, tmp, batch_size=bs)
    secs["linear many"], _ = many_epoch(cfg, cached, "linear", LINEAR_GRID[:T], 2, None, nb, batch_size=bs)
    v2 = {"batch_size": bs, "classifier_hidden": V2_HIDDEN}
    secs["v2 one"] = normal_epoch(cfg, cached, "v2", 2, tmp, **v2)
    secs["v2 one many"], _ = many_epoch(cfg, cached, "v2", V2_GRID[:1], 2, cap, nb, **v2)
    for prec in args.precisions.split(","):
        secs[f"v2 {prec}"], results = many_epoch(cfg, cached, "v2", V2_GRID[:T], 2, cap, nb, **v2, amp=prec == "bf16")
        best[prec] = max(r.best_score for r in results)
    return secs, best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=16, help="trials per sweep (a grid of lr, dropout/smoothing, wd)")
    ap.add_argument("--batch-size", type=int, default=256, help="rows per batch (the trainer's default: 256)")
    ap.add_argument("--v2-batches", type=int, default=400, help="batches per epoch of the v2 sweeps (scaled up)")
    ap.add_argument("--full", action="store_true", help="whole epochs for the v2 sweeps (~4 min each)")
    ap.add_argument("--precisions", default="fp32,bf16", help="v2 sweep precisions: fp32, bf16 or both")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's, one per core)")
    ap.add_argument("--dim", type=int, default=384)
    args = ap.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    threads, T = torch.get_num_threads(), args.trials
    print(f"# batched tuning trials — {time.strftime('%Y-%m-%d %H:%M')} — {cpu_name()}, torch {torch.__version__}, "
          f"{threads} threads\n")  # fmt: skip
    peaks = {"fp32": [matmul_peak("float32")], "bf16": [matmul_peak("bfloat16")]}
    cfg, cached = synthetic_cache(args.dim)
    n_train, classes = int(cached.mask("train").sum()), len(cached.label_names)
    epoch_batches = n_batches(n_train, args.batch_size)
    print(f"synthetic cache: {cached.rows.num_rows:,} rows, {n_train:,} training rows x {cached.dim}, {classes} "
          f"classes; batch {args.batch_size} → {epoch_batches:,} batches per epoch, v2 sweeps run "
          f"{epoch_batches if args.full else args.v2_batches} of them per epoch (times scaled to the whole epoch)\n")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        secs, best = run_sweeps(cfg, cached, args, Path(tmp), epoch_batches)
    for name in peaks:
        peaks[name].append(matmul_peak("float32" if name == "fp32" else "bfloat16"))
    # v2 has no contrastive projection, so flops_per_row ignores its last two arguments
    row_flops = int(flops_per_row("v2", cached.dim, V2_HIDDEN, classes, 0, args.batch_size))
    flops = n_train * row_flops * T
    row_flops_run = row_flops - 2 * cached.dim * V2_HIDDEN  # layer 1's input gradient is never computed
    flops_run = n_train * row_flops_run * T
    print(f"v2 FLOPs per epoch, {T} trials: {n_train:,} rows × {row_flops:,} FLOPs per row (3 × 2 × "
          f"{row_flops // 6:,} multiply-adds) × {T} = {flops:.4g}; run by train_many (5 of the 6 large "
          f"products): {row_flops_run:,} per row = {flops_run:.4g}")  # fmt: skip
    print("matmul peak (4096² mm, GFLOP/s, start / end of run; the higher one is used): "
          + ", ".join(f"{k} {v[0] / 1e9:,.0f} / {v[1] / 1e9:,.0f}" for k, v in peaks.items()) + "\n")  # fmt: skip
    one_lin, one_v2 = secs["linear one"], secs["v2 one"]
    rows = [
        ("linear", "fp32", "1 trial, `train`", one_lin, None, ""),
        ("linear", "fp32", f"{T} trials, `train_many`", secs["linear many"], secs["linear many"] / one_lin, "≤ 3x"),
        ("v2", "fp32", "1 trial, `train`", one_v2, None, ""),
        ("v2", "fp32", "1 trial, `train_many`", secs["v2 one many"], secs["v2 one many"] / one_v2, "vs `train`"),
    ]
    out = {"cpu": cpu_name(), "torch": torch.__version__, "threads": threads, "batch_size": args.batch_size,
           "trials": T, "rows": n_train, "epoch_seconds": secs, "flops_per_epoch": flops,
           "flops_per_row": row_flops, "flops_run_per_epoch": flops_run,
           "peak_gflops": {k: [p / 1e9 for p in v] for k, v in peaks.items()}, "best_val_macro_f1": best}  # fmt: skip
    for prec in best:
        sweep, ideal, ideal_run = secs[f"v2 {prec}"], flops / max(peaks[prec]), flops_run / max(peaks[prec])
        rows.append(("v2", prec, f"{T} trials, `train_many`", sweep, sweep / (T * one_v2), f"vs {T}x one trial"))
        rows.append(("v2", prec, f"{T} trials: FLOPs ÷ {prec} peak", ideal, sweep / ideal, "≤ 1.5"))
        rows.append(("v2", prec, f"{T} trials: FLOPs run (5 of the 6 large products: LayerNorm folded, no layer-1 "
                     f"input gradient) ÷ {prec} peak", ideal_run, sweep / ideal_run, "(for reference)"))  # fmt: skip
        out[f"v2_{prec}"] = {
            "vs_one_trial_x_trials": sweep / (T * one_v2),
            "ideal_s": ideal,
            "flop_ratio": sweep / ideal,
            "ideal_run_s": ideal_run,
            "flop_run_ratio": sweep / ideal_run,
        }
    print("| head | precision | what | epoch s | ratio | target |")
    print("|---|---|---|---:|---:|---|")
    for head, prec, what, sec, ratio, target in rows:
        print(f"| {head} | {prec} | {what} | {sec:.2f} | {f'{ratio:.2f}x' if ratio else ''} | {target} |")
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "tune_speed.json"  # one entry per batch size, so the 256 and 1024 runs sit side by side
    runs = json.loads(path.read_text()) if path.exists() else {}
    runs[f"batch_size_{args.batch_size}"] = out
    path.write_text(json.dumps(runs, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
