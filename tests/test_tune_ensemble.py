"""The LogisticRegression baseline, ensembles of runs, and `prodcat tune` (on the small synthetic world)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import yaml
from test_knn_predict_run import assert_one_error_line, invoke
from test_train import World, make_world

from prodcat_pipeline.errors import ProdcatError


@pytest.fixture
def world(tmp_path, monkeypatch) -> World:
    monkeypatch.chdir(tmp_path)
    return make_world(tmp_path, monkeypatch)


def test_macro_f1_fast_equals_sklearn():
    from sklearn.metrics import f1_score

    from prodcat_pipeline.metrics import macro_f1_fast

    rng = np.random.default_rng(0)
    for n in (2, 5, 9):
        y, p = rng.integers(0, n, 300), rng.integers(0, n - 1, 300)  # a class never predicted
        assert macro_f1_fast(y, p, n) == pytest.approx(f1_score(y, p, average="macro"))


def test_logreg_baseline_is_sklearn_with_c_chosen_on_validation(world):
    from sklearn.linear_model import LogisticRegression

    from prodcat_pipeline.baselines import logistic_regression
    from prodcat_pipeline.cache import open_cache
    from prodcat_pipeline.metrics import macro_f1_fast

    cfg = world.config()
    cached, _ = open_cache(cfg)
    m = logistic_regression(cached, cfg, Cs=(0.01, 10.0))
    X, y = cached.split_arrays("train")
    Xv, yv = cached.split_arrays("validation")
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    scores = {C: macro_f1_fast(yv, LogisticRegression(C=C, max_iter=2000).fit(unit(X), y).predict(unit(Xv)), len(cached.label_names))
              for C in (0.01, 10.0)}  # fmt: skip
    assert m["C"] == max(scores, key=scores.get)
    assert m["validation"]["macro_f1"] == pytest.approx(scores[m["C"]])
    assert m["head"] == "logreg" and "test" in m and m["train_rows"] == len(y)


def test_greedy_weights_combine_complementary_members():
    from prodcat_pipeline.ensembles import greedy_weights

    y = np.array([0, 1, 2, 0, 1, 2])

    def member(sure_rows):  # sure and right on `sure_rows`; elsewhere leaning wrong, the truth a close second
        p = np.zeros((6, 3))
        for i, label in enumerate(y):
            wrong = (label + 1) % 3
            p[i, label], p[i, wrong] = (0.7, 0.15) if i in sure_rows else (0.35, 0.4)
            p[i, 3 - label - wrong] = 1 - p[i].sum()
        return p

    a, b = member({0, 1, 2}), member({3, 4, 5})
    c = np.full((6, 3), 1 / 3)
    w = greedy_weights([a, b, c], y, 3)
    assert w.sum() == pytest.approx(1.0) and w[0] > 0 and w[1] > 0
    avg = w[0] * a + w[1] * b + w[2] * c
    assert (avg.argmax(1) == y).mean() >= max((a.argmax(1) == y).mean(), (b.argmax(1) == y).mean())


def _two_runs(world):
    from prodcat_pipeline import train
    from prodcat_pipeline.knn import knn_eval

    train(world.config(head="linear", epochs=2), out=world.tmp / "runs" / "linear")
    knn_eval(world.config(), out=world.tmp / "runs" / "knn")
    return [world.tmp / "runs" / "linear", world.tmp / "runs" / "knn"]


def test_ensemble_folder_predicts_the_weighted_average(world):
    from prodcat_pipeline.ensembles import ensemble
    from prodcat_pipeline.models import open_run
    from prodcat_pipeline.predictor import Predictor

    runs = _two_runs(world)
    res = ensemble(runs, out=world.tmp / "ens")
    spec = json.loads((world.tmp / "ens" / "ensemble.json").read_text())
    assert [m["name"] for m in spec["members"]] == ["linear", "knn"]
    assert (world.tmp / "ens" / "members" / "linear" / "best.pt").exists()
    assert not (world.tmp / "ens" / "members" / "linear" / "last.pt").exists()
    assert res.metrics["validation"]["macro_f1"] >= 0.0 and "test" in res.metrics
    titles = world.split("test")["text"][:5]
    got = Predictor(world.tmp / "ens").predict(titles, top_k=3)
    members = [Predictor(r).predict(titles, top_k=3) for r in runs]
    w = [spec["members"][i]["weight"] for i in range(2)]
    for i, row in enumerate(got):
        expect = {}
        for wi, m in zip(w, members, strict=True):
            for t in m[i]["top_k"]:
                expect[t["label"]] = expect.get(t["label"], 0) + wi * t["probability"]
        assert row["probability"] == pytest.approx(expect[row["label"]], abs=1e-5)
    assert open_run(world.tmp / "ens").kind == "ensemble"


def test_ensemble_refuses_bad_members(world):
    runs = _two_runs(world)
    r = invoke(["ensemble", "--runs", runs[0]])
    assert_one_error_line(r, "at least two")
    r = invoke(["ensemble", "--runs", f"{runs[0]},{world.tmp / 'nowhere'}"])
    assert_one_error_line(r, "not found")
    r = invoke(["ensemble", "--runs", f"{runs[0]},{world.tmp}"])
    assert_one_error_line(r, "holds no model")
    (world.tmp / "ens").mkdir()
    (world.tmp / "ens" / "ensemble.json").write_text('{"format": "prodcat-ensemble/1", "members": '
                                                      '[{"path": "../runs/linear", "weight": 1}]}')  # fmt: skip
    r = invoke(["predict", "--run", world.tmp / "ens"], input="shoes\n")
    assert_one_error_line(r, "leaves the ensemble folder")


@pytest.mark.parametrize("parallel", [1, 3], ids=["one-by-one", "batched"])
def test_tune_writes_trials_plot_runs_and_a_best_that_predicts(world, parallel):
    from prodcat_pipeline.config import HEAD_DEFAULTS, load_config
    from prodcat_pipeline.predictor import Predictor
    from prodcat_pipeline.tuner import tune

    cfg = load_config(overrides={"data.path": str(world.data), "cache.dir": str(world.cache_dir),
                                 "train.batch_size": 32, "train.lang_min_samples": 3, "tune.heads": "linear,knn",
                                 "tune.trials": 3, "tune.ensemble": True, "tune.parallel": parallel,
                                 "tune.space": {"linear": {"epochs": {"low": 2, "high": 4}}}})  # fmt: skip
    res = tune(cfg, out=world.tmp / "tune")
    out = world.tmp / "tune"
    rows = list(csv.DictReader(open(out / "trials.csv")))
    linear = [r for r in rows if r["head"] == "linear"]
    assert len(linear) == 3 and {int(r["epochs"]) for r in linear} <= {2, 3, 4}
    best_linear = max((r for r in linear if r["val_macro_f1"]), key=lambda r: float(r["val_macro_f1"]))
    run = json.loads((out / "linear" / "metrics.json").read_text())  # the best trial's own weights, evaluated
    assert run["validation"]["macro_f1"] == pytest.approx(float(best_linear["val_macro_f1"]), abs=1e-4)
    assert float(best_linear["val_micro_f1"]) == pytest.approx(run["validation"]["micro_f1"], abs=1e-4)
    assert float(linear[0]["lr"]) == HEAD_DEFAULTS["linear"]["lr"]  # trial 0: the head's defaults
    assert len([r for r in rows if r["head"] == "knn"]) == 5 * 6  # the whole k x temperature grid
    assert (out / "tune.png").stat().st_size > 1000
    assert {r["head"] for r in res.rows} == {"linear", "knn", "ensemble", "logreg"}
    best = max((r for r in res.rows if r["head"] != "logreg"), key=lambda r: r["val_macro_f1"])
    assert res.best == best["head"]
    metrics = json.loads((out / "best" / "metrics.json").read_text())
    assert metrics["validation"]["macro_f1"] == pytest.approx(res.best_val_macro_f1) and "test" in metrics
    assert not list((out / "best").rglob("last.pt"))
    pred = Predictor(out / "best").predict(world.split("test")["text"][:3])
    assert len(pred) == 3 and all(p["label"] in metrics["label_names"] for p in pred)


@pytest.mark.parametrize(
    "space, needle",
    [
        ({"v2": {"lrr": 0.1}}, "tune.space.v2.lrr"),
        ({"v2": {"lr": {"low": 1, "high": 0.1}}}, "low <= high"),
        ({"v2": {"classifier_dropout": [0.2, 1.5]}}, "tune.space.v2.classifier_dropout"),
        ({"knn": {"k": [0, 5]}}, "positive"),
        ({"v9": {"lr": 0.1}}, "unknown head"),
    ],
)
def test_tune_space_is_validated(world, space, needle):
    (world.tmp / "pipeline.yaml").write_text(yaml.safe_dump({"tune": {"space": space}}))
    r = invoke(["tune", "--data", world.data, "--cache-dir", world.cache_dir])
    assert_one_error_line(r, needle)


def test_tune_fixed_setting_and_cli(world):
    doc = {"train": {"batch_size": 32, "lang_min_samples": 3},
           "tune": {"space": {"linear": {"epochs": 2, "label_smoothing": [0.0, 0.1]}}}}  # fmt: skip
    (world.tmp / "pipeline.yaml").write_text(yaml.safe_dump(doc))
    r = invoke(["tune", "--data", world.data, "--cache-dir", world.cache_dir, "--heads", "linear",
                "--trials", "2", "--out", world.tmp / "t"])  # fmt: skip
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(open(world.tmp / "t" / "trials.csv")))
    assert [r["epochs"] for r in rows] == ["2", "2"] and {r["label_smoothing"] for r in rows} <= {"0.0", "0", "0.1"}
    assert "best: linear" in r.output


def test_tune_searching_a_shape_parameter_trains_trials_one_by_one(world):
    """Batched trials share one shape: a searched classifier_hidden must not be batched (nor crash)."""
    from prodcat_pipeline.config import load_config
    from prodcat_pipeline.tuner import tune

    cfg = load_config(overrides={"data.path": str(world.data), "cache.dir": str(world.cache_dir),
                                 "train.batch_size": 32, "train.lang_min_samples": 3, "tune.heads": "v2",
                                 "tune.trials": 3, "tune.parallel": 8,
                                 "tune.space": {"v2": {"epochs": 2, "classifier_hidden": [8, 16]}}})  # fmt: skip
    tune(cfg, out=world.tmp / "tune")
    rows = list(csv.DictReader(open(world.tmp / "tune" / "trials.csv")))
    assert len(rows) == 3 and {r["classifier_hidden"] for r in rows} <= {"8", "16"}
    run = yaml.safe_load((world.tmp / "tune" / "v2" / "config.yaml").read_text())
    best = max(rows, key=lambda r: float(r["val_macro_f1"] or 0))
    assert str(run["train"]["classifier_hidden"]) == best["classifier_hidden"]


def test_tune_space_fixing_a_setting_batching_lacks_trains_one_by_one(world):
    """A fixed value of tune.space counts like the config's own: grad_accum=2 (which `train` has and batched
    trials have not) sends the trials through the trainer instead of failing inside the batched pass."""
    from prodcat_pipeline.config import TrainConfig, load_config
    from prodcat_pipeline.multihead import unsupported_options
    from prodcat_pipeline.tuner import tune

    assert unsupported_options(TrainConfig(head="linear", grad_accum=2)) == ["grad_accum"]
    cfg = load_config(overrides={"data.path": str(world.data), "cache.dir": str(world.cache_dir),
                                 "train.batch_size": 32, "train.lang_min_samples": 3, "tune.heads": "linear",
                                 "tune.trials": 2, "tune.parallel": 4,
                                 "tune.space": {"linear": {"epochs": 2, "grad_accum": 2}}})  # fmt: skip
    tune(cfg, out=world.tmp / "tune")
    rows = list(csv.DictReader(open(world.tmp / "tune" / "trials.csv")))
    assert len(rows) == 2 and {r["state"] for r in rows} == {"complete"} and {r["grad_accum"] for r in rows} == {"2"}
    run = yaml.safe_load((world.tmp / "tune" / "linear" / "config.yaml").read_text())
    assert run["train"]["grad_accum"] == 2


def test_tune_needs_a_validation_split(world, tmp_path):
    from test_train import write_parquet

    cols = {k: list(v) for k, v in world.columns.items()}
    cols["split"] = ["train" if s == "validation" else s for s in cols["split"]]
    data = write_parquet(tmp_path / "noval.parquet", cols)
    r = invoke(["tune", "--data", data, "--cache-dir", world.cache_dir, "--heads", "knn"])
    assert_one_error_line(r, "validation split")


def test_run_has_a_logreg_row(world):
    from prodcat_pipeline.pipeline import run

    cfg = world.config(epochs=1)
    cfg.heads, cfg.out = ["linear"], str(world.tmp / "run")
    res = run(cfg)
    heads = [r["head"] for r in res.rows]
    assert heads == ["linear", "knn", "logreg"]
    with pytest.raises(ProdcatError):
        from prodcat_pipeline.ensembles import ensemble

        ensemble([world.tmp / "run" / "linear"], out=world.tmp / "e")
