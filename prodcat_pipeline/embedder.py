"""Stage one, `prodcat embed`: encode each distinct title once into the sharded embedding cache."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .atomic import remove_stale_temporaries, write_parquet_atomic
from .cache import (
    CachedDataset,
    CacheError,
    VectorStore,
    _open_dataset,
    cache_folder,
    cache_key,
    library_versions,
    preprocess_texts,
    text_hashes,
)
from .config import PipelineConfig
from .data import load_dataset
from .encoders import PREPROCESSING, identify, load_encoder, resolve_device
from .progress import progress_bar

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

    @property
    def titles_per_second(self) -> float:
        return self.encoded / self.encode_seconds if self.encode_seconds else 0.0


def embed(config: PipelineConfig | None = None, *, show_progress: bool | None = None, **overrides) -> EmbedResult:
    """Encode every distinct title of `config.data` not yet in the cache; write the dataset's row index.

    Example:
        >>> from prodcat_pipeline import embed
        >>> result = embed(data="data/lspc_sample", model="minilm")
        >>> result.encoded, result.reused
    """
    config = _with_overrides(config, overrides)
    t0 = time.perf_counter()
    ds = load_dataset(config.data)
    identity = identify(config.encoder.model)
    folder = cache_folder(identity, config.encoder, config.cache)
    key = cache_key(identity, config.encoder, config.cache)
    header = {
        "encoder": {"name": identity.name, "path": identity.path, "fingerprint": identity.fingerprint},
        "dim": None,
        "dtype": config.cache.dtype,
        "normalize": config.encoder.normalize,
        "preprocessing": PREPROCESSING,
    }
    store = VectorStore.open(folder, key=key, create=header)
    if folder.exists():
        remove_stale_temporaries(folder)

    # distinct preprocessed titles, in first-occurrence order (deterministic shard contents)
    texts = preprocess_texts(ds.table["text"])
    encoded_dict = pc.dictionary_encode(texts).combine_chunks()
    uniques = encoded_dict.dictionary.to_pylist()
    row_unique = encoded_dict.indices.to_numpy()
    hashes = pa.array(text_hashes(uniques), pa.string())
    missing = np.flatnonzero(pc.is_null(pc.index_in(hashes, value_set=store.hashes())).to_numpy(zero_copy_only=False))
    log.info("%d rows, %d distinct titles, %d to encode", len(ds), len(uniques), len(missing))

    encode_seconds, shards_written = 0.0, 0
    if len(missing):
        encode_seconds, shards_written = _encode_missing(
            store,
            config,
            [uniques[i] for i in missing],
            [hashes[int(i)].as_py() for i in missing],
            show_progress,
        )

    # the dataset's row index: every row points at its vector
    positions = pc.index_in(hashes, value_set=store.hashes()).to_numpy(zero_copy_only=False).astype(np.int64)
    table = ds.table
    rows = pa.table(
        {
            "row_id": table["row_id"],
            "text_hash": pc.take(hashes, pa.array(row_unique)),
            "split": table["split"],
            "label": table["label"],
            "language": table["language"],
            "cluster": table["cluster"],
            "vec": pa.array(positions[row_unique]),
        }
    )
    index_name = f"datasets/{ds.fingerprint}.parquet"
    write_parquet_atomic(folder / index_name, rows)
    entry = {
        "fingerprint": ds.fingerprint,
        "source": ds.source,
        "index": index_name,
        "rows": len(ds),
        "unique_texts": len(uniques),
        "label_names": ds.label_names,
        "splits": ds.split_counts(),
        "language_detected": ds.language_detected,
        "split_made": ds.split_made,
        "columns": config.data.model_dump(exclude={"path"}),
    }
    store.manifest["datasets"][ds.fingerprint] = entry
    store.manifest["versions"] = library_versions()
    timings = store.manifest.setdefault("timings", {})
    if len(missing):
        timings["last_encode_seconds"] = round(encode_seconds, 3)
        timings["last_encode_titles_per_second"] = round(len(missing) / max(encode_seconds, 1e-9), 1)
    store.save_manifest()
    return EmbedResult(
        cache_dir=folder,
        rows=len(ds),
        unique_texts=len(uniques),
        encoded=len(missing),
        reused=len(uniques) - len(missing),
        shards_written=shards_written,
        seconds=time.perf_counter() - t0,
        encode_seconds=encode_seconds,
        language_detected=ds.language_detected,
        split_made=ds.split_made,
        cached=_open_dataset(store, entry),
    )


def _encode_missing(
    store: VectorStore,
    config: PipelineConfig,
    texts: list[str],
    hashes: list[str],
    show_progress: bool | None,
) -> tuple[float, int]:
    """Encode `texts` shard by shard; a writer thread saves shard i while shard i+1 is encoded."""
    device = resolve_device(config.encoder.device or config.train.device)
    model = load_encoder(config.encoder.model, device=device, precision=config.encoder.precision)
    dim_fn = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    dim = dim_fn()
    if store.manifest["dim"] is None:
        store.manifest["dim"] = int(dim)
        store.manifest["encoder"]["device"] = device
    elif store.manifest["dim"] != dim:
        raise CacheError(
            f"encoder gives {dim}-d vectors but the cache at {store.folder} holds {store.manifest['dim']}-d; "
            "delete it to rebuild"
        )
    dtype = np.dtype(config.cache.dtype)
    shard_size = config.cache.shard_size
    step = max(config.encoder.batch_size * 8, 1)  # titles per encode call: progress granularity
    encode_seconds, shards = 0.0, 0
    workers = encode_workers(model, config, device)
    kwargs = {"batch_size": config.encoder.batch_size, "normalize_embeddings": config.encoder.normalize}
    with (
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="prodcat-writer") as writer,
        progress_bar(len(texts), "embed", "titles", show_progress) as advance,
        _encoder_pool(model, workers) as pool,
    ):
        pending = None
        for start in range(0, len(texts), shard_size):
            chunk = texts[start : start + shard_size]
            out = np.empty((len(chunk), dim), dtype=dtype)
            t = time.perf_counter()
            pieces = [(chunk[s : s + step], kwargs) for s in range(0, len(chunk), step)]
            results = pool.imap(_encode_piece, pieces) if pool is not None else map(_encode_piece, pieces)
            for s, vectors in zip(range(0, len(chunk), step), results, strict=True):
                out[s : s + len(vectors)] = vectors
                advance(len(vectors))
            encode_seconds += time.perf_counter() - t
            if pending is not None:
                pending.result()  # at most one shard in flight; errors surface here
            pending = writer.submit(store.add_shard, out, hashes[start : start + shard_size], chunk)
            shards += 1
        if pending is not None:
            pending.result()
    return encode_seconds, shards


# ---------------------------------------------------------------- encoding in worker processes
# The USE encoder's forward pass is many small numpy ops and its tokenizer is pure Python, so two BLAS
# threads in one process leave a core idle much of the time; one single-threaded worker per core is
# faster. Workers are forked after the model is built, so each inherits it instead of reloading it, and
# they own no files: the parent assembles shards in order and the writer thread saves them.

_WORKER_MODEL = None


def encode_workers(model, config: PipelineConfig, device: str) -> int:
    """Processes to encode with: `encoder.workers`, or (auto) one per core for the numpy USE encoder on
    a machine that can fork, else 1 (torch encoders already use every core from one process)."""
    import multiprocessing as mp
    import os

    if config.encoder.workers is not None:
        return max(1, config.encoder.workers)
    from .use_module import UniversalSentenceEncoder

    first = next(iter(model), None) if hasattr(model, "__iter__") else None
    if isinstance(first, UniversalSentenceEncoder) and "fork" in mp.get_all_start_methods():
        return os.cpu_count() or 1
    return 1


def _encode_piece(piece):
    texts, kwargs = piece
    model = _WORKER_MODEL
    return model.encode(texts, convert_to_numpy=True, show_progress_bar=False, **kwargs)


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)
    for module in _WORKER_MODEL if hasattr(_WORKER_MODEL, "__iter__") else []:
        if hasattr(module, "threads"):  # the USE module: one BLAS thread per worker, backend built here
            module.threads, module._use = 1, None


class _encoder_pool:  # noqa: N801 - used as a context manager like a function
    """A fork pool of `workers` processes holding `model`, or None for in-process encoding."""

    def __init__(self, model, workers: int):
        self.model, self.workers, self.pool = model, workers, None

    def __enter__(self):
        global _WORKER_MODEL
        _WORKER_MODEL = self.model
        if self.workers > 1:
            import multiprocessing as mp

            self.pool = mp.get_context("fork").Pool(self.workers, initializer=_init_worker)
        return self.pool

    def __exit__(self, *exc):
        global _WORKER_MODEL
        if self.pool is not None:
            self.pool.terminate() if exc[0] is not None else self.pool.close()
            self.pool.join()
        _WORKER_MODEL = None
        return False


def _with_overrides(config: PipelineConfig | None, overrides: dict) -> PipelineConfig:
    config = (config or PipelineConfig()).model_copy(deep=True)
    mapping = {
        "data": ("data", "path"),
        "model": ("encoder", "model"),
        "batch_size": ("encoder", "batch_size"),
        "device": ("encoder", "device"),
        "workers": ("encoder", "workers"),
        "cache_dir": ("cache", "dir"),
        "shard_size": ("cache", "shard_size"),
        "dtype": ("cache", "dtype"),
    }
    for name, value in overrides.items():
        if name not in mapping:
            raise TypeError(f"embed() got an unexpected keyword argument '{name}'; valid: {', '.join(mapping)}")
        if value is not None:
            section, field = mapping[name]
            setattr(getattr(config, section), field, str(value) if field in ("path", "dir") else value)
    return config
