"""Stage one on Ray Data (`prodcat embed --engine ray`): an actor pool encodes whole shards and writes them
into the cache; this process, which holds the cache lock, lists each shard in the manifest in shard order.

The division of work follows the embedding writers of clip-retrieval: the driver decides what to encode
(distinct titles not yet cached, the same dedup as the local engine) and cuts it into shard-sized blocks
whose ids are fixed up front; each actor loads the encoder once, and for each block it is handed encodes
the titles and writes `emb_{id}.npy` + `meta_{id}.parquet` under temporary names, then renames them, and
returns the manifest entry (rows, checksums). The driver appends entries strictly in id order, so the
cache is byte-for-byte the layout a local `embed` writes, and a shard exists only once it is listed: a
killed run leaves at most unlisted files, which the next run overwrites. Ray itself restarts a dead actor
and retries its block.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import time
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa

from .config import PipelineConfig
from .errors import ProdcatError
from .progress import progress_bar
from .shard_writer import write_shard
from .store import VectorStore, check_dim

log = logging.getLogger(__name__)

INSTALL_HINT = 'pip install "prodcat[ray]"'


def import_ray():
    """The `ray` module with Ray Data, or one line saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401 - the engine needs Ray Data, not only Ray core
    except ImportError as exc:
        raise ProdcatError(f"--engine ray needs Ray Data, which is not installed ({exc}): {INSTALL_HINT}") from exc
    return ray


