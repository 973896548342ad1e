"""Stage one on Ray against the local engine, on the same data and machine, measured in the same run:
`prodcat embed` (local: this process + forked encoder workers) vs `prodcat embed --engine ray` (a local Ray
instance that embed starts and stops itself, one single-thread actor per CPU), each into a fresh cache.

    .venv/bin/python bench/scale_out.py [--sizes 10000,100000,952000] [--workers 1,2] [--worker-rows 100000]

Rows are the first N of the synthetic 952k LSPC-shaped corpus (bench/out/lspc_952000.parquet, written by
`python -m prodcat_pipeline.synthetic --rows 952000 --seed 0 --out ...` when absent). Prints a cost table
(wall seconds per size and engine, their ratio) and a per-worker table (Ray actors 1..N vs the local pool
with as many processes), and writes bench/out/scale_out.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "bench" / "out" / "lspc_952000.parquet"


def _corpus() -> Path:
    if not CORPUS.exists():
        from prodcat_pipeline.synthetic import generate_titles

        CORPUS.parent.mkdir(parents=True, exist_ok=True)
        import pyarrow.parquet as pq

        pq.write_table(generate_titles(952_000, seed=0), CORPUS)
    return CORPUS


def _slice(rows: int, folder: Path) -> Path:
    import pyarrow.parquet as pq

    path = folder / f"lspc_{rows}.parquet"
    pq.write_table(pq.read_table(_corpus()).slice(0, rows), path)
    return path


def run_embed(data: Path, cache: Path, **encoder) -> dict:
    """One `embed` into a fresh cache: wall seconds (dataset read, dedup, engine start-up, encode, writes)."""
    from prodcat_pipeline.config import load_config
    from prodcat_pipeline.embedder import embed

    overrides = {"data.path": str(data), "cache.dir": str(cache), "encoder.device": "cpu"}
    overrides |= {f"encoder.{k}": v for k, v in encoder.items() if k != "shard_size"}
    if "shard_size" in encoder:
        overrides["cache.shard_size"] = encoder["shard_size"]
    t = time.perf_counter()
    result = embed(load_config(overrides=overrides), show_progress=False)
    wall = time.perf_counter() - t
    return {"wall": wall, "encoded": result.encoded, "shards": result.shards_written, "rate": result.encoded / wall}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,952000", help="rows of each cost-table run")
    ap.add_argument("--workers", default="1,2", help="worker counts of the per-worker table")
    ap.add_argument("--worker-rows", type=int, default=100_000, help="rows of the per-worker runs (0 = skip)")
    ap.add_argument("--worker-shard-size", type=int, default=16384, help="shard size there (enough shards)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "scale_out.json")
    args = ap.parse_args(argv)

    results: dict = {"cpus": os.cpu_count(), "when": time.strftime("%Y-%m-%d %H:%M"), "cost": [], "workers": []}
    print(f"# local vs --engine ray — {results['when']} — {os.cpu_count()} CPU cores, use-multilingual\n")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print("| rows | distinct titles | shards | local s | ray s | ray / local | local titles/s | ray titles/s |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for rows in [int(n) for n in args.sizes.split(",") if n]:
            data = _slice(rows, tmp)
            local = run_embed(data, tmp / f"local-{rows}")
            ray = run_embed(data, tmp / f"ray-{rows}", engine="ray")
            assert local["encoded"] == ray["encoded"], (local, ray)
            results["cost"].append({"rows": rows, "local": local, "ray": ray})
            print(f"| {rows:,} | {local['encoded']:,} | {local['shards']} | {local['wall']:.1f} | {ray['wall']:.1f} | "
                  f"{ray['wall'] / local['wall']:.2f}x | {local['rate']:,.0f} | {ray['rate']:,.0f} |", flush=True)  # fmt: skip
        if args.worker_rows:
            data = _slice(args.worker_rows, tmp)
            print(f"\n{args.worker_rows:,} rows, shard size {args.worker_shard_size:,}:\n")
            print("| workers | local titles/s | per worker | ray titles/s | per actor | ray / local |")
            print("|---:|---:|---:|---:|---:|---:|")
            for n in [int(w) for w in args.workers.split(",") if w]:
                kw = {"workers": n, "shard_size": args.worker_shard_size}
                local = run_embed(data, tmp / f"wl-{n}", **kw)
                ray = run_embed(data, tmp / f"wr-{n}", engine="ray", **kw)
                results["workers"].append({"workers": n, "local": local, "ray": ray})
                print(f"| {n} | {local['rate']:,.0f} | {local['rate'] / n:,.0f} | {ray['rate']:,.0f} | "
                      f"{ray['rate'] / n:,.0f} | {ray['wall'] / local['wall']:.2f}x |", flush=True)  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
