"""Training losses checked against formulas written out by hand with numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from prodcat_pipeline.losses import classification_loss, kl_to_teacher, supcon_loss


def unit_rows(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def manual_supcon(z: np.ndarray, positives: np.ndarray, tau: float) -> float:
    """Khosla et al. L_out, one anchor at a time: -1/|P(i)| sum_p log(exp(s_ip/t) / sum_{a != i} exp(s_ia/t)),
    averaged over the anchors that have at least one positive."""
    n = len(z)
    per_anchor = []
    for i in range(n):
        pos = [p for p in range(n) if p != i and positives[i, p]]
        if not pos:
            continue
        denom = sum(np.exp(z[i] @ z[a] / tau) for a in range(n) if a != i)
        per_anchor.append(-np.mean([np.log(np.exp(z[i] @ z[p] / tau) / denom) for p in pos]))
    return float(np.mean(per_anchor))


Z4 = unit_rows([[1.0, 0.2, 0.0], [0.9, -0.1, 0.3], [-0.2, 1.0, 0.1], [0.1, 0.8, -0.5]])


# ---------------------------------------------------------------- SupCon


def test_supcon_matches_hand_formula_every_anchor_has_positives():
    labels = np.array([0, 0, 1, 1])
    tau = 0.5
    expected = manual_supcon(Z4, labels[:, None] == labels[None, :], tau)
    got = supcon_loss(torch.tensor(Z4, dtype=torch.float32), torch.tensor(labels), temperature=tau)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_supcon_three_positives_and_small_temperature():
    z = unit_rows([[1.0, 0.0, 0.1], [0.8, 0.3, 0.0], [0.7, -0.4, 0.2], [0.0, 1.0, 0.0]])
    labels = np.array([2, 2, 2, 5])  # anchor 3 has no positive: left out of the mean
    tau = 0.1
    pos = labels[:, None] == labels[None, :]
    expected = manual_supcon(z, pos, tau)
    got = supcon_loss(torch.tensor(z, dtype=torch.float32), torch.tensor(labels), temperature=tau)
    assert got.item() == pytest.approx(expected, rel=1e-5)
    # and this is the mean over anchors 0..2 only, not over all 4 (the lone anchor would count as 0)
    all_anchor_mean = expected * 3 / 4
    assert got.item() != pytest.approx(all_anchor_mean, rel=1e-3)


def test_supcon_only_anchors_with_positives_count_and_grad_is_finite():
    labels = np.array([0, 0, 1, 2])  # anchors 2 and 3 have no positive
    tau = 0.3
    z = torch.tensor(Z4, dtype=torch.float32, requires_grad=True)
    loss = supcon_loss(z, torch.tensor(labels), temperature=tau)
    # manual: mean over anchors 0 and 1 only
    n = 4
    per = []
    for i in (0, 1):
        p = 1 - i
        denom = sum(np.exp(Z4[i] @ Z4[a] / tau) for a in range(n) if a != i)
        per.append(-np.log(np.exp(Z4[i] @ Z4[p] / tau) / denom))
    assert loss.item() == pytest.approx(float(np.mean(per)), rel=1e-5)
    loss.backward()
    assert torch.isfinite(z.grad).all()
    assert z.grad.abs().sum() > 0


def test_supcon_no_positive_in_batch_is_exactly_zero_with_finite_grad():
    z = torch.tensor(Z4[:3], dtype=torch.float32, requires_grad=True)
    loss = supcon_loss(z, torch.tensor([0, 1, 2]), temperature=0.07)
    assert loss.item() == 0.0
    assert loss.requires_grad  # still part of the graph: backward works
    loss.backward()
    assert z.grad is not None
    assert torch.isfinite(z.grad).all()
    assert torch.count_nonzero(z.grad) == 0


def test_supcon_single_sample_batch_is_zero():
    z = torch.tensor(Z4[:1], dtype=torch.float32, requires_grad=True)
    loss = supcon_loss(z, torch.tensor([3]))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(z.grad).all()


def test_supcon_explicit_positive_mask_is_used_and_diagonal_ignored():
    labels = np.array([0, 0, 1, 1])
    # positives given explicitly: 0<->2 and 1<->3 (e.g. same cluster across labels), plus the diagonal,
    # which must never count as a positive
    mask = np.eye(4, dtype=bool)
    mask[0, 2] = mask[2, 0] = mask[1, 3] = mask[3, 1] = True
    tau = 0.2
    expected = manual_supcon(Z4, mask & ~np.eye(4, dtype=bool), tau)
    got = supcon_loss(
        torch.tensor(Z4, dtype=torch.float32), torch.tensor(labels), temperature=tau, positives=torch.tensor(mask)
    )
    assert got.item() == pytest.approx(expected, rel=1e-5)
    by_label = manual_supcon(Z4, labels[:, None] == labels[None, :], tau)
    assert got.item() != pytest.approx(by_label, rel=1e-3)


# ---------------------------------------------------------------- classification loss

LOGITS = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-0.5, 1.5, 0.0], [3.0, -2.0, 1.0]])
TARGET = np.array([0, 2, 0, 2])


def np_log_softmax(x):
    x = x - x.max(1, keepdims=True)
    return x - np.log(np.exp(x).sum(1, keepdims=True))


def test_gamma_zero_is_cross_entropy():
    logits, target = torch.tensor(LOGITS, dtype=torch.float32), torch.tensor(TARGET)
    got = classification_loss(logits, target, focal_gamma=0.0)
    assert got.item() == pytest.approx(F.cross_entropy(logits, target).item(), rel=1e-6)
    ce = -np_log_softmax(LOGITS)[np.arange(4), TARGET]
    assert got.item() == pytest.approx(ce.mean(), rel=1e-5)


def test_focal_gamma_two_matches_hand_formula():
    logp = np_log_softmax(LOGITS)[np.arange(4), TARGET]
    expected = np.mean((1 - np.exp(logp)) ** 2 * -logp)
    got = classification_loss(torch.tensor(LOGITS, dtype=torch.float32), torch.tensor(TARGET), focal_gamma=2.0)
    assert got.item() == pytest.approx(expected, rel=1e-5)
    assert got.item() < F.cross_entropy(torch.tensor(LOGITS), torch.tensor(TARGET)).item()


def test_focal_alpha_scales_the_loss():
    logp = np_log_softmax(LOGITS)[np.arange(4), TARGET]
    expected = 0.25 * np.mean((1 - np.exp(logp)) ** 2 * -logp)
    got = classification_loss(
        torch.tensor(LOGITS, dtype=torch.float32), torch.tensor(TARGET), focal_gamma=2.0, focal_alpha=0.25
    )
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_label_smoothing_matches_hand_formula():
    eps, k = 0.1, LOGITS.shape[1]
    logp = np_log_softmax(LOGITS)
    per_row = -(1 - eps) * logp[np.arange(4), TARGET] - eps / k * logp.sum(1)
    got = classification_loss(torch.tensor(LOGITS, dtype=torch.float32), torch.tensor(TARGET), label_smoothing=eps)
    assert got.item() == pytest.approx(per_row.mean(), rel=1e-5)


def test_per_sample_weights_are_a_weighted_mean():
    w = np.array([1.0, 0.0, 3.0, 0.5])
    ce = -np_log_softmax(LOGITS)[np.arange(4), TARGET]
    expected = (w * ce).sum() / w.sum()
    got = classification_loss(
        torch.tensor(LOGITS, dtype=torch.float32),
        torch.tensor(TARGET),
        weight=torch.tensor(w, dtype=torch.float32),
    )
    assert got.item() == pytest.approx(expected, rel=1e-5)
    # uniform weights give the plain mean
    ones = classification_loss(
        torch.tensor(LOGITS, dtype=torch.float32), torch.tensor(TARGET), weight=torch.full((4,), 2.0)
    )
    assert ones.item() == pytest.approx(ce.mean(), rel=1e-5)


def test_classification_loss_accepts_bf16_logits_and_has_grad():
    logits = torch.tensor(LOGITS, dtype=torch.bfloat16, requires_grad=True)
    loss = classification_loss(logits, torch.tensor(TARGET), focal_gamma=2.0, label_smoothing=0.05)
    assert loss.dtype == torch.float32
    loss.backward()
    assert torch.isfinite(logits.grad.float()).all()


# ---------------------------------------------------------------- KL to a teacher


def test_kl_zero_when_student_equals_teacher():
    logits = torch.tensor(LOGITS, dtype=torch.float32)
    assert kl_to_teacher(logits, logits.clone()).item() == pytest.approx(0.0, abs=1e-7)
    assert kl_to_teacher(logits, logits.clone(), temperature=3.0).item() == pytest.approx(0.0, abs=1e-6)


def test_kl_positive_and_matches_hand_formula():
    student = LOGITS
    teacher = LOGITS[::-1].copy()
    t = 2.0
    log_ps, log_pt = np_log_softmax(student / t), np_log_softmax(teacher / t)
    expected = (np.exp(log_pt) * (log_pt - log_ps)).sum(1).mean() * t * t  # KL(teacher || student) * T^2
    got = kl_to_teacher(
        torch.tensor(student, dtype=torch.float32), torch.tensor(teacher, dtype=torch.float32), temperature=t
    )
    assert got.item() > 0
    assert got.item() == pytest.approx(expected, rel=1e-5)
