"""Learning-rate schedules: linear warm-up, then none | cosine | exponential, floored at a minimum scale."""

from __future__ import annotations

import math


def lr_scale(
    step: int, *, schedule: str, total_steps: int, warmup_steps: int = 0, min_scale: float = 0.0, decay: float = 0.9999
) -> float:
    """Multiplier of the base learning rate at optimizer step `step` (0-based)."""
    if warmup_steps and step < warmup_steps:
        return max((step + 1) / warmup_steps, min_scale)
    if schedule == "none":
        return 1.0
    after = step - warmup_steps
    if schedule == "cosine":
        span = max(total_steps - warmup_steps, 1)
        progress = min(after / span, 1.0)
        return min_scale + (1.0 - min_scale) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "exponential":
        return max(decay**after, min_scale)
    raise ValueError(f"unknown lr schedule '{schedule}': none, cosine or exponential")


def make_scheduler(optimizer, **kw):
    import torch

    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_scale(step, **kw))
