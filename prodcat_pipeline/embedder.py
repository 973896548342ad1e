"""Stage one, `prodcat embed`: encode each distinct title once into the sharded embedding cache."""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .atomic import remove_stale_temporaries, write_parquet_atomic
from .config import PipelineConfig, encoder_names
from .data import Dataset, load_dataset
from .device_pool import DevicePool, parse_devices
from .encode_pool import encode_piece, encode_workers, encoder_pool
from .encoders import embedding_dim, identify, load_encoder, resolve_device
from .errors import CacheCorrupt, ProdcatError
from .locks import folder_lock
from .progress import progress_bar
from .reader import CachedDataset, open_index
from .store import VectorStore, cache_folder, cache_key, library_versions
from .text import PREPROCESSING, checksum_file, preprocess_texts, text_hashes

log = logging.getLogger(__name__)


@dataclass
class EmbedResult:
    """What one `embed` call did."""

    cache_dir: Path
    rows: int
    unique_texts: int
    encoded: int  # texts encoded in this call
    reused: int  # distinct texts already in the cache
    shards_written: int
    seconds: float
    encode_seconds: float
    language_detected: bool
    split_made: bool
    cached: CachedDataset
    repaired: list[str] = field(default_factory=list)  # damaged shard files re-encoded in this call
    parts: list[EmbedResult] = field(default_factory=list)  # one per encoder of a comma list (counts are sums)

    @property
    def titles_per_second(self) -> float:
        return self.encoded / self.encode_seconds if self.encode_seconds else 0.0


def embed(config: PipelineConfig | None = None, *, show_progress: bool | None = None) -> EmbedResult:
    """Encode every distinct title of `config.data` not yet in the cache; write the dataset's row index.

    Example:
        >>> from prodcat_pipeline import embed, load_config
        >>> result = embed(load_config(overrides={"data.path": "data/lspc_sample", "encoder.model": "minilm"}))
        >>> result.encoded, result.reused
    """
    from .config import load_config

    config = config or load_config()
    _check_engine(config)
    if len(encoder_names(config.encoder)) > 1:
        return _embed_parts(config, show_progress)
    t0 = time.perf_counter()
    return _embed_one(config, load_dataset(config.data), show_progress, t0)


def _check_engine(config: PipelineConfig) -> None:
    """Engine settings that cannot work fail before anything is read; ones that do not apply only warn."""
    enc = config.encoder
    if enc.engine == "ray":
        if enc.devices:
            raise ProdcatError(
                "--devices is for the local engine: with --engine ray, Ray places the workers "
                "(--workers, --gpus-per-worker)"
            )
        from .ray_engine import import_ray

        import_ray()
    elif enc.ray_address is not None or enc.gpus_per_worker is not None:
        log.warning("--address and --gpus-per-worker apply to --engine ray only: ignored")
    if enc.devices:
        parse_devices(enc.devices)  # each one present here


def _embed_one(config: PipelineConfig, ds, show_progress: bool | None, t0: float) -> EmbedResult:
    """`embed` for one encoder, given the loaded dataset: the cache is locked throughout, and its manifest is
    read only once the lock is held, so concurrent embeds into one cache run one after the other, each
    appending to what the other wrote (a second one says whom it waits for)."""
    identity = identify(config.encoder.model)
    folder = cache_folder(identity, config.encoder, config.cache)
    with folder_lock(folder, what="the cache", wait=True):
        return _embed_locked(config, ds, show_progress, t0, _open_store(config, identity, folder))


