"""One shard's files: vectors (.npy) and titles (.parquet), each written under a temporary name and renamed,
with the checksums the manifest records. Used by the store and by workers that own shards (Ray actors)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from .atomic import write_atomic, write_parquet_atomic
from .text import checksum_file


def write_shard(folder: Path, shard_id: int, vectors: np.ndarray, hashes: list[str], texts: list[str]) -> dict:
    """Write shard `shard_id`'s vectors and titles into `folder` (each under a temporary name, then renamed) and
    return its manifest entry, checksums included. Nothing lists it yet: whoever holds the cache lock appends the
    entry (`VectorStore.append_shard`). Workers that own shards (the Ray engine's actors) call this directly."""
    emb_name, meta_name = f"emb_{shard_id:05d}.npy", f"meta_{shard_id:05d}.parquet"
    folder.mkdir(parents=True, exist_ok=True)
    entry = {"id": shard_id, "rows": int(len(vectors)), "emb": emb_name, "meta": meta_name}
    entry |= write_vectors(folder / emb_name, vectors)
    write_parquet_atomic(folder / meta_name, pa.table({"text_hash": hashes, "text": texts}))
    entry["meta_xxh3"] = checksum_file(folder / meta_name)
    return entry


def write_vectors(path: Path, vectors: np.ndarray) -> dict:
    """Save vectors at `path` atomically; its checksum is taken from the bytes written (no re-read)."""
    import xxhash

    hasher = xxhash.xxh3_128()

    def save(p: Path) -> None:
        with open(p, "wb") as fh:
            np.save(_Tee(fh, hasher), vectors, allow_pickle=False)

    write_atomic(path, save)
    return {"xxh3": hasher.hexdigest()}


class _Tee:
    """A binary file that also feeds what is written into a hasher."""

    def __init__(self, fh, hasher):
        self.fh, self.hasher = fh, hasher

    def write(self, data) -> int:
        self.hasher.update(data)
        return self.fh.write(data)

    def __getattr__(self, name):
        return getattr(self.fh, name)
