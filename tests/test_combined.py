"""Several encoders, one head: `encoder.model: "use-multilingual,minilm"` reads each encoder's own cache and
concatenates their (L2-normalised, weighted) vectors, in embed, train, knn-eval, predict and run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from test_knn_predict_run import assert_one_error_line, invoke
from test_train import TRAIN_DEFAULTS, LearnableEncoder, dataset_columns, write_parquet

from prodcat_pipeline.config import PipelineConfig, TrainConfig, encoder_names, load_config
from prodcat_pipeline.errors import CacheCorrupt, ProdcatError

MODELS = "use-multilingual,minilm"
WEIGHTS = [1.0, 0.5]


class TwoEncoders:
    """A differently shaped fake encoder per name (24-d and 12-d), each counting the titles it encodes."""

    def __init__(self, tmp: Path, monkeypatch, n: int = 240):
        import prodcat_pipeline.embedder as embedder
        import prodcat_pipeline.encoders as encoders

        self.tmp, self.cache_dir = tmp, tmp / "cache"
        self.by_name = {
            "use-multilingual": LearnableEncoder(dim=24, seed=7),
            "minilm": LearnableEncoder(dim=12, seed=3),
        }

        def _load(name, *, device=None, precision="auto", **_):
            return self.by_name[encoders.canonical_name(name)]

        monkeypatch.setattr(embedder, "load_encoder", _load)
        monkeypatch.setattr(encoders, "load_encoder", _load)
        self.columns = dataset_columns(n)
        self.data = write_parquet(tmp / "data" / "products.parquet", self.columns)

    def config(self, model: str = MODELS, weights=None, shard_size: int = 64, **train) -> PipelineConfig:
        cfg = PipelineConfig()
        cfg.data.path, cfg.cache.dir, cfg.cache.shard_size = str(self.data), str(self.cache_dir), shard_size
        cfg.encoder.device, cfg.encoder.model, cfg.encoder.weights = "cpu", model, weights
        cfg.train = TrainConfig(**{**TRAIN_DEFAULTS, **train})
        return cfg

    def encoded(self, name: str) -> int:
        return len(self.by_name[name].texts)


@pytest.fixture
def two(tmp_path, monkeypatch) -> TwoEncoders:
    return TwoEncoders(tmp_path, monkeypatch)


def unit(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def expected_combined(two: TwoEncoders, rows: np.ndarray, weights=WEIGHTS) -> np.ndarray:
    """By hand: each part's cached (float16) vector of each row, normalised, weighted, side by side, in float16."""
    from prodcat_pipeline.reader import load_cache

    blocks = []
    for name, w in zip(encoder_names(MODELS), weights, strict=True):
        part = load_cache(two.config(model=name))
        blocks.append(w * unit(part.store.gather(part.column("vec")[rows], np.float16)))
    return np.concatenate(blocks, axis=1).astype(np.float16).astype(np.float32)


# ---------------------------------------------------------------- the combined store


def test_gather_is_the_concatenation_of_normalised_weighted_parts(two, monkeypatch):
    import prodcat_pipeline.combined as combined
    from prodcat_pipeline import embed
    from prodcat_pipeline.reader import load_cache, training_vectors

    monkeypatch.setattr(combined, "GATHER_ROWS", 50)  # several slices per gather
    result = embed(two.config(weights=WEIGHTS))
    assert [p.cache_dir for p in result.parts] == result.cached.store.folders and len(result.parts) == 2
    assert result.encoded == 2 * result.unique_texts and result.cache_dir == two.cache_dir
    cached = load_cache(two.config(weights=WEIGHTS))
    assert cached.dim == 24 + 12 and cached.store.manifest["dtype"] == "float16"
    rows = np.arange(len(cached.rows))
    assert np.array_equal(cached.column("vec"), rows)
    got = cached.store.gather(rows[::-1])
    assert got.dtype == np.float32 and got == pytest.approx(expected_combined(two, rows[::-1]), abs=2e-3)
    assert np.linalg.norm(got[:, :24], axis=1) == pytest.approx(1.0, abs=2e-3)
    assert np.linalg.norm(got[:, 24:], axis=1) == pytest.approx(0.5, abs=2e-3)
    X, y = cached.split_arrays("validation")
    assert X.shape == (int(cached.mask("validation").sum()), 36) and len(y) == len(X)
    # training batches (each part's memory-mapped shards) give exactly what gather gives in the cache dtype
    view = training_vectors(cached.store)
    idx = np.array([5, 0, 77, 3, 200, 5])
    batch = view.take(torch.from_numpy(idx))
    assert batch.dtype == torch.float16 and np.array_equal(batch.numpy(), cached.store.gather(idx, np.float16))
    view.consolidate()
    assert np.array_equal(view.take(torch.from_numpy(idx)).numpy(), batch.numpy())


