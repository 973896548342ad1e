"""Shared by the scale benchmarks: the LSPC-sized synthetic corpus and a synthetic embedding cache for it.

The corpus comes from the project's own generator (prodcat_pipeline.sample: 952k rows, reference language
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

    from prodcat_pipeline.sample import generate_titles, split_by_cluster

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
    """Stand-in encoder: class prototype * signal + Gaussian noise, L2-normalised, `dim` wide."""

    def __init__(self, dim: int, text_to_label: dict[str, int], n_classes: int, signal: float = 0.08, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.dim = dim
        self.prototypes = rng.standard_normal((n_classes, dim)).astype(np.float32)
        self.prototypes /= np.linalg.norm(self.prototypes, axis=1, keepdims=True)
        self.text_to_label = text_to_label
        self.signal = signal
        self.rng = np.random.default_rng(seed + 1)

    def get_embedding_dimension(self) -> int:
        return self.dim

    def encode(self, texts, batch_size=None, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False):
        labels = np.array([self.text_to_label.get(t, 0) for t in texts])
        x = self.rng.standard_normal((len(texts), self.dim)).astype(np.float32) / np.sqrt(self.dim)
        x += self.signal * self.prototypes[labels]
        return x / np.linalg.norm(x, axis=1, keepdims=True)


def synthetic_cache(dim: int = 384, rows: int = 952_000, cache_dir: Path | None = None):
    """The embedding cache of `corpus(rows)` under a stand-in encoder `bench/out/synthetic-encoder-<dim>`
    (a folder, so it is fingerprinted like any local model). Returns (config, CachedDataset)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    import prodcat_pipeline.embedder as embedder
    from prodcat_pipeline.cache import CacheError, load_cache, preprocess_texts
    from prodcat_pipeline.config import PipelineConfig

    data = corpus(rows)
    encoder_dir = OUT / f"synthetic-encoder-{dim}"
    encoder_dir.mkdir(parents=True, exist_ok=True)
    (encoder_dir / "weights.txt").write_text(f"random unit vectors, dim={dim}, seed=0\n")
    cfg = PipelineConfig()
    cfg.data.path = str(data)
    cfg.encoder.model = str(encoder_dir)
    cfg.cache.dir = str(cache_dir or OUT / "cache")
    try:
        return cfg, load_cache(config=cfg)
    except CacheError:
        pass
    table = pq.read_table(data, columns=["text", "label"])
    texts = preprocess_texts(table["text"]).to_pylist()
    text_to_label = dict(zip(texts, table["label"].to_pylist(), strict=True))
    n_classes = int(pc.max(table["label"]).as_py()) + 1
    original = embedder.load_encoder
    embedder.load_encoder = lambda *a, **k: RandomUnitEncoder(dim, text_to_label, n_classes)
    try:
        return cfg, embedder.embed(cfg, show_progress=False).cached
    finally:
        embedder.load_encoder = original
