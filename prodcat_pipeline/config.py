"""Pipeline configuration: one pydantic model, resolved once from defaults, pipeline.yaml, per-head
defaults, `head_overrides` and flags (in that order of precedence)."""

from __future__ import annotations

import os
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PrivateAttr, ValidationError, field_validator

from .errors import ProdcatError
from .language import language_code as _language_code
from .language import language_weights

HEADS = ("linear", "v2", "v3")
HEAD_ALIASES = {"v1": "linear", "residual": "v2", "contrastive": "v3"}
DEFAULT_HEAD = "v2"

# What each head needs to reach its potential without hand tuning (chosen on the validation splits of the
# real data in ../shared/data, mean over 3 seeds; BENCHMARKS.md §2). A lone linear layer on unit vectors
# needs a step ~100x larger than the MLPs. These beat the shared `train:` section of pipeline.yaml; set
# `head_overrides.<head>` or a flag to change them.
HEAD_DEFAULTS: dict[str, dict] = {
    "linear": {"lr": 0.1, "epochs": 20, "weight_decay": 0.05, "label_smoothing": 0.0, "lr_warmup_steps": 0},
    "v2": {"lr": 1e-3, "epochs": 30, "weight_decay": 0.01, "label_smoothing": 0.05, "lr_warmup_steps": 200},
    "v3": {"lr": 1e-3, "epochs": 30, "weight_decay": 0.01, "label_smoothing": 0.05, "lr_warmup_steps": 200},
}

_DEVICE = re.compile(r"(cpu|mps|(cuda|xpu)(:[0-9]{1,4})?)")  # fullmatch: "cpu\n" is not a device


def canonical_head(name: str) -> str:
    key = str(name).strip().lower()
    key = HEAD_ALIASES.get(key, key)
    if key not in HEADS:
        raise ProdcatError(f"unknown head '{name}': choose one of linear (v1), v2 (residual), v3 (contrastive)")
    return key


class _Section(BaseModel):
    # Unknown keys are errors that name the key; values are validated (lax: "3" is accepted for an int);
    # inf and NaN are refused everywhere.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


def _check_device(value: str | None) -> str | None:
    if value is not None and not _DEVICE.fullmatch(value):
        raise ValueError(f"unknown device {value[:40]!r}: use cpu, cuda, cuda:N or mps")
    return value


class DataConfig(_Section):
    path: str | None = None  # DatasetDict folder, a Parquet/CSV/JSONL file, or a folder of per-split files
    text_column: str = "text"
    label_column: str = "label"
    language_column: str = "language"  # detected with py3langid when the column is absent
    cluster_column: str = "cluster"  # groups for the split; identical titles are grouped when absent
    split_column: str = "split"  # per-row split name in a single file (optional)
    split_fractions: tuple[float, float, float] = (0.85, 0.05, 0.10)  # train/validation/test when no split
    split_seed: int = Field(0, ge=0, le=2**32 - 1)
    drop_empty: bool = False  # drop rows whose title is empty or null instead of failing

    @field_validator("split_fractions")
    @classmethod
    def _fractions(cls, v):
        if any(f < 0 for f in v) or abs(sum(v) - 1.0) > 1e-6:
            raise ValueError(f"split fractions must be >= 0 and sum to 1, got {tuple(v)}")
        return v


