"""Titles to the vectors a model was trained on: looked up in the embedding cache when already there (so a
catalogue that was embedded is never encoded again, and its vectors are exactly those training saw), encoded
otherwise by the model's own encoder(s), preprocessed and rounded through the cache dtype as the cache holds
them. Encoders are loaded on first need, so a batch found whole in the cache never loads one."""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa

from .config import PipelineConfig
from .errors import CacheCorrupt, CacheMissing

log = logging.getLogger(__name__)


class TitleVectorizer:
    """`vectors(titles)` for a model trained with `config` (its encoder list and cache settings).

    Example:
        >>> model = open_run("runs/sample/v2")
        >>> v = TitleVectorizer(model.config, check_encoders(model.encoder), device="cpu")
        >>> v.vectors(["Damen Laufschuhe schwarz"]).shape
        (1, 512)
    """

    def __init__(self, config: PipelineConfig, identities: list, *, device: str = "cpu", use_cache: bool = True,
                 batch_size: int | None = None, trust_remote_code: bool = False):  # fmt: skip
        from .combined import encoder_weights

        self.config, self.device, self.trust_remote_code = config, device, trust_remote_code
        self.names = [identity.name for identity in identities]
        self.weights = encoder_weights(config.encoder) if len(self.names) > 1 else [1.0]
        self.dtype = np.dtype(config.cache.dtype)
        self.batch_size = batch_size or config.encoder.batch_size
        self._encoders: list | None = None
        self._stores = _open_part_stores(config, identities) if use_cache else None
        self.encoded = self.reused = 0  # titles encoded / found in the cache so far

    def vectors(self, titles: list[str]) -> np.ndarray:
        """float32 vectors of raw `titles` (preprocessed here), cached ones read, the rest encoded."""
        from .text import preprocess_texts, string_array, text_hashes

        clean = preprocess_texts(string_array(titles)).to_pylist()
        found, positions = np.zeros(len(clean), dtype=bool), []
        if self._stores and clean:
            hashes = string_array(text_hashes(clean))
            found[:] = True
            for _, store_hashes in self._stores:
                positions.append(_positions(hashes, store_hashes))
                found &= positions[-1] >= 0
        parts = []
        missing = np.flatnonzero(~found)
        encoded = self._encode([clean[i] for i in missing]) if len(missing) else None
        for p in range(len(self.names)):
            dim = encoded[p].shape[1] if encoded is not None else self._stores[p][0].dim
            part = np.empty((len(clean), dim), dtype=self.dtype)
            if found.any():
                part[found] = self._stores[p][0].gather(positions[p][found], self.dtype)
            if encoded is not None:
                part[missing] = encoded[p]
            parts.append(part)
        self.encoded += len(missing)
        self.reused += int(found.sum())
        if len(parts) == 1:
            return parts[0].astype(np.float32)
        from .combined import combine_blocks

        return combine_blocks(parts, self.weights, self.dtype).astype(np.float32)

    def _encode(self, clean: list[str]) -> list[np.ndarray]:
        """Each encoder's vectors of preprocessed titles, in the cache dtype."""
        if self._encoders is None:
            self._encoders = load_encoders(self.names, self.config, self.device, self.trust_remote_code)
        return [
            np.asarray(
                enc.encode(
                    clean,
                    batch_size=self.batch_size,
                    normalize_embeddings=self.config.encoder.normalize,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )  # fmt: skip
            ).astype(self.dtype)
            for enc in self._encoders
        ]


def load_encoders(names: list[str], config: PipelineConfig, device: str, trust_remote_code: bool = False) -> list:
    """The encoder of each name, for inference (the numpy USE encoder without sentence-transformers' import).
    `trust_remote_code` comes from the caller, never from the stored `config` of a model someone sent."""
    from . import encoders

    precision = config.encoder.precision
    return [encoders.load_encoder(n, device=device, precision=precision, light=True,
                                  trust_remote_code=trust_remote_code) for n in names]  # fmt: skip


def _open_part_stores(config: PipelineConfig, identities: list) -> list | None:
    """(store, its text hashes) per encoder when every encoder has a cache here, else None (encode all)."""
    from .combined import part_config
    from .store import VectorStore, cache_folder, cache_key

    stores = []
    for identity in identities:
        name = identity.name
        cfg = part_config(config, name) if len(identities) > 1 else config
        try:
            store = VectorStore.open(cache_folder(identity, cfg.encoder, cfg.cache),
                                     key=cache_key(identity, cfg.encoder, cfg.cache))  # fmt: skip
            stores.append((store, store.hashes()))
        except (CacheMissing, CacheCorrupt, OSError) as exc:
            log.info("no usable cache for %s (%s): titles will be encoded", name, str(exc).splitlines()[0])
            return None
    return stores


def _positions(hashes: pa.Array, store_hashes: pa.Array) -> np.ndarray:
    """Global vector index of each hash in a store, -1 where it is not cached."""
    import pyarrow.compute as pc

    if len(store_hashes) == 0:
        return np.full(len(hashes), -1, dtype=np.int64)
    found = pc.index_in(hashes, value_set=store_hashes)  # int32, null where absent (fill_null would import pandas)
    values = np.frombuffer(found.buffers()[1], dtype=np.int32, count=len(found), offset=4 * found.offset)
    if found.null_count == 0:
        return values.astype(np.int64)
    bits = np.unpackbits(np.frombuffer(found.buffers()[0], dtype=np.uint8), bitorder="little")
    valid = bits[found.offset : found.offset + len(found)].astype(bool)  # to_numpy() would import pandas too
    return np.where(valid, values, -1).astype(np.int64)