def test_combined_encoder_and_key(two):
    from prodcat_pipeline import embed
    from prodcat_pipeline.combined import combined_key
    from prodcat_pipeline.encoders import identify
    from prodcat_pipeline.reader import load_cache

    cached = embed(two.config(weights=WEIGHTS)).cached
    parts = [load_cache(two.config(model=n)) for n in encoder_names(MODELS)]
    enc = cached.encoder
    assert enc["name"] == MODELS and enc["weights"] == WEIGHTS
    assert [p["fingerprint"] for p in enc["parts"]] == [identify(n).fingerprint for n in encoder_names(MODELS)]
    assert cached.key == combined_key([p.key for p in parts], WEIGHTS) and len(cached.key) == 16
    assert cached.key not in {p.key for p in parts}
    assert load_cache(two.config(weights=WEIGHTS)).key == cached.key  # stable
    assert load_cache(two.config()).key != cached.key  # the weights are part of it
    # a single encoder is what it always was: its own cache, its own key, no "parts"
    assert "parts" not in parts[0].encoder and parts[0].folder == cached.store.folders[0]


def _record_index(cached) -> None:
    """Record a rewritten row index's checksum, as embed would have (these tests write indexes by hand)."""
    from prodcat_pipeline.store import write_manifest
    from prodcat_pipeline.text import checksum_file

    manifest = cached.store.manifest
    entry = manifest["datasets"][cached.dataset["fingerprint"]]
    entry["index_xxh3"] = checksum_file(cached.folder / entry["index"])
    write_manifest(cached.folder, manifest)


def test_parts_are_aligned_by_row_id_and_refused_when_they_differ(two):
    from prodcat_pipeline import embed
    from prodcat_pipeline.reader import load_cache

    embed(two.config())
    before = load_cache(two.config()).store.gather(np.arange(len(two.columns["text"])))
    minilm = load_cache(two.config(model="minilm"))
    index = minilm.folder / minilm.dataset["index"]
    table = pq.read_table(index)
    perm = np.random.default_rng(0).permutation(len(table))
    pq.write_table(table.take(perm), index)  # the same rows in another order
    _record_index(minilm)
    assert np.array_equal(load_cache(two.config()).store.gather(np.arange(len(table))), before)
    ids = table["row_id"].to_numpy().copy()
    ids[3] = 10**9
    pq.write_table(table.set_column(table.schema.get_field_index("row_id"), "row_id", [ids]), index)
    _record_index(minilm)
    with pytest.raises(CacheCorrupt, match="other rows"):
        load_cache(two.config())


def test_a_missing_part_is_encoded_and_the_existing_one_reused(two):
    from prodcat_pipeline import embed
    from prodcat_pipeline.cache import TRAINING_COLUMNS, open_cache
    from prodcat_pipeline.errors import CacheMissing
    from prodcat_pipeline.reader import load_cache

    alone = embed(two.config(model="use-multilingual"))
    assert two.encoded("use-multilingual") == alone.unique_texts and two.encoded("minilm") == 0
    with pytest.raises(CacheMissing, match="minilm"):
        load_cache(two.config())
    cached, built = open_cache(two.config(), columns=TRAINING_COLUMNS)
    assert built and cached.rows.column_names == TRAINING_COLUMNS
    assert two.encoded("use-multilingual") == alone.unique_texts  # reused: nothing re-encoded
    assert two.encoded("minilm") == alone.unique_texts
    assert cached.store.folders[0] == alone.cache_dir  # the lone encoder's cache, shared
    _, built = open_cache(two.config())
    assert not built and two.encoded("minilm") == alone.unique_texts
    again = embed(two.config(weights=WEIGHTS))
    assert again.encoded == 0 and again.reused == 2 * alone.unique_texts


def test_the_dataset_is_read_and_hashed_once_for_all_encoders(two, monkeypatch):
    import prodcat_pipeline.data as data
    import prodcat_pipeline.embedder as embedder
    from prodcat_pipeline import embed
    from prodcat_pipeline.reader import load_cache

    calls = {"load": 0, "hash": 0}

    def counted(fn, name):
        def wrapper(*a, **k):
            calls[name] += 1
            return fn(*a, **k)

        return wrapper

    monkeypatch.setattr(embedder, "load_dataset", counted(embedder.load_dataset, "load"))
    monkeypatch.setattr(data, "dataset_fingerprint", counted(data.dataset_fingerprint, "hash"))
    embed(two.config())
    assert calls["load"] == 1 and two.encoded("minilm") > 0 and two.encoded("use-multilingual") > 0
    calls["hash"] = 0
    load_cache(two.config())
    assert calls["hash"] == 1