class EncoderConfig(_Section):
    model: str = "use-multilingual"  # use-multilingual | minilm | any sentence-transformers id or path
    # or a comma list ("use-multilingual,minilm"): heads and k-NN read the concatenation of their vectors
    weights: list[PositiveFloat] | None = None  # one factor per listed encoder (after L2-normalising); None = 1
    batch_size: int = Field(128, gt=0, le=1 << 20)  # titles per encode call
    device: str | None = None  # None = CUDA when present, else CPU
    precision: Literal["auto", "float32", "float16", "bfloat16"] = "auto"  # auto = fp16 on CUDA, fp32 on CPU
    normalize: bool = True  # L2-normalise vectors before caching
    trust_remote_code: bool = False  # let a model folder / hub repo run code it ships (off: such a model is refused)
    workers: int | None = Field(None, ge=1, le=4096)  # encoding processes (Ray: actors); None = one per core / GPU
    # where stage one runs: local = this machine's processes; ray = a Ray Data actor pool (pip install "prodcat[ray]")
    engine: Literal["local", "ray"] = "local"
    ray_address: str | None = None  # engine ray: None = start Ray on this machine; auto; ray://host:10001; host:6379
    gpus_per_worker: float | None = Field(None, ge=0, le=64)  # engine ray: None = 1 when the cluster has GPUs, else 0
    devices: str | None = None  # local engine, one process per device: "cuda:0,cuda:1", "cpu,cpu" or "all" (CUDA)

    @field_validator("device")
    @classmethod
    def _device(cls, v):
        return _check_device(v)

    @field_validator("ray_address")
    @classmethod
    def _ray_address(cls, v):
        if v is not None and (not v.strip() or any(c.isspace() for c in v) or len(v) > 300):
            raise ValueError(f"ray address {v[:40]!r} is not an address: use auto, ray://host:10001 or host:6379")
        return v

    @field_validator("weights", mode="before")
    @classmethod
    def _weights(cls, v, info):  # a flag gives "1,0.5"
        v = [p for p in v.split(",") if p.strip()] if isinstance(v, str) else v
        n = len(encoder_names(info.data.get("model", "")))
        if isinstance(v, list | tuple) and len(v) != n:
            raise ValueError(f"{len(v)} weights for {n} encoders in encoder.model: give one per encoder, e.g. 1,0.5")
        return v


def encoder_names(encoder: EncoderConfig | str) -> list[str]:
    """The encoders of encoder.model: one name, or each name of a comma list ("use-multilingual,minilm")."""
    model = encoder if isinstance(encoder, str) else encoder.model
    return [model] if "," not in model or os.path.isdir(model) else [m.strip() for m in model.split(",") if m.strip()]


class CacheConfig(_Section):
    dir: str | None = None  # None = $PRODCAT_CACHE or ~/.cache/prodcat
    shard_size: int = Field(65536, gt=0, le=1 << 30)  # unique titles per shard
    dtype: Literal["float16", "float32"] = "float16"


def _f(default, description: str, panel: str, **kw):
    return Field(default, description=description, json_schema_extra={"panel": panel}, **kw)


