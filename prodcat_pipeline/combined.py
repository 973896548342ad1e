"""Several encoders, one head: a dataset read through each encoder's own cache, every row the concatenation
of its encoders' vectors (each L2-normalised, then scaled by its weight), combined batch by batch.

`encoder.model: "use-multilingual,minilm"` keeps one ordinary cache per encoder (shared with runs that use
that encoder alone; only what is missing is encoded) and one combined view over them:

    CombinedStore.gather(rows)    dataset rows -> each part's vector ids (its own row index) -> gathered,
                                  normalised, weighted, concatenated: the full matrix never exists
    CombinedVectors.take(rows)    the same for training batches, over each part's memory-mapped shards

New titles are turned into the same combined vectors by vectorizer.TitleVectorizer (predict, Classifier).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa

from .config import EncoderConfig, PipelineConfig, encoder_names
from .errors import CacheCorrupt, ProdcatError

GATHER_ROWS = 16384  # rows combined at a time: bounds the per-part float32 temporaries of a large gather


def encoder_weights(encoder: EncoderConfig) -> list[float]:
    """Each listed encoder's weight (default 1.0), checked: one weight per encoder, no encoder listed twice."""
    from .encoders import canonical_name

    names = encoder_names(encoder)
    canonical = [canonical_name(n) for n in names]
    twice = sorted({n for n in canonical if canonical.count(n) > 1})
    if twice:
        raise ProdcatError(f"encoder.model '{encoder.model}' lists {', '.join(twice)} twice: name each encoder once")
    if encoder.weights is None:
        return [1.0] * len(names)
    if len(encoder.weights) != len(names):
        raise ProdcatError(
            f"encoder.weights has {len(encoder.weights)} values but encoder.model '{encoder.model}' lists "
            f"{len(names)} encoders: give one weight per encoder (--encoder-weights 1,0.5)"
        )
    return [float(w) for w in encoder.weights]


def part_config(config: PipelineConfig, name: str) -> PipelineConfig:
    """`config` for one encoder of a list: what that encoder's own cache is built and opened with."""
    out = config.model_copy(deep=True)
    out.encoder.weights = None  # first: a lone model with a list of weights would be refused
    out.encoder.model = name
    return out


def part_columns(columns: list[str] | None) -> list[str] | None:
    """The row-index columns each part is read with: those asked for plus what aligning the parts needs."""
    return None if columns is None else list(dict.fromkeys([*columns, "row_id", "vec"]))


def combined_key(part_keys: list[str], weights: list[float]) -> str:
    """The combined cache's key: its parts' keys (encoder, weights fingerprint, dtype, ...) and the weights."""
    payload = {"parts": list(part_keys), "weights": [float(w) for w in weights]}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def combine_blocks(blocks: list[np.ndarray], weights: list[float], dtype) -> np.ndarray:
    """Rows of each block (one per encoder) L2-normalised in float32 and scaled by the block's weight, side by
    side, in `dtype`: the one definition of a combined vector (gather, training batches and predict use it)."""
    out = np.empty((len(blocks[0]), sum(b.shape[1] for b in blocks)), dtype=dtype)
    col = 0
    for block, w in zip(blocks, weights, strict=True):
        b = block.astype(np.float32, copy=False)
        scale = np.float32(w) / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), np.float32(1e-12))
        out[:, col : col + b.shape[1]] = b * scale
        col += b.shape[1]
    return out


class CombinedStore:
    """Several encoders' stores read as one, for one dataset: "vector" i is dataset row i, the concatenation
    of each part's vector of that row. Offers what the rest of the code uses of a VectorStore: manifest
    (key, dtype, dim, encoder), dim, folder, n_vectors and gather.

    Example:
        >>> cached = load_cache(load_config(overrides={"encoder.model": "use-multilingual,minilm"}))
        >>> cached.store.gather([0, 1]).shape  # (2, 512 + 384)
    """

    def __init__(self, parts: list, part_vec: list[np.ndarray], weights: list[float]):
        self.parts = parts  # VectorStore per encoder
        self.part_vec = [np.asarray(v, dtype=np.int64) for v in part_vec]  # dataset row -> that part's vector id
        self.weights = [float(w) for w in weights]
        self.dtype = np.dtype(parts[0].manifest.get("dtype", "float32"))
        self.manifest = {
            "key": combined_key([p.manifest["key"] for p in parts], self.weights),
            "dtype": self.dtype.name,
            "dim": sum(p.dim for p in parts),
            "normalize": True,
            "encoder": {
                "name": ",".join(p.manifest["encoder"]["name"] for p in parts),
                "parts": [dict(p.manifest["encoder"]) for p in parts],
                "weights": self.weights,
            },
        }

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    @property
    def folder(self) -> Path:
        """The first part's cache folder (each part keeps its own: see `folders`)."""
        return self.parts[0].folder

    @property
    def folders(self) -> list[Path]:
        return [p.folder for p in self.parts]

    @property
    def n_vectors(self) -> int:
        return len(self.part_vec[0])

    def gather(self, vec, dtype=np.float32) -> np.ndarray:
        """Combined vectors of dataset rows `vec`, as one contiguous array of `dtype` (built GATHER_ROWS rows at
        a time from each part's shards, so memory peaks at the output plus one slice per part)."""
        vec = np.asarray(vec, dtype=np.int64)
        out = np.empty((len(vec), self.dim), dtype=dtype)
        for s in range(0, len(vec), GATHER_ROWS):
            rows = vec[s : s + GATHER_ROWS]
            blocks = [p.gather(pv[rows], self.dtype) for p, pv in zip(self.parts, self.part_vec, strict=True)]
            out[s : s + len(rows)] = combine_blocks(blocks, self.weights, self.dtype)
        return out


