"""Shared by the scale benchmarks: the LSPC-sized synthetic corpus and a synthetic embedding cache for it.

The corpus comes from the project's own generator (prodcat_pipeline.synthetic: 952k rows, reference language
skew, ~30 % duplicate offers, realistic title lengths). The cache is built by the real `embed` code path
(hashing, dedup, shards, writer thread) with a stand-in encoder that returns random unit vectors with a
weak class signal, so stage two can be measured without encoding a million titles first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "out"


def corpus(rows: int = 952_000, seed: int = 0) -> Path:
    """bench/out/lspc_<rows>.parquet (text, label, cluster, language, split), made once and reused."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from prodcat_pipeline.synthetic import generate_titles, split_by_cluster

    path = OUT / f"lspc_{rows}.parquet"
    if path.exists():
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    splits = split_by_cluster(generate_titles(rows, seed=seed), seed=seed)
    parts = [t.append_column("split", pa.array([name] * t.num_rows)) for name, t in splits.items()]
    tmp = path.with_suffix(".tmp")
    pq.write_table(pa.concat_tables(parts), tmp)
    tmp.rename(path)
    return path


class RandomUnitEncoder:
    """Stand-in encoder with the coarse structure of real title embeddings, L2-normalised, `dim` wide:
    class prototype + a product-cluster centre (offers of one product lie close together; centres spread in
    a 64-d subspace, so neighbourhoods exist as in real embeddings) + per-title noise."""

    def __init__(self, dim: int, text_info: dict[str, tuple[int, int]], n_classes: int, n_clusters: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.dim = dim
        self.prototypes = rng.standard_normal((n_classes, dim)).astype(np.float32) / np.sqrt(dim)
        basis = np.linalg.qr(rng.standard_normal((dim, 64)))[0].T.astype(np.float32)  # 64 orthonormal rows
        self.centres = (rng.standard_normal((n_clusters, 64)).astype(np.float32) / np.sqrt(64)) @ basis
        self.text_info = text_info
        self.rng = np.random.default_rng(seed + 1)

    def get_embedding_dimension(self) -> int:
        return self.dim

    def encode(self, texts, batch_size=None, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False):
        info = np.array([self.text_info.get(t, (0, 0)) for t in texts]).reshape(-1, 2)
        noise = self.rng.standard_normal((len(texts), self.dim)).astype(np.float32) / np.sqrt(self.dim)
        x = 0.15 * self.prototypes[info[:, 0]] + 1.0 * self.centres[info[:, 1]] + 0.5 * noise
        return x / np.linalg.norm(x, axis=1, keepdims=True)


def synthetic_cache(dim: int = 384, rows: int = 952_000, cache_dir: Path | None = None):
    """The embedding cache of `corpus(rows)` under a stand-in encoder `bench/out/synthetic-encoder-<dim>`
    (a folder, so it is fingerprinted like any local model). Returns (config, CachedDataset)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    import prodcat_pipeline.embedder as embedder
    from prodcat_pipeline.config import load_config
    from prodcat_pipeline.errors import CacheMissing
    from prodcat_pipeline.reader import load_cache
    from prodcat_pipeline.text import preprocess_texts

    data = corpus(rows)
    encoder_dir = OUT / f"synthetic-encoder-{dim}"
    encoder_dir.mkdir(parents=True, exist_ok=True)
    (encoder_dir / "weights.txt").write_text(f"structured random unit vectors v3, dim={dim}, seed=0\n")
    cfg = load_config(
        overrides={
            "data.path": str(data),
            "encoder.model": str(encoder_dir),
            "cache.dir": str(cache_dir or OUT / "cache"),
        }
    )
    try:
        cached = load_cache(cfg)
        if "index_xxh3" in cached.dataset and all("xxh3" in s for s in cached.store.manifest["shards"]):
            return cfg, cached
        # a cache written before prodcat recorded xxh3 checksums: embed below encodes nothing and adds them
    except CacheMissing:
        pass
    table = pq.read_table(data, columns=["text", "label", "cluster"])
    texts = preprocess_texts(table["text"]).to_pylist()
    clusters = pc.dictionary_encode(table["cluster"]).combine_chunks().indices.to_numpy()
    text_info = dict(zip(texts, zip(table["label"].to_pylist(), clusters.tolist(), strict=True), strict=True))
    n_classes = int(pc.max(table["label"]).as_py()) + 1
    original = embedder.load_encoder
    embedder.load_encoder = lambda *a, **k: RandomUnitEncoder(dim, text_info, n_classes, int(clusters.max()) + 1)
    try:
        return cfg, embedder.embed(cfg, show_progress=False).cached
    finally:
        embedder.load_encoder = original