@contextmanager
def ray_session(address: str | None):
    """Ray, connected: the instance this process already started (a notebook, the tests), else the cluster at
    `address`, else a new local instance that is shut down again on exit."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    try:
        with _quiet("ray", logging.ERROR if address is None else logging.WARNING):  # notes about a local start
            ray.init(
                address=address,
                include_dashboard=False,
                logging_level=logging.WARNING,
                configure_logging=False,
                log_to_driver=address is not None,  # a local worker's failure is reported in one line instead
            )
    except Exception as exc:  # ConnectionError, RuntimeError, ValueError: Ray raises each for a bad address
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise ProdcatError(f"cannot start or reach {where}: {_first_line(exc)}") from exc
    try:
        yield ray
    finally:
        ray.shutdown()


def encode_on_ray(
    store: VectorStore, config: PipelineConfig, texts: list[str], hashes: list[str], show_progress: bool | None
) -> tuple[float, int]:
    """Encode `texts` (with their `hashes`) into new shards of `store` on a Ray actor pool; returns the seconds
    spent (Ray start-up included) and the shards written. The caller holds the cache lock."""
    t0 = time.perf_counter()
    size = config.cache.shard_size
    first = len(store.manifest["shards"])
    starts = range(0, len(texts), size)
    with ray_session(config.encoder.ray_address) as ray:
        gpus = _gpus_per_worker(ray, config)
        workers = _workers(ray, config, gpus)
        if len(starts) < workers:
            log.warning(
                "%d new shard(s) for %d Ray actors: a shard is one task, so only %d actor(s) will work; "
                "a smaller --shard-size spreads the titles wider", len(starts), workers, len(starts)
            )  # fmt: skip
            workers = len(starts)
        spec = _actor_spec(store, config, gpus)
        log.info("Ray engine: %d shards on %d actors (%s GPU each)", len(starts), workers, gpus)
        from ray.data import ActorPoolStrategy, DataContext

        DataContext.get_current().enable_progress_bars = False  # prodcat draws its own bar, in titles
        _mark_logged("ray_data_progress_manager_disabled")  # and needs no warning that Ray's are off
        blocks = [
            pa.table({"shard": [first + i], "text": [texts[s : s + size]], "text_hash": [hashes[s : s + size]]})
            for i, s in enumerate(starts)
        ]
        encoded = ray.data.from_arrow(blocks).map_batches(
            ShardEncoder,
            fn_constructor_args=(spec,),
            batch_size=1,  # one block = one shard per call
            batch_format="pyarrow",
            compute=ActorPoolStrategy(size=workers),
            num_cpus=1,
            num_gpus=gpus or None,
        )
        waiting: dict[int, dict] = {}  # finished shards whose predecessors are still being encoded
        with (
            _quiet("ray.data", logging.WARNING),  # not a line per dataset execution
            progress_bar(len(texts), "embed (ray)", "titles", show_progress) as advance,
        ):
            try:
                for row in encoded.iter_rows():
                    entry = json.loads(row["entry"])
                    _check_entry(store, entry, row)
                    log.info("shard %d (%d titles) from %s: encoded in %.2fs, written in %.2fs", entry["id"],
                             entry["rows"], row["host"], row["encode_seconds"], row["write_seconds"])  # fmt: skip
                    waiting[entry["id"]] = entry
                    while len(store.manifest["shards"]) in waiting:
                        done = store.append_shard(waiting.pop(len(store.manifest["shards"])))
                        advance(done["rows"])
            except (ProdcatError, KeyboardInterrupt):
                raise
            except Exception as exc:  # a Ray error wraps the worker's own: report that one, in one line
                raise _worker_error(exc) from exc
    if len(store.manifest["shards"]) != first + len(starts):
        raise ProdcatError(f"the Ray engine returned {len(store.manifest['shards']) - first} of {len(starts)} shards")
    return time.perf_counter() - t0, len(starts)


class ShardEncoder:
    """A Ray actor: loads the encoder once, then encodes each shard it is handed and writes its files."""

    def __init__(self, spec: dict):
        import torch

        from .encoders import embedding_dim, identify, load_encoder, set_use_threads

        self.spec = spec
        threads = spec["threads"]
        torch.set_num_threads(threads)
        fingerprint = identify(spec["model"]).fingerprint
        if fingerprint != spec["fingerprint"]:
            raise ProdcatError(
                f"the encoder {spec['model']} on {socket.gethostname()} has weights {fingerprint}, but the cache "
                f"holds vectors of {spec['fingerprint']}: install the same model version on every node"
            )
        self.model = load_encoder(
            spec["model"],
            device=spec["device"],
            precision=spec["precision"],
            trust_remote_code=spec["trust_remote_code"],
        )
        set_use_threads(self.model, threads)  # the numpy USE module: as many BLAS threads as this actor's CPUs
        self.dim = embedding_dim(self.model)
        check_dim(spec["folder"], spec["dim"], self.dim)  # before a shard file of the wrong width is written

    def __call__(self, batch):
        spec, entries, seconds = self.spec, [], []
        for shard, texts, hashes in zip(
            batch["shard"].to_pylist(), batch["text"].to_pylist(), batch["text_hash"].to_pylist(), strict=True
        ):
            t0 = time.perf_counter()
            vectors = self.model.encode(
                texts,
                batch_size=spec["batch_size"],
                normalize_embeddings=spec["normalize"],
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            t1 = time.perf_counter()
            entry = write_shard(Path(spec["folder"]), shard, vectors.astype(spec["dtype"], copy=False), hashes, texts)
            entries.append(json.dumps(entry))
            seconds.append((t1 - t0, time.perf_counter() - t1))
        n = len(entries)
        return {
            "entry": entries,
            "dim": [self.dim] * n,
            "host": [f"{socket.gethostname()}:{os.getpid()}"] * n,
            "encode_seconds": [s[0] for s in seconds],
            "write_seconds": [s[1] for s in seconds],
        }


def _actor_spec(store: VectorStore, config: PipelineConfig, gpus: float) -> dict:
    """What every actor needs, as plain values (it travels to other machines)."""
    enc = config.encoder
    return {
        "model": enc.model,
        "fingerprint": store.manifest["encoder"]["fingerprint"],
        "device": "cuda" if gpus else "cpu",  # Ray sets CUDA_VISIBLE_DEVICES: "cuda" is the actor's own GPU
        "precision": enc.precision,  # auto = fp16 on CUDA
        "trust_remote_code": enc.trust_remote_code,
        "threads": 1,  # one CPU per actor: Ray places as many actors as the cluster has CPUs
        "batch_size": enc.batch_size,
        "normalize": enc.normalize,
        "dtype": store.manifest["dtype"],
        "dim": store.manifest["dim"],
        "folder": str(store.folder.resolve()),
    }


def _gpus_per_worker(ray, config: PipelineConfig) -> float:
    """GPUs per actor: as set, else 1 on a cluster with GPUs for a torch encoder, else 0 (the USE encoder is
    numpy and runs on CPUs only)."""
    from .encoders import USE_NAME, canonical_name

    if config.encoder.gpus_per_worker is not None:
        have = ray.cluster_resources().get("GPU", 0)
        if config.encoder.gpus_per_worker > 0 and have == 0:
            raise ProdcatError(
                f"--gpus-per-worker {config.encoder.gpus_per_worker:g}: the Ray cluster has no GPUs; "
                "use --gpus-per-worker 0"
            )
        return float(config.encoder.gpus_per_worker)
    if canonical_name(config.encoder.model) == USE_NAME:
        return 0.0
    return 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0


def _workers(ray, config: PipelineConfig, gpus: float) -> int:
    """Actors: as set, else as many as the cluster's GPUs (or CPUs) hold."""
    if config.encoder.workers is not None:
        return config.encoder.workers
    resources = ray.cluster_resources()
    if gpus:
        return max(1, int(resources.get("GPU", 0) // gpus))
    return max(1, int(resources.get("CPU", 1)))


def _check_entry(store: VectorStore, entry: dict, row: dict) -> None:
    """A returned shard is the right width and visible from here (the cache must be on storage that every
    node shares: a worker's files that this machine cannot see would leave a manifest listing nothing)."""
    store.record_dim(int(row["dim"]), "ray")
    for name in (entry["emb"], entry["meta"]):
        if not (store.folder / name).is_file():
            raise ProdcatError(
                f"{name}, written by a Ray worker on {row['host'].split(':')[0]}, is not in {store.folder} on "
                f"{socket.gethostname()}: put the cache (--cache-dir) on a filesystem every node shares"
            )


def _worker_error(exc: BaseException) -> ProdcatError:
    """One line for a failure inside Ray: the worker's own ProdcatError when there is one (Ray hands it over as
    text, traceback included, inside its own error), else Ray's error in brief."""
    text, cause, seen = "", exc, set()
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        text += "\n" + str(cause)
        cause = cause.__cause__ or cause.__context__
    found = re.findall(r"prodcat_pipeline\.errors\.\w+: (.+)", text)
    if found:
        return ProdcatError(found[-1].strip())
    return ProdcatError(f"the Ray engine failed: {type(exc).__name__}: {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


@contextmanager
def _quiet(logger: str, level: int):
    """Raise `logger`'s level to at least `level` for the block."""
    target = logging.getLogger(logger)
    before = target.level
    target.setLevel(max(level, target.getEffectiveLevel()))
    try:
        yield
    finally:
        target.setLevel(before)


def _mark_logged(key: str) -> None:
    """Count Ray's log-once message `key` as shown already."""
    try:
        from ray.util.debug import log_once

        log_once(key)
    except ImportError:  # a Ray without it logs the message: harmless
        pass
