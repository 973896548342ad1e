"""Batched tuning trials (`prodcat tune`): heads of one shape trained together, one stacked step per batch.

resolve each trial's config -> training data view of the cache -> T heads (seed + trial index), stacked ->
epochs (one shared batch order; forward, backward and AdamW for all live trials at once; evaluate every
live trial; prune) -> per trial: history, best epoch and that epoch's head state_dict.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from .config import PipelineConfig, TrainConfig
from .errors import ProdcatError
from .reader import CachedDataset

log = logging.getLogger(__name__)

# TrainConfig fields a trial may set to its own value; every other field must be equal across the group
PER_TRIAL = (
    "lr", "weight_decay", "classifier_dropout", "label_smoothing", "epochs", "early_stopping_patience",
    "lr_schedule", "lr_warmup_steps", "lr_min_scale", "lr_decay",
)  # fmt: skip
IGNORED = ("save_every", "keep", "lang_min_samples", "lang_top_k", "no_lang_metrics")  # no effect on training


@dataclass
class ManyResult:
    """One trial of a batched group. `head_state` (the best epoch's) loads into
    `build_head(config.head, dim, n_classes, head_args)`, so a normal run folder can be written from it."""

    params: dict  # the trial's overrides, as given
    config: TrainConfig  # the trial's resolved train settings
    head_args: dict
    history: list[dict]  # per epoch: epoch, loss, val_macro_f1, val_micro_f1, lr, seconds (this trial's share of
    # the training pass, as `train` records it), the group's training and evaluation seconds, trials
    best_epoch: int  # 0: no epoch beat the initial head (or none ran)
    best_score: float  # validation macro-F1 of best_epoch (-1.0 when no epoch ran)
    best_micro: float | None  # validation micro-F1 of best_epoch
    pruned: bool  # stopped by on_epoch before its own epochs
    seconds: float  # this trial's share of the group's training and evaluation time
    head_state: dict = field(repr=False)


def unsupported_options(tc: TrainConfig) -> list[str]:
    """Settings that batched training does not implement (train such trials one by one with `train`)."""
    out = [] if tc.head in ("linear", "v2") else [f"head={tc.head}"]
    out += [name for name, on in (
        ("grad_accum", tc.grad_accum != 1), ("focal_gamma", tc.focal_gamma > 0), ("init_from", bool(tc.init_from)),
        ("teacher", bool(tc.teacher and tc.kl_weight > 0)),
    ) if on]  # fmt: skip
    return out


def trial_configs(config: PipelineConfig, trials: list[dict]) -> list[TrainConfig]:
    """Each trial's TrainConfig (config.train with the trial's overrides), checked to form one group."""
    from pydantic import ValidationError

    from .config import _describe

    if not trials:
        raise ProdcatError("train_many needs at least one trial")
    base = config.train.model_dump()
    tcs = []
    for i, trial in enumerate(trials):
        if "head" in trial:
            raise ProdcatError(
                f"trial {i} sets 'head': resolve the config for the head (config.for_head(head)) instead"
            )
        try:
            tcs.append(TrainConfig.model_validate({**base, **trial}))
        except ValidationError as exc:
            raise ProdcatError(f"trial {i}: {_describe(exc, 'train.')}") from None
    for name in TrainConfig.model_fields:
        values = [getattr(t, name) for t in tcs]
        if name not in PER_TRIAL + IGNORED and any(v != values[0] for v in values):
            raise ProdcatError(
                f"trials batched together must share train.{name} (got {values[0]!r} and "
                f"{next(v for v in values if v != values[0])!r}); put them in separate groups"
            )
    missing = unsupported_options(tcs[0])
    if missing:
        raise NotImplementedError(f"batched trials do not support {', '.join(missing)}: train these one by one")
    return tcs


def train_many(
    config: PipelineConfig,
    trials: list[dict],
    *,
    cached: CachedDataset,
    on_epoch=None,
    device: str | None = None,
    show_progress: bool | None = None,
    max_batches: int | None = None,
    data=None,
) -> list[ManyResult]:
    """Train one head per trial (config.train with the trial's overrides) together on the same batches.

    Trials may differ in lr, weight_decay, classifier_dropout, label_smoothing, epochs, early stopping and
    the schedule's settings; everything else (head shape included) must be shared. Trial i starts from
    seed + i (trial 0 from the same weights as `train` would). After every epoch `on_epoch(epoch, scores)`
    gets each trial's validation macro-F1 (None for trials no longer training) and may return one bool per
    trial: True stops that trial (pruned). `max_batches` caps the batches per epoch (quick screening,
    benchmarks); the schedule is sized to the capped epoch. `device` defaults to train.device (then CUDA
    when present, as in `train`). `data`: the training data view already built for these settings
    (`build_training_data(cached, config.train, device)`), reused across groups of one head (tune); the
    input transform fitted on it is reused too.

    Example:
        >>> cfg = load_config(overrides={"data.path": "data/lspc_sample", "train.head": "v2"})
        >>> results = train_many(cfg, [{"lr": 1e-3}, {"lr": 3e-3}], cached=load_cache(cfg))
        >>> max(results, key=lambda r: r.best_score).params
    """
    import torch

    from .encoders import resolve_device
    from .training_data import build_training_data, data_settings

    config = config.for_head()
    tcs = trial_configs(config, trials)
    device = resolve_device(device or tcs[0].device)
    if data is None:
        data = build_training_data(cached, tcs[0], device)
    elif data.cached is not cached or data.built_for != data_settings(tcs[0], device):
        raise ProdcatError(
            "train_many: `data` was built from another cache or for other settings (languages, loss weights, "
            "device); build it with build_training_data(cached, config.train, device) or leave it out"
        )
    if "validation" not in data.eval_splits():
        raise ProdcatError("tuning compares trials on the validation split, and this dataset has none")
    group = _Group(tcs, data, device)
    n_batches = max(1, -(-data.n_rows // tcs[0].batch_size))
    n_batches = min(n_batches, max_batches) if max_batches else n_batches
    group.total_steps = [n_batches * max(t.epochs, 1) for t in tcs]
    rows = data.eval_set("validation")
    with torch.no_grad():
        val_x = group.transformed(rows)  # the transform is frozen: once, not every epoch
    for epoch in range(1, max(t.epochs for t in tcs) + 1):
        if not group.live:
            break
        t0 = time.perf_counter()
        loss = _run_epoch(group, data, epoch, n_batches, show_progress)
        t1 = time.perf_counter()
        with torch.no_grad():
            scores = _f1_scores(rows.y, group.predict(val_x), group.n_classes)
        _finish_epoch(group, epoch, loss, scores, (t1 - t0, time.perf_counter() - t1), on_epoch)
    return [group.result(i, trial) for i, trial in enumerate(trials)]


class _Group:
    """The trials' stacked heads and optimizer, which trials still train, and each trial's record."""

    def __init__(self, tcs: list[TrainConfig], data, device: str):
        import torch

        from .heads import build_head, head_args
        from .multihead_ops import KEYS, StackedAdamW, StackedHeads

        tc = self.tc = tcs[0]
        self.tcs, self.device, self.n_classes, self.dim = tcs, device, data.n_classes, data.cached.dim
        self.args = [head_args(t, len(data.languages)) for t in tcs]
        states = []
        for i, t in enumerate(tcs):
            torch.manual_seed(tc.seed + i)
            head = build_head(t.head, self.dim, self.n_classes, self.args[i])
            if i == 0:
                _fit_or_reuse_transform(head, data, tc)
                self.transform = head.transform.to(device).eval()
                states.append(head.state_dict())
            else:  # only the trial's own parameters: the transform (its buffers, tens of MB) is trial 0's
                states.append({k: v for k, v in head.state_dict().items() if k in KEYS[tc.head]})
        self.template = list(states[0])  # the state_dict keys, in build_head's order
        dtype = torch.bfloat16 if tc.amp else None
        residual = not tc.classifier_no_residual
        self.heads = StackedHeads.from_states(tc.head, states, residual=residual, compute_dtype=dtype, device=device)
        self.opt = StackedAdamW(self.heads.params)
        self.live = list(range(len(tcs)))  # trial index of each position of the stacks
        self.best_state = [self.heads.state(i) for i in range(len(tcs))]  # the initial heads until an epoch beats them
        self.record = [{"history": [], "best_score": -1.0, "best_micro": None, "best_epoch": 0, "bad": 0, "pruned": False,
                        "seconds": 0.0} for _ in tcs]  # fmt: skip
        self.step = 0
        self.total_steps: list[int] = []
        self.select([i for i, t in enumerate(tcs) if t.epochs > 0])

    def select(self, live: list[int]) -> None:
        """Train only the trials `live` from now on (dropped ones leave the stacks: no compute spent)."""
        import torch

        if live != self.live:
            keep = torch.tensor([self.live.index(i) for i in live], dtype=torch.long, device=self.device)
            self.heads.select(keep)
            self.opt.select(keep)
            self.live = live
        self.dropout = np.array([self.tcs[i].classifier_dropout for i in live])
        self.smoothing = torch.tensor([self.tcs[i].label_smoothing for i in live], device=self.device)
        self.weight_decay = [self.tcs[i].weight_decay for i in live]

    def lrs(self) -> list[float]:
        """Every live trial's learning rate at the current step (its own schedule and length)."""
        from .schedules import lr_scale

        return [
            (t := self.tcs[i]).lr * lr_scale(
                self.step, schedule=t.lr_schedule, total_steps=self.total_steps[i], warmup_steps=t.lr_warmup_steps,
                min_scale=t.lr_min_scale, decay=t.lr_decay,
            )
            for i in self.live
        ]  # fmt: skip

    def transformed(self, rows, chunk: int = 8192):
        """An evaluation split's vectors through the (shared, frozen) input transform, on the device."""
        import torch

        out = torch.empty((len(rows.y), self.dim), device=self.device)
        for s in range(0, len(rows.y), chunk):
            xb = torch.from_numpy(np.ascontiguousarray(rows.X[s : s + chunk])).to(self.device)
            lb = torch.from_numpy(np.asarray(rows.lang_ids[s : s + chunk])).to(self.device)
            out[s : s + chunk] = self.transform(xb, lb)
        return out

    def predict(self, x, max_elements: int = 1 << 24) -> np.ndarray:
        """Predicted label ids (live trials, rows) for transformed vectors `x` (see `transformed`), in chunks
        of rows (a training batch or 1024 rows, fewer when that is more than `max_elements` activations)."""
        width = len(self.live) * max(self.tc.classifier_hidden if self.tc.head == "v2" else 1, self.n_classes)
        chunk = max(64, min(max(self.tc.batch_size, 1024), max_elements // width))
        out = np.empty((len(self.live), x.shape[0]), dtype=np.int64)
        for s in range(0, x.shape[0], chunk):
            z = self.heads.forward(x[s : s + chunk], train=False)
            out[:, s : s + chunk] = z.argmax(1).cpu().numpy()
        return out

    def result(self, i: int, trial: dict) -> ManyResult:
        r = self.record[i]
        transform = {f"transform.{k}": v.detach().cpu().clone() for k, v in self.transform.state_dict().items()}
        best = {k: v.cpu() for k, v in self.best_state[i].items()}
        state = {k: transform[k] if k in transform else best[k] for k in self.template}
        return ManyResult(dict(trial), self.tcs[i], self.args[i], r["history"], r["best_epoch"], r["best_score"],
                          r["best_micro"], r["pruned"], round(r["seconds"], 3), state)  # fmt: skip


def _fit_or_reuse_transform(head, data, tc: TrainConfig) -> None:
    """Fit trial 0's input transform on the training rows (as `train` does), or load the one fitted before on
    the same data with the same language settings (tune's groups of one head share it: no refit per group)."""
    from .trainer import _fit_input_transform

    key = ("input_transform", tc.lang_align, tc.lang_centering, tc.lang_remove_directions)
    if key in data.fitted:
        head.transform.load_state_dict(data.fitted[key])
    else:
        _fit_input_transform(head, data, tc)
        data.fitted[key] = {k: v.detach().clone() for k, v in head.transform.state_dict().items()}


# ---------------------------------------------------------------- one epoch of the group


def _run_epoch(group: _Group, data, epoch: int, n_batches: int, show_progress) -> np.ndarray:
    """One pass over the training rows in the epoch's order (the order `train` uses: one permutation seeded
    by seed and epoch), stepping every live trial on each batch; returns each live trial's mean loss."""
    import torch

    from .multihead_ops import smoothed_ce
    from .progress import progress_bar
    from .sampling import LanguageSampler

    tc, heads, device = group.tc, group.heads, group.device
    torch.manual_seed(tc.seed * 1_000_003 + epoch)  # dropout masks, as `train` seeds them
    sampler = LanguageSampler(data.lang_np, len(data.languages), tc.lang_sampling_temp)
    order = torch.from_numpy(sampler.epoch_order(np.random.default_rng([tc.seed, epoch]))).to(device)
    alpha = tc.focal_alpha if tc.focal_alpha is not None else 1.0
    loss_sum = torch.zeros(len(group.live), device=device)
    label = f"epoch {epoch} ({len(group.live)} trials)"
    with progress_bar(n_batches, label, "batches", show_progress) as advance:
        for b in range(n_batches):
            idx = order[b * tc.batch_size : (b + 1) * tc.batch_size]
            xb = data.X.take(data.vec.index_select(0, idx))
            x = group.transform(xb, data.lang.index_select(0, idx))
            z = heads.forward(x, group.dropout)
            weight = data.weights.index_select(0, idx) if data.weights is not None else None
            loss, dz = smoothed_ce(z, data.y.index_select(0, idx), group.smoothing, weight)
            if alpha != 1.0:
                loss, dz = loss * alpha, dz.mul_(alpha)
            heads.backward(dz)
            group.opt.step(heads.params, heads.grads, group.lrs(), group.weight_decay)
            group.step += 1
            loss_sum += loss
            if b == 0:
                data.X.consolidate()  # after the first step, as in `train`
            advance(1)
    return (loss_sum / n_batches).cpu().numpy()


def _f1_scores(y: np.ndarray, preds: np.ndarray, n_classes: int) -> list[tuple[float, float]]:
    """(macro-F1, micro-F1) of each row of `preds`, as metrics.classification_metrics computes them (micro-F1
    over all labels of a single-label task is the accuracy)."""
    from .metrics import macro_f1_fast

    return [(macro_f1_fast(y, p, n_classes), float(np.mean(p == y))) for p in preds]


def _finish_epoch(group: _Group, epoch: int, loss, f1s: list[tuple], seconds: tuple, on_epoch) -> None:
    """Record the epoch for every live trial, keep improved heads, ask `on_epoch` which trials to stop, and
    drop stopped and finished trials from the stacks."""
    n, live = len(group.tcs), group.live
    scores = [macro for macro, _ in f1s]
    lrs = group.lrs()
    train_share, share = seconds[0] / len(live), sum(seconds) / len(live)
    by_trial: list[float | None] = [None] * n
    for j, i in enumerate(live):
        by_trial[i] = scores[j]
        r = group.record[i]
        r["history"].append({
            "epoch": epoch, "loss": float(loss[j]), "val_macro_f1": scores[j], "val_micro_f1": f1s[j][1], "lr": lrs[j],
            "seconds": round(train_share, 3),
            "group_train_seconds": round(seconds[0], 3), "group_eval_seconds": round(seconds[1], 3), "trials": len(live),
        })  # fmt: skip
        r["seconds"] += share
        if scores[j] > r["best_score"]:
            r.update(best_score=scores[j], best_micro=f1s[j][1], best_epoch=epoch, bad=0)
            group.best_state[i] = group.heads.state(j)
        else:
            r["bad"] += 1
    log.info("epoch %d: %d trials, val macro-F1 %s, %.2fs + %.2fs eval", epoch, len(live),
             " ".join(f"{s:.4f}" for s in scores), *seconds)  # fmt: skip
    stop = on_epoch(epoch, by_trial) if on_epoch is not None else None
    if stop is not None and len(stop) != n:
        raise ProdcatError(f"on_epoch returned {len(stop)} stop flags for {n} trials: return one bool per trial")
    keep = []
    for i in live:
        tc, r = group.tcs[i], group.record[i]
        if stop is not None and stop[i] and epoch < tc.epochs:
            r["pruned"] = True
        elif epoch < tc.epochs and not (tc.early_stopping_patience and r["bad"] >= tc.early_stopping_patience):
            keep.append(i)
    group.select(keep)
