"""Tables the CLI prints (rich): one run's metrics, and the comparison of several."""

from __future__ import annotations


def metrics_table(metrics: dict, lang_top_k: int = 10) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{metrics['head']} on {metrics.get('encoder')}")
    table.add_column("split")
    for col in ("macro-F1", "micro-F1", "accuracy", "rows"):
        table.add_column(col, justify="right")
    for split in ("validation", "test"):
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


def comparison_table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    if not rows:
        return
    table = Table(title="comparison (validation / test)")
    for key in rows[0]:
        table.add_column(key.replace("_", " "), justify="left" if key == "head" else "right")
    for r in rows:
        table.add_row(*(_cell(k, v) for k, v in r.items()))
    Console().print(table)
