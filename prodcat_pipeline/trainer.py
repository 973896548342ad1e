"""Stage two, `prodcat train`: fit a head on cached vectors. One loop, read top to bottom.

config -> cache (found, or built once) -> arrays -> head (scratch, --init_from or --resume) -> optimizer
and schedule -> evaluate() -> loop over epochs (sample, step, evaluate, checkpoint) -> final metrics.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .cache import CachedDataset, CacheError, ShardedVectors, load_cache
from .config import PipelineConfig, TrainConfig
from .errors import ProdcatError
from .heads import build_head, canonical_head
from .progress import progress_bar
from .sampling import LanguageSampler, pair_with_cluster_mates, sample_weights

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "prodcat-head/1"
TRAINING_COLUMNS = ["row_id", "split", "label", "language", "cluster", "vec"]  # the row index less text hashes


@dataclass
class TrainResult:
    out_dir: Path
    head: str
    metrics: dict  # the content of metrics.json
    best_epoch: int
    epochs_run: int
    train_seconds: float
    cache_built: bool  # True when this call had to encode the dataset first
    history: list[dict] = field(default_factory=list)


def open_or_build_cache(config: PipelineConfig, show_progress: bool | None = None) -> tuple[CachedDataset, bool]:
    """The cache for config.data + config.encoder; built with `embed` only when it does not exist yet."""
    try:
        return load_cache(config=config, columns=TRAINING_COLUMNS), False
    except CacheError as exc:
        if "run `prodcat embed`" not in str(exc):
            raise  # corrupt or mismatched: never silently rebuilt
    from .embedder import embed

    log.info("no cache for this dataset and encoder yet: encoding it once")
    return embed(config, show_progress=show_progress).cached, True


def train(
    config: PipelineConfig | None = None,
    *,
    out: str | Path | None = None,
    resume: bool = False,
    cached: CachedDataset | None = None,
    show_progress: bool | None = None,
) -> TrainResult:
    """Train `config.train.head` on the cached vectors of `config.data`; write checkpoints and metrics.json.

    Example:
        >>> from prodcat_pipeline import load_config, train
        >>> cfg = load_config(overrides={"data.path": "data/lspc_sample", "train.head": "v2", "train.epochs": 5})
        >>> result = train(cfg, out="runs/v2")
        >>> result.metrics["validation"]["macro_f1"]
    """
    import torch

    from .encoders import resolve_device

    _preload_optimizer_imports()
    config = (config or PipelineConfig()).model_copy(deep=True)
    tc: TrainConfig = config.train
    head_name = canonical_head(tc.head)
    out = Path(out or Path(config.out) / head_name)
    t_start = time.perf_counter()

    # ---------------------------------------------------------------- data: cached vectors, never re-encoded
    cache_built = False
    if cached is None:
        cached, cache_built = open_or_build_cache(config, show_progress)
    label_names = cached.label_names
    n_classes = len(label_names)
    splits = {s: cached.mask(s) for s in ("train", "validation", "test")}
    lang_vocab, lang_ids_all = _language_ids(cached, splits["train"])
    train_mask = splits["train"].copy()
    if tc.languages:
        wanted = [lang_vocab.index(c) for c in tc.languages if c in lang_vocab]
        train_mask &= np.isin(lang_ids_all, wanted)
        if not train_mask.any():
            raise ProdcatError(f"no training rows in languages {tc.languages}; languages present: {lang_vocab}")
    # The cache's shards, memory-mapped in their dtype (float16): nothing is copied or re-encoded before
    # the first step; each batch gathers its rows by vector index and is cast as it is taken.
    X = ShardedVectors(cached.store)
    cache_dtype = np.dtype(cached.store.manifest.get("dtype", "float32"))
    row_vec = cached.rows["vec"].to_numpy().astype(np.int64)
    y_np = cached.rows["label"].to_numpy()[train_mask]
    if len(np.unique(y_np)) < 2:
        raise ProdcatError("the training split needs at least two labels")
    lang_np = lang_ids_all[train_mask]
    device = resolve_device(tc.device)
    if device != "cpu":  # an accelerator gets the training rows as one resident tensor
        X = _ResidentVectors(cached.store.gather(row_vec[train_mask], dtype=cache_dtype), device)
        train_vec = torch.arange(int(train_mask.sum()), device=device)
    else:
        train_vec = torch.from_numpy(row_vec[train_mask])
    y = torch.from_numpy(y_np).to(device)
    lang = torch.from_numpy(lang_np).to(device)
    cluster_np = _dictionary_codes(cached.rows["cluster"])[train_mask]
    cluster = torch.from_numpy(cluster_np).to(device)
    weights = sample_weights(y_np, lang_np, n_classes, tc.lang_loss_weights, lang_vocab, tc.lang_class_weights)
    weights_t = torch.from_numpy(weights).to(device) if weights is not None else None
    lang_all = cached.column("language")
    labels_all = cached.rows["label"].to_numpy()
    eval_masks = {s: m for s, m in splits.items() if s != "train" and m.any()}
    eval_sets: dict = {}  # gathered on first use, so they do not delay the first step

    # ---------------------------------------------------------------- head: from scratch, --init_from or --resume
    head_args = {
        "hidden": tc.classifier_hidden,
        "dropout": tc.classifier_dropout,
        "residual": not tc.classifier_no_residual,
        "contrastive_dim": tc.contrastive_dim,
        "normalize_input": tc.normalize_input,
        "n_centred_languages": len(lang_vocab) if tc.lang_centering else 0,
        "n_removed_directions": tc.lang_remove_directions,
    }
    torch.manual_seed(tc.seed)
    head = build_head(head_name, cached.dim, n_classes, head_args).to(device)
    use_teacher = bool(tc.teacher) and tc.kl_weight > 0
    # the training rows as one float32 array, only for the options that need them all at once
    X_train = None
    if tc.lang_centering or tc.lang_remove_directions or use_teacher:
        X_train = cached.store.gather(row_vec[train_mask])
    if tc.lang_centering or tc.lang_remove_directions:
        from .sampling import language_statistics

        means, directions = language_statistics(X_train, lang_np, len(lang_vocab), tc.lang_remove_directions)
        if tc.lang_centering:
            head.transform.lang_means.copy_(torch.from_numpy(means))
        if tc.lang_remove_directions:
            head.transform.directions.copy_(torch.from_numpy(directions))
    if tc.init_from:
        init = load_checkpoint(tc.init_from, cached)
        _check_compatible(init, head_name, head_args, tc.init_from)
        head.load_state_dict(init["head_state"])
        log.info("initialised the head from %s", tc.init_from)

    # fused AdamW: one kernel over all parameters instead of a Python loop per tensor
    fused = device == "cpu" or device.startswith("cuda")
    optimizer = torch.optim.AdamW(head.parameters(), lr=tc.lr, weight_decay=tc.weight_decay, fused=fused)
    n_train = len(y_np)
    batches_per_epoch = max(1, -(-n_train // tc.batch_size))
    steps_per_epoch = max(1, -(-batches_per_epoch // tc.grad_accum))
    from .schedules import make_scheduler

    scheduler = make_scheduler(
        optimizer,
        schedule=tc.lr_schedule,
        total_steps=steps_per_epoch * max(tc.epochs, 1),
        warmup_steps=tc.lr_warmup_steps,
        min_scale=tc.lr_min_scale,
        decay=tc.lr_decay,
    )
    amp_dtype, scaler = _amp_setup(tc.amp, device)
    teacher_logits = _teacher_logits(tc, cached, X_train, lang_np, device) if use_teacher else None
    del X_train

    state = {"epoch": 0, "best_score": -1.0, "best_epoch": 0, "bad_epochs": 0, "history": []}
    out.mkdir(parents=True, exist_ok=True)
    if resume:
        ckpt = load_checkpoint(out, cached, which="last")
        _check_compatible(ckpt, head_name, head_args, str(out))
        head.load_state_dict(ckpt["head_state"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if scaler is not None and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        state = ckpt["state"]
        if ckpt["config"]["train"]["epochs"] != tc.epochs and tc.lr_schedule != "none":
            log.warning(
                "resuming with epochs=%d instead of %d: the %s schedule is stretched to the new length, so this run "
                "will not match one trained for %d epochs from the start",
                tc.epochs,
                ckpt["config"]["train"]["epochs"],
                tc.lr_schedule,
                tc.epochs,
            )
        torch.set_rng_state(ckpt["rng"]["torch"])
        log.info("resuming %s after epoch %d", out, state["epoch"])

    def evaluate(split: str) -> tuple[dict, np.ndarray]:
        from .metrics import classification_metrics

        if split not in eval_sets:
            m = eval_masks[split]
            eval_sets[split] = (
                (cached.store.gather(row_vec[m], cache_dtype), labels_all[m]),
                lang_ids_all[m],
                lang_all[m],
            )
        (Xe, ye), lang_ids, lang_codes = eval_sets[split]
        pred = predict_logits(head, Xe, lang_ids, device, amp_dtype).argmax(1)
        metrics = classification_metrics(
            ye, pred, label_names, None if tc.no_lang_metrics else lang_codes, lang_min_samples=tc.lang_min_samples
        )
        return metrics, pred

    def save(path: Path, tag: str) -> None:
        ckpt = {
            "format": CHECKPOINT_FORMAT,
            "tag": tag,
            "head": head_name,
            "head_args": head_args,
            "head_state": head.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "state": state,
            "rng": {"torch": torch.get_rng_state()},
            "config": config.model_dump(),
            "cache_key": cached.key,
            "encoder": cached.encoder,
            "label_names": label_names,
            "languages": lang_vocab,
            "dim": cached.dim,
        }
        _save_checkpoint(ckpt, path)

    # ---------------------------------------------------------------- the loop
    sampler = LanguageSampler(lang_np, len(lang_vocab), tc.lang_sampling_temp)
    contrastive = head_name == "v3" and tc.contrastive_weight > 0
    tensors = {
        "X": X,
        "vec": train_vec,
        "y": y,
        "lang": lang,
        "cluster": cluster,
        "weights": weights_t,
        "teacher": teacher_logits,
    }
    first_step_seconds = first_step_at = None
    while state["epoch"] < tc.epochs:
        epoch = state["epoch"] + 1
        # seeding per epoch makes a resumed run draw exactly what the uninterrupted run drew
        torch.manual_seed(tc.seed * 1_000_003 + epoch)
        rng = np.random.default_rng([tc.seed, epoch])
        order_np = sampler.epoch_order(rng)
        if contrastive and tc.cross_lang_positives:  # batches of (row, cluster mate) pairs
            order_np = pair_with_cluster_mates(order_np, cluster_np, y_np, rng)
        order = torch.from_numpy(order_np).to(device)
        head.train()
        t_epoch = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        with progress_bar(batches_per_epoch, f"epoch {epoch}/{tc.epochs}", "batches", show_progress) as advance:
            for b in range(batches_per_epoch):
                idx = order[b * tc.batch_size : (b + 1) * tc.batch_size]
                if first_step_seconds is None:
                    first_step_seconds, first_step_at = time.perf_counter() - t_start, time.time()
                loss = _batch_loss(head, idx, tensors, tc, amp_dtype, contrastive)
                loss_sum += loss.detach()
                loss = loss / tc.grad_accum
                (scaler.scale(loss) if scaler is not None else loss).backward()
                if (b + 1) % tc.grad_accum == 0 or b + 1 == batches_per_epoch:
                    if scaler is not None:
                        scaler.step(optimizer)
                        scaler.update()
                    else:
                        optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                    scheduler.step()
                if isinstance(X, ShardedVectors) and len(X.arrays) > 1:
                    X.consolidate()  # after the first step, so start-up is not slowed by the copy
                advance(1)
        epoch_seconds = time.perf_counter() - t_epoch
        val_metrics = evaluate("validation")[0] if "validation" in eval_masks else {"macro_f1": None}
        score = val_metrics["macro_f1"] if val_metrics["macro_f1"] is not None else -float(loss_sum) / batches_per_epoch
        record = {
            "epoch": epoch,
            "loss": float(loss_sum) / batches_per_epoch,
            "val_macro_f1": val_metrics["macro_f1"],
            "val_micro_f1": val_metrics.get("micro_f1"),
            "lr": scheduler.get_last_lr()[0],
            "seconds": round(epoch_seconds, 3),
        }
        state["history"].append(record)
        state["epoch"] = epoch
        log.info(
            "epoch %d: loss %.4f, val macro-F1 %s, %.2fs",
            epoch,
            record["loss"],
            "n/a" if record["val_macro_f1"] is None else f"{record['val_macro_f1']:.4f}",
            epoch_seconds,
        )
        improved = score > state["best_score"]
        if improved:
            state.update(best_score=score, best_epoch=epoch, bad_epochs=0)
            save(out / "best.pt", "best")
        else:
            state["bad_epochs"] += 1
        if tc.save_every and epoch % tc.save_every == 0:
            save(out / f"epoch_{epoch:03d}.pt", f"epoch {epoch}")
        save(out / "last.pt", "last")
        if tc.early_stopping_patience and state["bad_epochs"] >= tc.early_stopping_patience:
            log.info("early stop: no validation macro-F1 gain for %d epochs", state["bad_epochs"])
            break

    # ---------------------------------------------------------------- final metrics from the best checkpoint
    if (out / "best.pt").exists():
        head.load_state_dict(_load(out / "best.pt")["head_state"])
    else:  # zero epochs: evaluate the initial head
        save(out / "best.pt", "best")
    head.eval()
    metrics = {split: evaluate(split)[0] for split in eval_masks}
    metrics.update(
        head=head_name,
        encoder=cached.encoder.get("name"),
        cache_key=cached.key,
        dataset=cached.dataset.get("source"),
        epochs_run=state["epoch"],
        best_epoch=state["best_epoch"],
        train_seconds=round(sum(h["seconds"] for h in state["history"]), 3),
        first_step_seconds=None if first_step_seconds is None else round(first_step_seconds, 3),
        first_step_at=first_step_at,  # wall-clock time.time() of the first step (benchmarks time the process)
        wall_seconds=round(time.perf_counter() - t_start, 3),
        history=state["history"],
        label_names=label_names,
        config=config.train.model_dump(),
    )
    from .atomic import write_json_atomic

    write_json_atomic(out / "metrics.json", metrics)
    return TrainResult(
        out_dir=out,
        head=head_name,
        metrics=metrics,
        best_epoch=state["best_epoch"],
        epochs_run=state["epoch"],
        train_seconds=metrics["train_seconds"],
        cache_built=cache_built,
        history=state["history"],
    )


def _preload_optimizer_imports() -> None:
    """Building any torch optimizer imports torch._dynamo (~1 s); start that import now, in a thread, so it
    overlaps with loading the cache instead of delaying the first step."""
    import sys
    import threading

    if "torch._dynamo" not in sys.modules:
        threading.Thread(target=__import__, args=("torch._dynamo",), daemon=True).start()


def _batch_loss(head, idx, tensors: dict, tc: TrainConfig, amp_dtype, contrastive: bool):
    """Loss of one batch: rows `idx` of the training tensors (index_select: no per-sample Python)."""
    import torch

    from .losses import classification_loss, cross_language_positives, kl_to_teacher, supcon_loss

    def take(name):
        t = tensors[name]
        return t.index_select(0, idx) if t is not None else None

    xb = tensors["X"].take(take("vec"))
    yb, lb, cb, weights, teacher = (take(k) for k in ("y", "lang", "cluster", "weights", "teacher"))
    device_type = xb.device.type
    with torch.autocast(device_type, dtype=amp_dtype, enabled=amp_dtype is not None):
        logits, z = head(xb, lb)
    loss = classification_loss(
        logits,
        yb,
        label_smoothing=tc.label_smoothing,
        focal_gamma=tc.focal_gamma,
        focal_alpha=tc.focal_alpha,
        weight=weights,
    )
    if contrastive:
        positives = cross_language_positives(yb, lb, cb) if tc.cross_lang_positives else None
        loss = loss + tc.contrastive_weight * supcon_loss(z, yb, tc.contrastive_temp, positives)
    if teacher is not None:
        loss = loss + tc.kl_weight * kl_to_teacher(logits, teacher, tc.kl_temperature)
    return loss


def predict_logits(head, X: np.ndarray, lang_ids: np.ndarray | None, device: str, amp_dtype=None, batch: int = 8192):
    """Logits of `head` for vectors X (float32 numpy), in batches, without gradients."""
    import torch

    head.eval()
    out = np.empty((len(X), head.classifier.out_features), dtype=np.float32)
    with torch.inference_mode():
        for s in range(0, len(X), batch):
            xb = torch.from_numpy(np.ascontiguousarray(X[s : s + batch])).to(device)
            lb = torch.from_numpy(np.asarray(lang_ids[s : s + batch])).to(device) if lang_ids is not None else None
            with torch.autocast(xb.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits, _ = head(xb, lb)
            out[s : s + batch] = logits.float().cpu().numpy()
    return out


# ---------------------------------------------------------------- helpers


class _ResidentVectors:
    """Training rows as one tensor on an accelerator; `take` is a plain index_select there."""

    def __init__(self, rows: np.ndarray, device: str):
        import torch

        self.tensor = torch.from_numpy(rows).to(device)

    def take(self, idx):
        return self.tensor.index_select(0, idx)


def _dictionary_codes(column) -> np.ndarray:
    """Integer code per row (pyarrow dictionary encoding: no per-row Python)."""
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(pc.fill_null(pc.cast(column, "string"), "")).combine_chunks()
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)


def _language_ids(cached: CachedDataset, train_mask: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Languages of the training split by frequency, and every row's index into that list (-1: unseen)."""
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(pc.fill_null(cached.rows["language"], "und")).combine_chunks()
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    names = encoded.dictionary.to_pylist()
    counts = np.bincount(codes[train_mask], minlength=len(names))
    order = [i for i in np.argsort(-counts, kind="stable") if counts[i] > 0]
    remap = np.full(len(names), -1, dtype=np.int64)
    remap[order] = np.arange(len(order))
    return [str(names[i]) for i in order], remap[codes]


