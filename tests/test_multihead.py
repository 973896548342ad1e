"""Batched trials (`train_many`): stacked heads against single heads, per-trial settings, pruning, results
that load into `build_head`. Uses the learnable synthetic world of test_train.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_train import make_world

from prodcat_pipeline.errors import ProdcatError
from prodcat_pipeline.heads import build_head, head_args
from prodcat_pipeline.multihead import train_many
from prodcat_pipeline.multihead_ops import StackedAdamW, StackedHeads, _dropout_mask, smoothed_ce

DIM, CLASSES, HIDDEN = 24, 4, 32


@pytest.fixture
def world(tmp_path, monkeypatch):
    return make_world(tmp_path, monkeypatch)


def cached_of(cfg):
    from prodcat_pipeline.cache import TRAINING_COLUMNS, open_cache

    return open_cache(cfg, columns=TRAINING_COLUMNS)[0]


def random_heads(kind: str, n: int, dropout: float = 0.0) -> list[torch.nn.Module]:
    heads = []
    for i in range(n):
        torch.manual_seed(100 + i)
        head = build_head(kind, DIM, CLASSES, {"hidden": HIDDEN, "dropout": dropout})
        with torch.no_grad():  # LayerNorm starts at (1, 0): move it so the folded affine is exercised
            for p in head.parameters():
                p.add_(0.1 * torch.randn_like(p))
        heads.append(head)
    return heads


# ---------------------------------------------------------------- the stacked maths against single heads


@pytest.mark.parametrize("kind", ["linear", "v2"])
def test_stacked_forward_and_backward_match_single_heads(kind):
    heads = random_heads(kind, 3)
    stacked = StackedHeads.from_states(kind, [h.state_dict() for h in heads])
    x = torch.randn(40, DIM)
    y = torch.randint(0, CLASSES, (40,))
    w = torch.rand(40)
    smoothing = torch.tensor([0.0, 0.1, 0.3])
    xt = heads[0].transform(x)
    z = stacked.forward(xt)
    loss, dz = smoothed_ce(z, y, smoothing, w)
    grads = stacked.backward(dz)
    from prodcat_pipeline.losses import classification_loss

    for t, head in enumerate(heads):
        head.eval()
        logits, _ = head(x)
        torch.testing.assert_close(z[t].T, logits, rtol=1e-4, atol=1e-5)
        ref = classification_loss(logits, y, label_smoothing=float(smoothing[t]), weight=w)
        ref.backward()
        torch.testing.assert_close(loss[t], ref.detach(), rtol=1e-5, atol=1e-6)
        for name, p in head.named_parameters():
            torch.testing.assert_close(grads[name][t], p.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_adamw_with_a_rate_per_trial_matches_torch_adamw():
    heads = random_heads("v2", 2)
    stacked = StackedHeads.from_states("v2", [h.state_dict() for h in heads])
    opt = StackedAdamW(stacked.params)
    lrs, decays = [1e-2, 3e-3], [0.0, 0.05]
    refs = [
        torch.optim.AdamW(h.parameters(), lr=lr, weight_decay=wd) for h, lr, wd in zip(heads, lrs, decays, strict=True)
    ]
    for _ in range(3):
        grads = {k: torch.randn_like(v) for k, v in stacked.params.items()}
        opt.step(stacked.params, grads, lrs, decays)
        for t, (head, ref) in enumerate(zip(heads, refs, strict=True)):
            for name, p in head.named_parameters():
                p.grad = grads[name][t].clone()
            ref.step()
    for t, head in enumerate(heads):
        for name, p in head.named_parameters():
            torch.testing.assert_close(stacked.params[name][t], p.detach(), rtol=1e-5, atol=1e-7, msg=name)


def test_adamw_step_counts_live_with_the_parameters():
    """torch's fused AdamW reads the step counts on the parameters' device (CUDA parameters: CUDA counts)."""
    params = {"w": torch.zeros(2, 3, device="meta"), "b": torch.zeros(2, device="meta")}
    assert [s.device.type for s in StackedAdamW(params).steps] == ["meta", "meta"]


def test_dropout_masks_per_trial():
    torch.manual_seed(0)
    mask = _dropout_mask(np.array([0.0, 0.25, 0.5]), torch.empty(3, 64, 512))
    assert torch.equal(mask[0], torch.ones(64, 512))
    for t, p in ((1, 0.25), (2, 0.5)):
        kept = mask[t] > 0
        assert abs(kept.float().mean().item() - (1 - p)) < 0.01
        torch.testing.assert_close(mask[t][kept], torch.full((int(kept.sum()),), 1 / (1 - p)))
    assert _dropout_mask(np.zeros(2), torch.empty(2, 4, 4)) is None


# ---------------------------------------------------------------- train_many end to end


def test_trials_match_a_normal_run_and_results_load_into_build_head(world):
    """Three identical v2 trials: trial 0 starts like `train` and ends close to it; the others (other init
    seeds) differ but learn as well; every head_state loads into build_head and scores its best_score."""
    from prodcat_pipeline import train
    from prodcat_pipeline.inference import evaluate_head

    cfg = world.config(head="v2", epochs=4, classifier_dropout=0.1, label_smoothing=0.05)
    cached = cached_of(cfg)
    normal = train(cfg, out=world.tmp / "normal", cached=cached).metrics["validation"]["macro_f1"]
    results = train_many(cfg, [{}, {}, {}], cached=cached)
    assert [len(r.history) for r in results] == [4, 4, 4]
    assert abs(results[0].best_score - normal) < 0.05, (results[0].best_score, normal)
    assert min(r.best_score for r in results) > 0.6  # 4 classes: chance is 0.25
    assert not torch.equal(results[0].head_state["classifier.weight"], results[1].head_state["classifier.weight"])

    from prodcat_pipeline.training_data import build_training_data

    rows = build_training_data(cached, cfg.train, "cpu").eval_set("validation")
    for r in results:
        head = build_head(r.config.head, cached.dim, len(cached.label_names), r.head_args)
        head.load_state_dict(r.head_state)  # strict: exactly the keys and shapes of a normal head
        metrics = evaluate_head(head, rows, cached.label_names, "cpu", lang_metrics=False)[0]
        assert metrics["macro_f1"] == pytest.approx(r.best_score, abs=1e-9)
        assert metrics["micro_f1"] == pytest.approx(r.best_micro, abs=1e-9)
        assert r.best_epoch == max(r.history, key=lambda h: h["val_macro_f1"])["epoch"]


def test_linear_trial_follows_the_normal_trainer_step_for_step(world):
    """No dropout: trial 0 takes the same batches, init and updates as `train`, so the heads agree."""
    from prodcat_pipeline import train
    from prodcat_pipeline.checkpoint import read_checkpoint

    cfg = world.config(head="linear", epochs=3, lr=0.05, weight_decay=0.05)
    cached = cached_of(cfg)
    train(cfg, out=world.tmp / "normal", cached=cached)
    best = read_checkpoint(world.tmp / "normal" / "best.pt")
    r = train_many(cfg, [{}, {"lr": 0.01}], cached=cached)[0]
    assert r.best_epoch == best["state"]["best_epoch"]
    assert r.best_score == pytest.approx(best["state"]["best_score"], abs=1e-9)
    for k, v in best["head_state"].items():
        torch.testing.assert_close(r.head_state[k], v, rtol=1e-4, atol=1e-5, msg=k)


def test_per_trial_learning_rate_and_epochs(world):
    cfg = world.config(head="v2", epochs=3, weight_decay=0.0)
    cached = cached_of(cfg)
    trials = [{"lr": 3e-2}, {"lr": 1e-9, "epochs": 2}, {"lr": 3e-2, "classifier_dropout": 0.5, "label_smoothing": 0.2}]
    results = train_many(cfg, trials, cached=cached)
    assert [len(r.history) for r in results] == [3, 2, 3]
    assert results[1].config.epochs == 2 and results[2].config.classifier_dropout == 0.5
    torch.manual_seed(cfg.train.seed + 1)  # trial 1's initial weights
    init = build_head("v2", cached.dim, len(cached.label_names), results[1].head_args).state_dict()
    for k, v in results[1].head_state.items():  # lr ~ 0: the head has not moved (or kept its init as best)
        torch.testing.assert_close(v, init[k], rtol=0, atol=1e-6, msg=k)
    moved = (results[0].head_state["block.1.weight"] - init["block.1.weight"]).abs().max()
    assert moved > 1e-3
    assert results[0].best_score > 0.6 and results[2].best_score > 0.6


def test_pruning_stops_updates(world):
    """Trial 1 is pruned after epoch 1: it stops training, keeps its epoch-1 head, and the others train on
    exactly as they would have without it (linear: no dropout, so nothing else couples the trials)."""
    cfg = world.config(head="linear", epochs=3, lr=0.05, lr_schedule="none")  # the same lr in every epoch
    cached = cached_of(cfg)
    seen = []

    def on_epoch(epoch, scores):
        seen.append(list(scores))
        return [False, epoch == 1, False]

    pruned = train_many(cfg, [{}, {"lr": 0.02}, {"lr": 0.1}], cached=cached, on_epoch=on_epoch)
    assert seen[0][1] is not None and seen[1][1] is None and seen[2][1] is None
    assert [r.pruned for r in pruned] == [False, True, False]
    assert [len(r.history) for r in pruned] == [3, 1, 3]
    finished = train_many(cfg, [{}, {"lr": 0.02, "epochs": 1}, {"lr": 0.1}], cached=cached)
    assert not finished[1].pruned
    for k in pruned[1].head_state:  # pruned after epoch 1 = trained for 1 epoch
        torch.testing.assert_close(pruned[1].head_state[k], finished[1].head_state[k], rtol=1e-4, atol=1e-6)
    alone = train_many(cfg, [{}], cached=cached)[0]  # trial 0 without any company
    assert [h["val_macro_f1"] for h in pruned[0].history] == pytest.approx(
        [h["val_macro_f1"] for h in alone.history], abs=1e-9
    )
    for k in alone.head_state:
        torch.testing.assert_close(pruned[0].head_state[k], alone.head_state[k], rtol=1e-4, atol=1e-6)
    assert pruned[1].seconds < pruned[0].seconds


def test_group_checks(world):
    cfg = world.config(head="v2", epochs=1)
    cached = cached_of(cfg)
    with pytest.raises(ProdcatError, match="share train.classifier_hidden"):
        train_many(cfg, [{}, {"classifier_hidden": 64}], cached=cached)
    with pytest.raises(ProdcatError, match="trial 1: unknown key 'train.lrr'"):
        train_many(cfg, [{}, {"lrr": 0.1}], cached=cached)
    with pytest.raises(ProdcatError, match="trial 0 sets 'head'"):
        train_many(cfg, [{"head": "linear"}], cached=cached)
    with pytest.raises(NotImplementedError, match="head=v3"):
        train_many(world.config(head="v3"), [{}], cached=cached)
    with pytest.raises(ProdcatError, match="one bool per trial"):
        train_many(cfg, [{}, {}], cached=cached, on_epoch=lambda e, s: [True])
    with pytest.raises(ProdcatError, match="share train.device"):  # one group trains on one device
        train_many(cfg, [{}, {"device": "cuda"}], cached=cached)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where CUDA is absent")
def test_train_device_is_honoured_like_train(world):
    """train.device reaches the batched trials (it was ignored: they trained on the CPU whatever it said)."""
    from prodcat_pipeline import train

    cfg = world.config(head="linear", epochs=1, device="cuda")
    cached = cached_of(cfg)
    with pytest.raises(ProdcatError) as normal:
        train(cfg, out=world.tmp / "normal", cached=cached)
    with pytest.raises(ProdcatError) as many:
        train_many(cfg, [{}, {"lr": 0.1}], cached=cached)
    assert str(many.value) == str(normal.value) and "no cuda device is available" in str(many.value)


def test_a_shared_training_data_view_gives_the_same_trials(world, monkeypatch):
    """tune builds the training data once per head and passes it to every group: same results, and the
    input transform is fitted once; data built for other settings is refused."""
    import prodcat_pipeline.trainer as trainer
    from prodcat_pipeline.training_data import build_training_data

    cfg = world.config(head="v2", epochs=2, lang_centering=True, classifier_dropout=0.1)
    cached = cached_of(cfg)
    trials = [{}, {"lr": 3e-3, "label_smoothing": 0.1}]
    alone = train_many(cfg, trials, cached=cached)
    fits, fit = [], trainer._fit_input_transform
    monkeypatch.setattr(trainer, "_fit_input_transform", lambda *a: fits.append(1) or fit(*a))
    data = build_training_data(cached, cfg.for_head().train, "cpu")
    for _ in range(2):
        shared = train_many(cfg, trials, cached=cached, data=data)
        for a, b in zip(alone, shared, strict=True):
            assert [h["val_macro_f1"] for h in a.history] == [h["val_macro_f1"] for h in b.history]
            assert all(torch.equal(a.head_state[k], b.head_state[k]) for k in a.head_state)
    assert len(fits) == 1
    with pytest.raises(ProdcatError, match="other settings"):
        train_many(world.config(head="v2", epochs=1, lang_class_weights=True), [{}], cached=cached, data=data)


def test_a_trial_written_as_a_run_is_what_train_writes(world, monkeypatch):
    """run_folder.write_head_run: the checkpoint metadata of `train`, best.pt's loop state as `train` saves
    it (at the best epoch), train_seconds the training passes alone, evaluated under train.amp's autocast."""
    import types

    import prodcat_pipeline.inference as inference
    import prodcat_pipeline.multihead as multihead
    from prodcat_pipeline import train
    from prodcat_pipeline.checkpoint import read_checkpoint
    from prodcat_pipeline.run_folder import write_head_run

    cfg = world.config(head="linear", epochs=3, lr=0.05, amp=True)
    cached = cached_of(cfg)
    normal = train(cfg, out=world.tmp / "normal", cached=cached)
    clock = iter(range(1000))  # every epoch: 1 s of training and 1 s of evaluation for the group
    monkeypatch.setattr(multihead, "time", types.SimpleNamespace(perf_counter=lambda: float(next(clock))))
    r = train_many(cfg, [{}, {"lr": 0.01}], cached=cached)[0]
    assert [h["seconds"] for h in r.history] == [0.5, 0.5, 0.5] and r.seconds == 3.0  # 2 trials share the group
    amp = []
    evaluate = inference.evaluate_head
    monkeypatch.setattr(
        inference, "evaluate_head", lambda *a, **kw: amp.append(kw.get("amp_dtype")) or evaluate(*a, **kw)
    )
    metrics = write_head_run(world.tmp / "trial", cfg.for_head(), cached, r)
    assert amp == [torch.bfloat16, torch.bfloat16]  # validation and test, as `train` evaluates them
    assert metrics["train_seconds"] == 1.5  # the training passes, not the evaluations
    timing = {"first_step_seconds", "first_step_at", "wall_seconds"}
    assert set(metrics) == (set(normal.metrics) - timing) | {"trained"}
    ours, theirs = read_checkpoint(world.tmp / "trial" / "best.pt"), read_checkpoint(world.tmp / "normal" / "best.pt")
    assert {k: v for k, v in ours.items() if k not in ("head_state", "state")} == {
        k: v for k, v in theirs.items() if k not in ("head_state", "state")
    }
    state = ours["state"]
    assert state["epoch"] == state["best_epoch"] == r.best_epoch and state["bad_epochs"] == 0
    assert state["history"] == r.history[: r.best_epoch] and state["best_score"] == r.best_score
    assert set(state) == set(theirs["state"])


