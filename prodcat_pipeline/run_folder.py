"""A head trained outside `train` (a batched tuning trial) written as a normal run folder: best.pt with the
same metadata `train` stores, metrics.json from the same evaluation, config.yaml."""

from __future__ import annotations

from pathlib import Path

from .config import PipelineConfig
from .reader import CachedDataset


def write_head_run(out: Path, config: PipelineConfig, cached: CachedDataset, result, data=None) -> dict:
    """`result`: a multihead.ManyResult (its config, head_args, best head_state, history). Evaluated as `train`
    evaluates (train.device, under train.amp's autocast). `data`: the training data view of `cached` when
    already built (tune builds one per head); else a CPU view is built. Returns metrics."""
    from .atomic import atomic_folder, write_atomic, write_json_atomic
    from .checkpoint import checkpoint_meta, save_checkpoint
    from .config_yaml import to_yaml
    from .encoders import resolve_device
    from .errors import ProdcatError
    from .heads import build_head
    from .inference import evaluate_head
    from .trainer import autocast_dtype, run_summary
    from .training_data import build_training_data

    tc = config.train
    if data is None:
        data = build_training_data(cached, tc, "cpu")  # only its evaluation splits are read
    elif data.cached is not cached:
        raise ProdcatError("write_head_run: `data` was built from another cache; leave it out or pass its own")
    device = resolve_device(tc.device)
    head = build_head(tc.head, cached.dim, len(cached.label_names), result.head_args)
    head.load_state_dict(result.head_state)
    # best.pt holds the loop state as `train` saves it: at the best epoch (no bad epochs yet, history so far)
    best = {"epoch": result.best_epoch, "best_score": result.best_score, "best_epoch": result.best_epoch,
            "bad_epochs": 0, "history": result.history[: result.best_epoch]}  # fmt: skip
    meta = checkpoint_meta(config, cached, result.head_args, data.languages)
    ckpt = {**meta, "tag": "best", "head_state": head.state_dict(), "state": best}
    head.to(device)
    metrics = {
        split: evaluate_head(head, data.eval_set(split), cached.label_names, device, amp_dtype=autocast_dtype(tc, device),
                             lang_metrics=not tc.no_lang_metrics, lang_min_samples=tc.lang_min_samples)[0]
        for split in data.eval_splits()
    }  # fmt: skip
    state = {"epoch": len(result.history), "best_epoch": result.best_epoch, "history": result.history}
    metrics |= run_summary(tc, cached, state) | {"trained": "batched tuning trial (multihead.train_many)"}
    with atomic_folder(out) as tmp:
        save_checkpoint(tmp / "best.pt", ckpt)
        write_json_atomic(tmp / "metrics.json", metrics)
        write_atomic(tmp / "config.yaml", lambda p: p.write_text(to_yaml(config), encoding="utf-8"))
    return metrics
