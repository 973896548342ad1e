"""Stage one beyond one process: `--engine ray` (a local Ray instance, started once for the module, 2 CPUs) and
`--devices` (sentence-transformers' multi-process pool) must write the very cache a local `embed` writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from prodcat_pipeline.cli import app
from prodcat_pipeline.config import PipelineConfig
from prodcat_pipeline.embedder import embed
from prodcat_pipeline.errors import ProdcatError

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "lspc_sample"
SHARD = 1024  # the sample's 5,599 distinct titles: 6 shards, so both Ray actors get work
TOLERANCE = 1e-3  # float16 storage: one rounding step of a vector element near 0.25; the encoder's own run-to-run
# differences (BLAS threads) are ~1e-7 before rounding

runner = CliRunner()


def _config(cache: Path, **encoder) -> PipelineConfig:
    cfg = PipelineConfig()
    cfg.data.path = str(SAMPLE)
    cfg.cache.dir = str(cache)
    cfg.cache.shard_size = encoder.pop("shard_size", SHARD)
    cfg.encoder.device = "cpu"
    for key, value in encoder.items():
        setattr(cfg.encoder, key, value)
    return cfg


def _row_vectors(cached) -> tuple[np.ndarray, np.ndarray]:
    """(row ids, float32 vectors) of every row of the dataset, in row-id order."""
    order = np.argsort(cached.column("row_id"), kind="stable")
    return cached.column("row_id")[order], cached.store.gather(cached.column("vec")[order])


def _assert_same_cache(built, reference, *, same_layout: bool) -> None:
    """`built` serves every row the vector `reference` serves (within TOLERANCE); with `same_layout`, the row
    index, the shards' rows and their titles are identical too."""
    rows_a, vec_a = _row_vectors(built)
    rows_b, vec_b = _row_vectors(reference)
    np.testing.assert_array_equal(rows_a, rows_b)
    np.testing.assert_allclose(vec_a, vec_b, atol=TOLERANCE, rtol=0)
    built.store.verify_shards()  # every checksum the workers recorded matches the files
    if same_layout:
        assert built.rows.equals(reference.rows)
        shards = [(s["rows"], s["emb"], s["meta"]) for s in built.store.manifest["shards"]]
        assert shards == [(s["rows"], s["emb"], s["meta"]) for s in reference.store.manifest["shards"]]
        import pyarrow.parquet as pq

        for a, b in zip(built.store.manifest["shards"], reference.store.manifest["shards"], strict=True):
            assert pq.read_table(built.folder / a["meta"]).equals(pq.read_table(reference.folder / b["meta"]))


@pytest.fixture(scope="module")
def local_cache(tmp_path_factory):
    """The sample encoded with use-multilingual by the local engine: the reference."""
    return embed(_config(tmp_path_factory.mktemp("local")), show_progress=False)


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance (2 CPUs, no GPU) for the module; skipped when Ray Data is not installed."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield ray
    ray.shutdown()


# ---------------------------------------------------------------- Ray


@pytest.mark.slow
def test_ray_engine_writes_the_local_cache(local_ray, local_cache, tmp_path):
    result = embed(_config(tmp_path / "ray", engine="ray"), show_progress=False)
    assert (result.encoded, result.reused, result.shards_written) == (5599, 0, 6)
    _assert_same_cache(result.cached, local_cache.cached, same_layout=True)
    manifest = json.loads((result.cache_dir / "manifest.json").read_text())
    assert manifest["key"] == local_cache.cached.key and manifest["dim"] == 512
    again = embed(_config(tmp_path / "ray", engine="ray"), show_progress=False)
    assert (again.encoded, again.reused) == (0, 5599)  # Ray is not even asked


def _listed_shards(folder: Path) -> list[dict]:
    try:
        return json.loads((folder / "manifest.json").read_text())["shards"]
    except (OSError, ValueError, KeyError):  # not written yet, or being replaced
        return []


