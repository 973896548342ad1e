"""Training losses: focal / label-smoothed cross-entropy, supervised contrastive (SupCon), KL to a teacher."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def classification_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    label_smoothing: float = 0.0,
    focal_gamma: float = 0.0,
    focal_alpha: float | None = None,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean of per-sample (optionally weighted) cross-entropy with label smoothing; with `focal_gamma` > 0
    each sample's loss is scaled by alpha * (1 - p_true) ** gamma (Lin et al., focal loss)."""
    logits = logits.float()
    ce = F.cross_entropy(logits, target, reduction="none", label_smoothing=label_smoothing)
    if focal_gamma > 0:
        p_true = F.softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)
        ce = (1.0 - p_true).pow(focal_gamma) * ce
    if focal_alpha is not None:
        ce = focal_alpha * ce
    if weight is not None:
        return (ce * weight).sum() / weight.sum().clamp_min(1e-12)
    return ce.mean()


def supcon_loss(
    z: torch.Tensor, labels: torch.Tensor, temperature: float = 0.07, positives: torch.Tensor | None = None
) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020, L_out) over L2-normalised `z`.

    Every other sample with the same label is a positive (or pass a boolean (B, B) `positives` mask).
    Anchors without any positive in the batch are left out of the mean; if no anchor has one the loss
    is 0 (still attached to the graph, so backward works).
    """
    z = z.float()
    n = z.shape[0]
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    if positives is None:
        positives = labels[:, None] == labels[None, :]
    positives = positives & ~self_mask
    logits = (z @ z.T) / temperature
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    n_pos = positives.sum(1)
    has_pos = n_pos > 0
    if not bool(has_pos.any()):
        return z.sum() * 0.0
    mean_log_prob_pos = log_prob.masked_fill(~positives, 0.0).sum(1)[has_pos] / n_pos[has_pos]
    return -mean_log_prob_pos.mean()


def kl_to_teacher(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0):
    """KL(teacher || student) on temperature-softened distributions, scaled by T^2 (Hinton et al.)."""
    t = temperature
    log_p_student = F.log_softmax(student_logits.float() / t, dim=1)
    log_p_teacher = F.log_softmax(teacher_logits.float() / t, dim=1)
    return F.kl_div(log_p_student, log_p_teacher, log_target=True, reduction="batchmean") * (t * t)


def cross_language_positives(labels: torch.Tensor, languages: torch.Tensor, clusters: torch.Tensor) -> torch.Tensor:
    """(B, B) positives for SupCon that pull languages together: a pair is positive when it shares a label
    across two languages, or shares a product cluster (any language). Same-label pairs within one language
    are not positives, so the contrastive term spends its pull on cross-language alignment."""
    same_label = labels[:, None] == labels[None, :]
    other_language = languages[:, None] != languages[None, :]
    same_cluster = clusters[:, None] == clusters[None, :]
    return (same_label & other_language) | same_cluster