@pytest.mark.parametrize("options", [{"lang_centering": True}, {"lang_align": True, "lang_centering": True}])
def test_language_transforms_travel_with_the_head(world, options):
    from prodcat_pipeline.inference import evaluate_head
    from prodcat_pipeline.training_data import build_training_data

    cfg = world.config(head="v2", epochs=2, **options)
    cached = cached_of(cfg)
    r = train_many(cfg, [{"classifier_dropout": 0.2}], cached=cached)[0]
    assert r.head_args == head_args(r.config, 3)
    assert r.head_state["transform.lang_means"].abs().sum() > 0  # the fitted centring is in the head's state
    head = build_head("v2", cached.dim, len(cached.label_names), r.head_args)
    head.load_state_dict(r.head_state)
    rows = build_training_data(cached, cfg.train, "cpu").eval_set("validation")
    metrics = evaluate_head(head, rows, cached.label_names, "cpu", lang_metrics=False)[0]
    assert metrics["macro_f1"] == pytest.approx(r.best_score, abs=1e-9)


def test_bf16_products_stay_close_to_float32(world):
    heads = random_heads("v2", 2)
    states = [h.state_dict() for h in heads]
    fp32, bf16 = (
        StackedHeads.from_states("v2", states),
        StackedHeads.from_states("v2", states, compute_dtype=torch.bfloat16),
    )
    x = torch.nn.functional.normalize(torch.randn(64, DIM), dim=1)
    y = torch.randint(0, CLASSES, (64,))
    grads = []
    for stacked in (fp32, bf16):
        z = stacked.forward(x)
        grads.append({k: v.clone() for k, v in stacked.backward(smoothed_ce(z, y, torch.zeros(2))[1]).items()})
        assert z.dtype == torch.float32
    for k, g in grads[0].items():
        assert (grads[1][k] - g).norm() <= 0.05 * g.norm() + 1e-6, k
    cfg = world.config(head="v2", epochs=3, amp=True)
    assert min(r.best_score for r in train_many(cfg, [{}, {"lr": 1e-2}], cached=cached_of(cfg))) > 0.6
