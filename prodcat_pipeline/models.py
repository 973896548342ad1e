"""A run folder as a model that gives class probabilities for cached or freshly encoded vectors: a trained
head (best.pt), a k-NN (knn.json) or an ensemble of such runs (ensemble.json), or an exported model folder
(prodcat_model.json + safetensors, see export.py) holding any of them. Prediction, evaluation, ensembles and
tuning all go through `open_run`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import ProdcatError
from .reader import CachedDataset

ENSEMBLE_FORMAT = "prodcat-ensemble/1"
MODEL_FILE = "prodcat_model.json"  # an exported model folder (prodcat export)
MODEL_FORMAT = "prodcat-model/1"
WEIGHTS = "model.safetensors"
HEAD_KEYS = ("head", "head_args", "dim", "config", "cache_key", "encoder", "label_names", "languages")


def run_config(ckpt: dict):
    """The configuration a checkpoint was trained with, validated again (a tampered one is refused)."""
    from .config import PipelineConfig

    if not isinstance(ckpt.get("config"), dict):
        raise ProdcatError("the checkpoint holds no configuration: it was not written by `prodcat train`")
    return PipelineConfig.from_resolved(ckpt["config"])


class HeadModel:
    """A trained head (its best checkpoint, or an exported model's weights and description)."""

    kind = "head"

    def __init__(self, path: Path, cached: CachedDataset | None = None, device: str = "cpu", ckpt: dict | None = None):
        from .checkpoint import head_from_checkpoint, load_checkpoint

        self.path = path
        self.ckpt = ckpt if ckpt is not None else load_checkpoint(path, cached)
        self.config = run_config(self.ckpt)
        self.label_names = list(self.ckpt["label_names"])
        self.cache_key, self.encoder = self.ckpt["cache_key"], self.ckpt["encoder"]
        self.languages = list(self.ckpt["languages"])
        self.head = head_from_checkpoint(self.ckpt, device, source=path if path.is_file() else path / "best.pt")
        self.device = device
        self.name = self.ckpt["head"]

    @property
    def needs_languages(self) -> bool:
        return bool(self.head.transform.needs_languages)

    def proba(self, X: np.ndarray, languages=None) -> np.ndarray:
        """Class probabilities, computed as training evaluated them (same autocast dtype)."""
        from .inference import autocast_dtype, predict_logits, softmax

        lang_ids = None
        if self.needs_languages:
            if languages is None:
                raise ProdcatError(f"the head at {self.path} needs each title's language")
            index = {c: i for i, c in enumerate(self.languages)}
            lang_ids = np.array([index.get(str(c), -1) for c in languages], dtype=np.int64)
        amp = autocast_dtype(self.config.train, self.device)
        return softmax(predict_logits(self.head, X, lang_ids, self.device, amp_dtype=amp))


class KnnModel:
    """A k-NN run: the index is rebuilt from its cache's train split (the cache must be present), or from the
    training vectors an exported model holds (`train_set` = (vectors, label ids))."""

    kind = "knn"
    needs_languages = False
    name = "knn"
    languages: list[str] = []

    def __init__(self, path: Path, cached: CachedDataset | None = None, doc_path: Path | None = None,
                 train_set: tuple | None = None):  # fmt: skip
        from .config import PipelineConfig
        from .knn import KNN_FILE, KnnClassifier, read_knn_document, refit_knn

        self.path = path
        doc, settings = read_knn_document(doc_path or path / KNN_FILE)  # checked before any cache is opened
        if not isinstance(doc.get("config"), dict):
            raise ProdcatError(f"{path / KNN_FILE} holds no configuration; run `prodcat knn-eval` again")
        self.doc = doc
        self.config = PipelineConfig.from_resolved(doc["config"])
        self.cache_key, self.encoder = doc["cache_key"], doc["encoder"]
        self.label_names = list(doc["label_names"])
        self.cached, self.train_set = cached, train_set
        if train_set is not None:
            X, y = train_set
            self.clf = KnnClassifier.from_config(settings).fit(X, y, n_classes=len(self.label_names))
            return
        if cached is None:
            from .cache import TRAINING_COLUMNS
            from .reader import load_cache

            cached = load_cache(self.config, columns=TRAINING_COLUMNS)
        self.cached = cached
        self.clf = refit_knn(path / KNN_FILE, doc, settings, cached)

    def proba(self, X: np.ndarray, languages=None) -> np.ndarray:
        return self.clf.predict_proba(X)


class EnsembleModel:
    """A weighted average of member runs' probabilities (members kept inside the folder, weights chosen on
    validation by `prodcat ensemble` or `prodcat tune --ensemble`)."""

    kind = "ensemble"
    name = "ensemble"

    def __init__(self, path: Path, cached: CachedDataset | None = None, device: str = "cpu"):
        spec = _read_json(path / "ensemble.json", "ensemble")
        if spec.get("format") != ENSEMBLE_FORMAT or not spec.get("members"):
            raise ProdcatError(f"{path / 'ensemble.json'} is not a prodcat ensemble description")
        self.path = path
        self.members, weights = [], []
        for m in spec["members"]:
            member_path = (path / str(m.get("path", ""))).resolve()
            if path.resolve() not in member_path.parents:
                raise ProdcatError(
                    f"{path / 'ensemble.json'}: member path {m.get('path')!r} leaves the ensemble folder"
                )
            self.members.append(open_run(member_path, cached=cached, device=device))
            weights.append(float(m.get("weight", 0.0)))
        self.weights = np.asarray(weights, dtype=np.float64)
        if not np.isfinite(self.weights).all() or (self.weights < 0).any() or self.weights.sum() <= 0:
            raise ProdcatError(f"{path / 'ensemble.json'}: weights must be finite, >= 0 and not all 0")
        first = self.members[0]
        self.config, self.cache_key, self.encoder = first.config, first.cache_key, first.encoder
        self.label_names = first.label_names
        self.languages = next((m.languages for m in self.members if m.needs_languages), [])
        check_same_space(self.members)

    @property
    def needs_languages(self) -> bool:
        return any(m.needs_languages for m in self.members)

    def proba(self, X: np.ndarray, languages=None) -> np.ndarray:
        w = self.weights / self.weights.sum()
        return sum(wi * m.proba(X, languages) for wi, m in zip(w, self.members, strict=True) if wi > 0)


def open_run(run: str | Path, *, cached: CachedDataset | None = None, device: str = "cpu"):
    """The model a run folder (head, k-NN or ensemble) or an exported model folder holds, ready to give
    probabilities."""
    path = Path(run)
    if path.is_file():  # a checkpoint file
        return HeadModel(path, cached, device)
    if (path / MODEL_FILE).exists():
        return load_exported(path, device)
    if (path / "ensemble.json").exists():
        return EnsembleModel(path, cached, device)
    if (path / "knn.json").exists():
        return KnnModel(path, cached)
    if (path / "best.pt").exists():
        return HeadModel(path, cached, device)
    if not path.exists():
        raise ProdcatError(f"run folder not found: {path}")
    raise ProdcatError(
        f"{path} holds no model: expected best.pt (a head), knn.json (a k-NN), ensemble.json or prodcat_model.json; "
        "pass a folder written by `prodcat train`, `knn-eval`, `tune`, `ensemble` or `export`"
    )


def check_same_space(models: list) -> None:
    """Members of one ensemble must read the same vectors and predict the same labels."""
    first = models[0]
    for m in models[1:]:
        if m.label_names != first.label_names:
            raise ProdcatError(f"{m.path} predicts other labels than {first.path}; ensemble runs of one dataset")
        if m.cache_key != first.cache_key:
            raise ProdcatError(
                f"{m.path} was trained on encoder '{m.encoder.get('name')}' and {first.path} on "
                f"'{first.encoder.get('name')}': ensemble members must share the encoder (--model)"
            )


def _read_json(path: Path, what: str) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProdcatError(f"no {what} description at {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProdcatError(f"{path} is not valid JSON ({exc}); the {what} folder is damaged") from None
    if not isinstance(doc, dict):
        raise ProdcatError(f"{path} must hold a JSON object")
    return doc


# ---------------------------------------------------------------- exported model folders (prodcat export)


def load_exported(path: str | Path, device: str = "cpu"):
    """The model an exported folder holds (HeadModel, KnnModel or EnsembleModel), checked on the way."""
    path = Path(path)
    doc = read_model_document(path)
    if doc["kind"] == "ensemble":
        return EnsembleModel(path, device=device)
    tensors = _read_weights(path / WEIGHTS)
    if doc["kind"] == "knn":
        if set(tensors) != {"vectors", "labels"}:
            raise ProdcatError(f"{path / WEIGHTS} does not hold a k-NN's vectors and labels; export the run again")
        X, y = tensors["vectors"].numpy(), tensors["labels"].numpy()
        if X.ndim != 2 or y.shape != (len(X),) or (len(y) and not 0 <= y.min() <= y.max() < len(doc["label_names"])):
            raise ProdcatError(f"{path / WEIGHTS}: vectors and labels do not match; export the run again")
        return KnnModel(path, doc_path=path / "knn.json", train_set=(X.astype(np.float32), y))
    from .checkpoint import CHECKPOINT_FORMAT

    ckpt = {"format": CHECKPOINT_FORMAT, **{k: doc[k] for k in HEAD_KEYS}, "head_state": tensors}
    ckpt["command"] = doc.get("command")
    return HeadModel(path, device=device, ckpt=ckpt)


def read_model_document(path: Path) -> dict:
    """prodcat_model.json, checked: the right format and kind, every key its kind needs, of the right type."""
    file = path / MODEL_FILE
    fix = "export the run again with `prodcat export`"
    doc = _read_json(file, "exported model")
    if doc.get("format") != MODEL_FORMAT:
        raise ProdcatError(f"{file} is not a prodcat model description (format {MODEL_FORMAT}); {fix}")
    kind = doc.get("kind")
    if kind not in ("head", "knn", "ensemble"):
        raise ProdcatError(f"{file}: unknown kind {kind!r} (head, knn or ensemble); {fix}")
    types = {"label_names": list, "languages": list, "encoder": dict, "config": dict, "cache_key": str}
    if kind == "head":
        types |= {"head": str, "head_args": dict, "dim": int}
    wrong = [k for k, t in types.items() if not isinstance(doc.get(k), t)]
    if wrong:
        raise ProdcatError(f"{file} lacks or has a malformed {', '.join(wrong)}; {fix}")
    return doc


def _read_weights(file: Path) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(file))
    except FileNotFoundError:
        raise ProdcatError(f"{file} is missing; export the run again") from None
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ProdcatError(
            f"cannot read {file}: {str(exc).splitlines()[0][:200]} (damaged or not safetensors)"
        ) from None
