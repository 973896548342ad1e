"""Options shared by several commands, declared once, each with the configuration key it sets."""

from __future__ import annotations

import inspect
import os
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from ..errors import ProdcatError


@dataclass(frozen=True)
class Opt:
    """One command-line option: its parameter name, the config key it overrides (None: used by the command
    itself), its type and its typer.Option."""

    name: str
    key: str | None
    type: object
    option: object

    def parameter(self) -> inspect.Parameter:
        return inspect.Parameter(
            self.name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[self.type, self.option]
        )


def _opt(name, key, type_, *decls, help: str, panel: str):  # noqa: A002 - typer's own word
    return Opt(name, key, type_ | None, typer.Option(*decls, help=help, rich_help_panel=panel))


CONFIG = [
    _opt("config", None, Path, "--config", "-c", help="pipeline.yaml to read (default: ./pipeline.yaml if present).",
         panel="Config"),
    Opt("no_config", None, bool, typer.Option("--no-config", help="Ignore ./pipeline.yaml.", rich_help_panel="Config")),
    Opt("verbose", None, bool, typer.Option("--verbose", "-v", help="Log each step.", rich_help_panel="Config")),
]  # fmt: skip
DATA = [
    _opt("data", "data.path", str, "--data", "-d", panel="Data",
         help="save_to_disk DatasetDict folder, Parquet/CSV/JSONL file, or folder of split files."),
    _opt("text_column", "data.text_column", str, "--text-column", help="Title column (default text).", panel="Data"),
    _opt("label_column", "data.label_column", str, "--label-column", help="Label column (default label).",
         panel="Data"),
    _opt("language_column", "data.language_column", str, "--language-column", panel="Data",
         help="Language column (default language); detected when absent."),
    _opt("cluster_column", "data.cluster_column", str, "--cluster-column", panel="Data",
         help="Product-cluster column for grouped splits (default cluster)."),
    _opt("drop_empty", "data.drop_empty", bool, "--drop-empty/--no-drop-empty", panel="Data",
         help="Drop rows with empty titles instead of failing."),
]  # fmt: skip
ENCODER = [
    _opt("model", "encoder.model", str, "--model", "-m", panel="Encoder and cache",
         help="use-multilingual (default), minilm, or any sentence-transformers id or path; a comma list "
              "(use-multilingual,minilm) concatenates their vectors."),
    _opt("encoder_weights", "encoder.weights", str, "--encoder-weights", panel="Encoder and cache",
         help="One factor per encoder of a --model list, e.g. 1,0.5 (default 1 each)."),
    _opt("cache_dir", "cache.dir", str, "--cache-dir", panel="Encoder and cache",
         help="Cache root (default $PRODCAT_CACHE or ~/.cache/prodcat)."),
    _opt("trust_remote_code", "encoder.trust_remote_code", bool, "--trust-remote-code/--no-trust-remote-code",
         panel="Encoder and cache", help="Let a model folder or hub repo run its own code (default: refused)."),
]  # fmt: skip
EMBED = [
    _opt("batch_size", "encoder.batch_size", int, "--batch-size", help="Titles per encode batch (default 128).",
         panel="Encoder and cache"),
    _opt("shard_size", "cache.shard_size", int, "--shard-size", help="Distinct titles per shard (default 65536).",
         panel="Encoder and cache"),
    _opt("dtype", "cache.dtype", str, "--dtype", help="Stored vectors: float16 (default) or float32.",
         panel="Encoder and cache"),
    _opt("device", "encoder.device", str, "--device", help="cpu, cuda, cuda:N (default: CUDA when present).",
         panel="Encoder and cache"),
    _opt("workers", "encoder.workers", int, "--workers", panel="Encoder and cache",
         help="Encoding processes, or Ray actors (default: one per core for use-multilingual; Ray: per CPU/GPU)."),
    _opt("devices", "encoder.devices", str, "--devices", panel="Encoder and cache",
         help="Several devices, one process each owning whole shards: cuda:0,cuda:1 or all (every CUDA device)."),
    _opt("engine", "encoder.engine", str, "--engine", panel="Scale-out",
         help="local (default: this machine) or ray (a Ray Data actor pool; pip install \"prodcat[ray]\")."),
    _opt("address", "encoder.ray_address", str, "--address", panel="Scale-out",
         help="Ray cluster for --engine ray: auto, ray://host:10001 or host:6379 (default: start Ray here)."),
    _opt("gpus_per_worker", "encoder.gpus_per_worker", float, "--gpus-per-worker", panel="Scale-out",
         help="GPUs per Ray actor, e.g. 1 or 0.5 (default: 1 when the cluster has GPUs, else 0)."),
]  # fmt: skip
KNN = [
    _opt("k", "knn.k", int, "--k", help="Neighbours that vote (default: chosen on validation).", panel="k-NN"),
    _opt("temperature", "knn.temperature", float, "--temperature", panel="k-NN",
         help="Softmax vote exp(cos/T) temperature (default: chosen on validation)."),
    _opt("index", "knn.index", str, "--index", help="flat (exact, default), ivf or hnsw.", panel="k-NN"),
    _opt("weighting", "knn.weighting", str, "--weighting", panel="k-NN",
         help="softmax (default: exp(cos/T) votes), distance (max(cos, 0)) or uniform."),
    _opt("nprobe", "knn.nprobe", int, "--nprobe", help="IVF cells searched (default 16).", panel="k-NN"),
    _opt("ef_search", "knn.ef_search", int, "--ef-search", help="HNSW search depth (default 128).", panel="k-NN"),
]  # fmt: skip
OUT = _opt("out", None, str, "--out", "-o", help="Output folder.", panel="Output")
OVERWRITE = Opt("overwrite", None, bool, typer.Option("--overwrite", rich_help_panel="Output",
                help="Replace a run already in the output folder (clears it first)."))  # fmt: skip