def test_bad_lists_are_refused(two):
    with pytest.raises(ProdcatError, match="3 weights for 2 encoders"):
        load_config(overrides={"encoder.model": MODELS, "encoder.weights": "1,2,3"})
    with pytest.raises(ProdcatError, match="greater than 0"):
        load_config(overrides={"encoder.model": MODELS, "encoder.weights": "1,0"})
    assert load_config(overrides={"encoder.model": MODELS, "encoder.weights": "1, 0.5"}).encoder.weights == WEIGHTS
    assert encoder_names("minilm") == ["minilm"] and encoder_names(" a , b ,") == ["a", "b"]
    from prodcat_pipeline.reader import load_cache

    cfg = two.config(model="minilm,all-MiniLM-L6-v2")
    with pytest.raises(ProdcatError, match="twice"):
        load_cache(cfg)
    cfg = two.config(weights=WEIGHTS)
    cfg.encoder.model = "use-multilingual,minilm,other"  # weights now one short: caught where it is used
    with pytest.raises(ProdcatError, match="one weight per encoder"):
        load_cache(cfg)


# ---------------------------------------------------------------- train, predict, knn-eval, run


def test_train_then_predict_gives_the_cache_s_probabilities(two):
    from prodcat_pipeline import train
    from prodcat_pipeline.checkpoint import head_from_checkpoint, read_checkpoint
    from prodcat_pipeline.inference import predict_logits, softmax
    from prodcat_pipeline.predictor import Predictor
    from prodcat_pipeline.reader import load_cache

    out = two.tmp / "runs" / "v2"
    result = train(two.config(weights=WEIGHTS, head="v2", epochs=2), out=out)
    assert result.cache_built and result.metrics["encoder"] == MODELS
    assert result.metrics["validation"]["macro_f1"] > 0.5
    ckpt = read_checkpoint(out / "best.pt")
    assert ckpt["dim"] == 36 and ckpt["encoder"]["weights"] == WEIGHTS and len(ckpt["encoder"]["parts"]) == 2
    cached = load_cache(two.config(weights=WEIGHTS))
    m = cached.mask("train")
    titles = [t for t, keep in zip(two.columns["text"], m, strict=True) if keep][:20]
    X, _ = cached.split_arrays("train")
    expected = softmax(predict_logits(head_from_checkpoint(ckpt), X[:20], None, "cpu"))
    rows = Predictor(out, device="cpu").predict(titles, top_k=4)
    got = np.array([[t["probability"] for t in sorted(r["top_k"], key=lambda t: t["label"])] for r in rows])
    assert got == pytest.approx(expected, abs=1e-5)


def test_predict_checks_every_part_s_weights(two, monkeypatch):
    import prodcat_pipeline.encoders as encoders
    from prodcat_pipeline import train
    from prodcat_pipeline.predictor import Predictor

    out = two.tmp / "runs" / "linear"
    train(two.config(head="linear", epochs=1), out=out)
    real = encoders.identify

    def identify(name):
        found = real(name)
        return found if found.name != "minilm" else encoders.EncoderIdentity(found.name, None, "other-weights")

    monkeypatch.setattr(encoders, "identify", identify)
    with pytest.raises(ProdcatError, match="'minilm' found here has other weights"):
        Predictor(out, device="cpu")


def test_the_command_line_with_several_encoders(two, monkeypatch):
    monkeypatch.chdir(two.tmp)
    data = ["--data", two.data, "--cache-dir", two.cache_dir, "--model", MODELS]
    r = invoke(["embed", *data, "--encoder-weights", "1,0.5"])
    assert r.exit_code == 0, r.output
    assert "reused 0 from the cache" in r.stdout and two.encoded("minilm") > 0
    r = invoke(["knn-eval", *data, "--encoder-weights", "1,0.5", "--out", two.tmp / "knn", "--k", "5"])
    assert r.exit_code == 0, r.output
    knn = json.loads((two.tmp / "knn" / "metrics.json").read_text())
    assert knn["encoder"] == MODELS and knn["validation"]["macro_f1"] > 0.5
    err = assert_one_error_line(invoke(["train", *data, "--encoder-weights", "1,2,3"]), "encoder.weights")
    assert "3 weights for 2 encoders" in err
    doc = {
        "data": {"path": str(two.data)},
        "cache": {"dir": str(two.cache_dir), "shard_size": 64},
        "encoder": {"model": MODELS, "weights": WEIGHTS},
        "train": {k: v for k, v in TRAIN_DEFAULTS.items() if k != "epochs"} | {"epochs": 1},
        "heads": ["linear"],
        "out": str(two.tmp / "pipe"),
    }
    (two.tmp / "pipeline.yaml").write_text(yaml.safe_dump(doc))
    calls = two.encoded("minilm")
    r = invoke(["run"])
    assert r.exit_code == 0, r.output
    assert two.encoded("minilm") == calls  # the parts' caches are reused
    linear = json.loads((two.tmp / "pipe" / "linear" / "metrics.json").read_text())
    assert linear["encoder"] == MODELS
    assert linear["cache_key"] == knn["cache_key"]  # same encoders and weights: the same combined cache
    r = invoke(["predict", "--run", two.tmp / "pipe" / "linear"], input="shoes de item 1\nfood en item 2\n")
    assert r.exit_code == 0, r.output
    assert [json.loads(line)["label"] for line in r.stdout.splitlines()] == ["shoes", "food"]
