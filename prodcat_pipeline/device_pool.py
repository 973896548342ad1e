"""Several devices on one machine (`prodcat embed --devices cuda:0,cuda:1`): sentence-transformers' own
multi-process pool, one process per device, each encoding whole shards."""

from __future__ import annotations

import os

import numpy as np

from .encoders import resolve_device, set_use_threads
from .errors import ProdcatError


def parse_devices(spec: str) -> list[str]:
    """The devices of --devices: a comma list (each present here) or "all" (every CUDA device)."""
    if spec == "all":
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not count:
            raise ProdcatError("--devices all: this machine has no CUDA device; leave --devices out to encode on CPU")
        return [f"cuda:{i}" for i in range(count)]
    devices = [resolve_device(d.strip()) for d in spec.split(",") if d.strip()]
    if not devices:
        raise ProdcatError("--devices is empty: give a comma list such as cuda:0,cuda:1, or all")
    return devices


class DevicePool:
    """`model` on one process per device for the `with` block; `encode` hands each worker whole shards."""

    def __init__(self, model, devices: list[str], **encode_kwargs):
        self.model, self.devices, self.kwargs, self.pool = model, devices, encode_kwargs, None

    def __enter__(self) -> DevicePool:
        # the numpy USE module runs on CPUs whatever the device: the processes share the cores
        set_use_threads(self.model, max(1, (os.cpu_count() or 1) // len(self.devices)))
        self.pool = self.model.start_multi_process_pool(self.devices)
        return self

    def __exit__(self, *exc) -> bool:
        if self.pool is not None:
            self.model.stop_multi_process_pool(self.pool)
            self.pool = None
        return False

    def encode(self, texts: list[str], *, shard_size: int) -> np.ndarray:
        """Vectors of `texts`, a run of whole shards (all full but the last): chunk i of the pool = shard i."""
        try:
            return self.model.encode(
                texts,
                pool=self.pool,
                chunk_size=shard_size,
                convert_to_numpy=True,
                show_progress_bar=False,
                **self.kwargs,
            )
        except RuntimeError as exc:  # a worker died (out of memory, killed): sentence-transformers says which
            raise ProdcatError(f"an encoding process failed: {str(exc).splitlines()[0]}") from exc
