"""Shared fixtures: offline environment, a tiny deterministic fake encoder and small dataset builders."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

# set before anything imports huggingface_hub / transformers (they read these at import time)
for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_var, "1")

FAKE_DIM = 16


def fake_vector(text: str, dim: int = FAKE_DIM) -> np.ndarray:
    """The fake encoder's L2-normalised float32 vector for one (already preprocessed) text."""
    seed = int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def fake_vectors(texts, dim: int = FAKE_DIM) -> np.ndarray:
    if not len(texts):
        return np.zeros((0, dim), np.float32)
    return np.stack([fake_vector(t, dim) for t in texts])


class FakeEncoder:
    """Stands in for a SentenceTransformer: hash-seeded vectors, counts the calls and texts it sees."""

    def __init__(self, dim: int = FAKE_DIM):
        self.dim = dim
        self.calls = 0
        self.texts: list[str] = []
        self.kwargs: list[dict] = []
        self.sizes: list[int] = []  # texts per encode call

    def encode(self, texts, batch_size, normalize_embeddings, convert_to_numpy, show_progress_bar):
        self.calls += 1
        self.texts.extend(texts)
        self.sizes.append(len(texts))
        self.kwargs.append(
            {
                "batch_size": batch_size,
                "normalize_embeddings": normalize_embeddings,
                "convert_to_numpy": convert_to_numpy,
                "show_progress_bar": show_progress_bar,
            }
        )
        return fake_vectors(list(texts), self.dim)

    def get_embedding_dimension(self) -> int:
        return self.dim

    # embedder.py evaluates `model.get_sentence_embedding_dimension` eagerly as getattr's default (see
    # test_cache.py::test_encoder_with_only_get_embedding_dimension), so the fake offers both names.
    def get_sentence_embedding_dimension(self) -> int:
        return self.dim


class SlowFakeEncoder(FakeEncoder):
    """A FakeEncoder that sleeps `delay` seconds per call: for tests that interrupt or race encoding."""

    delay = 0.01

    def encode(self, texts, **kwargs):
        import time

        time.sleep(self.delay)
        return super().encode(texts, **kwargs)


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("PRODCAT_CACHE", str(tmp_path / "default-cache"))  # never the user's cache
    monkeypatch.setenv("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")


@pytest.fixture
def fake_encoder(monkeypatch) -> FakeEncoder:
    """Patch the embedder's encoder loader to hand out one FakeEncoder (returned for assertions)."""
    import prodcat_pipeline.embedder as embedder

    enc = FakeEncoder()
    loads = []

    def _load(name, *, device=None, precision="auto", **_):
        loads.append(name)
        return enc

    monkeypatch.setattr(embedder, "load_encoder", _load)
    enc.loads = loads
    return enc


@pytest.fixture
def make_config(tmp_path):
    """make_config(data_path, **cache/encoder settings) -> PipelineConfig with a temporary cache dir."""
    from prodcat_pipeline.config import PipelineConfig

    def _make(data_path, cache_dir: str | Path | None = None, **settings) -> PipelineConfig:
        cfg = PipelineConfig()
        cfg.data.path = str(data_path)
        cfg.cache.dir = str(cache_dir or tmp_path / "cache")
        cfg.encoder.device = "cpu"
        for dotted, value in settings.items():
            section, _, key = dotted.partition("__")
            setattr(getattr(cfg, section), key, value)
        return cfg

    return _make


# ---------------------------------------------------------------- dataset builders

LABELS = ["food", "phones", "shoes"]  # sorted: string labels get these ids
SAMPLE_ROWS = [
    # text, label, split, language, cluster
    ("Damen Laufschuhe schwarz Größe 39", "shoes", "train", "de", "p1"),
    ("Herren Sneaker weiß Leder", "shoes", "train", "de", "p2"),
    ("Apple iPhone 13 128GB blue", "phones", "train", "en", "p3"),
    ("Samsung Galaxy S21, 5G, black", "phones", "train", "en", "p4"),
    ("Chocolat noir 70% cacao 100g", "food", "train", "fr", "p5"),
    ("Bio Vollmilch 1L", "food", "train", "de", "p6"),
    ("Running shoes for women", "shoes", "validation", "en", "p7"),
    ('Pixel 7 "Pro" 256GB', "phones", "validation", "en", "p8"),
    ("Pâtes complètes 500g", "food", "validation", "fr", "p9"),
    ("チョコレート 詰め合わせ", "food", "test", "ja", "p10"),
    ("Xiaomi Redmi Note 12", "phones", "test", "en", "p11"),
    ("Trail running shoe waterproof", "shoes", "test", "en", "p12"),
]


def sample_columns(rows=SAMPLE_ROWS, **rename) -> dict[str, list]:
    cols = {"text": [], "label": [], "split": [], "language": [], "cluster": []}
    for r in rows:
        for k, v in zip(cols, r, strict=True):
            cols[k].append(v)
    return {rename.get(k, k): v for k, v in cols.items()}


def write_table(path: Path, columns: dict[str, list]) -> Path:
    """Write `columns` as Parquet, CSV or JSONL depending on the suffix of `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table(columns)
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        pq.write_table(table, path)
    elif suffix == ".csv":
        import pyarrow.csv as pcsv

        pcsv.write_csv(table, path)
    elif suffix == ".jsonl":
        with open(path, "w", encoding="utf-8") as fh:
            for row in table.to_pylist():
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    else:  # pragma: no cover - test helper misuse
        raise ValueError(suffix)
    return path


@pytest.fixture
def sample_parquet(tmp_path) -> Path:
    """The 12-row sample as one Parquet file with a `split` column."""
    return write_table(tmp_path / "data" / "sample.parquet", sample_columns())


def product_columns(n: int, n_labels: int = 5, seed: int = 0, split: bool = False) -> dict[str, list]:
    """`n` synthetic rows with repeated titles (so there are duplicates), string labels, languages."""
    rng = np.random.default_rng(seed)
    cols = {
        "text": [f"product {int(i)} model {int(i) % 7}" for i in rng.integers(0, max(n * 2 // 3, 1), n)],
        "label": [f"cat{int(i)}" for i in rng.integers(0, n_labels, n)],
        "language": ["en"] * n,
    }
    if split:
        cols["split"] = [("train", "train", "train", "validation", "test")[i % 5] for i in range(n)]
    return cols


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """The tensors in tests are tiny: one thread is faster and steadier on a busy machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
