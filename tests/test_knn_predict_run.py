"""k-NN baseline, prediction on new titles, `prodcat run` and the train/predict/run command lines."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train import CLASSES, LANGS, TRAIN_DEFAULTS, World, encoded, hand_f1, make_world, write_parquet
from typer.testing import CliRunner

from prodcat_pipeline.errors import ProdcatError
from prodcat_pipeline.knn import KnnClassifier


@pytest.fixture
def world(tmp_path, monkeypatch) -> World:
    return make_world(tmp_path, monkeypatch)


@pytest.fixture
def run_dir(world) -> Path:
    """A trained linear head on the synthetic dataset."""
    from prodcat_pipeline import train

    out = world.tmp / "runs" / "linear"
    train(world.config(head="linear", epochs=3), out=out)
    return out


def invoke(args: list, input: str | None = None):
    from prodcat_pipeline.cli import app

    return CliRunner().invoke(app, [str(a) for a in args], input=input)


def assert_one_error_line(result, *needles: str) -> str:
    """Non-zero exit, exactly one `Error:` line (on stderr), no traceback."""
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1] == errors[0]
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


# ---------------------------------------------------------------- k-NN


def clustered(seed: int, n: int, dim: int = 16, classes: int = 3, noise: float = 0.9):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).standard_normal((classes, dim))
    y = rng.integers(0, classes, n)
    return (centres[y] + noise * rng.standard_normal((n, dim))).astype(np.float32), y


@pytest.mark.parametrize("k", [1, 5, 8])
def test_flat_uniform_equals_sklearn(k):
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(k)
    X, y = rng.standard_normal((300, 12)).astype(np.float32), rng.integers(0, 4, 300)
    Xq = rng.standard_normal((150, 12)).astype(np.float32)
    ours = KnnClassifier(k=k, index="flat", weighting="uniform").fit(X, y)
    ref = KNeighborsClassifier(n_neighbors=k, algorithm="brute", metric="cosine", weights="uniform").fit(X, y)
    assert np.array_equal(ours.predict(Xq), ref.predict(Xq))
    _, ids = ours.kneighbors(Xq)
    ref_ids = ref.kneighbors(Xq, return_distance=False)
    assert all(set(a) == set(b) for a, b in zip(ids, ref_ids, strict=True))


def test_flat_distance_weighting_sums_similarities():
    X, y = clustered(0, 200, noise=2.0)
    Xq, _ = clustered(1, 100, noise=2.0)
    k = 7
    clf = KnnClassifier(k=k, weighting="distance").fit(X, y)
    # by hand: cosine similarities, top-k, each neighbour votes with max(sim, 0)
    a = X / np.linalg.norm(X, axis=1, keepdims=True)
    q = Xq / np.linalg.norm(Xq, axis=1, keepdims=True)
    sims = q @ a.T
    top = np.argsort(-sims, axis=1)[:, :k]
    scores = np.zeros((len(q), 3))
    for i, row in enumerate(top):
        for j in row:
            scores[i, y[j]] += max(sims[i, j], 0.0) + 1e-6
    assert np.array_equal(clf.predict(Xq), scores.argmax(1))
    proba = clf.predict_proba(Xq)
    assert proba.shape == (100, 3)
    assert proba.sum(1) == pytest.approx(np.ones(100))
    assert proba == pytest.approx(scores / scores.sum(1, keepdims=True), abs=1e-5)


@pytest.mark.parametrize("index,kw", [("ivf", {"nlist": 8, "nprobe": 3}), ("hnsw", {"hnsw_m": 8, "ef_search": 32})])
def test_approximate_indexes_agree_with_flat(index, kw):
    X, y = clustered(0, 800)
    Xq, yq = clustered(1, 300)
    flat = KnnClassifier(k=10).fit(X, y).predict(Xq)
    approx = KnnClassifier(k=10, index=index, **kw).fit(X, y).predict(Xq)
    assert np.mean(approx == flat) >= 0.9
    assert np.mean(approx == yq) >= 0.8


def test_knn_errors():
    with pytest.raises(ProdcatError, match="not fitted"):
        KnnClassifier().predict(np.zeros((2, 4), np.float32))
    with pytest.raises(ProdcatError, match="unknown k-NN index"):
        KnnClassifier(index="lsh").fit(np.ones((3, 4), np.float32), np.array([0, 1, 0]))
    with pytest.raises(ProdcatError, match="rows"):
        KnnClassifier().fit(np.ones((3, 4), np.float32), np.array([0, 1]))


def test_knn_eval_writes_metrics(world):
    from prodcat_pipeline.knn import knn_eval

    cfg = world.config()
    cfg.knn.k = 5
    cfg.knn.weighting = "distance"  # the hand computation below; the softmax vote is tested in test_knn.py
    out = world.tmp / "knn"
    res = knn_eval(cfg, out=out)
    m = json.loads((out / "metrics.json").read_text())
    assert m["head"] == "knn" and m["encoder"] == "use-multilingual" and m["epochs_run"] == 0
    assert isinstance(m["train_seconds"], float)
    tr = world.split("train")
    Xt = encoded(world, tr["text"])
    yt = np.array([CLASSES.index(c) for c in tr["label"]])
    Xt /= np.linalg.norm(Xt, axis=1, keepdims=True)
    for split in ("validation", "test"):
        block = m[split]
        assert {"macro_f1", "micro_f1", "accuracy", "per_language", "per_class", "confusion"} <= set(block)
        cols = world.split(split)
        Xq = encoded(world, cols["text"])
        Xq /= np.linalg.norm(Xq, axis=1, keepdims=True)
        sims = Xq @ Xt.T
        top = np.argsort(-sims, axis=1)[:, :5]
        scores = np.zeros((len(Xq), len(CLASSES)))
        for i, row in enumerate(top):
            for j in row:
                scores[i, yt[j]] += max(sims[i, j], 0) + 1e-6
        pred = scores.argmax(1)
        y_true = np.array([CLASSES.index(c) for c in cols["label"]])
        macro, micro = hand_f1(y_true, pred)
        assert block["macro_f1"] == pytest.approx(macro)
        assert block["micro_f1"] == pytest.approx(micro)
        assert np.array(block["confusion"]).sum() == len(y_true)
        assert set(block["per_language"]) == set(LANGS)
    assert res.metrics["validation"]["macro_f1"] > 0.7


# ---------------------------------------------------------------- predict


def test_predictor_top_k(run_dir):
    from prodcat_pipeline.predictor import Predictor

    titles = ["shoes en item 1", "phones de item 2", "food fr item 3", "toys en item 4", "something unrelated"]
    p = Predictor(run_dir, device="cpu")
    rows = p.predict(titles, top_k=2)
    assert [r["text"] for r in rows] == titles
    for r in rows:
        assert r["label"] in CLASSES
        assert 0.0 <= r["probability"] <= 1.0
        assert len(r["top_k"]) == 2
        probs = [t["probability"] for t in r["top_k"]]
        assert probs == sorted(probs, reverse=True)
        assert sum(probs) <= 1.0 + 1e-6
        assert r["top_k"][0] == {"label": r["label"], "probability": r["probability"]}
    assert sum(r["label"] == t.split()[0] for r, t in zip(rows[:4], titles[:4], strict=True)) >= 3
    everything = p.predict(titles[:1], top_k=99)[0]["top_k"]
    assert sorted(t["label"] for t in everything) == sorted(CLASSES)
    assert sum(t["probability"] for t in everything) == pytest.approx(1.0, abs=1e-5)
    assert p.predict([]) == []


def test_predict_function_reads_a_file(run_dir, tmp_path):
    from prodcat_pipeline.predictor import predict

    f = tmp_path / "titles.txt"
    f.write_text("shoes en item 1\n\nfood de item 2\n", encoding="utf-8")
    rows = predict(f, run_dir, top_k=1)
    assert [r["text"] for r in rows] == ["shoes en item 1", "", "food de item 2"]  # one row per line
    assert [len(r["top_k"]) for r in rows] == [1, 0, 1] and rows[1]["label"] is None


def test_package_level_predict_is_the_function(run_dir, tmp_path):
    # regression: the function used to share its name with the submodule, so this import gave the module
    import prodcat_pipeline
    import prodcat_pipeline.predictor  # noqa: F401  (the submodule already loaded must not shadow it)
    from prodcat_pipeline import predict

    assert callable(predict), type(predict)
    assert callable(prodcat_pipeline.predict)
    f = tmp_path / "titles.txt"
    f.write_text("shoes en item 1\n", encoding="utf-8")
    assert predict(f, run_dir, top_k=1)[0]["text"] == "shoes en item 1"


def test_read_batches_keeps_every_row(tmp_path, monkeypatch):
    from prodcat_pipeline.predict_io import InputSpec, read_batches

    def titles(spec, batch_rows=8192):
        return [t for b in read_batches(spec, batch_rows) for t in b.titles]

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"Laufschuhe schwarz\n\n  \niPhone 13, 128GB\n")))
    assert titles(InputSpec("-")) == ["Laufschuhe schwarz", "", "  ", "iPhone 13, 128GB"]  # blank lines are rows

    txt = tmp_path / "t.txt"
    txt.write_bytes(b"one\r\ntwo, with comma\n\n\xff\xfe bad\nthree\n")
    batches = list(read_batches(InputSpec(str(txt)), batch_rows=2))
    assert [len(b.titles) for b in batches] == [2, 2, 1]
    assert [t for b in batches for t in b.titles] == ["one", "two, with comma", "", None, "three"]
    assert [r for b in batches for r in b.reasons][3] == "not UTF-8 text"

    csv_path = tmp_path / "t.csv"
    csv_path.write_text('id,text\n1,"Chocolat noir, 70%"\n2,\n3,Bio Vollmilch\n', encoding="utf-8")
    batch = next(read_batches(InputSpec(str(csv_path), id_column="id")))
    assert batch.titles == ["Chocolat noir, 70%", "", "Bio Vollmilch"] and batch.carry == {"id": ["1", "2", "3"]}
    other = tmp_path / "o.csv"
    other.write_text("id,title\n1,Pixel 7\n", encoding="utf-8")
    assert titles(InputSpec(str(other), text_column="title")) == ["Pixel 7"]
    with pytest.raises(ProdcatError, match="no column 'text'") as exc:
        titles(InputSpec(str(other)))
    assert "title" in str(exc.value)  # lists the columns found
    with pytest.raises(ProdcatError, match="no column 'sku'"):
        titles(InputSpec(str(other), text_column="title", id_column="sku"))
    with pytest.raises(ProdcatError, match="not found"):
        titles(InputSpec(str(tmp_path / "missing.txt")))
    with pytest.raises(ProdcatError, match="need a table input"):
        titles(InputSpec(str(txt), id_column="sku"))


def test_cli_predict_csv_and_jsonl(run_dir, tmp_path):
    titles = ["shoes en item 7", 'phones de item "8", black', "food fr item 9"]
    inp = tmp_path / "in.txt"
    inp.write_text("\n".join(titles) + "\n", encoding="utf-8")
    out = tmp_path / "out.csv"
    r = invoke(["predict", "--run", run_dir, "--input", inp, "--format", "csv", "--output", out, "--top-k", "2"])
    assert r.exit_code == 0, r.output
    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["text", "label", "probability", "top_k", "reason"]
    assert [row[0] for row in rows[1:]] == titles
    for row in rows[1:]:
        assert row[1] in CLASSES and 0 <= float(row[2]) <= 1
        assert len(row[3].split(";")) == 2 and row[3].startswith(row[1] + ":")

    r = invoke(["predict", "--run", run_dir, "--input", inp])
    assert r.exit_code == 0, r.output
    lines = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    assert [d["text"] for d in lines] == titles and all(len(d["top_k"]) == 3 for d in lines)

    assert_one_error_line(invoke(["predict", "--run", run_dir, "--input", inp, "--format", "xml"]), "--format")
    assert_one_error_line(invoke(["predict", "--run", tmp_path / "nope", "--input", inp]), "run folder not found")


def test_cli_predict_from_stdin(run_dir):
    r = invoke(["predict", "--run", run_dir, "--top_k", "1"], input="toys de item 1\n\nshoes fr item 2\n  \n")
    assert r.exit_code == 0, r.output
    lines = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    assert [d["text"] for d in lines] == ["toys de item 1", "", "shoes fr item 2", "  "]  # 4 lines in, 4 rows out
    assert [d["label"] in CLASSES for d in lines] == [True, False, True, False]
    assert [d["reason"] for d in lines] == [None, "empty title", None, "empty title"]
    assert lines[1]["label"] is None and lines[1]["probability"] is None and lines[1]["top_k"] == []


def test_predictor_refuses_other_encoder_weights(run_dir, monkeypatch):
    import prodcat_pipeline.encoders as encoders
    from prodcat_pipeline.encoders import EncoderIdentity
    from prodcat_pipeline.predictor import Predictor

    monkeypatch.setattr(encoders, "identify", lambda name: EncoderIdentity(name, None, "other-weights"))
    with pytest.raises(ProdcatError, match="other weights"):
        Predictor(run_dir, device="cpu")


REAL_TITLES = {
    "shoes": ["running shoes", "Laufschuhe Damen", "leather boots", "Sneaker weiß", "hiking boots", "sandals"],
    "phones": ["iPhone 13 128GB", "Samsung Galaxy smartphone", "Handy Dual SIM", "Pixel 7 Pro", "mobile phone"],
    "food": ["dark chocolate 100g", "Bio Vollmilch 1L", "pasta 500g", "Kaffeebohnen", "olive oil", "Schokolade"],
}


@pytest.mark.slow
def test_real_minilm_end_to_end(tmp_path):
    """The packaged MiniLM encoder, offline: embed, train, then predict raw titles with the run."""
    from prodcat_pipeline import train
    from prodcat_pipeline.config import PipelineConfig, TrainConfig
    from prodcat_pipeline.predictor import Predictor

    cols = {"text": [], "label": [], "split": []}
    for label, titles in REAL_TITLES.items():
        for i, t in enumerate(titles * 4):
            cols["text"].append(f"{t} {i}")
            cols["label"].append(label)
            cols["split"].append("validation" if i % 5 == 0 else "train")
    data = write_parquet(tmp_path / "real.parquet", cols)
    cfg = PipelineConfig()
    cfg.data.path, cfg.cache.dir, cfg.encoder.model = str(data), str(tmp_path / "cache"), "minilm"
    cfg.train = TrainConfig(**{**TRAIN_DEFAULTS, "head": "linear", "epochs": 8, "lr": 0.05})
    res = train(cfg, out=tmp_path / "run")
    assert res.cache_built and res.metrics["encoder"] == "minilm"
    rows = Predictor(tmp_path / "run", device="cpu").predict(["trail running shoes", "Galaxy phone 256GB"], top_k=2)
    assert [r["label"] for r in rows] == ["shoes", "phones"]
    assert all(0 <= r["probability"] <= 1 for r in rows)


# ---------------------------------------------------------------- prodcat run


def pipeline_config(world: World, out: str, heads: list[str], **overrides):
    """What a pipeline.yaml would say: shared settings under `train`, per-head ones under head_overrides."""
    from prodcat_pipeline.config import HEAD_DEFAULTS, load_config

    per_head = {k: v for k, v in {**TRAIN_DEFAULTS, "epochs": 2}.items() if k in HEAD_DEFAULTS["v2"] or k == "lr"}
    shared = {k: v for k, v in TRAIN_DEFAULTS.items() if k not in per_head}
    head_overrides = {h: {**per_head, **overrides.get(h, {})} for h in ("linear", "v2", "v3")}
    head_overrides |= {h: v for h, v in overrides.items() if h not in head_overrides}  # aliases, typos
    doc = {
        "data": {"path": str(world.data)},
        "cache": {"dir": str(world.cache_dir)},
        "encoder": {"device": "cpu"},
        "train": shared,
        "heads": heads,
        "run_knn": False,
        "out": str(world.tmp / out),
        "head_overrides": head_overrides,
    }
    return load_config(doc)


def test_run_api_applies_head_overrides(world):
    from prodcat_pipeline.pipeline import run

    res = run(pipeline_config(world, "p", ["linear", "v2"], linear={"epochs": 1, "lr": 0.05}))
    assert [r["head"] for r in res.rows] == ["linear", "v2", "logreg"]
    lin = json.loads((res.out_dir / "linear" / "metrics.json").read_text())
    v2 = json.loads((res.out_dir / "v2" / "metrics.json").read_text())
    assert (lin["epochs_run"], lin["config"]["lr"]) == (1, 0.05)
    assert (v2["epochs_run"], v2["config"]["lr"]) == (2, TRAIN_DEFAULTS["lr"])
    assert res.rows[0]["val_macro_f1"] == lin["validation"]["macro_f1"]
    assert res.encoded == len(set(world.columns["text"]))


def test_run_api_head_overrides_by_alias(world):
    # regression: overrides keyed by an alias (v1, residual, contrastive) used to be ignored silently
    from prodcat_pipeline.pipeline import run

    res = run(pipeline_config(world, "p", ["v1"], v1={"epochs": 1}))
    assert json.loads((res.out_dir / "linear" / "metrics.json").read_text())["epochs_run"] == 1


def test_run_api_bad_head_override_fails_before_any_work(world):
    # regression: a typo in the last head's overrides used to fail only after the earlier heads had trained
    from prodcat_pipeline.pipeline import run

    with pytest.raises(ProdcatError, match="head_overrides.v3"):
        run(pipeline_config(world, "p", ["linear", "v3"], v3={"epoch": 1}))
    assert not (world.tmp / "p" / "linear").exists()
    assert world.encoder.calls == 0


def write_yaml(path: Path, world: World, **extra) -> Path:
    import yaml

    doc = {
        "data": {"path": str(world.data)},
        "encoder": {"device": "cpu"},
        "cache": {"dir": str(world.cache_dir)},
        "train": {"batch_size": 32, "classifier_hidden": 32, "lang_min_samples": 3, "device": "cpu"},
        "head_overrides": {h: {"epochs": 2, "lr": 0.03, "lr_warmup_steps": 0} for h in ("linear", "v2", "v3")},
        "heads": ["linear", "v2"],
        "run_knn": True,
        "out": str(world.tmp / "pipeline"),
    }
    for section, value in extra.items():
        if isinstance(value, dict) and isinstance(doc.get(section), dict):
            doc[section] = {**doc[section], **value}
        else:
            doc[section] = value
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def test_cli_run_with_yaml(world, monkeypatch):
    monkeypatch.chdir(world.tmp)
    cfg = write_yaml(world.tmp / "pipeline-test.yaml", world)
    r = invoke(["run", "--config", cfg])
    assert r.exit_code == 0, r.output
    out = world.tmp / "pipeline"
    assert "comparison" in r.stdout
    for head in ("linear", "v2", "knn"):
        assert head in r.stdout
    for name in ("comparison.json", "comparison.md", "comparison.png"):
        assert (out / name).is_file()
    assert (out / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    comparison = json.loads((out / "comparison.json").read_text())
    assert [row["head"] for row in comparison["rows"]] == ["linear", "v2", "knn", "logreg"]
    assert set(comparison["languages"]) == set(LANGS)
    for row in comparison["rows"]:
        m = json.loads((out / row["head"] / "metrics.json").read_text())
        assert m["head"] == row["head"]
        assert row["val_macro_f1"] == m["validation"]["macro_f1"]
        assert row["test_micro_f1"] == m["test"]["micro_f1"]
        for code in LANGS:
            assert row[f"val_{code}"] == m["validation"]["per_language"][code]["macro_f1"]
        if row["head"] not in ("knn", "logreg"):
            assert m["epochs_run"] == 2
    md = (out / "comparison.md").read_text().splitlines()
    assert md[0].startswith("| head |") and len(md) == 2 + 4
    assert not (out / "v3").exists()


def test_cli_flags_override_yaml(world, monkeypatch):
    monkeypatch.chdir(world.tmp)
    cfg = write_yaml(world.tmp / "p.yaml", world)
    other = world.tmp / "other-out"
    r = invoke(
        ["run", "--config", cfg, "--epochs", "1", "--heads", "linear", "--no-knn", "--no-logreg", "--out", other]
    )
    assert r.exit_code == 0, r.output
    assert json.loads((other / "linear" / "metrics.json").read_text())["epochs_run"] == 1
    assert not (other / "v2").exists() and not (other / "knn").exists()
    assert not (world.tmp / "pipeline").exists()
    rows = json.loads((other / "comparison.json").read_text())["rows"]
    assert [row["head"] for row in rows] == ["linear"]


@pytest.mark.parametrize(
    "extra,needle",
    [
        ({"train": {"epoch": 2}}, "train.epoch'"),
        ({"train": {"epochs": "many"}}, "train.epochs"),
        ({"knn": {"index": "annoy"}}, "knn.index"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_cli_run_yaml_validation(world, monkeypatch, extra, needle):
    monkeypatch.chdir(world.tmp)
    cfg = write_yaml(world.tmp / "bad.yaml", world, **extra)
    line = assert_one_error_line(invoke(["run", "--config", cfg]), needle, "bad.yaml")
    assert world.encoder.calls == 0  # nothing was encoded before the error
    if "epoch'" in needle or needle == "colour":
        assert "unknown key" in line


def test_cli_run_unknown_head_fails_before_work(world, monkeypatch):
    monkeypatch.chdir(world.tmp)
    cfg = write_yaml(world.tmp / "p.yaml", world, heads=["linear", "v7"])
    assert_one_error_line(invoke(["run", "--config", cfg]), "unknown head 'v7'")
    assert world.encoder.calls == 0


# ---------------------------------------------------------------- prodcat train flags and errors


def train_args(world: World, out: Path) -> list:
    return ["train", "--data", world.data, "--cache-dir", world.cache_dir, "--out", out, "--device", "cpu"]


REFERENCE_FLAGS = (
    "--head v3 --epochs 1 --batch_size 64 --grad_accum 4 --lr_schedule cosine --lr_warmup_steps 3 "
    "--lr_min_scale 0.01 --classifier_hidden 32 --classifier_dropout 0.2 --contrastive_dim 16 "
    "--contrastive_weight 0.1 --contrastive_temp 0.05 --label_smoothing 0.05 --focal_gamma 0 --amp"
).split()


def test_cli_train_reference_flags_verbatim(world, monkeypatch):
    monkeypatch.chdir(world.tmp)
    out = world.tmp / "v3"
    r = invoke(train_args(world, out) + REFERENCE_FLAGS)
    assert r.exit_code == 0, r.output
    assert "encoded the dataset" in r.stdout and "validation" in r.stdout
    m = json.loads((out / "metrics.json").read_text())
    assert m["head"] == "v3" and m["epochs_run"] == 1
    expected = {
        "batch_size": 64,
        "grad_accum": 4,
        "lr_schedule": "cosine",
        "lr_warmup_steps": 3,
        "lr_min_scale": 0.01,
        "classifier_hidden": 32,
        "classifier_dropout": 0.2,
        "contrastive_dim": 16,
        "contrastive_weight": 0.1,
        "contrastive_temp": 0.05,
        "label_smoothing": 0.05,
        "focal_gamma": 0.0,
        "amp": True,
    }
    assert {k: m["config"][k] for k in expected} == expected
    assert torch.load(out / "best.pt", weights_only=True)["head_args"]["contrastive_dim"] == 16


def test_cli_train_dash_spellings(world, monkeypatch):
    monkeypatch.chdir(world.tmp)
    out = world.tmp / "v2"
    flags = "--head v2 --epochs 2 --batch-size 48 --grad-accum 2 --lr-schedule exponential --lr-decay 0.95"
    flags += " --classifier-hidden 16 --classifier-no-residual --lang-centering --save-every 0"
    r = invoke(train_args(world, out) + flags.split())
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    got = {k: m["config"][k] for k in ("batch_size", "grad_accum", "lr_schedule", "lr_decay", "classifier_hidden")}
    assert got == {
        "batch_size": 48,
        "grad_accum": 2,
        "lr_schedule": "exponential",
        "lr_decay": 0.95,
        "classifier_hidden": 16,
    }
    assert m["config"]["classifier_no_residual"] is True and m["config"]["lang_centering"] is True
    assert not list(out.glob("epoch_*.pt"))
    # a second train reuses the cache and says so
    r2 = invoke(train_args(world, world.tmp / "lin") + ["--head", "linear", "--epochs", "1"])
    assert r2.exit_code == 0, r2.output
    assert "reused the embedding cache" in r2.stdout


def test_cli_train_languages_list(world, monkeypatch):
    monkeypatch.chdir(world.tmp)
    out = world.tmp / "ende"
    r = invoke(train_args(world, out) + ["--head", "linear", "--epochs", "1", "--languages", "en, de"])
    assert r.exit_code == 0, r.output
    assert json.loads((out / "metrics.json").read_text())["config"]["languages"] == ["en", "de"]


def test_cli_train_errors(world, monkeypatch):
    monkeypatch.chdir(world.tmp)
    base = train_args(world, world.tmp / "e")
    assert_one_error_line(invoke(base + ["--head", "v9"]), "unknown head 'v9'")
    assert_one_error_line(invoke(base + ["--lr_schedule", "foo"]), "train.lr_schedule")
    assert_one_error_line(invoke(base + ["--epochs", "-1"]), "train.epochs")
    assert_one_error_line(invoke(base + ["--lang_loss_weights", "xx=2"]), "'xx'")

    three = write_parquet(world.tmp / "three.parquet", _three_label_columns())
    r = invoke(["train", "--data", three, "--cache-dir", world.cache_dir, "--out", world.tmp / "three"])
    assert r.exit_code == 0, r.output
    assert_one_error_line(invoke(base + ["--head", "v2", "--init_from", world.tmp / "three"]), "another label set")
    r = invoke(["train", "--bogus-flag", "1"])
    assert r.exit_code != 0 and "Traceback" not in r.output


def _three_label_columns() -> dict:
    from test_train import dataset_columns

    return dataset_columns(150, seed=3, classes=CLASSES[:3])