class TrainConfig(_Section):
    """Stage-two settings; every field is also a flag of `prodcat train` and `prodcat run`."""

    head: str = _f(DEFAULT_HEAD, "linear (v1), v2 (residual) or v3 (contrastive).", "Core")
    epochs: int = _f(30, "Passes over the training split.", "Core", ge=0, le=100_000)
    batch_size: int = _f(256, "Rows per micro-batch.", "Core", gt=0, le=1 << 24)
    lr: float = _f(1e-3, "Peak AdamW learning rate.", "Core", gt=0, le=100)
    seed: int = _f(0, "Seed of initialisation, sampling and dropout.", "Core", ge=0, le=2**32 - 1)
    device: str | None = _f(None, "cpu, cuda, cuda:N (default: CUDA when present).", "Core")
    amp: bool = _f(False, "Mixed precision: bf16 autocast on CPU, bf16/fp16 on CUDA.", "Core")
    grad_accum: int = _f(1, "Micro-batches per optimizer step.", "Schedule", gt=0, le=4096)
    lr_schedule: Literal["none", "cosine", "exponential"] = _f("cosine", "none, cosine or exponential.", "Schedule")
    lr_warmup_steps: int = _f(200, "Optimizer steps of linear warm-up.", "Schedule", ge=0, le=10**12)
    lr_min_scale: float = _f(0.01, "Floor of the schedule, as a fraction of lr.", "Schedule", ge=0, le=1)
    lr_decay: float = _f(0.9999, "Per-step factor of the exponential schedule.", "Schedule", gt=0, le=1)
    weight_decay: float = _f(0.01, "AdamW weight decay.", "Regularisation", ge=0, le=10)
    classifier_dropout: float = _f(0.3, "Dropout inside the residual block.", "Regularisation", ge=0, lt=1)
    label_smoothing: float = _f(0.05, "Cross-entropy label smoothing.", "Regularisation", ge=0, lt=1)
    focal_gamma: float = _f(0.0, "Focal-loss gamma (0 = plain cross-entropy).", "Regularisation", ge=0, le=10)
    focal_alpha: float | None = _f(None, "Scalar weight of the focal loss (default 1).", "Regularisation", gt=0, le=1e6)
    early_stopping_patience: int = _f(
        0, "Stop after N epochs without validation gain (0 = off).", "Regularisation", ge=0
    )
    classifier_hidden: int = _f(512, "Hidden width of the v2/v3 residual block.", "Head", gt=0, le=1 << 16)
    classifier_no_residual: bool = _f(False, "v2/v3: do not add the block's output to its input.", "Head")
    normalize_input: bool = _f(True, "L2-normalise cached vectors before the head.", "Head")
    contrastive_dim: int = _f(128, "v3: projection size for the contrastive loss.", "Head", gt=0, le=1 << 16)
    contrastive_weight: float = _f(0.1, "v3: weight of the SupCon term.", "Head", ge=0, le=1e6)
    contrastive_temp: float = _f(0.07, "v3: SupCon temperature.", "Head", ge=1e-4, le=1e4)
    cross_lang_positives: bool = _f(
        False, "v3: pair rows with cluster mates; positives = same cluster or label across languages.", "Head"
    )
    languages: list[str] | None = _f(None, "Train only on these languages (comma-separated codes).", "Languages")
    lang_sampling_temp: float = _f(
        1.0, "Language sampling temperature (1 = natural, 0 = uniform).", "Languages", ge=0, le=10
    )
    lang_loss_weights: str | dict[str, float] | None = _f(
        None, "Per-language loss weights: auto or en=1,de=2,...", "Languages"
    )
    lang_class_weights: bool = _f(False, "Balance classes within each language in the loss.", "Languages")
    lang_centering: bool = _f(False, "Subtract each language's mean vector (kept with the head).", "Languages")
    lang_remove_directions: int = _f(0, "Also project out the top-k language directions.", "Languages", ge=0, le=4096)
    lang_align: bool = _f(False, "Map each language onto English (ridge on cluster mates).", "Languages")
    lang_min_samples: int = _f(20, "Rows a language needs to get per-language metrics.", "Languages", ge=0, le=10**12)
    lang_top_k: int = _f(10, "Languages shown in the printed tables.", "Languages", ge=0)
    no_lang_metrics: bool = _f(False, "Skip per-language metrics.", "Languages")
    save_every: int = _f(0, "Keep a checkpoint every N epochs (0 = only best and last).", "Checkpoints", ge=0)
    keep: int = _f(3, "Epoch checkpoints of --save-every kept, newest first (0 = all).", "Checkpoints", ge=0)
    init_from: str | None = _f(None, "Start from this run folder's best head (fine-tune).", "Checkpoints")
    teacher: str | None = _f(None, "Run folder whose logits regularise this run (KL).", "Checkpoints")
    kl_weight: float = _f(0.0, "Weight of the KL term towards --teacher.", "Checkpoints", ge=0, le=1e6)
    kl_temperature: float = _f(1.0, "Softmax temperature of the KL term.", "Checkpoints", ge=1e-3, le=1e3)

    @field_validator("head", mode="before")
    @classmethod
    def _head(cls, v):
        try:
            return canonical_head(v)
        except ProdcatError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("device")
    @classmethod
    def _device(cls, v):
        return _check_device(v)

    @field_validator("languages", mode="before")
    @classmethod
    def _languages(cls, v):
        if v is None:
            return None
        parts = v.split(",") if isinstance(v, str) else list(v) if isinstance(v, list | tuple) else None
        if parts is None:
            raise ValueError(f"train.languages must be codes such as de,fr, got {type(v).__name__}")
        codes = [_language_code(p, "train.languages") for p in parts if str(p).strip()]
        if not codes:
            raise ValueError("train.languages is empty: give at least one language code, e.g. de,fr")
        return codes

    @field_validator("lang_loss_weights", mode="before")
    @classmethod
    def _lang_loss_weights(cls, v):
        try:
            return language_weights(v, "train.lang_loss_weights")
        except OverflowError:  # an integer too large for a float
            raise ValueError("train.lang_loss_weights: a weight is too large") from None


class KnnConfig(_Section):
    # None: chosen on the validation split by macro-F1 (k in 5..100, T in 0.02..0.2); without a validation
    # split k=20, T=0.07. A value set here is kept and only the other is searched.
    k: int | None = Field(None, gt=0, le=10_000)  # neighbours that vote
    temperature: float | None = Field(None, gt=0, le=1e6)  # softmax vote exp(cos/T) of each neighbour
    index: Literal["flat", "ivf", "hnsw"] = "flat"
    weighting: Literal["softmax", "distance", "uniform"] = "softmax"  # exp(cos/T) | max(cos, 0) | 1
    nlist: int = Field(1024, gt=0, le=1 << 24)  # IVF cells
    nprobe: int = Field(16, gt=0, le=1 << 24)
    hnsw_m: int = Field(32, gt=0, le=1024)
    ef_search: int = Field(128, gt=0, le=1 << 24)