def _embed_locked(config: PipelineConfig, ds, show_progress: bool | None, t0: float, store) -> EmbedResult:
    repaired = _repair_shards(store, config, show_progress)
    uniques, row_unique, hashes = _distinct_titles(ds)
    positions = pc.index_in(hashes, value_set=store.hashes())  # each distinct title's vector, null = missing
    missing = np.flatnonzero(pc.is_null(positions).to_numpy(zero_copy_only=False))
    positions = pc.fill_null(positions, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    positions[missing] = store.n_vectors + np.arange(len(missing))  # appended in this order below
    log.info("%d rows, %d distinct titles, %d to encode", len(ds), len(uniques), len(missing))
    encode_seconds, shards_written = 0.0, 0
    if len(missing):
        texts = [uniques[i] for i in missing]
        encode = _encode_missing
        if config.encoder.engine == "ray":
            from .ray_engine import encode_on_ray as encode
        encode_seconds, shards_written = encode(
            store, config, texts, hashes.take(pa.array(missing)).to_pylist(), show_progress
        )
        timings = store.manifest.setdefault("timings", {})
        timings["last_encode_seconds"] = round(encode_seconds, 3)
        timings["last_encode_titles_per_second"] = round(len(missing) / max(encode_seconds, 1e-9), 1)
    entry = _write_row_index(store, config, ds, hashes.take(pa.array(row_unique)), positions[row_unique], len(uniques))
    return EmbedResult(
        cache_dir=store.folder,
        rows=len(ds),
        unique_texts=len(uniques),
        encoded=len(missing),
        reused=len(uniques) - len(missing),
        shards_written=shards_written,
        repaired=repaired,
        seconds=time.perf_counter() - t0,
        encode_seconds=encode_seconds,
        language_detected=ds.language_detected,
        split_made=ds.split_made,
        cached=open_index(store, entry),
    )


def _embed_parts(config: PipelineConfig, show_progress: bool | None) -> EmbedResult:
    """`embed` for a comma list of encoders: each encoder's own cache (reused, topped up with what it lacks),
    then one combined view of them; cache_dir is the cache root that holds them all."""
    from .combined import combine, encoder_weights, part_config

    encoder_weights(config.encoder)  # a bad list fails before anything is encoded
    t0 = time.perf_counter()
    ds = load_dataset(config.data)  # the parts share the dataset: read, split and language-tagged once
    parts = [_embed_one(part_config(config, n), ds, show_progress, t0) for n in encoder_names(config.encoder)]
    total = {k: sum(getattr(r, k) for r in parts) for k in ("encoded", "reused", "shards_written", "seconds")}
    return replace(
        parts[0],
        **total,
        cache_dir=Path(os.path.commonpath([r.cache_dir for r in parts])),
        encode_seconds=sum(r.encode_seconds for r in parts),
        cached=combine([r.cached for r in parts], config),
        parts=parts,
    )


def _open_store(config: PipelineConfig, identity, folder: Path) -> VectorStore:
    """The cache's store (the caller holds its lock), stale temporaries of killed writers removed."""
    header = {
        "encoder": {"name": identity.name, "path": identity.path, "fingerprint": identity.fingerprint},
        "dim": None,
        "dtype": config.cache.dtype,
        "normalize": config.encoder.normalize,
        "preprocessing": PREPROCESSING,
    }
    store = VectorStore.open(folder, key=cache_key(identity, config.encoder, config.cache), create=header)
    remove_stale_temporaries(folder)
    return store


def _repair_shards(store: VectorStore, config: PipelineConfig, show_progress: bool | None) -> list[str]:
    """Check every shard's content; re-encode the titles of a vector file that fails its checksum (its
    metadata file names them, row for row), so every row index pointing into it stays valid. A damaged
    metadata file cannot be repaired that way and is reported. Shards recorded with the sha256 of caches
    before prodcat 0.11 get xxh3 checksums."""
    import pyarrow.parquet as pq

    bad = store.damaged_files()
    for i, name, why in bad:
        if name == store.manifest["shards"][i]["meta"]:
            raise CacheCorrupt(
                f"cache file {store.folder / name} is corrupt ({why}); its titles are lost: delete the folder "
                f"{store.folder} and run `prodcat embed` to rebuild it"
            )
    for i in sorted({i for i, _, _ in bad}):
        entry = store.manifest["shards"][i]
        log.warning("%s is damaged: re-encoding its %d titles", store.folder / entry["emb"], entry["rows"])
        texts = pq.ParquetFile(store.folder / entry["meta"]).read(columns=["text"])["text"].to_pylist()
        vectors = _encode_texts(store, config, texts, show_progress)
        store.replace_vectors(i, vectors.astype(np.dtype(store.manifest["dtype"]), copy=False))
    upgraded = False
    for entry in store.manifest["shards"]:
        if "xxh3" not in entry or "meta_xxh3" not in entry:
            entry.pop("sha256", None)
            entry["xxh3"] = checksum_file(store.folder / entry["emb"])
            entry["meta_xxh3"] = checksum_file(store.folder / entry["meta"])
            upgraded = True
    if upgraded:
        store.save_manifest()
    return [store.manifest["shards"][i]["emb"] for i in sorted({i for i, _, _ in bad})]


def _distinct_titles(ds: Dataset) -> tuple[list[str], np.ndarray, pa.Array]:
    """Distinct preprocessed titles in first-occurrence order (deterministic shard contents), each row's
    index into them, and their hashes."""
    encoded = pc.dictionary_encode(preprocess_texts(ds.table["text"])).combine_chunks()
    uniques = encoded.dictionary.to_pylist()
    return uniques, encoded.indices.to_numpy(), pa.array(text_hashes(uniques), pa.string())


def _write_row_index(
    store: VectorStore, config: PipelineConfig, ds: Dataset, row_hash: pa.Array, row_vec, n_unique: int
) -> dict:
    """The dataset's row index (every row points at its vector), then its manifest entry."""
    table = ds.table
    rows = pa.table(
        {
            "row_id": table["row_id"],
            "text_hash": row_hash,
            "split": table["split"],
            "label": table["label"],
            "language": table["language"],
            "cluster": table["cluster"],
            "vec": pa.array(row_vec),
        }
    )
    index_name = f"datasets/{ds.fingerprint}.parquet"
    write_parquet_atomic(store.folder / index_name, rows)
    entry = {
        "fingerprint": ds.fingerprint,
        "source": ds.source,
        "index": index_name,
        "index_xxh3": checksum_file(store.folder / index_name),
        "rows": len(ds),
        "unique_texts": n_unique,
        "label_names": ds.label_names,
        "splits": ds.split_counts(),
        "language_detected": ds.language_detected,
        "split_made": ds.split_made,
        "columns": config.data.model_dump(exclude={"path"}),
    }
    store.manifest["datasets"][ds.fingerprint] = entry
    store.manifest["versions"] = library_versions()
    store.save_manifest()
    return entry


def _encode_missing(
    store: VectorStore,
    config: PipelineConfig,
    texts: list[str],
    hashes: list[str],
    show_progress: bool | None,
) -> tuple[float, int]:
    """Encode `texts` shard by shard; a writer thread saves shard i while shard i+1 is encoded."""
    dtype = np.dtype(config.cache.dtype)
    shard_size = config.cache.shard_size
    encode_seconds, shards = 0.0, 0
    with (
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="prodcat-writer") as writer,
        progress_bar(len(texts), "embed", "titles", show_progress) as advance,
        _Encoding(store, config) as encode,
    ):
        pending = None
        group = shard_size * encode.shards_at_once  # several devices: one whole shard each
        for start in range(0, len(texts), group):
            chunk = texts[start : start + group]
            t = time.perf_counter()
            out = encode(chunk, dtype, advance)
            encode_seconds += time.perf_counter() - t
            if pending is not None:
                pending.result()  # at most one group in flight; errors surface here
            pending = writer.submit(_add_shards, store, out, hashes[start : start + group], chunk, shard_size)
            shards += -(-len(chunk) // shard_size)
        if pending is not None:
            pending.result()
    return encode_seconds, shards


def _add_shards(store: VectorStore, vectors: np.ndarray, hashes: list[str], texts: list[str], size: int) -> None:
    for s in range(0, len(texts), size):
        store.add_shard(vectors[s : s + size], hashes[s : s + size], texts[s : s + size])


def _encode_texts(store: VectorStore, config: PipelineConfig, texts: list[str], show_progress: bool | None):
    """`texts` encoded as the cache stores them (a repair of one shard)."""
    with progress_bar(len(texts), "re-encode", "titles", show_progress) as advance, _Encoding(store, config) as encode:
        return encode(texts, np.dtype(store.manifest["dtype"]), advance)


class _Encoding:
    """The encoder (checked against the cache's dimension) and its worker pool, for the `with` block: calling
    it encodes a list of titles into one array, in pieces of batch_size x 8 titles (progress granularity), or,
    with several devices, one whole shard per device."""

    def __init__(self, store: VectorStore, config: PipelineConfig):
        self.store, self.config = store, config

    def __enter__(self):
        config, store = self.config, self.store
        devices = parse_devices(config.encoder.devices) if config.encoder.devices else None
        device = devices[0] if devices else resolve_device(config.encoder.device or config.train.device)
        model = load_encoder(config.encoder.model, device=device, precision=config.encoder.precision,
                             trust_remote_code=config.encoder.trust_remote_code)  # fmt: skip
        self.dim = embedding_dim(model)
        store.record_dim(self.dim, ",".join(devices) if devices else device)
        self.step = max(config.encoder.batch_size * 8, 1)
        self.kwargs = {"batch_size": config.encoder.batch_size, "normalize_embeddings": config.encoder.normalize}
        if devices:
            self.shards_at_once = len(devices)
            self._pool_cm = DevicePool(model, devices, **self.kwargs)
        else:
            self.shards_at_once = 1
            self._pool_cm = encoder_pool(model, encode_workers(model, config, device))
        self.pool = self._pool_cm.__enter__()
        return self

    def __exit__(self, *exc):
        return self._pool_cm.__exit__(*exc)

    def __call__(self, texts: list[str], dtype, advance) -> np.ndarray:
        if isinstance(self.pool, DevicePool):
            out = self.pool.encode(texts, shard_size=self.config.cache.shard_size)
            advance(len(texts))
            return out.astype(dtype, copy=False)
        out = np.empty((len(texts), self.dim), dtype=dtype)
        pieces = [(texts[s : s + self.step], self.kwargs) for s in range(0, len(texts), self.step)]
        results = self.pool.imap(encode_piece, pieces) if self.pool is not None else map(encode_piece, pieces)
        for s, vectors in zip(range(0, len(texts), self.step), results, strict=True):
            out[s : s + len(vectors)] = vectors
            advance(len(vectors))
        return out
