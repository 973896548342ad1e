"""Embedding caches on disk, listed and removed: what `prodcat cache ls` and `prodcat cache rm` call.

    list_caches(root)                          every cache folder under root: encoder, vectors, size, datasets
    find_cache(target, root)                   one cache by folder name, key (or unique key prefix) or path
    resolve_removal(target, root, dataset)     what remove_cache would remove, checked (to ask first)
    remove_cache(target, root)                 delete a whole cache folder; returns the bytes freed
    remove_cache(target, root, dataset=...)    delete one dataset's row index only (its vectors stay)

Only folders whose manifest.json says format "prodcat-cache/1" are ever removed; one whose manifest cannot be
read is listed as damaged, and removed whole only where a cache would be (directly under the root, named
`<encoder>-<16 hex key>`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from .atomic import TMP_MARK
from .errors import ProdcatError
from .store import FORMAT, MANIFEST, default_cache_dir

CACHE_NAME = re.compile(r"-([0-9a-f]{16})$")  # <encoder slug>-<key>, as store.cache_folder names it


@dataclass
class DatasetInfo:
    """One dataset indexed in a cache: its row index is datasets/<fingerprint>.parquet."""

    fingerprint: str
    source: str | None
    rows: int | None
    splits: dict[str, int] | None  # rows per split, where the manifest records them
    index: Path  # the row index file
    bytes: int  # its size on disk (0 when missing)


@dataclass
class CacheInfo:
    """One cache folder as its manifest and the files on disk describe it."""

    folder: Path
    encoder: str | None
    key: str | None
    dim: int | None
    dtype: str | None
    vectors: int  # vectors in the listed shards
    shards: int
    bytes: int  # every file in the folder
    modified: datetime  # the newest file's modification time
    datasets: list[DatasetInfo] = field(default_factory=list)
    damaged: str | None = None  # why the manifest could not be read; None for a sound one
    foreign: bool = False  # a manifest.json that is not a prodcat cache's

    @property
    def name(self) -> str:
        return self.folder.name


def cache_root(root: str | os.PathLike | None = None) -> Path:
    """The folder holding the caches: `root` when given, else $PRODCAT_CACHE, else ~/.cache/prodcat."""
    return Path(root).expanduser() if root is not None else default_cache_dir()


def _disk_usage(folder: Path) -> tuple[int, float]:
    """(bytes of every file under folder but its lock file, newest modification time); links are not followed."""
    from .locks import LOCK_NAME

    total, newest = 0, folder.lstat().st_mtime
    for dirpath, _, files in os.walk(folder):
        for name in files:
            if name == LOCK_NAME and dirpath == str(folder):
                continue
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:  # removed while we walk
                continue
            total += st.st_size
            newest = max(newest, st.st_mtime)
    return total, newest


def _read_manifest(folder: Path) -> tuple[dict | None, str | None, bool]:
    """(manifest, why it is damaged, whether it belongs to something else)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return None, f"unreadable {MANIFEST} ({str(exc).splitlines()[0]})", False
    if not isinstance(manifest, dict):
        return None, f"{MANIFEST} is not a JSON object", False
    if manifest.get("format") != FORMAT:
        return None, f"not a prodcat cache ({MANIFEST} format {manifest.get('format')!r})", True
    if not isinstance(manifest.get("shards"), list) or not isinstance(manifest.get("datasets"), dict):
        return None, f"{MANIFEST} has no shard or dataset list", False
    return manifest, None, False


def _dataset_info(folder: Path, fp: str, entry) -> DatasetInfo:
    entry = entry if isinstance(entry, dict) else {}
    index = folder / "datasets" / f"{fp}.parquet"
    listed = entry.get("index")
    if isinstance(listed, str) and (folder / listed).resolve().parent == (folder / "datasets").resolve():
        index = folder / listed
    splits = entry.get("splits")
    return DatasetInfo(
        fingerprint=fp,
        source=entry.get("source"),
        rows=entry.get("rows") if isinstance(entry.get("rows"), int) else None,
        splits=dict(splits) if isinstance(splits, dict) and splits else None,
        index=index,
        bytes=index.stat().st_size if index.is_file() else 0,
    )


def cache_info(folder: str | os.PathLike) -> CacheInfo:
    """What one folder holding a manifest.json is: a cache (with its datasets), a damaged one, or another's."""
    folder = Path(folder)
    size, newest = _disk_usage(folder)
    manifest, damaged, foreign = _read_manifest(folder)
    found = CACHE_NAME.search(folder.name)
    info = CacheInfo(folder, None, found and found.group(1), None, None, 0, 0, size, datetime.fromtimestamp(newest))
    if manifest is None:
        info.damaged, info.foreign = damaged, foreign
        return info
    encoder = manifest.get("encoder")
    info.encoder = encoder.get("name") if isinstance(encoder, dict) else None
    info.key = manifest.get("key") if isinstance(manifest.get("key"), str) else info.key
    info.dim = manifest.get("dim") if isinstance(manifest.get("dim"), int) else None
    info.dtype = manifest.get("dtype") if isinstance(manifest.get("dtype"), str) else None
    shards = manifest["shards"]
    info.shards = len(shards)
    info.vectors = sum(s["rows"] for s in shards if isinstance(s, dict) and isinstance(s.get("rows"), int))
    info.datasets = [_dataset_info(folder, fp, e) for fp, e in manifest["datasets"].items()]
    return info