def _amp_setup(amp: bool, device: str):
    import torch

    if not amp:
        return None, None
    if device.startswith("cuda"):
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, None
        return torch.float16, torch.amp.GradScaler("cuda")
    return torch.bfloat16, None


def _teacher_logits(tc: TrainConfig, cached: CachedDataset, X, lang, device):
    """The teacher's logits on the training rows, computed once from the same cache (not per step)."""
    import torch

    ckpt = load_checkpoint(tc.teacher, cached)
    teacher = build_head(ckpt["head"], ckpt["dim"], len(ckpt["label_names"]), ckpt["head_args"]).to(device)
    teacher.load_state_dict(ckpt["head_state"])
    logits = predict_logits(teacher, X, lang, device)
    return torch.from_numpy(logits).to(device)


def _save_checkpoint(ckpt: dict, path: Path) -> None:
    import torch

    from .atomic import atomic_path

    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def _load(path: Path) -> dict:
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ProdcatError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ProdcatError(f"{path} is not a prodcat head checkpoint")
    return ckpt


def load_checkpoint(run: str | Path, cached: CachedDataset | None = None, which: str = "best") -> dict:
    """A run's `best.pt` (or `last.pt`); with `cached`, check it was trained on the same cache and labels."""
    run = Path(run)
    path = run if run.is_file() else run / f"{which}.pt"
    if not path.exists():
        raise ProdcatError(f"no checkpoint at {path}: train a head there first (or drop --resume)")
    ckpt = _load(path)
    if cached is not None:
        if ckpt["label_names"] != cached.label_names:
            raise ProdcatError(
                f"checkpoint {path} was trained on another label set ({len(ckpt['label_names'])} labels: "
                f"{', '.join(ckpt['label_names'][:4])}...), not this dataset's {len(cached.label_names)} labels"
            )
        if ckpt["cache_key"] != cached.key:
            raise ProdcatError(
                f"checkpoint {path} was trained on vectors of encoder '{ckpt['encoder'].get('name')}' "
                f"(cache {ckpt['cache_key']}), not '{cached.encoder.get('name')}' (cache {cached.key}); "
                "use the same --model"
            )
    return ckpt


def _check_compatible(ckpt: dict, head_name: str, head_args: dict, where: str) -> None:
    if ckpt["head"] != head_name:
        raise ProdcatError(f"{where} holds a '{ckpt['head']}' head, not '{head_name}'; pass --head {ckpt['head']}")
    shape_keys = ("hidden", "contrastive_dim", "residual", "n_centred_languages", "n_removed_directions")
    diff = [k for k in shape_keys if ckpt["head_args"].get(k) != head_args.get(k)]
    if diff:
        detail = ", ".join(f"{k}={ckpt['head_args'].get(k)}" for k in diff)
        raise ProdcatError(f"{where} was trained with {detail}; use the same settings to continue from it")
