"""Stage two, `prodcat train`: fit a head on cached vectors. One loop, read top to bottom.

resolve the config -> training data view of the cache -> head (scratch, --init_from) -> optimizer and
schedule (and --resume) -> epochs (sample, step, evaluate, checkpoint) -> final metrics from the best epoch.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .cache import TRAINING_COLUMNS, open_cache
from .checkpoint import check_compatible, checkpoint_meta, load_checkpoint, read_checkpoint, save_checkpoint
from .config import PipelineConfig, TrainConfig
from .heads import build_head, head_args
from .inference import autocast_dtype, evaluate_head, predict_logits
from .progress import progress_bar
from .reader import CachedDataset
from .run_dirs import holds_run_folders, prepare_run_folder, prune_epoch_checkpoints
from .sampling import LanguageSampler, pair_with_cluster_mates
from .training_data import TrainingData, build_training_data

log = logging.getLogger(__name__)


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


@holds_run_folders
def train(
    config: PipelineConfig | None = None,
    *,
    out: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    cached: CachedDataset | None = None,
    show_progress: bool | None = None,
    on_epoch=None,
) -> TrainResult:
    """Train `config.train.head` on the cached vectors of `config.data`; write checkpoints, metrics.json and
    config.yaml into `out` (default `<config.out>/<head>`; a folder holding a run is refused unless `resume`
    continues it or `overwrite` clears it). `on_epoch(record)` is called after each epoch with its history
    record (epoch, loss, val_macro_f1, ...); an exception it raises stops training (tune's pruning).

    Example:
        >>> from prodcat_pipeline import load_config, train
        >>> cfg = load_config(overrides={"data.path": "data/lspc_sample", "train.head": "v2", "train.epochs": 5})
        >>> train(cfg, out="runs/v2").metrics["validation"]["macro_f1"]
    """
    from .config import load_config
    from .encoders import resolve_device

    _preload_optimizer_imports()
    t_start = time.perf_counter()
    config = (config or load_config()).for_head()  # fills the head's defaults into fields not set
    tc: TrainConfig = config.train
    out = Path(out or Path(config.out) / tc.head)
    prepare_run_folder(out, overwrite=overwrite, resume=resume)  # before any work: a refusal costs nothing
    device = resolve_device(tc.device)  # a missing GPU fails before any encoding
    cache_built = False
    if cached is None:
        cached, cache_built = open_cache(config, columns=TRAINING_COLUMNS, show_progress=show_progress)
    data = build_training_data(cached, tc, device)

    head, args = _make_head(tc, data, device)
    if tc.teacher and tc.kl_weight > 0:
        data.teacher = _teacher_logits(tc.teacher, data, device)
    optimizer, scheduler, scaler, amp_dtype = _optimizer(head, tc, data.n_rows, device)
    state = _resume(out, cached, config, args, head, optimizer, scheduler, scaler) if resume else _fresh_state()

    meta = checkpoint_meta(config, cached, args, data.languages)

    def save(name: str, with_optimizer: bool = False) -> None:
        ckpt = {**meta, "tag": name, "head_state": head.state_dict(), "state": state}
        if with_optimizer:  # only last.pt resumes; best and epoch checkpoints hold the head alone
            ckpt |= {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
            ckpt["scaler"] = scaler.state_dict() if scaler is not None else None
        save_checkpoint(out / f"{name}.pt", ckpt)

    def evaluate(split: str) -> dict:
        rows = data.eval_set(split)
        return evaluate_head(
            head, rows, cached.label_names, device, amp_dtype=amp_dtype,
            lang_metrics=not tc.no_lang_metrics, lang_min_samples=tc.lang_min_samples,
        )[0]  # fmt: skip

    sampler = LanguageSampler(data.lang_np, len(data.languages), tc.lang_sampling_temp)
    first_step: dict = {}
    splits = data.eval_splits()
    while state["epoch"] < tc.epochs:
        epoch = state["epoch"] + 1
        t_epoch = time.perf_counter()
        loss = _run_epoch(
            head, data, tc, epoch, sampler, (optimizer, scheduler, scaler), amp_dtype, show_progress,
            on_first_step=lambda: first_step.setdefault("at", (time.perf_counter(), time.time())),
        )  # fmt: skip
        seconds = round(time.perf_counter() - t_epoch, 3)  # the training pass alone, as train_seconds sums it
        _check_finite(loss, epoch, tc)  # before any checkpoint: a diverged head never becomes best.pt or last.pt
        val = evaluate("validation") if "validation" in splits else {"macro_f1": None}
        record = {"epoch": epoch, "loss": loss, "val_macro_f1": val["macro_f1"], "val_micro_f1": val.get("micro_f1")}
        record |= {"lr": scheduler.get_last_lr()[0], "seconds": seconds}
        state["history"].append(record)
        state["epoch"] = epoch
        if on_epoch is not None:
            on_epoch(record)
        log.info("epoch %d: loss %.4f, val macro-F1 %s, %.2fs", epoch, loss, _fmt(val["macro_f1"]), record["seconds"])
        score = val["macro_f1"] if val["macro_f1"] is not None else -loss
        if score > state["best_score"]:
            state.update(best_score=score, best_epoch=epoch, bad_epochs=0)
            save("best")
        else:
            state["bad_epochs"] += 1
        if tc.save_every and epoch % tc.save_every == 0:
            save(f"epoch_{epoch:03d}")
            prune_epoch_checkpoints(out, tc.keep)
        save("last", with_optimizer=True)
        if tc.early_stopping_patience and state["bad_epochs"] >= tc.early_stopping_patience:
            log.info("early stop: no validation macro-F1 gain for %d epochs", state["bad_epochs"])
            break

    # ---------------------------------------------------------------- final metrics from the best checkpoint
    if (out / "best.pt").exists():
        head.load_state_dict(read_checkpoint(out / "best.pt")["head_state"])
    else:  # zero epochs: evaluate the initial head
        save("best")
    metrics = {split: evaluate(split) for split in splits}
    timing = {"t_start": t_start, "first_step": first_step.get("at")}
    return _write_results(out, config, cached, state, metrics, timing, cache_built)


def _write_results(out: Path, config, cached, state: dict, metrics: dict, timing: dict, cache_built: bool):
    """metrics.json (the evaluated splits plus what the run was) and config.yaml, then the result object."""
    from .atomic import write_atomic, write_json_atomic
    from .config_yaml import to_yaml

    tc, first = config.train, timing["first_step"]
    metrics |= run_summary(tc, cached, state, timing={
        "first_step_seconds": round(first[0] - timing["t_start"], 3) if first else None,
        "first_step_at": first[1] if first else None,  # wall clock (benchmarks time the whole process)
        "wall_seconds": round(time.perf_counter() - timing["t_start"], 3),
    })  # fmt: skip
    write_json_atomic(out / "metrics.json", metrics)
    write_atomic(out / "config.yaml", lambda p: p.write_text(to_yaml(config), encoding="utf-8"))
    return TrainResult(out, tc.head, metrics, state["best_epoch"], state["epoch"], metrics["train_seconds"],
                       cache_built, state["history"])  # fmt: skip


def run_summary(tc: TrainConfig, cached: CachedDataset, state: dict, timing: dict | None = None) -> dict:
    """What metrics.json says besides the evaluated splits: the run's head, cache and data, its loop `state`
    (epoch, best_epoch, history whose `seconds` are training passes) and `timing` (`train` and run_folder)."""
    from .provenance import command_line

    summary = {"head": tc.head, "encoder": cached.encoder.get("name"), "cache_key": cached.key}
    summary |= {
        "dataset": cached.dataset.get("source"),
        "epochs_run": state["epoch"],
        "best_epoch": state["best_epoch"],
    }
    summary |= {"train_seconds": round(sum(h["seconds"] for h in state["history"]), 3)} | (timing or {})
    return summary | {"history": state["history"], "label_names": cached.label_names,
                      "config": tc.model_dump(mode="json"), "command": command_line()}  # fmt: skip


# ---------------------------------------------------------------- one epoch


def _run_epoch(head, data: TrainingData, tc: TrainConfig, epoch, sampler, optim, amp_dtype, show_progress,
               on_first_step) -> float:  # fmt: skip
    """One pass over the training rows in the epoch's order; returns the mean batch loss."""
    import torch

    optimizer, scheduler, scaler = optim
    device = data.y.device
    # seeding per epoch makes a resumed run draw exactly what the uninterrupted run drew
    torch.manual_seed(tc.seed * 1_000_003 + epoch)
    rng = np.random.default_rng([tc.seed, epoch])
    order_np = sampler.epoch_order(rng)
    contrastive = tc.head == "v3" and tc.contrastive_weight > 0
    if contrastive and tc.cross_lang_positives:  # batches of (row, cluster mate) pairs
        order_np = pair_with_cluster_mates(order_np, data.cluster_np, data.y_np, rng)
    order = torch.from_numpy(order_np).to(device)
    n_batches = max(1, -(-data.n_rows // tc.batch_size))
    head.train()
    loss_sum = torch.zeros((), device=device)
    with progress_bar(n_batches, f"epoch {epoch}/{tc.epochs}", "batches", show_progress) as advance:
        for b in range(n_batches):
            if b == 0:
                on_first_step()
            idx = order[b * tc.batch_size : (b + 1) * tc.batch_size]
            loss = _batch_loss(head, data, idx, tc, amp_dtype, contrastive)
            loss_sum += loss.detach()
            loss = loss / tc.grad_accum
            (scaler.scale(loss) if scaler is not None else loss).backward()
            if (b + 1) % tc.grad_accum == 0 or b + 1 == n_batches:
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
            if b == 0:
                data.X.consolidate()  # after the first step, so start-up is not slowed by the copy
            advance(1)
    return float(loss_sum) / n_batches


def _batch_loss(head, data: TrainingData, idx, tc: TrainConfig, amp_dtype, contrastive: bool):
    """Loss of one batch: rows `idx` of the training tensors (index_select: no per-sample Python)."""
    import torch

    from .losses import classification_loss, cross_language_positives, kl_to_teacher, supcon_loss

    def take(t):
        return t.index_select(0, idx) if t is not None else None

    xb = data.X.take(take(data.vec))
    yb, lb, cb, weights, teacher = (take(t) for t in (data.y, data.lang, data.cluster, data.weights, data.teacher))
    with torch.autocast(xb.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        logits, z = head(xb, lb)
    loss = classification_loss(
        logits, yb, label_smoothing=tc.label_smoothing, focal_gamma=tc.focal_gamma, focal_alpha=tc.focal_alpha,
        weight=weights,
    )  # fmt: skip
    if contrastive:
        positives = cross_language_positives(yb, lb, cb) if tc.cross_lang_positives else None
        loss = loss + tc.contrastive_weight * supcon_loss(z, yb, tc.contrastive_temp, positives)
    if teacher is not None:
        loss = loss + tc.kl_weight * kl_to_teacher(logits, teacher, tc.kl_temperature)
    return loss


# ---------------------------------------------------------------- set-up helpers


def _preload_optimizer_imports() -> None:
    """Building any torch optimizer imports torch._dynamo (~1 s); start that import now, in a thread, so it
    overlaps with loading the cache instead of delaying the first step."""
    import sys
    import threading

    if "torch._dynamo" not in sys.modules:
        threading.Thread(target=__import__, args=("torch._dynamo",), daemon=True).start()


def _make_head(tc: TrainConfig, data: TrainingData, device: str):
    """(the head to train, its shape args): seeded, input transform fitted, or started from --init_from."""
    import torch

    torch.manual_seed(tc.seed)
    args = head_args(tc, len(data.languages))
    head = build_head(tc.head, data.cached.dim, data.n_classes, args).to(device)
    _fit_input_transform(head, data, tc)
    if tc.init_from:
        init = load_checkpoint(tc.init_from, data.cached)
        check_compatible(init, tc.head, args, tc.init_from)
        head.load_state_dict(init["head_state"])
    return head, args


def _fit_input_transform(head, data: TrainingData, tc: TrainConfig) -> None:
    """Per-language maps onto English, then per-language means (and language directions) of the (mapped)
    training rows, stored in the head's transform."""
    import torch

    if not (tc.lang_centering or tc.lang_remove_directions or tc.lang_align):
        return
    from .sampling import alignment_maps, language_statistics

    X = data.train_vectors()
    if tc.lang_align:
        pivot = data.languages.index("en") if "en" in data.languages else 0
        clusters = np.where(data.cached.rows["cluster"].is_null().to_numpy(zero_copy_only=False)[data.train_mask],
                            -1, data.cluster_np)  # fmt: skip
        maps = alignment_maps(X, data.lang_np, clusters, len(data.languages), pivot)
        head.transform.lang_maps.copy_(torch.from_numpy(maps))
        lang = torch.from_numpy(data.lang_np).to(head.transform.lang_maps.device)
        X = head.transform.align(torch.from_numpy(X).to(lang.device), lang).cpu().numpy()
        if not (tc.lang_centering or tc.lang_remove_directions):
            return
    means, directions = language_statistics(X, data.lang_np, len(data.languages), tc.lang_remove_directions)
    if tc.lang_centering:
        head.transform.lang_means.copy_(torch.from_numpy(means))
    if tc.lang_remove_directions:
        head.transform.directions.copy_(torch.from_numpy(directions))


def _teacher_logits(run: str, data: TrainingData, device: str):
    """The teacher's logits on the training rows, computed once from the same cache (not per step)."""
    import torch

    from .checkpoint import head_from_checkpoint

    teacher = head_from_checkpoint(load_checkpoint(run, data.cached), device, source=run)
    return torch.from_numpy(predict_logits(teacher, data.train_vectors(), data.lang_np, device)).to(device)


def _optimizer(head, tc: TrainConfig, n_rows: int, device: str):
    """Fused AdamW (one kernel over all parameters), the LR schedule, and mixed-precision settings."""
    import torch

    from .schedules import make_scheduler

    fused = device == "cpu" or device.startswith("cuda")
    optimizer = torch.optim.AdamW(head.parameters(), lr=tc.lr, weight_decay=tc.weight_decay, fused=fused)
    batches = max(1, -(-n_rows // tc.batch_size))
    steps_per_epoch = max(1, -(-batches // tc.grad_accum))
    scheduler = make_scheduler(
        optimizer,
        schedule=tc.lr_schedule,
        total_steps=steps_per_epoch * max(tc.epochs, 1),
        warmup_steps=tc.lr_warmup_steps,
        min_scale=tc.lr_min_scale,
        decay=tc.lr_decay,
    )
    amp_dtype = autocast_dtype(tc, device)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    return optimizer, scheduler, scaler, amp_dtype


def _resume(out: Path, cached, config: PipelineConfig, args: dict, head, optimizer, scheduler, scaler) -> dict:
    """Restore head, optimizer, schedule and loop state from `out/last.pt`, the one checkpoint that is always
    consistent (written last in each epoch); returns the loop state. A run killed before its first last.pt
    starts again from epoch 1 (its best.pt, if any, is overwritten by the new epoch 1), so `--resume` can
    always be repeated after an interrupt."""
    tc = config.train
    if not (out / "last.pt").exists():
        log.warning("%s holds no last.pt (killed before its first epoch ended?): training starts from epoch 1", out)
        return _fresh_state()
    ckpt = load_checkpoint(out, cached, which="last")
    check_compatible(ckpt, tc.head, args, str(out))
    head.load_state_dict(ckpt["head_state"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    if scaler is not None and ckpt.get("scaler"):
        scaler.load_state_dict(ckpt["scaler"])
    was = ckpt["config"]["train"]["epochs"]
    if was != tc.epochs and tc.lr_schedule != "none":
        log.warning(
            "resuming with epochs=%d instead of %d: the %s schedule is stretched to the new length, so this run "
            "will not match one trained for %d epochs from the start", tc.epochs, was, tc.lr_schedule, tc.epochs,
        )  # fmt: skip
    log.info("resuming %s after epoch %d", out, ckpt["state"]["epoch"])
    return ckpt["state"]


def _fresh_state() -> dict:
    return {"epoch": 0, "best_score": -1.0, "best_epoch": 0, "bad_epochs": 0, "history": []}


def _check_finite(loss: float, epoch: int, tc: TrainConfig) -> None:
    if not math.isfinite(loss):
        from .errors import ProdcatError

        raise ProdcatError(
            f"training diverged: the mean loss of epoch {epoch} is {loss} (lr {tc.lr:g}); nothing of this epoch was "
            "saved: lower --lr" + (" or drop --amp" if tc.amp else "")
        )


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"
