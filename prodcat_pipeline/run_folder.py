"""A head trained outside `train` (a batched tuning trial) written as a normal run folder: best.pt with the
same metadata `train` stores, metrics.json from the same evaluation, config.yaml."""

from __future__ import annotations

from pathlib import Path

from .config import PipelineConfig
from .reader import CachedDataset


def write_head_run(out: Path, config: PipelineConfig, cached: CachedDataset, result) -> dict:
    """`result`: a multihead.ManyResult (its config, head_args, best head_state, history). Returns metrics."""
    from .atomic import atomic_folder, write_atomic, write_json_atomic
    from .checkpoint import CHECKPOINT_FORMAT, save_checkpoint
    from .config_yaml import to_yaml
    from .heads import build_head
    from .inference import evaluate_head
    from .training_data import build_training_data

    tc = config.train
    data = build_training_data(cached, tc, "cpu")
    head = build_head(tc.head, cached.dim, len(cached.label_names), result.head_args)
    head.load_state_dict(result.head_state)
    state = {"epoch": len(result.history), "best_score": result.best_score, "best_epoch": result.best_epoch,
             "bad_epochs": 0, "history": result.history}  # fmt: skip
    ckpt = {"format": CHECKPOINT_FORMAT, "head": tc.head, "head_args": result.head_args, "dim": cached.dim,
            "config": config.model_dump(mode="json"), "cache_key": cached.key, "encoder": cached.encoder,
            "label_names": cached.label_names, "languages": data.languages, "tag": "best",
            "head_state": head.state_dict(), "state": state}  # fmt: skip
    metrics = {
        split: evaluate_head(head, data.eval_set(split), cached.label_names, "cpu",
                             lang_metrics=not tc.no_lang_metrics, lang_min_samples=tc.lang_min_samples)[0]
        for split in data.eval_splits()
    }  # fmt: skip
    metrics |= {"head": tc.head, "encoder": cached.encoder.get("name"), "cache_key": cached.key,
                "dataset": cached.dataset.get("source"), "epochs_run": len(result.history),
                "best_epoch": result.best_epoch, "train_seconds": result.seconds, "history": result.history,
                "label_names": cached.label_names, "config": tc.model_dump(mode="json"),
                "trained": "batched tuning trial (multihead.train_many)"}  # fmt: skip
    with atomic_folder(out) as tmp:
        save_checkpoint(tmp / "best.pt", ckpt)
        write_json_atomic(tmp / "metrics.json", metrics)
        write_atomic(tmp / "config.yaml", lambda p: p.write_text(to_yaml(config), encoding="utf-8"))
    return metrics
