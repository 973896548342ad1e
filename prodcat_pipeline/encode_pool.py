"""Encoding in forked worker processes (one single-thread encoder per core) or in-process."""

from __future__ import annotations

from .config import PipelineConfig

# The USE encoder's forward pass is many small numpy ops and its tokenizer is pure Python, so two BLAS
# threads in one process leave a core idle much of the time; one single-threaded worker per core is
# faster. Workers are forked after the model is built, so each inherits it instead of reloading it, and
# they own no files: the parent assembles shards in order and the writer thread saves them.

_WORKER_MODEL = None


def encode_workers(model, config: PipelineConfig, device: str) -> int:
    """Processes to encode with: `encoder.workers`, or (auto) one per core for the numpy USE encoder on
    a machine that can fork, else 1 (torch encoders already use every core from one process)."""
    import multiprocessing as mp
    import os

    if config.encoder.workers is not None:
        return max(1, config.encoder.workers)
    from .use_module import UniversalSentenceEncoder

    first = next(iter(model), None) if hasattr(model, "__iter__") else None
    if isinstance(first, UniversalSentenceEncoder) and "fork" in mp.get_all_start_methods():
        return os.cpu_count() or 1
    return 1


def encode_piece(piece):
    texts, kwargs = piece
    model = _WORKER_MODEL
    return model.encode(texts, convert_to_numpy=True, show_progress_bar=False, **kwargs)


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)
    for module in _WORKER_MODEL if hasattr(_WORKER_MODEL, "__iter__") else []:
        if hasattr(module, "threads"):  # the USE module: one BLAS thread per worker, backend built here
            module.threads, module._use = 1, None


class encoder_pool:  # noqa: N801 - used as a context manager like a function
    """A fork pool of `workers` processes holding `model`, or None for in-process encoding."""

    def __init__(self, model, workers: int):
        self.model, self.workers, self.pool = model, workers, None

    def __enter__(self):
        global _WORKER_MODEL
        _WORKER_MODEL = self.model
        if self.workers > 1:
            import multiprocessing as mp

            self.pool = mp.get_context("fork").Pool(self.workers, initializer=_init_worker)
        return self.pool

    def __exit__(self, *exc):
        global _WORKER_MODEL
        if self.pool is not None:
            self.pool.terminate() if exc[0] is not None else self.pool.close()
            self.pool.join()
        _WORKER_MODEL = None
        return False
