"""The README.md model card `prodcat export` writes: what the model is, what it was trained on, how well it
did (overall, per language, per class) and how to use it."""

from __future__ import annotations


def model_card(doc: dict, metrics: dict | None, source: str) -> str:
    """Markdown for an exported model's description `doc` and its run's `metrics` (metrics.json)."""
    config, metrics = doc["config"], metrics or {}
    encoder = doc["encoder"]
    parts = encoder.get("parts") or [encoder]
    lines = [
        f"# prodcat model: {doc['name']} ({doc['kind']})",
        "",
        f"Classifies product titles into {len(doc['label_names'])} categories: {', '.join(doc['label_names'])}.",
        "",
        "## Model",
        "",
        f"- kind: {doc['kind']}" + (f" (head `{doc['head']}`)" if doc.get("head") else ""),
        "- encoder: " + ", ".join(f"`{p.get('name')}` (weights {p.get('fingerprint')})" for p in parts),
        f"- vectors: {config['cache']['dtype']}, normalised: {config['encoder']['normalize']}",
        f"- training languages: {', '.join(doc['languages']) or 'not used by this model'}",
        f"- trained from: `{source}`",
        f"- command: `{doc.get('command') or metrics.get('command') or 'the Python API (no command recorded)'}`",
        "",
        "## Data",
        "",
        f"- dataset: `{metrics.get('dataset') or config['data']['path']}`",
        f"- columns: text `{config['data']['text_column']}`, label `{config['data']['label_column']}`, "
        f"language `{config['data']['language_column']}`",
        "",
    ]
    for split in ("validation", "test"):
        block = metrics.get(split)
        if block and block.get("macro_f1") is not None:
            lines += _split_section(split, block)
    if not any(metrics.get(s) for s in ("validation", "test")):
        lines += ["No metrics were recorded for this run.", ""]
    lines += [
        "## Use",
        "",
        "```python",
        "from prodcat_pipeline import Classifier",
        "clf = Classifier.from_pretrained('path/to/this/folder')",
        "clf.predict(['Damen Laufschuhe schwarz Gr. 39'])",
        "```",
        "",
        "or `prodcat predict --model path/to/this/folder --input titles.csv --output predictions.parquet`.",
        "",
        "Files: `prodcat_model.json` (description), `model.safetensors` (weights), `metrics.json`. Nothing here is",
        "a pickle: loading reads JSON and safetensors only.",
        "",
    ]
    return "\n".join(lines)


def _split_section(split: str, block: dict) -> list[str]:
    lines = [
        f"## Metrics on {split} ({block['support']:,} rows)",
        "",
        f"macro-F1 **{block['macro_f1']:.4f}**, micro-F1 {block['micro_f1']:.4f}, accuracy {block['accuracy']:.4f}",
        "",
    ]
    lines += _table("language", ("macro_f1", "micro_f1"), ("macro-F1", "micro-F1"), block.get("per_language"))
    lines += _table("class", ("precision", "recall", "f1"), ("precision", "recall", "F1"), block.get("per_class"))
    return lines


def _table(first: str, keys: tuple[str, ...], headings: tuple[str, ...], entries: dict | None) -> list[str]:
    """A markdown table of `entries` ({name: {support, <keys>...}}): name, rows, then each key to 4 places."""
    if not entries:
        return []
    lines = [f"| {first} | rows | " + " | ".join(headings) + " |", "|---|---:|" + "---:|" * len(keys)]
    lines += [f"| {name} | {m['support']:,} | " + " | ".join(f"{m[k]:.4f}" for k in keys) + " |"
              for name, m in entries.items()]  # fmt: skip
    return [*lines, ""]
