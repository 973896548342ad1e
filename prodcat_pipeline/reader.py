"""The one cache reader: a dataset's row index over the memory-mapped shards, serving training,
evaluation, k-NN and prediction."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .config import PipelineConfig
from .errors import CacheCorrupt, CacheMissing
from .store import VectorStore, cache_folder, cache_key


@dataclass
class CachedDataset:
    """One dataset's view of a cache: row metadata + memory-mapped vectors.

    Example:
        >>> cached = load_cache(load_config(overrides={"data.path": "data/lspc_sample"}))
        >>> X, y = cached.split_arrays("train")
    """

    store: VectorStore
    rows: pa.Table  # row_id, text_hash, split, label, language, cluster, vec
    label_names: list[str]
    dataset: dict  # the manifest's entry for this dataset

    @property
    def dim(self) -> int:
        return self.store.dim

    @property
    def folder(self) -> Path:
        return self.store.folder

    @property
    def key(self) -> str:
        return self.store.manifest["key"]

    @property
    def encoder(self) -> dict:
        return self.store.manifest["encoder"]

    def mask(self, split: str) -> np.ndarray:
        return pc.equal(self.rows["split"], split).to_numpy(zero_copy_only=False)

    def column(self, name: str, split: str | None = None) -> np.ndarray:
        col = self.rows[name].to_numpy(zero_copy_only=False)
        return col if split is None else col[self.mask(split)]

    def split_arrays(self, split: str, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
        """(vectors, label ids) of one split, gathered from the shards."""
        m = self.mask(split)
        return self.store.gather(self.column("vec")[m], dtype=dtype), self.column("label")[m]


def load_cache(config: PipelineConfig, *, columns: list[str] | None = None, verify: bool = False) -> CachedDataset:
    """Open the cache of `config.data` encoded with `config.encoder` (memory-mapped; nothing is encoded).

    Raises CacheMissing when there is no cache or no row index for this dataset yet (run `embed`), and
    CacheCorrupt when a file is damaged (`verify`: every shard's content is checked now; otherwise each file is
    checked on first use, see VectorStore). `columns` limits the row metadata read (default: all of row_id,
    text_hash, split, label, language, cluster, vec). A comma list of encoders opens each one's cache and
    combines them (prodcat_pipeline.combined): `vec` is then the row number, `store` a CombinedStore.
    """
    from .combined import combine, encoder_names, encoder_weights, part_columns, part_config
    from .data import dataset_fingerprint

    names = encoder_names(config.encoder)
    if len(names) > 1:  # several encoders: each one's own cache, read as one
        encoder_weights(config.encoder)  # a bad list fails before any file is opened
        fp = dataset_fingerprint(config.data)  # the parts share the dataset: its files are hashed once
        parts = [_load_one(part_config(config, n), fp, part_columns(columns), verify) for n in names]
        return combine(parts, config, columns)
    return _load_one(config, dataset_fingerprint(config.data), columns, verify)


def _load_one(config: PipelineConfig, fp: str, columns: list[str] | None, verify: bool) -> CachedDataset:
    """`load_cache` for one encoder, given the dataset's fingerprint."""
    from .encoders import identify

    identity = identify(config.encoder.model)
    folder = cache_folder(identity, config.encoder, config.cache)
    store = VectorStore.open(folder, key=cache_key(identity, config.encoder, config.cache), verify=verify)
    entry = store.manifest["datasets"].get(fp)
    if entry is None:
        raise CacheMissing(
            f"the cache at {folder} has no index for dataset {config.data.path} (fingerprint {fp}); "
            "run `prodcat embed` on it first"
        )
    return open_index(store, entry, columns)


def open_index(store: VectorStore, entry: dict, columns: list[str] | None = None) -> CachedDataset:
    """A dataset's row index (datasets/<fingerprint>.parquet), checked against the store."""
    import pyarrow.parquet as pq

    path = store.folder / entry["index"]
    repair = f"run `prodcat embed` on the dataset again to rewrite it (or delete {path})"
    if not path.exists():
        raise CacheCorrupt(f"dataset index {path} listed in the manifest is missing; {repair}")
    recorded = entry.get("index_xxh3")
    if recorded is not None and entry["index"] not in store.verified:
        from .text import checksum_file

        if checksum_file(path) != recorded:
            raise CacheCorrupt(f"dataset index {path} is corrupt (checksum mismatch); {repair}")
        store.verified.add(entry["index"])
    try:  # not read_table: that imports pyarrow.dataset and pandas (~0.5 s)
        rows = pq.ParquetFile(path).read(columns=columns)
    except (OSError, pa.ArrowInvalid, KeyError) as exc:
        raise CacheCorrupt(f"dataset index {path} is corrupt ({str(exc).splitlines()[0]}); {repair}") from exc
    if "vec" in rows.column_names and len(rows):
        lo, hi = pc.min_max(rows["vec"]).values()
        if rows["vec"].null_count or lo.as_py() < 0 or hi.as_py() >= store.n_vectors:
            raise CacheCorrupt(f"dataset index {path} points outside the cached vectors; {repair}")
    if len(rows) != entry.get("rows", len(rows)):
        raise CacheCorrupt(f"dataset index {path} has {len(rows)} rows, the manifest says {entry['rows']}; {repair}")
    return CachedDataset(store=store, rows=rows, label_names=list(entry["label_names"]), dataset=entry)


