"""Pipeline configuration: one pydantic model, read from `pipeline.yaml`, overridden by flags."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ProdcatError


class _Section(BaseModel):
    # Unknown keys are errors that name the key; values are validated (lax: "3" is accepted for an int).
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    path: str | None = None  # DatasetDict folder, a Parquet/CSV/JSONL file, or a folder of per-split files
    text_column: str = "text"
    label_column: str = "label"
    language_column: str = "language"  # detected with py3langid when the column is absent
    cluster_column: str = "cluster"  # groups for the split; identical titles are grouped when absent
    split_column: str = "split"  # per-row split name in a single file (optional)
    split_fractions: tuple[float, float, float] = (0.85, 0.05, 0.10)  # train/validation/test when no split
    split_seed: int = 0
    drop_empty: bool = False  # drop rows whose title is empty or null instead of failing


class EncoderConfig(_Section):
    model: str = "use-multilingual"  # use-multilingual | minilm | any sentence-transformers id or path
    batch_size: int = Field(128, gt=0)  # titles per encode call
    device: str | None = None  # None = CUDA when present, else CPU
    precision: Literal["auto", "float32", "float16", "bfloat16"] = "auto"  # auto = fp16 on CUDA, fp32 on CPU
    normalize: bool = True  # L2-normalise vectors before caching
    workers: int | None = Field(None, ge=1)  # encoding processes; None = one per core for USE on CPU, else 1


class CacheConfig(_Section):
    dir: str | None = None  # None = $PRODCAT_CACHE or ~/.cache/prodcat
    shard_size: int = Field(65536, gt=0)  # unique titles per shard
    dtype: Literal["float16", "float32"] = "float16"


class TrainConfig(_Section):
    """Stage-two settings; every field is also a `prodcat train` flag (--field_name or --field-name)."""

    head: str = Field("v2", description="Head: linear (v1), v2 (residual) or v3 (contrastive).")
    epochs: int = Field(10, ge=0, description="Passes over the training split.")
    batch_size: int = Field(256, gt=0, description="Rows per micro-batch.")
    grad_accum: int = Field(1, gt=0, description="Micro-batches per optimizer step.")
    lr: float = Field(1e-3, gt=0, description="Peak AdamW learning rate.")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay.")
    lr_schedule: Literal["none", "cosine", "exponential"] = Field("cosine", description="none, cosine or exponential.")
    lr_warmup_steps: int = Field(0, ge=0, description="Optimizer steps of linear warm-up.")
    lr_min_scale: float = Field(0.01, ge=0, le=1, description="Floor of the schedule, as a fraction of lr.")
    lr_decay: float = Field(0.9999, gt=0, le=1, description="Per-step factor of the exponential schedule.")
    classifier_hidden: int = Field(512, gt=0, description="Hidden width of the v2/v3 residual block.")
    classifier_dropout: float = Field(0.1, ge=0, lt=1, description="Dropout inside the residual block.")
    classifier_no_residual: bool = Field(False, description="v2/v3: do not add the block's output to its input.")
    normalize_input: bool = Field(True, description="L2-normalise cached vectors before the head.")
    contrastive_dim: int = Field(128, gt=0, description="v3: projection size for the contrastive loss.")
    contrastive_weight: float = Field(0.1, ge=0, description="v3: weight of the SupCon term.")
    contrastive_temp: float = Field(0.07, gt=0, description="v3: SupCon temperature.")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="Cross-entropy label smoothing.")
    focal_gamma: float = Field(0.0, ge=0, description="Focal-loss gamma (0 = plain cross-entropy).")
    focal_alpha: float | None = Field(None, gt=0, description="Scalar weight of the focal loss (default 1).")
    amp: bool = Field(False, description="Mixed precision: bf16/fp16 autocast on CUDA, bf16 on CPU.")
    seed: int = Field(0, description="Seed of initialisation, sampling and dropout.")
    early_stopping_patience: int = Field(
        0, ge=0, description="Stop after N epochs without val macro-F1 gain (0 = off)."
    )
    save_every: int = Field(1, ge=0, description="Keep a checkpoint every N epochs (0 = only best and last).")
    device: str | None = Field(None, description="cpu, cuda, ... (default: CUDA when present).")
    lang_sampling_temp: float = Field(
        1.0, ge=0, description="Language sampling temperature: 1 = natural frequencies, 0 = uniform over languages."
    )
    lang_loss_weights: str | None = Field(None, description="Per-language loss weights: auto or en=1,de=2,...")
    lang_class_weights: bool = Field(False, description="Balance classes within each language in the loss.")
    lang_centering: bool = Field(False, description="Subtract each language's mean vector (stored with the head).")
    lang_remove_directions: int = Field(0, ge=0, description="Also project out the top-k language directions.")
    init_from: str | None = Field(None, description="Start from this run folder's best head (fine-tune).")
    languages: list[str] | None = Field(None, description="Train only on these languages (comma-separated).")
    teacher: str | None = Field(None, description="Run folder whose logits regularise this run (KL).")
    kl_weight: float = Field(0.0, ge=0, description="Weight of the KL term towards --teacher.")
    kl_temperature: float = Field(1.0, gt=0, description="Softmax temperature of the KL term.")
    cross_lang_positives: bool = Field(
        False,
        description="v3: batches pair each row with a cluster mate; positives are the same cluster or the same "
        "label in another language.",
    )
    lang_min_samples: int = Field(20, ge=0, description="Rows a language needs to get per-language metrics.")
    lang_top_k: int = Field(10, ge=0, description="Languages shown in the printed tables.")
    no_lang_metrics: bool = Field(False, description="Skip per-language metrics.")


class KnnConfig(_Section):
    k: int = Field(10, gt=0)
    index: Literal["flat", "ivf", "hnsw"] = "flat"
    weighting: Literal["distance", "uniform"] = "distance"
    nlist: int = Field(1024, gt=0)  # IVF cells
    nprobe: int = Field(16, gt=0)
    hnsw_m: int = Field(32, gt=0)
    ef_search: int = Field(128, gt=0)


class PipelineConfig(_Section):
    data: DataConfig = DataConfig()
    encoder: EncoderConfig = EncoderConfig()
    cache: CacheConfig = CacheConfig()
    train: TrainConfig = TrainConfig()
    knn: KnnConfig = KnnConfig()
    heads: list[str] = ["linear", "v2", "v3"]  # heads `prodcat run` trains
    head_overrides: dict[str, dict] = {}  # per-head train settings for `prodcat run`, e.g. {linear: {lr: 0.01}}
    run_knn: bool = True
    out: str = "runs/pipeline"  # where `prodcat run` writes one folder per head


def train_config_for(config: PipelineConfig, head: str) -> PipelineConfig:
    """A copy of `config` whose train section is set up for `head` (with its head_overrides applied)."""
    from .heads import canonical_head

    head = canonical_head(head)
    overrides: dict = {}
    for key, values in config.head_overrides.items():  # keys may be aliases (v1, residual, contrastive)
        if canonical_head(key) == head:
            overrides.update(values)
    merged = {**config.train.model_dump(), **overrides, "head": head}
    try:
        train = TrainConfig.model_validate(merged)
    except ValidationError as exc:
        raise ProdcatError(_format_validation_error(exc, f"head_overrides.{head}")) from None
    return config.model_copy(update={"train": train}, deep=True)


def default_cache_dir() -> Path:
    env = os.environ.get("PRODCAT_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "prodcat"


def _format_validation_error(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        return f"{source}: unknown key '{key}'; check its spelling against pipeline.yaml's documented keys"
    return f"{source}: key '{key}': {first['msg']} (got {first.get('input')!r})"


def load_config(path: str | os.PathLike | None = None, overrides: dict | None = None) -> PipelineConfig:
    """Read `pipeline.yaml` (if given), then apply `overrides` ({"train.lr": 0.1, ...}); validate once."""
    import yaml

    raw: dict = {}
    source = "config"
    if path is not None:
        source = str(path)
        try:
            with open(path, encoding="utf-8") as fh:
                raw = yaml.safe_load(fh) or {}
        except FileNotFoundError as exc:
            raise ProdcatError(f"config file not found: {path}") from exc
        except yaml.YAMLError as exc:
            raise ProdcatError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
        if not isinstance(raw, dict):
            raise ProdcatError(f"{path} must hold a mapping of sections (data, encoder, ...)")
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        node = raw
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ProdcatError(f"{source}: key '{p}' must be a mapping")
        node[leaf] = value
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        raise ProdcatError(_format_validation_error(exc, source)) from None
