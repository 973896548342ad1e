"""Stage one against the bare encoder: `prodcat embed` titles/s vs `SentenceTransformer.encode` on the same
distinct titles, model and batch size, measured in the same run (the ratio shows what the cache costs);
plus the dedup speed-up on a corpus with duplicate offers.

    .venv/bin/python bench/embed_speed.py [--models use-multilingual,minilm] [--titles 20000] [--batch-size 128]

Titles come from the project's synthetic LSPC generator (prodcat_pipeline.synthetic). The dedup part counts
distinct titles of the full 952k-row corpus (cheap) and times embed vs bare encode on a duplicate-rich
subset (`--dup-rows`).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _dataset(table, folder: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = table.num_rows
    table = table.append_column("split", pa.array(["train"] * n))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "titles.parquet"
    pq.write_table(table, path)
    return path


def bare_encode(model_name: str, texts: list[str], batch_size: int) -> float:
    from prodcat_pipeline.encoders import load_encoder

    model = load_encoder(model_name)
    model.encode(texts[:256], batch_size=batch_size)  # warm-up (lazy weights, thread pools)
    t = time.perf_counter()
    model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
    return time.perf_counter() - t


def prodcat_embed(model_name: str, data: Path, batch_size: int, cache: Path) -> tuple[float, int, float]:
    from prodcat_pipeline.config import load_config
    from prodcat_pipeline.embedder import embed

    cfg = load_config(
        overrides={"data.path": str(data), "encoder.model": model_name, "encoder.batch_size": batch_size,
                   "cache.dir": str(cache)}
    )  # fmt: skip
    t = time.perf_counter()
    result = embed(cfg, show_progress=False)
    return time.perf_counter() - t, result.encoded, result.encode_seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="use-multilingual,minilm")
    ap.add_argument("--titles", type=int, default=20000, help="distinct titles per measurement")
    ap.add_argument("--minilm-titles", type=int, default=6000, help="distinct titles for the slower minilm")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--dup-rows", type=int, default=40000, help="rows of the duplicate-rich corpus (0 = skip)")
    args = ap.parse_args(argv)

    import pyarrow.compute as pc

    from prodcat_pipeline.synthetic import generate_titles

    print(f"# stage one vs bare encoder — {time.strftime('%Y-%m-%d %H:%M')} — {os.cpu_count()} CPU cores\n")
    print("| model | titles | batch | bare encode titles/s | prodcat embed titles/s (wall) | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for model in args.models.split(","):
            n = args.minilm_titles if model == "minilm" else args.titles
            table = generate_titles(int(n * 1.1), seed=1, duplicate_rate=0.0)
            texts_col = pc.unique(table["text"])[:n]
            table = table.filter(pc.is_in(table["text"], value_set=texts_col))
            table = table.take(pc.unique(pc.index_in(texts_col, value_set=table["text"])))  # one row per title
            texts = table["text"].to_pylist()
            data = _dataset(table, tmp / model)
            bare = bare_encode(model, texts, args.batch_size)
            wall, encoded, _ = prodcat_embed(model, data, args.batch_size, tmp / f"cache-{model}")
            assert encoded == len(texts), (encoded, len(texts))
            print(
                f"| {model} | {len(texts):,} | {args.batch_size} | {len(texts) / bare:,.0f} | "
                f"{len(texts) / wall:,.0f} | {bare / wall:.3f}x |",
                flush=True,
            )

        if args.dup_rows:
            full = generate_titles(952_000, seed=0)
            n_distinct = len(pc.unique(pc.utf8_trim_whitespace(full["text"])))
            print(
                f"\n952k synthetic corpus: {full.num_rows:,} rows, {n_distinct:,} distinct titles "
                f"→ encoding each distinct title once does {full.num_rows / n_distinct:.2f}x less encoder work\n"
            )
            sub = generate_titles(args.dup_rows, seed=0)
            data = _dataset(sub, tmp / "dups")
            model = args.models.split(",")[0]
            texts = sub["text"].to_pylist()
            bare = bare_encode(model, texts, args.batch_size)
            wall, encoded, _ = prodcat_embed(model, data, args.batch_size, tmp / "cache-dups")
            print("| model | rows | distinct | bare encode of every row (s) | prodcat embed (s) | speed-up |")
            print("|---|---:|---:|---:|---:|---:|")
            print(f"| {model} | {len(texts):,} | {encoded:,} | {bare:.1f} | {wall:.1f} | {bare / wall:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