# ---------------------------------------------------------------- training views of the vectors


def _drop_resident_pages(array: np.ndarray) -> None:
    """Let the kernel drop a memory-mapped array's pages from this process (they stay in the page cache and
    fault back in if touched again)."""
    import mmap

    m = getattr(array, "_mmap", None)
    if m is not None and hasattr(m, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        m.madvise(mmap.MADV_DONTNEED)


class ShardedVectors:
    """Every shard of a cache memory-mapped as a torch tensor (nothing copied, pages read on demand), and
    `take(vec)` gathering rows by global vector index — what training batches are cut from.

    Gathering across many shards costs a few small ops per shard and batch; `consolidate()` copies the
    shards into one contiguous tensor (the trainer calls it after its first step, so start-up is not
    delayed) and later steps take rows with one index_select. The shards' checksums are verified in the
    background from construction on; `consolidate()` raises CacheCorrupt if one fails.
    """

    def __init__(self, store: VectorStore):
        import torch

        # every shard is used: their checksums are checked on a thread (xxh3 releases the GIL) while start-up
        # and the first step run, and consolidate() waits for the result before any later step
        self._verified = _Background(store.verify_shards, kinds=("emb",))
        # copy-on-write maps are writable as far as torch can tell (no warning) and never touch the file
        self._maps = [np.load(store.shard_path(i), mmap_mode="c") for i in range(len(store.manifest["shards"]))]
        self.arrays = [torch.from_numpy(m) for m in self._maps]
        self.offsets = torch.from_numpy(store.offsets)
        self.dim = store.dim
        self.dtype = self.arrays[0].dtype if self.arrays else torch.float32

    def consolidate(self) -> None:
        """Copy the shards into one tensor, dropping each shard's mapped pages once copied, so resident
        memory peaks at about one copy of the vectors, not two. (Done on a thread it was not: training
        batches kept re-touching every mapped page while the copy ran.)"""
        import torch

        self._verified.wait()  # a damaged shard stops training here, before anything is saved
        if len(self.arrays) > 1:
            merged = torch.empty((int(self.offsets[-1]), self.dim), dtype=self.dtype)
            for i, (arr, mapped) in enumerate(zip(self.arrays, self._maps, strict=True)):
                merged[int(self.offsets[i]) : int(self.offsets[i + 1])] = arr
                _drop_resident_pages(mapped)
            self.arrays, self._maps = [merged], []

    def take(self, vec):
        import torch

        arrays = self.arrays
        if len(arrays) == 1:
            return arrays[0].index_select(0, vec)
        shard = torch.searchsorted(self.offsets[1:], vec, right=True)  # store.locate, in torch
        out = torch.empty((len(vec), self.dim), dtype=self.dtype)
        for i in torch.unique(shard).tolist():
            sel = (shard == i).nonzero().squeeze(1)
            out[sel] = arrays[i].index_select(0, vec.index_select(0, sel) - self.offsets[i])
        return out


class _Background:
    """fn(*args, **kwargs) on a daemon thread; wait() joins it and re-raises what it raised."""

    def __init__(self, fn, *args, **kwargs):
        import threading

        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn, args, kwargs), daemon=True, name="prodcat-verify")
        self._thread.start()

    def _run(self, fn, args, kwargs) -> None:
        try:
            fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller of wait()
            self._error = exc

    def wait(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error


def training_vectors(store):
    """The CPU training view of a store: its shards memory-mapped, or, for a CombinedStore, each part's
    (CombinedVectors: same `take`/`consolidate`, rows combined per batch)."""
    from .combined import CombinedStore, CombinedVectors

    if isinstance(store, CombinedStore):
        return CombinedVectors([ShardedVectors(p) for p in store.parts], store.part_vec, store.weights, store.dtype)
    return ShardedVectors(store)


class ResidentVectors:
    """Training rows as one tensor on an accelerator; `take` is a plain index_select there."""

    def __init__(self, rows: np.ndarray, device: str):
        import torch

        self.tensor = torch.from_numpy(rows).to(device)

    def take(self, idx):
        return self.tensor.index_select(0, idx)

    def consolidate(self) -> None:  # already one tensor
        pass
