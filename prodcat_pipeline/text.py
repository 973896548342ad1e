"""Text normalisation and hashing shared by the loader, the cache and prediction."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

PREPROCESSING = "strip+collapse-unicode-whitespace/v2"  # what preprocess_texts does; part of the cache key
_CHUNK = 1 << 22


def preprocess_texts(texts: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """The text every encoder sees: trimmed, runs of (Unicode) whitespace collapsed to one space."""
    # \s in RE2 is ASCII-only: \p{Z} adds no-break and other Unicode spaces
    return pc.replace_substring_regex(pc.utf8_trim_whitespace(texts), r"[\s\p{Z}\x0b]+", " ")


def string_array(texts: list[str]) -> pa.Array:
    """A pyarrow string array of Python strings, built from raw buffers: the same array as
    pa.array(texts, pa.string()) without the pandas import (~0.3 s) pyarrow's list conversion starts."""
    import numpy as np

    data = [t.encode("utf-8") for t in texts]
    offsets = np.zeros(len(data) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in data], out=offsets[1:])
    kind = pa.string() if offsets[-1] < 2**31 else pa.large_string()
    offsets = offsets.astype(np.int32) if kind == pa.string() else offsets
    return pa.Array.from_buffers(kind, len(data), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(data))])


def text_hashes(texts: list[str]) -> list[str]:
    """The cache's key of each (preprocessed) title: 128-bit BLAKE2b, hex."""
    return [hashlib.blake2b(t.encode("utf-8"), digest_size=16).hexdigest() for t in texts]


def update_with_file(hasher, path: str | os.PathLike) -> None:
    """Feed a file's bytes into `hasher` in chunks (never the whole file in memory)."""
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            hasher.update(chunk)


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    update_with_file(h, path)
    return h.hexdigest()


def checksum_file(path: str | os.PathLike) -> str:
    """xxh3-128 of a file's bytes, hex: the cache's checksum (hashed straight from the page cache via mmap)."""
    import mmap

    import xxhash

    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            return xxhash.xxh3_128_hexdigest(b"")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as m:
            return xxhash.xxh3_128_hexdigest(m)


def hash_folder(folder: Path) -> str:
    """sha256 over every file's relative name and bytes (README and dot-files excluded), 20 hex digits."""
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = f.relative_to(folder).as_posix()
        if rel.startswith(".") or "/." in rel or f.name.lower().startswith("readme"):
            continue
        h.update(rel.encode() + b"\0")
        update_with_file(h, f)
    return h.hexdigest()[:20]
