"""Classifier heads on cached vectors: linear (v1), residual MLP (v2), residual + SupCon projection (v3)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .config import TrainConfig, canonical_head


class InputTransform(nn.Module):
    """What every head does to a cached vector first: optional per-language linear map onto English
    (x -> normalise(x W_lang)), per-language centring, removal of language-identifying directions, and L2
    normalisation. Its statistics are buffers, so they are saved with the head and prediction applies
    exactly the same transform."""

    def __init__(
        self, dim: int, n_languages: int = 0, n_directions: int = 0, normalize: bool = True, n_aligned: int = 0
    ):
        super().__init__()
        self.normalize = normalize
        # identity = not mapped; saved only when used, so checkpoints from before the option still load
        self.register_buffer("lang_maps", torch.eye(dim).repeat(n_aligned, 1, 1), persistent=n_aligned > 0)
        self.register_buffer("lang_means", torch.zeros(n_languages, dim))
        self.register_buffer("directions", torch.zeros(n_directions, dim))
        self._identity: tuple | None = None  # (state of lang_maps, identity flags): see _identity_maps

    @property
    def centring(self) -> bool:
        return self.lang_means.shape[0] > 0

    @property
    def aligning(self) -> bool:
        return self.lang_maps.shape[0] > 0

    @property
    def needs_languages(self) -> bool:
        return self.centring or self.aligning

    def align(self, x: torch.Tensor, lang: torch.Tensor) -> torch.Tensor:
        """Rows of language i -> normalise(x @ lang_maps[i]); unseen languages (-1) are left as they are.
        Languages whose map is the identity (the pivot, those with too few pairs) skip the product (x @ I == x).
        The result keeps x's dtype (under autocast the products run in the autocast dtype)."""
        out = x.clone()
        identity, plain_ids = self._identity_maps()
        for i in range(self.lang_maps.shape[0]):
            if identity[i]:
                continue
            rows = (lang == i).nonzero().squeeze(1)
            if rows.numel():
                out[rows] = nn.functional.normalize(x[rows] @ self.lang_maps[i], dim=1).to(out.dtype)
        if plain_ids is not None:  # every identity-mapped language at once: only normalised
            rows = (plain_ids[lang.clamp(min=0)] & (lang >= 0)).nonzero().squeeze(1)
            if rows.numel():
                out[rows] = nn.functional.normalize(x[rows], dim=1)
        return out

    def _identity_maps(self) -> tuple[list[bool], torch.Tensor | None]:
        """Which languages' maps are the identity (a list, and a bool tensor on the maps' device, None when no
        map is). Worked out once per content of `lang_maps`: again only after it is fitted, loaded or moved."""
        maps = self.lang_maps
        try:
            key = (maps.data_ptr(), maps.device, maps.dtype, maps.shape, maps._version)
        except RuntimeError:  # an inference tensor keeps no version counter: check every time
            key = None
        cached = self._identity
        if key is None or cached is None or cached[0] != key:
            eye = torch.eye(maps.shape[1], dtype=maps.dtype, device=maps.device)
            flags = [bool(torch.equal(m, eye)) for m in maps]
            ids = torch.tensor(flags, dtype=torch.bool, device=maps.device) if any(flags) else None
            cached = self._identity = (key, flags, ids)
        return cached[1], cached[2]

    def forward(self, x: torch.Tensor, lang: torch.Tensor | None = None) -> torch.Tensor:
        x = x.float()
        if self.needs_languages and lang is None:
            raise ValueError("this head transforms each language differently: pass the language ids")
        if self.aligning:
            x = self.align(x, lang)
        if self.centring:
            known = lang >= 0  # unseen languages (-1) are not shifted
            shift = self.lang_means[lang.clamp(min=0)] * known.unsqueeze(1)
            x = x - shift
        if self.directions.shape[0]:
            x = x - (x @ self.directions.T) @ self.directions
        if self.normalize:
            x = nn.functional.normalize(x, dim=1)
        return x