def _map_workers() -> list[int]:
    """PIDs of the running Ray Data actors (Ray names their processes ray::MapWorker(...))."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().startswith(b"ray::MapWorker"):
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds Ray's actors through /proc")
def test_ray_engine_resumes_after_a_killed_driver_and_survives_a_killed_actor(local_ray, local_cache, tmp_path):
    """The driver is SIGKILLed after a few shards are listed: the re-run encodes only the shards not listed,
    leaves the listed ones untouched, and finishes although one of its actors is SIGKILLed midway (Ray
    restarts it and retries its shard)."""
    cache, shard = tmp_path / "ray", 256  # 22 shards
    address = local_ray.get_runtime_context().gcs_address
    cmd = [sys.executable, "-m", "prodcat_pipeline", "embed", "--no-config", "--data", str(SAMPLE),
           "--cache-dir", str(cache), "--device", "cpu", "--shard-size", str(shard), "--engine", "ray",
           "--address", address]  # fmt: skip
    driver = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path)
    folder, deadline = None, time.monotonic() + 120
    while time.monotonic() < deadline and driver.poll() is None:
        folder = next(cache.glob("use-multilingual-*"), None)
        if folder is not None and len(_listed_shards(folder)) >= 2:
            break
        time.sleep(0.02)
    driver.send_signal(signal.SIGKILL)
    _, err = driver.communicate(timeout=30)
    listed = _listed_shards(folder)
    assert 2 <= len(listed) < 22, f"kill came too late or too early ({len(listed)} shards): {err.decode()[-400:]}"
    before = {s["emb"]: (s["xxh3"], (folder / s["emb"]).stat().st_ino) for s in listed}
    deadline = time.monotonic() + 60
    while _map_workers() and time.monotonic() < deadline:  # Ray ends the dead driver's actors
        time.sleep(0.1)
    assert not _map_workers(), "the killed driver's actors outlived it"

    killed = []

    def kill_one_actor():  # once the resumed run has listed a shard of its own
        while not killed and len(_listed_shards(folder)) < min(len(listed) + 1, 21):
            time.sleep(0.02)
        pids = _map_workers()
        if pids:
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    watcher = threading.Thread(target=kill_one_actor, daemon=True)
    watcher.start()
    result = embed(_config(cache, engine="ray", shard_size=shard), show_progress=False)
    watcher.join(timeout=5)
    assert killed, "no Ray actor was running to be killed"
    assert result.encoded == 5599 - len(listed) * shard and result.reused == len(listed) * shard
    after = {s["emb"]: (s["xxh3"], (folder / s["emb"]).stat().st_ino) for s in result.cached.store.manifest["shards"]}
    assert all(after[name] == value for name, value in before.items())  # listed shards never rewritten
    assert len(after) == 22
    _assert_same_cache(result.cached, local_cache.cached, same_layout=False)


@pytest.mark.slow
def test_gpus_per_worker_on_a_cluster_without_gpus_is_one_line(local_ray, tmp_path):
    res = runner.invoke(app, ["embed", "--no-config", "--data", str(SAMPLE), "--cache-dir", str(tmp_path),
                              "--engine", "ray", "--gpus-per-worker", "1"])  # fmt: skip
    assert res.exit_code == 1
    assert "the Ray cluster has no GPUs" in res.stderr and "Traceback" not in res.stderr
    assert not list(tmp_path.glob("*/emb_*.npy"))


@pytest.mark.slow
def test_a_worker_error_reaches_the_user_in_one_line(local_ray, tmp_path):
    with pytest.raises(ProdcatError, match="cannot load encoder '/nowhere/model'"):
        embed(_config(tmp_path, engine="ray", model="/nowhere/model"), show_progress=False)


# ---------------------------------------------------------------- several devices


@pytest.mark.slow
def test_devices_pool_writes_the_local_cache(local_cache, tmp_path):
    result = embed(_config(tmp_path / "devices", devices="cpu,cpu"), show_progress=False)
    assert (result.encoded, result.shards_written) == (5599, 6)
    _assert_same_cache(result.cached, local_cache.cached, same_layout=True)
    assert result.cached.encoder["device"] == "cpu,cpu"


# ---------------------------------------------------------------- flags (no Ray needed)


def test_engine_ray_without_ray_is_one_line_naming_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    res = runner.invoke(app, ["embed", "--no-config", "--data", str(SAMPLE), "--cache-dir", str(tmp_path),
                              "--engine", "ray"])  # fmt: skip
    assert res.exit_code == 1
    assert res.stderr.strip().count("\n") == 0 and 'pip install "prodcat[ray]"' in res.stderr
    assert not list(tmp_path.iterdir())  # nothing read or written first


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--engine", "spark"], "Input should be 'local' or 'ray'"),
        (["--devices", "cpu,gpu"], "unknown device 'gpu'"),
        (["--devices", ","], "devices is empty"),
        (["--engine", "ray", "--devices", "cpu,cpu"], "--devices is for the local engine"),
        (["--engine", "ray", "--address", "host 6379"], "is not an address"),
        (["--gpus-per-worker", "-1"], "greater than or equal to 0"),
    ],
)
def test_bad_scale_out_flags_are_one_line(flags, message, tmp_path):
    res = runner.invoke(app, ["embed", "--no-config", "--data", str(SAMPLE), "--cache-dir", str(tmp_path), *flags])
    assert res.exit_code == 1 and message in res.stderr and "Traceback" not in res.stderr
    assert not list(tmp_path.glob("*/emb_*.npy"))


def test_devices_all_without_cuda_is_one_line_before_any_work(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA devices")
    res = runner.invoke(app, ["embed", "--no-config", "--data", str(SAMPLE), "--cache-dir", str(tmp_path),
                              "--devices", "all"])  # fmt: skip
    assert res.exit_code == 1 and "--devices all: this machine has no CUDA device" in res.stderr
    assert not list(tmp_path.iterdir())


def test_devices_pool_hands_each_worker_whole_shards():
    """DevicePool asks sentence-transformers' pool for chunks of one shard each, with the encode settings."""
    from prodcat_pipeline.device_pool import DevicePool

    calls = []

    class Model(list):  # a model without modules; encode records how it was asked to chunk
        def encode(self, texts, **kwargs):
            calls.append((len(texts), kwargs["chunk_size"], kwargs["pool"], kwargs["batch_size"]))
            return np.zeros((len(texts), 2), np.float32)

    pool = DevicePool(Model(), ["cpu", "cpu"], batch_size=8)
    pool.pool = "the pool"
    assert pool.encode(["t"] * 11, shard_size=4).shape == (11, 2)
    assert calls == [(11, 4, "the pool", 8)]