class CombinedVectors:
    """Training batches of a combined cache: each part's rows taken from its own memory-mapped shards (one
    ShardedVectors per part), combined per batch in the cache dtype, exactly as CombinedStore.gather does."""

    def __init__(self, parts: list, part_vec: list[np.ndarray], weights: list[float], dtype):
        import torch

        self.parts = parts
        self.part_vec = [torch.from_numpy(np.ascontiguousarray(v, dtype=np.int64)) for v in part_vec]
        self.weights = list(weights)
        self.np_dtype = np.dtype(dtype)
        self.dim = sum(p.dim for p in parts)

    def consolidate(self) -> None:
        for p in self.parts:
            p.consolidate()

    def take(self, rows):
        import torch

        blocks = [p.take(pv.index_select(0, rows)).numpy() for p, pv in zip(self.parts, self.part_vec, strict=True)]
        return torch.from_numpy(combine_blocks(blocks, self.weights, self.np_dtype))


def _aligned_vec(base_ids: np.ndarray, part, first) -> np.ndarray:
    """The part's vector id of each row of the first part's row index (rows matched by row_id)."""
    ids, vec = part.column("row_id"), part.column("vec").astype(np.int64)
    if np.array_equal(ids, base_ids):
        return vec
    base_order, order = np.argsort(base_ids, kind="stable"), np.argsort(ids, kind="stable")
    if len(ids) != len(base_ids) or not np.array_equal(base_ids[base_order], ids[order]):
        raise CacheCorrupt(
            f"the row index of {part.folder} has other rows than that of {first.folder} for dataset "
            f"{first.dataset.get('source')}; run `prodcat embed` on the dataset again to rewrite both"
        )
    out = np.empty_like(vec)
    out[base_order] = vec[order]
    return out


def combine(parts: list, config: PipelineConfig, columns: list[str] | None = None):
    """One CachedDataset over the same dataset's caches under several encoders (`parts`, CachedDatasets in
    encoder order): rows of the first part, `vec` = the row number, store = a CombinedStore."""
    weights = encoder_weights(config.encoder)
    first = parts[0]
    for part in parts[1:]:
        if part.label_names != first.label_names:
            raise CacheCorrupt(
                f"the caches {first.folder} and {part.folder} index dataset {first.dataset.get('source')} with "
                "other label sets; run `prodcat embed` on the dataset again to rewrite both"
            )
    base_ids = first.column("row_id")
    store = CombinedStore([p.store for p in parts], [_aligned_vec(base_ids, p, first) for p in parts], weights)
    rows = first.rows.set_column(
        first.rows.schema.get_field_index("vec"), "vec", pa.array(np.arange(len(base_ids), dtype=np.int64))
    )
    if columns is not None:
        rows = rows.select(columns)
    return dataclasses.replace(first, store=store, rows=rows)


# ---------------------------------------------------------------- the encoders a cache or checkpoint names


def check_encoders(encoder_meta: dict) -> list:
    """The identity of each encoder a cache or checkpoint was built with (`encoder_meta`: its "encoder" dict;
    a combined one lists its "parts"), refusing encoders installed here whose weights differ."""
    from .encoders import identify

    identities = []
    for part in encoder_meta.get("parts") or [encoder_meta]:
        identity = identify(part["name"])
        identities.append(identity)
        if part.get("fingerprint") and identity.fingerprint != part["fingerprint"]:
            raise ProdcatError(
                f"the encoder '{part['name']}' found here has other weights ({identity.fingerprint}) than the one "
                f"this run was trained on ({part['fingerprint']}); install the same version"
            )
    return identities
