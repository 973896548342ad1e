"""What `prodcat tune` leaves to read: trials.csv (every trial) and tune.png (score by trial and by the most
important settings, per head)."""

from __future__ import annotations

import csv
from pathlib import Path

FIRST_COLUMNS = ["head", "trial", "state", "val_macro_f1", "val_micro_f1", "seconds", "best_epoch", "epochs_run"]


def write_trials_csv(path: Path, trials: list[dict]) -> None:
    from .atomic import write_atomic

    columns = list(FIRST_COLUMNS)
    for row in trials:
        columns += [k for k in row if k not in columns]

    def write(p: Path) -> None:
        with open(p, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=columns, restval="")
            w.writeheader()
            for row in trials:
                w.writerow({k: _cell(v) for k, v in row.items()})

    write_atomic(path, write)


def _cell(v):
    return f"{v:.6g}" if isinstance(v, float) else v


def important_settings(head: str, rows: list[dict], study=None, n: int = 2) -> list[str]:
    """The settings that matter most for a head's score: Optuna's fANOVA importances when a study has enough
    finished trials, else the settings that vary most among the trials."""
    names = [k for k in rows[0] if k not in FIRST_COLUMNS] if rows else []
    varying = [k for k in names if len({str(r.get(k)) for r in rows}) > 1]
    if study is not None:
        try:
            import warnings

            import optuna

            with warnings.catch_warnings():  # a few tied trials only make the ranking uninformative
                warnings.simplefilter("ignore")
                ranked = list(optuna.importance.get_param_importances(study))
            return [k for k in ranked if k in varying][:n] or varying[:n]
        except (RuntimeError, ValueError, ZeroDivisionError):
            pass
    return varying[:n]


def write_tune_plot(path: Path, trials: list[dict], studies: dict) -> None:
    """One row per head: validation macro-F1 by trial (pruned trials marked, running best as a line), then
    against the two most important settings."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .atomic import write_atomic

    heads = list(dict.fromkeys(r["head"] for r in trials))
    fig, axes = plt.subplots(max(len(heads), 1), 3, figsize=(12, 3 * max(len(heads), 1)), squeeze=False)
    for row_axes, head in zip(axes, heads, strict=False):
        rows = [r for r in trials if r["head"] == head]
        done = [r for r in rows if r.get("val_macro_f1") is not None]
        ax = row_axes[0]
        ax.scatter([r["trial"] for r in done], [r["val_macro_f1"] for r in done], s=14, label="complete")
        pruned = [r["trial"] for r in rows if r.get("state") == "pruned"]
        if pruned and done:
            floor = min(r["val_macro_f1"] for r in done)
            ax.scatter(pruned, [floor] * len(pruned), marker="x", c="grey", s=14, label="pruned")
        running, best = [], -1.0
        for r in sorted(done, key=lambda r: r["trial"]):
            best = max(best, r["val_macro_f1"])
            running.append((r["trial"], best))
        if running:
            ax.step(*zip(*running, strict=True), where="post", c="C3", label="best so far")
        ax.set_title(f"{head}: by trial", fontsize=9)
        ax.set_ylabel("validation macro-F1")
        ax.legend(fontsize=7)
        for ax, name in zip(row_axes[1:], important_settings(head, rows, studies.get(head)), strict=False):
            xs = [r[name] for r in done]
            ax.scatter(xs, [r["val_macro_f1"] for r in done], s=14)
            if all(isinstance(x, (int, float)) and x > 0 for x in xs) and max(xs) / min(xs) >= 10:
                from matplotlib.ticker import NullFormatter

                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels collide on a one-decade axis
            ax.set_title(f"{head}: by {name}", fontsize=9)
        for ax in row_axes:
            ax.grid(alpha=0.3)
    for ax in axes.flat:
        if not ax.has_data():
            ax.set_visible(False)
    fig.tight_layout()
    write_atomic(path, lambda p: fig.savefig(p, format="png", dpi=100))
    plt.close(fig)
