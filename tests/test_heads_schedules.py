"""Heads, learning-rate schedules and the language helpers of sampling.py, as units."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from prodcat_pipeline.config import TrainConfig
from prodcat_pipeline.errors import ProdcatError
from prodcat_pipeline.heads import ContrastiveHead, InputTransform, LinearHead, ResidualHead, build_head
from prodcat_pipeline.losses import classification_loss, supcon_loss
from prodcat_pipeline.sampling import LanguageSampler, language_statistics, sample_weights
from prodcat_pipeline.schedules import lr_scale, make_scheduler

# ---------------------------------------------------------------- schedules


def test_warmup_is_linear():
    for w in (1, 4, 10):
        for step in range(w):
            assert lr_scale(step, schedule="cosine", total_steps=100, warmup_steps=w) == pytest.approx((step + 1) / w)
    # the warm-up never goes below the floor either
    assert lr_scale(0, schedule="none", total_steps=10, warmup_steps=10, min_scale=0.3) == pytest.approx(0.3)
    assert lr_scale(5, schedule="none", total_steps=10, warmup_steps=10, min_scale=0.3) == pytest.approx(0.6)


def test_cosine_peaks_after_warmup_is_monotone_and_ends_at_min_scale():
    total, warm, floor = 50, 5, 0.05
    scales = [lr_scale(s, schedule="cosine", total_steps=total, warmup_steps=warm, min_scale=floor) for s in range(70)]
    assert scales[warm] == pytest.approx(1.0)
    after = scales[warm : total + 1]
    assert all(b <= a + 1e-12 for a, b in zip(after, after[1:], strict=False))
    assert scales[total] == pytest.approx(floor)
    assert all(s == pytest.approx(floor) for s in scales[total:])  # stays at the floor past the end
    mid = warm + (total - warm) // 2
    progress = (mid - warm) / (total - warm)
    assert scales[mid] == pytest.approx(floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))
    assert min(scales) >= floor - 1e-12


def test_exponential_decays_and_is_floored():
    decay, floor = 0.8, 0.1
    for step in range(40):
        expected = max(decay**step, floor)
        assert lr_scale(step, schedule="exponential", total_steps=10, min_scale=floor, decay=decay) == pytest.approx(
            expected
        )
    assert lr_scale(1000, schedule="exponential", total_steps=10, min_scale=floor, decay=decay) == pytest.approx(floor)
    # with warm-up, the decay starts after it
    assert lr_scale(5, schedule="exponential", total_steps=10, warmup_steps=3, decay=0.5) == pytest.approx(0.25)


def test_none_is_constant():
    assert {lr_scale(s, schedule="none", total_steps=20, min_scale=0.5) for s in range(30)} == {1.0}


def test_unknown_schedule_raises():
    with pytest.raises(ValueError, match="unknown lr schedule"):
        lr_scale(0, schedule="linear", total_steps=10)


@pytest.mark.parametrize(
    "kw",
    [
        {"schedule": "cosine", "total_steps": 20, "warmup_steps": 4, "min_scale": 0.01},
        {"schedule": "exponential", "total_steps": 20, "warmup_steps": 2, "min_scale": 0.2, "decay": 0.7},
        {"schedule": "none", "total_steps": 20, "warmup_steps": 5},
    ],
)
def test_make_scheduler_drives_optimizer_lr(kw):
    base = 0.5
    p = torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.SGD([p], lr=base)
    sched = make_scheduler(opt, **kw)
    seen = []
    for _ in range(25):
        seen.append(opt.param_groups[0]["lr"])
        p.grad = torch.ones(3)
        opt.step()
        sched.step()
    expected = [base * lr_scale(s, **kw) for s in range(25)]
    assert seen == pytest.approx(expected)


# ---------------------------------------------------------------- heads

ARGS = {"hidden": 16, "dropout": 0.0, "contrastive_dim": 6}


@pytest.mark.parametrize(
    "name,cls",
    [
        ("linear", LinearHead),
        ("v1", LinearHead),
        ("v2", ResidualHead),
        ("residual", ResidualHead),
        ("v3", ContrastiveHead),
        ("Contrastive", ContrastiveHead),
    ],
)
def test_build_head_outputs_logits(name, cls):
    torch.manual_seed(0)
    head = build_head(name, 12, 5, ARGS)
    assert type(head) is cls
    x = torch.randn(7, 12)
    head.eval()
    logits, z = head(x)
    assert logits.shape == (7, 5)
    assert z is None


def test_v3_returns_normalised_projection_in_train_mode_only():
    torch.manual_seed(0)
    head = build_head("v3", 12, 4, ARGS)
    x = torch.randn(9, 12)
    head.train()
    logits, z = head(x)
    assert logits.shape == (9, 4)
    assert z.shape == (9, 6)
    assert torch.allclose(z.norm(dim=1), torch.ones(9), atol=1e-5)
    head.eval()
    assert head(x)[1] is None


def test_no_residual_changes_v2_features():
    torch.manual_seed(0)
    res = build_head("v2", 8, 3, {**ARGS, "residual": True})
    nores = build_head("v2", 8, 3, {**ARGS, "residual": False})
    nores.load_state_dict(res.state_dict())
    res.eval(), nores.eval()
    x = torch.randn(5, 8)
    with torch.no_grad():
        f_res, f_nores = res.features(x), nores.features(x)
        tx = res.transform(x)  # the L2-normalised input
        assert torch.allclose(tx, x / x.norm(dim=1, keepdim=True), atol=1e-6)
        assert torch.allclose(f_res, tx + f_nores, atol=1e-6)  # residual = input + block(input)
        assert not torch.allclose(f_res, f_nores, atol=1e-3)
        assert not torch.allclose(res(x)[0], nores(x)[0], atol=1e-3)


def test_unknown_head_raises():
    with pytest.raises(ProdcatError, match="unknown head 'v9'"):
        build_head("v9", 8, 3, {})


def toy_set(seed: int, n: int = 300, dim: int = 10, classes: int = 3):
    """Linearly separable: each class is a tight cloud around its own orthogonal direction."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    centres = np.eye(dim)[:classes] * 3.0
    x = centres[y] + 0.3 * rng.standard_normal((n, dim))
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y)


