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
    is raised as it is, never rebuilt silently. With a comma list of encoders the caches are combined;
    when one is missing, `embed` encodes only what each encoder's cache lacks.
    """
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