RESUME = Opt("resume", None, bool, typer.Option("--resume/--no-resume", rich_help_panel="Output",
             help="Continue the run in --out from its last checkpoint."))  # fmt: skip


def train_fields() -> list[Opt]:
    """One option per TrainConfig field (--field-name; --field_name is accepted too), so flags and config
    never drift. Booleans get a negative form; defaults that depend on the head say so."""
    from ..config import HEAD_DEFAULTS, TrainConfig

    opts = []
    for name, field in TrainConfig.model_fields.items():
        dash = "--" + name.replace("_", "-")
        ann = field.annotation
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        if ann is bool:  # --x/--no-x; a negated name (no_x, a_no_b) gets the positive form as its other half
            positive = name[3:] if name.startswith("no_") else name.replace("_no_", "_") if "_no_" in name else None
            other = "--" + positive.replace("_", "-") if positive else "--no-" + dash[2:]
            decls, py_type = [f"{dash}/{other}"], bool
        elif ann in (int, float, str):
            decls, py_type = [dash], ann
        elif args and args[0] in (int, float):
            decls, py_type = [dash], args[0]
        else:  # Literal choices, str | dict, list[str] (comma-separated)
            decls, py_type = [dash], str
        shown = _default_text(name, field.default, HEAD_DEFAULTS)
        help_text = f"{field.description} {shown}".strip()
        panel = (field.json_schema_extra or {}).get("panel", "Training")
        opts.append(Opt(name, f"train.{name}", py_type | None, typer.Option(*decls, help=help_text,
                                                                            rich_help_panel=panel)))  # fmt: skip
    return opts


def _default_text(name: str, default, head_defaults: dict) -> str:
    """'(default 0.01)', or per head when heads differ: '(default linear 0.03; v2, v3 0.001)'."""
    values = {h: d.get(name, default) for h, d in head_defaults.items()}
    if len(set(map(str, values.values()))) > 1:
        by_value: dict[str, list[str]] = {}
        for head, value in values.items():
            by_value.setdefault(f"{value:g}" if isinstance(value, float) else str(value), []).append(head)
        return "(default " + "; ".join(f"{', '.join(h)} {v}" for v, h in by_value.items()) + ")"
    if default is None or isinstance(default, bool):
        return ""
    return f"(default {default:g})" if isinstance(default, float) else f"(default {default})"


def with_options(*groups: list[Opt]):
    """Decorator: the command takes **kw; its signature (what typer parses) is the given option groups."""

    def wrap(fn):
        opts = [o for group in groups for o in group]
        fn.__signature__ = inspect.Signature([o.parameter() for o in opts])
        fn.prodcat_options = opts
        return fn

    return wrap


def config_overrides(fn, kw: dict) -> dict:
    """{"data.path": ..., "train.lr": ...} from the options a command was called with (None = not given)."""
    return {o.key: kw.get(o.name) for o in fn.prodcat_options if o.key is not None}


def check_target(path: str | os.PathLike, flag: str, *, folder: bool, write: bool = True) -> Path:
    """Refuse, before any work, a `flag` path prodcat could not write: a file where a folder goes (or the other
    way round), a file inside the path, or (with `write`) no write permission where it would be created."""
    p = Path(path)
    if p.is_dir() and not folder:
        raise ProdcatError(f"{flag} {p} is a folder: give a file name such as {p / 'predictions.jsonl'}")
    if p.exists() and not p.is_dir() and folder:
        raise ProdcatError(f"{flag} {p} is a file, not a folder: choose a folder")
    where = p if p.is_dir() else p.parent
    while not where.exists() and where != where.parent:
        where = where.parent
    if where.exists() and not where.is_dir():
        raise ProdcatError(f"{flag} {p}: {where} is a file, not a folder")
    if write and where.exists() and not os.access(where, os.W_OK | os.X_OK):
        raise ProdcatError(f"{flag} {p}: cannot write in {where} (read-only or no permission); choose another path")
    return p


def check_device(value: str | None, flag: str = "--device") -> str | None:
    """A device that is well-formed and present on this machine, else one line naming `flag` (checked before any
    work: a missing GPU found after encoding would waste the encoding)."""
    if value is None:
        return value
    from ..encoders import resolve_device

    try:
        return resolve_device(value)
    except ProdcatError as exc:
        raise ProdcatError(f"{flag}: {exc}") from None