@pytest.mark.parametrize("name", ["linear", "v2", "v3"])
def test_each_head_learns_a_separable_toy_set(name):
    torch.manual_seed(0)
    xtr, ytr = toy_set(0)
    xte, yte = toy_set(1)
    head = build_head(name, 10, 3, {"hidden": 32, "dropout": 0.1, "contrastive_dim": 8})
    opt = torch.optim.AdamW(head.parameters(), lr=0.05)
    for _ in range(60):
        head.train()
        logits, z = head(xtr)
        loss = classification_loss(logits, ytr)
        if z is not None:
            loss = loss + 0.1 * supcon_loss(z, ytr, 0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
    head.eval()
    with torch.no_grad():
        acc = (head(xte)[0].argmax(1) == yte).float().mean().item()
    assert acc > 0.95


# ---------------------------------------------------------------- input transform


def test_input_transform_centres_per_language_and_skips_unknown():
    t = InputTransform(3, n_languages=2, normalize=False)
    assert t.centring
    means = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, -1.0]])
    t.lang_means.copy_(means)
    x = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [0.5, 0.5, 0.5]])
    lang = torch.tensor([0, 1, -1, 1])
    out = t(x, lang)
    expected = torch.tensor([[0.0, 1.0, 1.0], [1.0, -1.0, 2.0], [1.0, 1.0, 1.0], [0.5, -1.5, 1.5]])
    assert torch.allclose(out, expected)
    with pytest.raises(ValueError):
        t(x)  # a centring transform needs the language ids


