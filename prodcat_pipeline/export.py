"""`prodcat export`: a run as a portable model folder that loads without pickle and without the cache.

    <model>/
        prodcat_model.json   format, kind, label names, languages, encoder (name, fingerprint), the resolved
                             configuration, the command that trained it
        model.safetensors    a head's weights, or a k-NN's training vectors and label ids
        knn.json             (k-NN) k, temperature, index settings
        ensemble.json        (ensemble) member weights; members/<i>/ each a model folder of its own
        metrics.json         the run's metrics (validation/test, per class, per language)
        README.md            the model card

Loading reads JSON and safetensors only: nothing in a model folder can run code.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import ProdcatError
from .models import MODEL_FILE, MODEL_FORMAT, WEIGHTS


def export_model(run: str | Path, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write the model of `run` (a head, k-NN or ensemble run folder, or an exported model) to `out`.

    Example:
        >>> export_model("runs/sample/v2", "models/sample-v2")
        >>> Classifier.from_pretrained("models/sample-v2").predict(["Damen Laufschuhe schwarz"])
    """
    from .atomic import atomic_folder
    from .model_card import model_card
    from .models import open_run

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not overwrite:
            raise ProdcatError(f"{out} already exists: pass --overwrite to replace it, or choose another --out")
        if out.is_dir() and not (out / MODEL_FILE).exists():
            raise ProdcatError(f"{out} is not a prodcat model folder: will not replace it; choose another --out")
    model = open_run(run)
    metrics = _read_metrics(Path(run))
    with atomic_folder(out) as tmp:
        doc = _write_model(model, tmp, metrics)
        (tmp / "README.md").write_text(model_card(doc, metrics, source=str(run)), encoding="utf-8")
    return out


def _write_model(model, folder: Path, metrics: dict | None) -> dict:
    from safetensors.torch import save_file

    from .atomic import write_atomic, write_json_atomic

    config = model.config.model_copy(deep=True)
    config.cache.dir = None  # the exporter's cache path means nothing elsewhere: look in the default one
    doc = {"format": MODEL_FORMAT, "kind": model.kind, "name": model.name, "label_names": list(model.label_names),
           "languages": list(model.languages), "encoder": model.encoder, "cache_key": model.cache_key,
           "config": config.model_dump(mode="json")}  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    if model.kind == "head":
        ckpt = model.ckpt
        doc |= {k: ckpt[k] for k in ("head", "head_args", "dim")} | {"command": ckpt.get("command")}
        state = {k: v.detach().cpu().contiguous() for k, v in model.head.state_dict().items()}
        write_atomic(folder / WEIGHTS, lambda p: save_file(state, str(p), metadata={"format": MODEL_FORMAT}))
    elif model.kind == "knn":
        import torch

        X, y = model.train_set if model.train_set is not None else model.cached.split_arrays("train", np.float16)
        tensors = {"vectors": torch.from_numpy(np.ascontiguousarray(X, dtype=np.float16)),
                   "labels": torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64))}  # fmt: skip
        write_atomic(folder / WEIGHTS, lambda p: save_file(tensors, str(p), metadata={"format": MODEL_FORMAT}))
        write_json_atomic(folder / "knn.json", model.doc)
        doc["command"] = (metrics or {}).get("command")
    else:
        members = []
        for i, (member, weight) in enumerate(zip(model.members, model.weights, strict=True)):
            _write_model(member, folder / "members" / str(i), None)
            members.append({"name": member.name, "path": f"members/{i}", "weight": float(weight)})
        write_json_atomic(folder / "ensemble.json", {"format": "prodcat-ensemble/1", "members": members})
        doc |= {"members": members, "command": (metrics or {}).get("command")}
    if metrics is not None:
        write_json_atomic(folder / "metrics.json", metrics)
    write_json_atomic(folder / MODEL_FILE, doc)
    return doc


def _read_metrics(run: Path) -> dict | None:
    path = (run.parent if run.is_file() else run) / "metrics.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None
