"""The cache layer's one decision: open a dataset's cached vectors, encoding them first only when missing."""

from __future__ import annotations

import logging

from .config import PipelineConfig
from .errors import CacheMissing
from .reader import CachedDataset, load_cache

log = logging.getLogger(__name__)

TRAINING_COLUMNS = ["row_id", "split", "label", "language", "cluster", "vec"]  # the row index less text hashes


def open_cache(
    config: PipelineConfig, *, columns: list[str] | None = None, show_progress: bool | None = None
) -> tuple[CachedDataset, bool]:
    """(the cache of config.data + config.encoder, whether it had to be built now).

    Only a missing cache or row index (CacheMissing) triggers an encode; a corrupt one (CacheCorrupt)
    is raised as it is, never rebuilt silently. With a comma list of encoders each one's cache is opened
    (encoding only the encoders whose cache is missing) and the caches are combined.
    """
    from .combined import combine, encoder_names, encoder_weights, part_columns, part_config

    names = encoder_names(config.encoder)
    if len(names) > 1:
        encoder_weights(config.encoder)  # a bad list fails before anything is encoded
        opened = [
            open_cache(part_config(config, n), columns=part_columns(columns), show_progress=show_progress)
            for n in names
        ]
        return combine([c for c, _ in opened], config, columns), any(built for _, built in opened)
    try:
        return load_cache(config, columns=columns), False
    except CacheMissing:
        pass
    from .embedder import embed

    log.info("no cache for this dataset and encoder yet: encoding it once")
    cached = embed(config, show_progress=show_progress).cached
    if columns is not None:
        cached.rows = cached.rows.select(columns)
    return cached, True