TUNE_HEADS = (*HEADS, "knn")


def _as_list(v, key: str) -> list:
    if not isinstance(v, list | tuple):
        raise ValueError(f"{key} must be a list or a comma-separated string, got {type(v).__name__}")
    return list(v)


class TuneConfig(_Section):
    """`prodcat tune`: which heads are searched, how many trials each, and optional narrower search spaces:
    `space: {v2: {lr: {low: 1e-4, high: 1e-3}, classifier_dropout: [0.1, 0.3], epochs: 30}}` (a range, a list of
    choices, or one fixed value per setting; the built-in spaces are in prodcat_pipeline/search_space.py)."""

    heads: list[str] = ["linear", "v2", "knn"]
    trials: int = Field(20, gt=0, le=100_000)  # per head (the k-NN evaluates its whole k x temperature grid)
    parallel: int = Field(8, gt=0, le=256)  # linear/v2 trials trained together in one batched pass
    pruning: bool = True  # stop trials whose validation score trails the median at the same epoch
    ensemble: bool = False  # also average the best heads and the k-NN (weights chosen on validation)
    space: dict[str, dict] = {}

    @field_validator("heads", mode="before")
    @classmethod
    def _tune_heads(cls, v):
        parts = [p for p in v.split(",") if p.strip()] if isinstance(v, str) else _as_list(v, "tune.heads")
        out = []
        for p in parts:
            key = str(p).strip().lower()
            out.append("knn" if key in ("knn", "k-nn") else TrainConfig._head(key))
        if not out:
            raise ValueError("tune.heads is empty: give at least one of linear, v2, v3, knn")
        return list(dict.fromkeys(out))

    @field_validator("space", mode="before")
    @classmethod
    def _space(cls, v):
        from .search_space import validate_space

        return validate_space(v or {}, TrainConfig, canonical_head)


class PipelineConfig(_Section):
    data: DataConfig = DataConfig()
    encoder: EncoderConfig = EncoderConfig()
    cache: CacheConfig = CacheConfig()
    train: TrainConfig = TrainConfig()
    knn: KnnConfig = KnnConfig()
    tune: TuneConfig = TuneConfig()
    heads: list[str] = ["linear", "v2", "v3"]  # heads `prodcat run` trains
    head_overrides: dict[str, dict] = {}  # per-head train settings, e.g. {linear: {lr: 0.01}}
    run_knn: bool = True
    run_logreg: bool = True  # `prodcat run` also fits scikit-learn LogisticRegression on the cache (a baseline row)
    out: str = "runs/pipeline"  # where `prodcat run` writes one folder per head
    # how `train` was assembled: pipeline.yaml's train section and the flags, kept apart so that
    # for_head() can put the per-head defaults between them
    _layers: dict = PrivateAttr(default_factory=lambda: {"yaml": {}, "flags": {}})

    @field_validator("heads", mode="before")
    @classmethod
    def _heads(cls, v):
        parts = [p for p in v.split(",") if p.strip()] if isinstance(v, str) else _as_list(v, "heads")
        return [TrainConfig._head(h) for h in parts]

    @field_validator("head_overrides", mode="before")
    @classmethod
    def _head_overrides(cls, v):
        out: dict[str, dict] = {}
        if not isinstance(v, dict | None):
            raise ValueError("head_overrides must map heads to train settings, e.g. {linear: {lr: 0.01}}")
        for key, values in (v or {}).items():
            head = TrainConfig._head(key)
            if not isinstance(values, dict):
                raise ValueError(f"head_overrides.{head} must be a mapping of train settings")
            if "head" in values:
                raise ValueError(f"head_overrides.{head} cannot set 'head'")
            try:
                TrainConfig.model_validate(values)
            except ValidationError as exc:
                raise ValueError(_describe(exc, f"head_overrides.{head}.")) from None
            out.setdefault(head, {}).update(values)
        return out

    @classmethod
    def from_resolved(cls, doc: dict) -> PipelineConfig:
        """A configuration saved after resolution (config.yaml, a checkpoint's "config"): validated again,
        its train section kept exactly as it was (it already holds the head's defaults)."""
        try:
            config = cls.model_validate(doc)
        except ValidationError as exc:
            raise ProdcatError(f"stored config: {_describe(exc)}") from None
        config._layers = {"yaml": {}, "flags": config.train.model_dump(exclude={"head"})}
        return config

    def for_head(self, head: str | None = None) -> PipelineConfig:
        """This configuration with `train` resolved for `head` (default: train.head): the shared train settings
        of pipeline.yaml < the head's defaults < head_overrides[head] < flags and edits made in Python."""
        head = canonical_head(head or self.train.head)
        layers = self._layers
        explicit = {**layers["flags"], **self._train_edits()}
        train = _resolve_train(layers["yaml"], head, self.head_overrides, explicit)
        out = self.model_copy(update={"train": train}, deep=True)
        out._layers = {"yaml": dict(layers["yaml"]), "flags": dict(layers["flags"])}
        return out

    def shadowed_settings(self, head: str | None = None) -> list[str]:
        """pipeline.yaml train settings that the head's own defaults replace (the CLI prints them as notes)."""
        head = canonical_head(head or self.train.head)
        explicit = {**self._layers["flags"], **self.head_overrides.get(head, {})}
        return [
            f"pipeline.yaml sets train.{key}={value}, but the {head} head's default {key}={default} takes "
            f"precedence; set head_overrides.{head}.{key} to change it"
            for key, value in self._layers["yaml"].items()
            if (default := HEAD_DEFAULTS[head].get(key)) is not None and default != value and key not in explicit
        ]

    def _train_edits(self) -> dict:
        """Train fields set in Python (constructor or assignment) that differ from what the layers give."""
        baseline = _resolve_train(self._layers["yaml"], self.train.head, self.head_overrides, self._layers["flags"])
        return {
            k: getattr(self.train, k)
            for k in self.train.model_fields_set
            if k != "head" and getattr(self.train, k) != getattr(baseline, k)
        }


