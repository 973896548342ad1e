"""Tables the CLI prints (rich): one run's metrics, and the comparison of several."""

from __future__ import annotations


def metrics_table(metrics: dict, lang_top_k: int = 10, splits: tuple[str, ...] = ("validation", "test")) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{metrics['head']} on {metrics.get('encoder')}")
    table.add_column("split")
    for col in ("macro-F1", "micro-F1", "accuracy", "rows"):
        table.add_column(col, justify="right")
    for split in splits:
        m = metrics.get(split)
        if not m or m.get("macro_f1") is None:
            continue
        table.add_row(
            split, f"{m['macro_f1']:.4f}", f"{m['micro_f1']:.4f}", f"{m['accuracy']:.4f}", f"{m['support']:,}"
        )
        for code, lm in list(m.get("per_language", {}).items())[:lang_top_k]:
            table.add_row(
                f"  {split}/{code}", f"{lm['macro_f1']:.4f}", f"{lm['micro_f1']:.4f}", "", f"{lm['support']:,}"
            )
    Console().print(table)


def _cell(key: str, value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.2f}" if key.endswith("seconds") else f"{value:.4f}"
    return str(value)


HEADINGS = {
    "head": "head",
    "val_macro_f1": "val macro-F1",
    "val_micro_f1": "val micro-F1",
    "test_macro_f1": "test macro-F1",
    "test_micro_f1": "test micro-F1",
    "train_seconds": "train s",
}


def comparison_table(rows: list[dict]) -> None:
    """Two tables that each fit 80 columns: overall scores, then validation macro-F1 per language."""
    from rich.console import Console
    from rich.table import Table

    if not rows:
        return
    console = Console()
    overall = Table(title="comparison")
    keys = [k for k in rows[0] if k in HEADINGS]
    for key in keys:
        overall.add_column(HEADINGS[key], justify="left" if key == "head" else "right")
    for r in rows:
        overall.add_row(*(_cell(k, r[k]) for k in keys))
    console.print(overall)
    languages = [k for k in rows[0] if k.startswith("val_") and k not in HEADINGS]
    if languages:
        per_language = Table(title="validation macro-F1 per language")
        per_language.add_column("head")
        for key in languages:
            per_language.add_column(key.removeprefix("val_"), justify="right")
        for r in rows:
            per_language.add_row(r["head"], *(_cell(k, r[k]) for k in languages))
        console.print(per_language)