def test_input_transform_normalises_after_centring_and_removes_directions():
    t = InputTransform(3, n_languages=1, n_directions=1, normalize=True)
    t.lang_means.copy_(torch.tensor([[0.0, 0.0, 1.0]]))
    t.directions.copy_(torch.tensor([[1.0, 0.0, 0.0]]))
    x = torch.tensor([[2.0, 3.0, 5.0]])
    out = t(x, torch.tensor([0]))
    centred = np.array([2.0, 3.0, 4.0])
    centred[0] = 0.0  # the direction e1 is projected out
    assert torch.allclose(out, torch.tensor(centred / np.linalg.norm(centred), dtype=torch.float32), atol=1e-6)


def test_plain_transform_only_normalises():
    t = InputTransform(4)
    assert not t.centring
    x = torch.tensor([[3.0, 4.0, 0.0, 0.0]])
    assert torch.allclose(t(x), torch.tensor([[0.6, 0.8, 0.0, 0.0]]))
    raw = InputTransform(4, normalize=False)
    assert torch.equal(raw(x), x)


def test_centring_buffers_are_saved_with_the_head():
    head = build_head("v2", 4, 2, {"hidden": 8, "n_centred_languages": 3, "n_removed_directions": 1})
    state = head.state_dict()
    assert state["transform.lang_means"].shape == (3, 4)
    assert state["transform.directions"].shape == (1, 4)


# ---------------------------------------------------------------- language sampling and weights

COUNTS = np.array([600, 300, 100])


def lang_ids_for(counts=COUNTS, extra_unknown: int = 0) -> np.ndarray:
    ids = np.concatenate([np.full(c, i) for i, c in enumerate(counts)] + [np.full(extra_unknown, -1)])
    return np.random.default_rng(0).permutation(ids).astype(np.int64)


def test_sampler_temperature_one_is_a_permutation():
    ids = lang_ids_for()
    s = LanguageSampler(ids, 3, 1.0)
    order = s.epoch_order(np.random.default_rng(5))
    assert np.array_equal(np.sort(order), np.arange(len(ids)))
    assert not np.array_equal(order, np.arange(len(ids)))


def empirical_shares(sampler, ids, epochs=30) -> np.ndarray:
    rng = np.random.default_rng(1)
    drawn = np.concatenate([ids[sampler.epoch_order(rng)] for _ in range(epochs)])
    return np.bincount(drawn[drawn >= 0], minlength=3) / len(drawn)


@pytest.mark.parametrize("temp", [0.0, 0.5])
def test_sampler_temperature_shares(temp):
    ids = lang_ids_for(extra_unknown=20)
    s = LanguageSampler(ids, 3, temp)
    q = COUNTS.astype(float) ** temp
    q /= q.sum()
    assert s.language_share == pytest.approx(q)
    shares = empirical_shares(s, ids)
    assert shares.sum() == pytest.approx(1.0)  # rows of unknown language (-1) are never drawn
    assert shares == pytest.approx(q, abs=0.015)
    if temp == 0.0:
        assert shares == pytest.approx([1 / 3] * 3, abs=0.015)
    # natural frequencies would be 0.6 / 0.3 / 0.1: the flattening is real
    assert shares[2] > 0.15


def test_sampler_draws_rows_uniformly_within_a_language():
    ids = lang_ids_for()
    s = LanguageSampler(ids, 3, 0.0)
    rng = np.random.default_rng(2)
    drawn = np.concatenate([s.epoch_order(rng) for _ in range(30)])
    fr_rows = np.flatnonzero(ids == 2)
    hits = np.bincount(drawn, minlength=len(ids))[fr_rows]
    expected = len(drawn) / 3 / len(fr_rows)
    assert hits.mean() == pytest.approx(expected, rel=0.05)


def test_sample_weights_none_without_options():
    assert sample_weights(np.zeros(4, int), np.zeros(4, int), 2, None, ["en"]) is None