def _resolve_train(yaml_train: dict, head: str, head_overrides: dict, explicit: dict) -> TrainConfig:
    merged = {**yaml_train, **HEAD_DEFAULTS[head], **head_overrides.get(head, {}), **explicit, "head": head}
    try:
        return TrainConfig.model_validate(merged)
    except ValidationError as exc:
        raise ProdcatError(f"config: {_describe(exc, 'train.')}") from None


def _describe(err: ValidationError, prefix: str = "") -> str:
    first = err.errors()[0]
    key = prefix + ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        return f"unknown key '{key}'; check its spelling against pipeline.yaml's documented keys"
    msg = first["msg"].removeprefix("Value error, ")
    if msg.startswith(("unknown key", "key '")):  # already names its key (head_overrides.<head>.<key>)
        return msg
    return f"key '{key}': {msg} (got {first.get('input')!r})"


def load_config(source: str | os.PathLike | dict | None = None, overrides: dict | None = None) -> PipelineConfig:
    """The one way a configuration is built: a `pipeline.yaml` (or the same document as a dict), then
    `overrides` such as {"train.lr": 0.1, "data.path": "data/lspc_sample"} (None values are skipped),
    validated once, with `train` resolved for the chosen head (see PipelineConfig.for_head).

    Example:
        >>> cfg = load_config("pipeline.yaml", {"train.head": "linear"})
        >>> cfg.train.lr  # the linear head's default, unless pipeline.yaml's head_overrides say otherwise
    """
    import copy

    from .config_yaml import apply_overrides, read_yaml

    if isinstance(source, dict):
        raw, source = copy.deepcopy(source), "config"
    else:
        raw = read_yaml(source) if source is not None else {}
        source = str(source) if source is not None else "config"
    flags = apply_overrides(raw, overrides or {}, source)
    yaml_train = raw.pop("train", None) or {}
    if not isinstance(yaml_train, dict):
        raise ProdcatError(f"{source}: key 'train' must be a mapping of train settings")
    for section, model, prefix in ((yaml_train, TrainConfig, "train."), (raw, PipelineConfig, "")):
        try:  # the train section alone first, so a typo there is reported as pipeline.yaml's train.<key>
            config = model.model_validate(section)
        except ValidationError as exc:
            raise ProdcatError(f"{source}: {_describe(exc, prefix)}") from None
    config._layers = {"yaml": yaml_train, "flags": flags}
    return config.for_head(flags.get("head") or yaml_train.get("head") or DEFAULT_HEAD)
