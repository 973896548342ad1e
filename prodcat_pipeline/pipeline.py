"""`prodcat run`: the whole pipeline — embed once, train every configured head, k-NN — and one comparison."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from .config import PipelineConfig
from .run_dirs import holds_run_folders, prepare_run_folder

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    out_dir: Path
    rows: list[dict]  # one per head/baseline: the comparison table
    languages: list[str]  # languages shown per row (validation macro-F1)
    embed_seconds: float
    encoded: int


@holds_run_folders
def run(
    config: PipelineConfig | None = None, *, show_progress: bool | None = None, overwrite: bool = False
) -> RunResult:
    """Embed (only what is not cached), train each head in `config.heads`, run k-NN and the LogisticRegression
    baseline, compare on one table.

    Writes `<out>/<head>/metrics.json` per head and `<out>/comparison.json`, `comparison.md`, `comparison.png`;
    an `out` that already holds results is refused unless `overwrite` (which clears it first).
    """
    from .config import load_config
    from .embedder import embed
    from .knn import knn_eval
    from .trainer import train

    config = config or load_config()
    out = Path(config.out)
    head_configs = {head: config.for_head(head) for head in config.heads}  # bad settings fail before any work
    prepare_run_folder(out, overwrite=overwrite)
    t = time.perf_counter()
    embedded = embed(config, show_progress=show_progress)
    embed_seconds = time.perf_counter() - t
    results = []
    for head in config.heads:
        result = train(
            head_configs[head], out=out / head, cached=embedded.cached, show_progress=show_progress, overwrite=True
        )
        results.append(result.metrics)
    if config.run_knn:
        results.append(knn_eval(config, out=out / "knn", cached=embedded.cached, overwrite=True).metrics)
    if config.run_logreg:  # the baseline row: do the heads earn their keep?
        from .baselines import logistic_regression

        results.append(logistic_regression(embedded.cached, config, out=out / "logreg"))
    rows, languages = comparison_rows(results, config.train.lang_top_k)
    write_comparison(out, rows, languages)
    return RunResult(out, rows, languages, embed_seconds, embedded.encoded)


def comparison_rows(metrics_list: list[dict], lang_top_k: int = 10) -> tuple[list[dict], list[str]]:
    """Flatten metrics.json dicts into table rows (validation/test macro & micro-F1, per-language macro-F1)."""
    languages: list[str] = []
    for m in metrics_list:
        for code in m.get("validation", {}).get("per_language", {}):
            if code not in languages:
                languages.append(code)
    languages = languages[:lang_top_k]
    rows = []
    for m in metrics_list:
        val, test = m.get("validation", {}), m.get("test", {})
        row = {
            "head": m["head"],
            "val_macro_f1": val.get("macro_f1"),
            "val_micro_f1": val.get("micro_f1"),
            "test_macro_f1": test.get("macro_f1"),
            "test_micro_f1": test.get("micro_f1"),
            "train_seconds": m.get("train_seconds"),
        }
        for code in languages:
            row[f"val_{code}"] = val.get("per_language", {}).get(code, {}).get("macro_f1")
        rows.append(row)
    return rows, languages


def format_markdown(rows: list[dict]) -> str:
    if not rows:
        return ""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "|".join("---" for _ in keys) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r[k]) for k in keys) + " |")
    return "\n".join(lines) + "\n"


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4f}" if v <= 1.0 else f"{v:.2f}"
    return str(v)


def write_comparison(out: Path, rows: list[dict], languages: list[str]) -> None:
    from .atomic import write_atomic, write_json_atomic

    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "comparison.json", {"rows": rows, "languages": languages})
    write_atomic(out / "comparison.md", lambda p: p.write_text(format_markdown(rows), encoding="utf-8"))
    write_atomic(out / "comparison.png", lambda p: plot_comparison(rows, languages, p))


def plot_comparison(rows: list[dict], languages: list[str], path: Path) -> None:
    """Grouped bars: validation macro-F1 overall and per language, one colour per head."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    groups = ["overall", *languages]
    width = 0.8 / max(len(rows), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(groups) + 2), 4))
    x = np.arange(len(groups))
    for i, r in enumerate(rows):
        vals = [r["val_macro_f1"], *[r.get(f"val_{c}") for c in languages]]
        ax.bar(x + i * width - 0.4 + width / 2, [v if v is not None else 0 for v in vals], width, label=r["head"])
    ax.set_xticks(x, groups)
    ax.set_ylabel("validation macro-F1")
    ax.set_ylim(0, 1)
    # above the axes, so it never covers a bar
    ax.legend(ncols=min(len(rows), 6), fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)