def test_sample_weights_auto():
    ids = lang_ids_for([60, 15, 6])
    labels = np.zeros(len(ids), dtype=np.int64)
    w = sample_weights(labels, ids, 2, "auto", ["en", "de", "fr"])
    per_lang = np.array([1.0, 2.0, math.sqrt(10.0)])  # sqrt(n_max / n_lang)
    raw = per_lang[ids]
    assert w == pytest.approx(raw / raw.mean(), rel=1e-5)
    assert w.mean() == pytest.approx(1.0)
    # the cap at 10
    ids2 = lang_ids_for([1000, 1, 0])
    w2 = sample_weights(np.zeros(len(ids2), np.int64), ids2, 2, parsed("AUTO"), ["en", "de", "fr"])
    assert w2[ids2 == 1][0] / w2[ids2 == 0][0] == pytest.approx(10.0, rel=1e-5)


def test_sample_weights_explicit_pairs():
    ids = lang_ids_for([6, 3, 1])
    w = sample_weights(np.zeros(len(ids), np.int64), ids, 2, parsed("en=1, de=2"), ["en", "de", "fr"])
    raw = np.array([1.0, 2.0, 1.0])[ids]  # fr unlisted: keeps 1
    assert w == pytest.approx(raw / raw.mean(), rel=1e-5)


def parsed(spec):
    """A weights spec as the config validates and converts it."""
    return TrainConfig(lang_loss_weights=spec).lang_loss_weights


@pytest.mark.parametrize(
    "spec,match",
    [
        ("xx=1", "unknown language code 'xx'"),
        ("en", "code=weight"),
        ("en=abc", "not a number"),
        ("en=-1", ">= 0"),
        ("en=inf", "finite"),
    ],
)
def test_bad_language_weights_are_refused_by_the_config(spec, match):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=match):
        parsed(spec)


def test_language_weights_for_a_language_not_in_training_data():
    with pytest.raises(ProdcatError, match="'fr' is not in the training data"):
        sample_weights(np.zeros(2, np.int64), np.array([0, 1]), 2, parsed("fr=2"), ["en", "de"])


def test_lang_class_weights_balance_classes_within_each_language():
    ids = np.array([0, 0, 0, 0, 1, 1, 1])
    labels = np.array([0, 0, 0, 1, 0, 1, 1])
    w = sample_weights(labels, ids, 2, None, ["en", "de"], lang_class_weights=True)
    # en: 4 rows, 2 classes -> class 0: 4/(2*3), class 1: 4/(2*1); de: 3 rows -> 3/(2*1), 3/(2*2)
    raw = np.array([4 / 6, 4 / 6, 4 / 6, 2.0, 1.5, 0.75, 0.75])
    assert w == pytest.approx(raw / raw.mean(), rel=1e-5)


def test_language_statistics_means_and_directions():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 6)).astype(np.float32)
    ids = rng.integers(0, 3, 50)
    means, directions = language_statistics(X, ids, 4, n_directions=2)
    for i in range(3):
        assert means[i] == pytest.approx(X[ids == i].mean(0), abs=1e-5)
    assert np.all(means[3] == 0)  # a language without rows
    assert directions @ directions.T == pytest.approx(np.eye(2), abs=1e-5)


def test_all_zero_language_weights_are_refused_not_nan():
    # regression: these weights used to come back as NaN (w / w.mean() with mean 0)
    ids = np.array([0, 0, 1, 1])
    with pytest.raises(ProdcatError, match="weight"):
        sample_weights(np.zeros(4, np.int64), ids, 2, parsed("en=0,de=0"), ["en", "de"])
    w = sample_weights(np.zeros(4, np.int64), ids, 2, parsed("en=0"), ["en", "de"])  # one language off is fine
    assert np.isfinite(w).all() and w.tolist() == [0.0, 0.0, 2.0, 2.0]