class FastDropout(nn.Module):
    """Inverted dropout whose CPU mask comes from NumPy's PCG64 raw bits: on CPU, torch's bernoulli_ was
    ~20 % of a v2 training step; this mask costs a tenth of that. The per-step NumPy seed is drawn from
    torch's RNG, so `torch.manual_seed` still makes runs (and resumed runs) reproducible. Keep probability
    is quantised to 1/65536. On CUDA it is plain `F.dropout`."""

    def __init__(self, p: float = 0.1):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu":
            return nn.functional.dropout(x, self.p, True)
        n = x.numel()
        seed = int(torch.randint(0, 2**62, (1,)).item())
        bits = np.random.PCG64(seed).random_raw(-(-n // 4)).view(np.uint16)[:n]
        threshold = round(self.p * 65536)
        keep = torch.from_numpy((bits >= threshold).reshape(x.shape))
        return x * keep.to(x.dtype).mul_(65536.0 / (65536 - threshold))

    def extra_repr(self) -> str:
        return f"p={self.p}"


class LinearHead(nn.Module):
    """v1: one linear layer on the (transformed) embedding."""

    def __init__(self, dim: int, n_classes: int, transform: InputTransform | None = None, **_):
        super().__init__()
        self.transform = transform or InputTransform(dim)
        self.classifier = nn.Linear(dim, n_classes)

    def features(self, x, lang=None):
        return self.transform(x, lang)

    def forward(self, x, lang=None):
        return self.classifier(self.features(x, lang)), None


class ResidualHead(nn.Module):
    """v2: LayerNorm -> Linear(d, hidden) -> GELU -> Dropout -> Linear(hidden, d), added back to the input
    (unless `residual=False`), then a linear classifier."""

    def __init__(
        self,
        dim: int,
        n_classes: int,
        hidden: int = 512,
        dropout: float = 0.1,
        residual: bool = True,
        transform: InputTransform | None = None,
        **_,
    ):
        super().__init__()
        self.transform = transform or InputTransform(dim)
        self.residual = residual
        self.block = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), FastDropout(dropout), nn.Linear(hidden, dim)
        )
        self.classifier = nn.Linear(dim, n_classes)

    def features(self, x, lang=None):
        x = self.transform(x, lang)
        h = self.block(x)
        return x + h if self.residual else h

    def forward(self, x, lang=None):
        return self.classifier(self.features(x, lang)), None


class ContrastiveHead(ResidualHead):
    """v3: the v2 head plus a projection head (-> `contrastive_dim`, L2-normalised) whose output feeds a
    supervised contrastive loss during training; prediction uses the classifier only."""

    def __init__(self, dim: int, n_classes: int, contrastive_dim: int = 128, **kw):
        super().__init__(dim, n_classes, **kw)
        self.projection = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, contrastive_dim))

    def forward(self, x, lang=None):
        f = self.features(x, lang)
        z = nn.functional.normalize(self.projection(f), dim=1) if self.training else None
        return self.classifier(f), z


HEAD_CLASSES = {"linear": LinearHead, "v2": ResidualHead, "v3": ContrastiveHead}
SHAPE_KEYS = (
    "hidden",
    "contrastive_dim",
    "residual",
    "n_centred_languages",
    "n_removed_directions",
    "n_aligned_languages",
)


def head_args(tc: TrainConfig, n_languages: int) -> dict:
    """A head's shape and hyper-parameters (what checkpoints store to rebuild it)."""
    args = {
        "hidden": tc.classifier_hidden,
        "dropout": tc.classifier_dropout,
        "residual": not tc.classifier_no_residual,
        "contrastive_dim": tc.contrastive_dim,
        "normalize_input": tc.normalize_input,
        "n_centred_languages": n_languages if tc.lang_centering else 0,
        "n_removed_directions": tc.lang_remove_directions,
    }
    if tc.lang_align:  # only then: checkpoints written before the option still match (absent == absent)
        args["n_aligned_languages"] = n_languages
    return args


def build_head(name: str, dim: int, n_classes: int, args: dict) -> nn.Module:
    """A head from its registry name and its shape/hyper-parameter dict (as stored in checkpoints)."""
    transform = InputTransform(
        dim,
        n_languages=args.get("n_centred_languages", 0),
        n_directions=args.get("n_removed_directions", 0),
        normalize=args.get("normalize_input", True),
        n_aligned=args.get("n_aligned_languages", 0),
    )
    return HEAD_CLASSES[canonical_head(name)](
        dim,
        n_classes,
        hidden=args.get("hidden", 512),
        dropout=args.get("dropout", 0.1),
        residual=args.get("residual", True),
        contrastive_dim=args.get("contrastive_dim", 128),
        transform=transform,
    )
