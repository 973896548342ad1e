"""k-NN: the exp(cos/T) vote, choosing k and T on validation, knn.json and load_knn."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from test_knn_predict_run import assert_one_error_line, invoke
from test_train import World, make_world, write_parquet

from prodcat_pipeline.errors import ProdcatError
from prodcat_pipeline.knn import (
    FALLBACK_K,
    FALLBACK_T,
    K_CANDIDATES,
    T_CANDIDATES,
    KnnClassifier,
    knn_eval,
    load_knn,
    select_k_temperature,
)


@pytest.fixture
def world(tmp_path, monkeypatch) -> World:
    return make_world(tmp_path, monkeypatch)


def unit(deg: float) -> np.ndarray:
    return np.array([math.cos(math.radians(deg)), math.sin(math.radians(deg))], np.float32)


def test_softmax_vote_equals_hand_computation():
    X = np.stack([unit(0), unit(30), unit(60), unit(180)])
    y = np.array([0, 1, 0, 2])
    clf = KnnClassifier(k=3, temperature=0.1).fit(X, y, n_classes=4)  # class 3 has no train row
    proba = clf.predict_proba(unit(10)[None] * 5.0)  # length does not matter: cosine
    c = [math.cos(math.radians(a)) for a in (10, 20, 50)]  # the 3 nearest: 0 deg (0), 30 deg (1), 60 deg (0)
    votes = np.array([math.exp(c[0] / 0.1) + math.exp(c[2] / 0.1), math.exp(c[1] / 0.1), 0.0, 0.0])
    assert proba.dtype == np.float32 and proba.shape == (1, 4)
    assert proba[0] == pytest.approx(votes / votes.sum(), rel=1e-5)
    # k beyond the train size: every train row votes; a tiny temperature neither overflows nor loses the vote
    everyone = KnnClassifier(k=10, temperature=1.0).fit(X, y, n_classes=4).predict_proba(unit(10)[None])[0]
    sims = [math.cos(math.radians(a)) for a in (10, 20, 50, 170)]
    hand = np.array([math.exp(sims[0]) + math.exp(sims[2]), math.exp(sims[1]), math.exp(sims[3]), 0.0])
    assert everyone == pytest.approx(hand / hand.sum(), rel=1e-5)
    sharp = KnnClassifier(k=3, temperature=1e-4).fit(X, y, n_classes=4).predict_proba(unit(10)[None])[0]
    assert np.isfinite(sharp).all() and sharp == pytest.approx([1, 0, 0, 0])


def blocks(n_queries: int, wrong: int, right: int, cos_wrong: float, cos_right: float):
    """Validation queries in orthogonal blocks: each has `wrong` train rows of the other class at cosine
    `cos_wrong`, then `right` of its own class at `cos_right`; every other train row is at cosine 0."""
    per = wrong + right
    dim = n_queries * (per + 1)
    X, y, Q, yq = [], [], np.zeros((n_queries, dim), np.float32), np.arange(n_queries) % 2
    for i in range(n_queries):
        base = i * (per + 1)
        Q[i, base] = 1
        for j in range(per):
            cos, label = (cos_wrong, 1 - yq[i]) if j < wrong else (cos_right, yq[i])
            v = np.zeros(dim, np.float32)
            v[base], v[base + 1 + j] = cos, math.sqrt(1 - cos**2)
            X.append(v), y.append(label)
    return np.stack(X), np.array(y), Q, yq


def test_selection_finds_the_known_best_pair():
    # 4 wrong neighbours at 0.9 before 6 right ones at 0.85: k=5 always loses; k=10 wins only when the vote
    # is flat enough, 6 exp(0.85/T) > 4 exp(0.9/T), i.e. T > 0.123: T=0.2 of the candidates
    X, y, Q, yq = blocks(8, wrong=4, right=6, cos_wrong=0.9, cos_right=0.85)
    clf = KnnClassifier().fit(X, y, n_classes=2)
    k, t, table = select_k_temperature(clf, Q, yq)
    assert (k, t) == (10, 0.2)
    assert len(table) == len(K_CANDIDATES) * len(T_CANDIDATES)
    assert {(r["k"], r["temperature"]) for r in table if r["macro_f1"] == 1.0} >= {(10, 0.2), (20, 0.2)}
    assert all(r["macro_f1"] < 1.0 for r in table if r["k"] == 5 or r["temperature"] < 0.2)
    assert (clf.k, clf.temperature) == (FALLBACK_K, FALLBACK_T)  # selection does not change the classifier
    # k alone with a flat vote: uniform weighting searches no temperature
    uniform = KnnClassifier(weighting="uniform").fit(X, y, n_classes=2)
    k, t, table = select_k_temperature(uniform, Q, yq, ks=(5, 10, 20))
    assert (k, t) == (10, FALLBACK_T) and len(table) == 3


def test_selection_table_matches_brute_force():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(3)
    centres = rng.standard_normal((3, 8))
    y, yv = rng.integers(0, 3, 60), rng.integers(0, 3, 30)
    X = (centres[y] + 1.5 * rng.standard_normal((60, 8))).astype(np.float32)
    V = (centres[yv] + 1.5 * rng.standard_normal((30, 8))).astype(np.float32)
    k, t, table = select_k_temperature(KnnClassifier().fit(X, y), V, yv, ks=(1, 5, 20, 100), temperatures=(0.05, 1.0))
    assert {r["k"] for r in table} == {1, 5, 20, 60}  # capped at the train size
    a, q = X / np.linalg.norm(X, axis=1, keepdims=True), V / np.linalg.norm(V, axis=1, keepdims=True)
    sims = q @ a.T
    order = np.argsort(-sims, axis=1)
    for row in table:
        pred = []
        for i in range(len(q)):
            votes = np.zeros(3)
            for j in order[i, : row["k"]]:
                votes[y[j]] += math.exp(sims[i, j] / row["temperature"])
            pred.append(votes.argmax())
        assert row["macro_f1"] == pytest.approx(f1_score(yv, pred, average="macro"))
        assert row["micro_f1"] == pytest.approx(f1_score(yv, pred, average="micro"))
    best = max(r["macro_f1"] for r in table)
    assert min(r["k"] for r in table if r["macro_f1"] == best) == k  # ties go to the smaller k


def test_knn_eval_chooses_on_validation_and_keeps_what_is_set(world):
    cfg = world.config()
    res = knn_eval(cfg, out=world.tmp / "auto")
    m = json.loads((world.tmp / "auto" / "metrics.json").read_text())["knn"]
    assert (m["k_chosen_by"], m["temperature_chosen_by"]) == ("validation", "validation")
    assert m["k"] in K_CANDIDATES and m["temperature"] in T_CANDIDATES and len(m["validation_search"]) == 30
    best = max(r["macro_f1"] for r in m["validation_search"])
    assert best == pytest.approx(res.metrics["validation"]["macro_f1"])  # validation reuses the search
    assert (res.classifier.k, res.classifier.temperature) == (m["k"], m["temperature"])

    cfg.knn.k = 7
    m = knn_eval(cfg, out=world.tmp / "k7").metrics["knn"]
    assert (m["k"], m["k_chosen_by"], m["temperature_chosen_by"]) == (7, "set", "validation")
    assert {r["k"] for r in m["validation_search"]} == {7}
    cfg.knn.temperature = 0.05
    m = knn_eval(cfg, out=world.tmp / "both").metrics["knn"]
    assert (m["k"], m["temperature"], m["k_chosen_by"], m["temperature_chosen_by"]) == (7, 0.05, "set", "set")
    assert "validation_search" not in m


def test_a_set_k_above_the_train_size_is_reported_as_set(world):
    cfg = world.config()
    cfg.knn.k = 5000  # more than the train split has rows: the search caps its candidates, the report does not
    m = knn_eval(cfg, out=world.tmp / "big").metrics["knn"]
    assert (m["k"], m["k_chosen_by"], m["temperature_chosen_by"]) == (5000, "set", "validation")
    cfg.knn.temperature = 0.05
    both = knn_eval(cfg, out=world.tmp / "both").metrics
    assert (both["knn"]["k"], both["knn"]["k_chosen_by"]) == (5000, "set")


def test_a_knn_run_with_a_bad_knn_json_fails_before_opening_the_cache(world, monkeypatch):
    from prodcat_pipeline import reader
    from prodcat_pipeline.models import open_run

    out = world.tmp / "knn"
    knn_eval(world.config(), out=out)
    doc = json.loads((out / "knn.json").read_text())
    (out / "knn.json").write_text(json.dumps({**doc, "format": 2}))
    monkeypatch.setattr(reader, "load_cache", lambda *a, **k: pytest.fail("opened the cache"))
    with pytest.raises(ProdcatError, match="not a prodcat k-NN file"):
        open_run(out)


def test_knn_eval_without_validation_falls_back(world):
    cols = dict(world.columns, split=["test" if s == "validation" else s for s in world.columns["split"]])
    cfg = world.config(data=write_parquet(world.tmp / "noval" / "products.parquet", cols))
    m = knn_eval(cfg, out=world.tmp / "knn").metrics
    assert "validation" not in m and "test" in m
    assert (m["knn"]["k"], m["knn"]["temperature"]) == (FALLBACK_K, FALLBACK_T)
    assert (m["knn"]["k_chosen_by"], m["knn"]["temperature_chosen_by"]) == ("fallback", "fallback")


def test_load_knn_round_trips(world):
    from prodcat_pipeline.reader import load_cache

    cfg = world.config()
    cfg.knn.weighting = "softmax"
    out = world.tmp / "knn"
    res = knn_eval(cfg, out=out)
    doc = json.loads((out / "knn.json").read_text())
    assert doc["format"] == 1 and doc["head"] == "knn" and doc["index"]["type"] == "flat"
    assert (doc["k"], doc["temperature"]) == (res.metrics["knn"]["k"], res.metrics["knn"]["temperature"])
    cached = load_cache(cfg)
    assert doc["cache_key"] == cached.key and doc["label_names"] == cached.label_names
    assert doc["config"]["knn"]["k"] is None  # the configuration as given; the choice is in "k"
    clf = load_knn(out, cached)
    X, _ = cached.split_arrays("test")
    assert np.array_equal(clf.predict_proba(X), res.classifier.predict_proba(X))
    assert np.array_equal(load_knn(out / "knn.json", cached).predict(X), res.classifier.predict(X))


def test_bad_knn_json_is_one_clear_error(world):
    from prodcat_pipeline.reader import load_cache

    cfg = world.config()
    out = world.tmp / "knn"
    knn_eval(cfg, out=out)
    cached = load_cache(cfg)
    path = out / "knn.json"
    good = json.loads(path.read_text())
    cases = [
        (None, "no k-NN model"),
        ("{not json", "not valid JSON"),
        ({**good, "format": 2}, "not a prodcat k-NN file"),
        ({k: v for k, v in good.items() if k != "temperature"}, "lacks temperature"),
        ({**good, "k": -3}, "'k'"),
        ({**good, "temperature": "hot"}, "'temperature'"),
        ({**good, "weighting": "cosine"}, "'weighting'"),
        ({**good, "label_names": "a,b"}, "malformed label_names"),
        ({**good, "cache_key": "0" * 16}, "cache 0000000000000000"),
        ({**good, "label_names": good["label_names"][:-1]}, "labels"),
    ]
    for content, needle in cases:
        if content is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(content if isinstance(content, str) else json.dumps(content))
        with pytest.raises(ProdcatError, match=needle) as err:
            load_knn(out, cached)
        assert "\n" not in str(err.value)


def test_temperature_is_validated_and_a_flag(world):
    from prodcat_pipeline.config import load_config

    for bad in (0, -1, float("inf"), float("nan")):
        with pytest.raises(ProdcatError, match="knn.temperature"):
            load_config(None, {"knn.temperature": bad})
    out = world.tmp / "knn"
    args = ["knn-eval", "--no-config", "--data", world.data, "--cache-dir", world.cache_dir]
    r = invoke([*args, "--out", out, "--temperature", 0.05])
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())["knn"]
    assert (m["temperature"], m["temperature_chosen_by"], m["k_chosen_by"]) == (0.05, "set", "validation")
    assert f"k={m['k']} (validation), T=0.05 (set)" in r.stdout
    assert (out / "knn.json").is_file()
    assert_one_error_line(invoke([*args, "--temperature", "0"]), "knn.temperature")