def list_caches(root: str | os.PathLike | None = None) -> list[CacheInfo]:
    """Every folder under `root` (default: $PRODCAT_CACHE, else ~/.cache/prodcat) holding a manifest.json,
    sorted by name; damaged ones included with `damaged` saying why. A missing root holds no caches.

    Example:
        >>> for c in list_caches():
        ...     print(c.name, c.vectors, c.bytes, [d.source for d in c.datasets])
    """
    root = cache_root(root)
    if not root.exists():
        return []
    if not root.is_dir():
        raise ProdcatError(f"cache folder {root} is a file, not a folder; pass the folder holding the caches")
    folders = [p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and TMP_MARK not in p.name]
    return [cache_info(p) for p in sorted(folders) if (p / MANIFEST).is_file()]


def _choices(caches: list[CacheInfo]) -> str:
    return ", ".join(c.name for c in caches) or "none"


def find_cache(target: str | os.PathLike, root: str | os.PathLike | None = None) -> CacheInfo:
    """The cache `target` names: a folder name under root, its key or a unique key prefix, or a path."""
    root, text = cache_root(root), str(target).strip()
    if not text:
        raise ProdcatError("name a cache: its folder name, key (or key prefix) or path; `prodcat cache ls` lists them")
    caches = list_caches(root)
    by_name = [c for c in caches if c.name == text]
    by_key = by_name or [c for c in caches if c.key and c.key.startswith(text.lower())]
    if len(by_key) == 1:
        return by_key[0]
    if len(by_key) > 1:
        raise ProdcatError(
            f"'{text}' matches {len(by_key)} caches under {root}: {_choices(by_key)}; give more of the key"
        )
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / MANIFEST).is_file():
            raise ProdcatError(f"{path} is not a prodcat cache folder (no {MANIFEST}); not touching it")
        return cache_info(path)
    raise ProdcatError(f"no cache '{text}' under {root}; caches there: {_choices(caches)}")


def find_dataset(cache: CacheInfo, which: str) -> DatasetInfo:
    """The dataset of `cache` named by fingerprint (or unique prefix) or by its source path."""
    which = str(which).strip()
    exact = [d for d in cache.datasets if which and which in (d.fingerprint, d.source)]
    found = exact or [d for d in cache.datasets if which and d.fingerprint.startswith(which)]
    if not found and which:
        wanted = Path(which).expanduser().resolve()
        found = [d for d in cache.datasets if d.source and Path(d.source).expanduser().resolve() == wanted]
    if len(found) == 1:
        return found[0]
    listed = ", ".join(f"{d.fingerprint} ({d.source})" for d in (found or cache.datasets)) or "none"
    if found:
        raise ProdcatError(f"'{which}' matches {len(found)} datasets of cache {cache.name}: {listed}")
    raise ProdcatError(f"cache {cache.name} has no dataset '{which}'; its datasets: {listed}")


def resolve_removal(
    target: str | os.PathLike, root: str | os.PathLike | None = None, dataset: str | None = None
) -> tuple[CacheInfo, DatasetInfo | None]:
    """What remove_cache(target, root, dataset) would remove, checked, without removing it (to ask first)."""
    root = cache_root(root)
    cache = find_cache(target, root)
    if cache.damaged is not None:
        where_a_cache_is = cache.folder.parent.resolve() == root.resolve() and CACHE_NAME.search(cache.name)
        if cache.foreign or not where_a_cache_is:
            raise ProdcatError(
                f"{cache.folder} is not a prodcat cache folder ({cache.damaged}; expected format {FORMAT}); "
                "not touching it"
            )
        if dataset is not None:
            raise ProdcatError(
                f"cache {cache.folder} is damaged ({cache.damaged}): its datasets cannot be edited; "
                f"remove the whole cache with `prodcat cache rm {cache.name}`"
            )
    return cache, None if dataset is None else find_dataset(cache, dataset)


def _remove_dataset(cache: CacheInfo, ds: DatasetInfo) -> int:
    from .store import write_manifest

    path = cache.folder / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        manifest["datasets"].pop(ds.fingerprint, None)
        write_manifest(cache.folder, manifest)  # unlisted first, so the manifest never names a missing index
        ds.index.unlink(missing_ok=True)
    except (OSError, ValueError) as exc:
        raise ProdcatError(f"could not remove dataset {ds.fingerprint} from {cache.folder}: {exc}") from exc
    return max(cache.bytes - _disk_usage(cache.folder)[0], 0)


def remove_cache(target: str | os.PathLike, root: str | os.PathLike | None = None, dataset: str | None = None) -> int:
    """Delete the cache `target` names (see find_cache), or with `dataset` (fingerprint or source path) only
    that dataset's row index and manifest entry: the vectors stay, other datasets may share them.
    Returns the bytes freed.

    Example:
        >>> remove_cache("2949511", dataset="data/old.parquet")  # one dataset's index
        >>> remove_cache("use-multilingual-294951103ed1061f")     # the whole cache
    """
    from .locks import folder_lock

    cache, ds = resolve_removal(target, root, dataset)
    with folder_lock(cache.folder, what="the cache", wait=False):  # refused while an embed writes it
        if ds is not None:
            return _remove_dataset(cache, ds)
        # renamed first: the cache vanishes at once, and a half-deleted folder is never taken for a cache
        doomed = cache.folder.with_name(f"{cache.name}{TMP_MARK}removing")
        try:
            os.replace(cache.folder, doomed)
        except OSError as exc:
            raise ProdcatError(f"could not remove {cache.folder}: {exc}") from exc
    try:
        shutil.rmtree(doomed)
    except OSError as exc:
        raise ProdcatError(f"could not finish removing {cache.folder} (what is left is {doomed}): {exc}") from exc
    return cache.bytes
