"""`train()`: heads on a small cached dataset, metrics.json, resume, early stopping, checkpoints, language options.

The dataset is synthetic and learnable: each title names its class and language ("shoes de item 17"), and a
fake encoder (patched in for the real one) maps it to class prototype + language offset + hash-seeded noise.
The helpers here are shared with test_knn_predict_run.py.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from prodcat_pipeline.config import PipelineConfig, TrainConfig
from prodcat_pipeline.errors import ProdcatError

DIM = 24
CLASSES = ("food", "phones", "shoes", "toys")  # sorted: string labels get these ids
LANGS = ("en", "de", "fr")
LANG_P = (0.6, 0.3, 0.1)


class LearnableEncoder:
    """Stands in for a SentenceTransformer: class prototype + language offset + noise seeded by the text."""

    def __init__(self, dim: int = DIM, noise: float = 1.2, seed: int = 7):
        rng = np.random.default_rng(seed)
        self.dim = dim
        self.noise = noise
        self.protos = {c: rng.standard_normal(dim) for c in CLASSES}
        self.offsets = {lang: 0.8 * rng.standard_normal(dim) for lang in LANGS}
        self.calls = 0
        self.texts: list[str] = []

    def vector(self, text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")
        v = self.noise * np.random.default_rng(seed).standard_normal(self.dim)
        for tok in text.split():
            if tok in self.protos:
                v = v + self.protos[tok]
            if tok in self.offsets:
                v = v + self.offsets[tok]
        return v

    def encode(self, texts, batch_size, normalize_embeddings, convert_to_numpy, show_progress_bar):
        self.calls += 1
        self.texts.extend(texts)
        out = np.stack([self.vector(t) for t in texts]) if len(texts) else np.zeros((0, self.dim))
        if normalize_embeddings:
            out = out / np.linalg.norm(out, axis=1, keepdims=True)
        return out.astype(np.float32)

    def get_embedding_dimension(self) -> int:
        return self.dim

    def get_sentence_embedding_dimension(self) -> int:  # embedder.py looks this name up too
        return self.dim


def dataset_columns(n: int = 400, seed: int = 0, classes=CLASSES) -> dict[str, list]:
    rng = np.random.default_rng(seed)
    langs = rng.choice(len(LANGS), size=n, p=LANG_P)
    splits = rng.choice(3, size=n, p=(0.7, 0.15, 0.15))
    cols = {"text": [], "label": [], "split": [], "language": [], "cluster": []}
    for i in range(n):
        label, lang = classes[i % len(classes)], LANGS[langs[i]]
        cols["text"].append(f"{label} {lang} item {seed}-{i}")
        cols["label"].append(label)
        cols["split"].append(("train", "validation", "test")[splits[i]])
        cols["language"].append(lang)
        cols["cluster"].append(f"c{seed}-{i}")
    return cols


def write_parquet(path: Path, columns: dict[str, list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return path


TRAIN_DEFAULTS = {  # every head-dependent default is pinned, so the tests do not follow HEAD_DEFAULTS
    "epochs": 3,
    "batch_size": 32,
    "lr": 3e-2,
    "lr_warmup_steps": 0,
    "label_smoothing": 0.0,
    "classifier_dropout": 0.1,
    "weight_decay": 0.01,
    "classifier_hidden": 32,
    "contrastive_dim": 8,
    "lang_min_samples": 3,
    "device": "cpu",
}


@dataclass
class World:
    tmp: Path
    data: Path
    cache_dir: Path
    encoder: LearnableEncoder
    columns: dict

    def config(self, data: Path | None = None, model: str = "use-multilingual", **train) -> PipelineConfig:
        cfg = PipelineConfig()
        cfg.data.path = str(data or self.data)
        cfg.cache.dir = str(self.cache_dir)
        cfg.encoder.device = "cpu"
        cfg.encoder.model = model
        cfg.train = TrainConfig(**{**TRAIN_DEFAULTS, **train})
        return cfg

    def split(self, name: str) -> dict[str, list]:
        keep = [i for i, s in enumerate(self.columns["split"]) if s == name]
        return {k: [v[i] for i in keep] for k, v in self.columns.items()}


def make_world(tmp_path: Path, monkeypatch, n: int = 400) -> World:
    import prodcat_pipeline.embedder as embedder
    import prodcat_pipeline.encoders as encoders

    enc = LearnableEncoder()

    def _load(name, *, device=None, precision="auto", **_):
        return enc

    monkeypatch.setattr(embedder, "load_encoder", _load)
    monkeypatch.setattr(encoders, "load_encoder", _load)  # what Predictor loads
    cols = dataset_columns(n)
    return World(tmp_path, write_parquet(tmp_path / "data" / "products.parquet", cols), tmp_path / "cache", enc, cols)


@pytest.fixture
def world(tmp_path, monkeypatch) -> World:
    return make_world(tmp_path, monkeypatch)


def load_ckpt(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)  # plain data: loads without unpickling code


def head_from(path: Path):
    from prodcat_pipeline.heads import build_head

    ckpt = load_ckpt(path)
    head = build_head(ckpt["head"], ckpt["dim"], len(ckpt["label_names"]), ckpt["head_args"])
    head.load_state_dict(ckpt["head_state"])
    return head.eval(), ckpt


def hand_f1(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float]:
    """Macro-F1 over the classes present in y_true or y_pred, and micro-F1, without scikit-learn."""
    f1s = []
    for c in np.union1d(y_true, y_pred):
        tp = np.sum((y_pred == c) & (y_true == c))
        fp = np.sum((y_pred == c) & (y_true != c))
        fn = np.sum((y_pred != c) & (y_true == c))
        f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1s)), float(np.mean(y_true == y_pred))


def encoded(world: World, texts: list[str], dtype=np.float16) -> np.ndarray:
    """What the cache holds for `texts`: the encoder's normalised vector, stored as float16."""
    return world.encoder.encode(texts, 1, True, True, False).astype(dtype).astype(np.float32)


# ---------------------------------------------------------------- every head trains; metrics.json


@pytest.mark.parametrize("head", ["linear", "v2", "v3"])
def test_each_head_trains_and_writes_metrics(world, head):
    from prodcat_pipeline import train
    from prodcat_pipeline.inference import predict_logits

    out = world.tmp / "runs" / head
    result = train(world.config(head=head, epochs=3, save_every=1), out=out)
    assert result.out_dir == out and result.head == head
    assert result.epochs_run == 3 and 1 <= result.best_epoch <= 3
    m = json.loads((out / "metrics.json").read_text())
    assert m == json.loads(json.dumps(result.metrics))
    assert {"validation", "test", "head", "encoder", "epochs_run", "train_seconds"} <= set(m)
    assert m["head"] == head and m["encoder"] == "use-multilingual" and m["epochs_run"] == 3
    assert isinstance(m["train_seconds"], float) and m["train_seconds"] >= 0
    assert len(m["history"]) == 3
    for name in ("best.pt", "last.pt", "epoch_001.pt", "epoch_002.pt", "epoch_003.pt", "config.yaml"):
        assert (out / name).is_file()
    assert "optimizer" in load_ckpt(out / "last.pt")  # only last.pt can resume: the others hold the head alone
    assert "optimizer" not in load_ckpt(out / "best.pt") and "optimizer" not in load_ckpt(out / "epoch_001.pt")

    best, _ = head_from(out / "best.pt")
    for split in ("validation", "test"):
        block = m[split]
        assert {"macro_f1", "micro_f1", "accuracy", "per_language", "per_class", "confusion"} <= set(block)
        cols = world.split(split)
        y_true = np.array([CLASSES.index(c) for c in cols["label"]])
        # the predictions of the saved best head, recomputed outside the trainer
        pred = predict_logits(best, encoded(world, cols["text"]), None, "cpu").argmax(1)
        macro, micro = hand_f1(y_true, pred)
        assert block["macro_f1"] == pytest.approx(macro, abs=1e-9)
        assert block["micro_f1"] == pytest.approx(micro, abs=1e-9)
        assert block["accuracy"] == pytest.approx(micro, abs=1e-9)
        assert block["support"] == len(y_true)
        confusion = np.zeros((4, 4), dtype=int)
        np.add.at(confusion, (y_true, pred), 1)
        assert block["confusion"] == confusion.tolist()
        assert list(block["per_class"]) == list(CLASSES)
        for i, c in enumerate(CLASSES):
            assert block["per_class"][c]["support"] == int(np.sum(y_true == i))
        langs = np.array(cols["language"])
        assert set(block["per_language"]) == set(LANGS)
        for code, lm in block["per_language"].items():
            sel = langs == code
            lmacro, lmicro = hand_f1(y_true[sel], pred[sel])
            assert lm == pytest.approx({"macro_f1": lmacro, "micro_f1": lmicro, "support": int(sel.sum())})
    assert m["validation"]["macro_f1"] > 0.7  # the synthetic labels are learnable


def test_per_language_needs_lang_min_samples(world):
    from prodcat_pipeline import train

    val_langs = world.split("validation")["language"]
    counts = {c: val_langs.count(c) for c in LANGS}
    threshold = sorted(counts.values())[1]  # keeps the two largest languages (ties aside)
    m = train(world.config(head="linear", epochs=1, lang_min_samples=threshold), out=world.tmp / "r").metrics
    assert set(m["validation"]["per_language"]) == {c for c, n in counts.items() if n >= threshold}
    m2 = train(world.config(head="linear", epochs=1, no_lang_metrics=True), out=world.tmp / "r2").metrics
    assert "per_language" not in m2["validation"]


# ---------------------------------------------------------------- resume


def assert_same_run(a: Path, b: Path) -> None:
    ma, mb = (json.loads((p / "metrics.json").read_text()) for p in (a, b))
    for key in ("validation", "test", "epochs_run", "best_epoch"):
        assert ma[key] == mb[key], key
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in ma["history"]]
    assert strip == [{k: v for k, v in h.items() if k != "seconds"} for h in mb["history"]]
    for name in ("last.pt", "best.pt"):
        sa, sb = load_ckpt(a / name)["head_state"], load_ckpt(b / name)["head_state"]
        assert sa.keys() == sb.keys()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), f"{name}: {k}"


def test_resume_extending_epochs_equals_uninterrupted(world):
    from prodcat_pipeline import train

    settings = {"head": "v2", "lr_schedule": "none", "classifier_dropout": 0.2}
    train(world.config(epochs=4, **settings), out=world.tmp / "full")
    first = train(world.config(epochs=2, **settings), out=world.tmp / "resumed")
    assert first.epochs_run == 2
    second = train(world.config(epochs=4, **settings), out=world.tmp / "resumed", resume=True)
    assert second.epochs_run == 4 and len(second.history) == 4
    assert_same_run(world.tmp / "full", world.tmp / "resumed")


def test_resume_after_interrupt_equals_uninterrupted(world, monkeypatch):
    """A run killed after epoch 2 (cosine + warm-up + grad_accum + dropout + SupCon) resumes to the same result."""
    import prodcat_pipeline.trainer as trainer
    from prodcat_pipeline import train

    settings = {
        "head": "v3",
        "epochs": 4,
        "lr_schedule": "cosine",
        "lr_warmup_steps": 2,
        "grad_accum": 2,
        "classifier_dropout": 0.3,
    }
    train(world.config(**settings), out=world.tmp / "full")

    real = trainer.progress_bar

    def interrupting(total, description, unit="rows", show=None):
        if description.startswith("epoch 3/"):
            raise KeyboardInterrupt
        return real(total, description, unit, show)

    monkeypatch.setattr(trainer, "progress_bar", interrupting)
    with pytest.raises(KeyboardInterrupt):
        train(world.config(**settings), out=world.tmp / "resumed")
    assert load_ckpt(world.tmp / "resumed" / "last.pt")["state"]["epoch"] == 2
    monkeypatch.setattr(trainer, "progress_bar", real)
    train(world.config(**settings), out=world.tmp / "resumed", resume=True)
    assert_same_run(world.tmp / "full", world.tmp / "resumed")


def test_resume_errors(world):
    from prodcat_pipeline import train

    train(world.config(head="linear", epochs=1), out=world.tmp / "lin")
    with pytest.raises(ProdcatError, match="'linear' head"):
        train(world.config(head="v2"), out=world.tmp / "lin", resume=True)
    with pytest.raises(ProdcatError, match="hidden"):
        train(world.config(head="v2", epochs=1), out=world.tmp / "v2")
        train(world.config(head="v2", classifier_hidden=16), out=world.tmp / "v2", resume=True)


# ---------------------------------------------------------------- loop options


def test_early_stopping_stops_before_epochs(world):
    from prodcat_pipeline import train

    # a learning rate this small leaves the predictions unchanged: no epoch after the first improves
    res = train(
        world.config(head="linear", epochs=20, lr=1e-7, lr_schedule="none", early_stopping_patience=2),
        out=world.tmp / "es",
    )
    assert res.epochs_run < 20
    assert res.epochs_run == res.best_epoch + 2
    assert len(res.history) == res.epochs_run == res.metrics["epochs_run"]
    best = max(h["val_macro_f1"] for h in res.history)
    assert res.history[res.best_epoch - 1]["val_macro_f1"] == best
    assert load_ckpt(world.tmp / "es" / "best.pt")["state"]["epoch"] == res.best_epoch


def test_save_every(world):
    from prodcat_pipeline import train

    out = world.tmp / "every2"
    train(world.config(head="linear", epochs=5, save_every=2), out=out)
    assert sorted(p.name for p in out.glob("epoch_*.pt")) == ["epoch_002.pt", "epoch_004.pt"]
    assert load_ckpt(out / "epoch_004.pt")["state"]["epoch"] == 4
    assert load_ckpt(out / "last.pt")["state"]["epoch"] == 5
    out0 = world.tmp / "every0"
    train(world.config(head="linear", epochs=2, save_every=0), out=out0)
    assert not list(out0.glob("epoch_*.pt"))
    assert (out0 / "best.pt").is_file() and (out0 / "last.pt").is_file()


def n_train_rows(world: World) -> int:
    return world.columns["split"].count("train")


@pytest.mark.parametrize(
    "sched",
    [
        {"lr_schedule": "cosine", "lr_warmup_steps": 2, "lr_min_scale": 0.05, "grad_accum": 3},
        {"lr_schedule": "exponential", "lr_decay": 0.9, "lr_min_scale": 0.2, "grad_accum": 2},
        {"lr_schedule": "none", "grad_accum": 4},
    ],
)
def test_grad_accum_and_lr_schedules(world, sched):
    from prodcat_pipeline import train

    epochs, bs, lr = 3, 32, 0.01
    res = train(world.config(head="v2", epochs=epochs, batch_size=bs, lr=lr, **sched), out=world.tmp / "s")
    batches = math.ceil(n_train_rows(world) / bs)
    steps_per_epoch = math.ceil(batches / sched["grad_accum"])  # one optimizer step per grad_accum batches
    total = steps_per_epoch * epochs
    warm, floor = sched.get("lr_warmup_steps", 0), sched.get("lr_min_scale", 0.01)
    for e, h in enumerate(res.history, start=1):
        s = steps_per_epoch * e  # optimizer steps taken so far
        if sched["lr_schedule"] == "cosine":
            expected = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min((s - warm) / (total - warm), 1)))
        elif sched["lr_schedule"] == "exponential":
            expected = max(0.9**s, floor)
        else:
            expected = 1.0
        assert h["lr"] == pytest.approx(lr * expected), e
        assert math.isfinite(h["loss"])
    if sched["lr_schedule"] == "cosine":
        assert res.history[-1]["lr"] == pytest.approx(lr * floor)
    assert res.metrics["validation"]["macro_f1"] > 0.5


def test_amp_bf16_close_to_fp32(world):
    from prodcat_pipeline import train

    fp32 = train(world.config(head="v2", epochs=4), out=world.tmp / "fp32").metrics["validation"]["macro_f1"]
    amp = train(world.config(head="v2", epochs=4, amp=True), out=world.tmp / "amp").metrics["validation"]["macro_f1"]
    assert amp == pytest.approx(fp32, abs=0.05)
    assert amp > 0.7


def test_focal_smoothing_and_language_options_train(world):
    from prodcat_pipeline import train

    res = train(
        world.config(
            head="v3",
            epochs=2,
            focal_gamma=2.0,
            label_smoothing=0.1,
            lang_sampling_temp=0.0,
            lang_loss_weights="auto",
            lang_class_weights=True,
            lang_remove_directions=1,
            cross_lang_positives=True,
        ),
        out=world.tmp / "opts",
    )
    assert all(math.isfinite(h["loss"]) for h in res.history)
    assert res.metrics["validation"]["macro_f1"] > 0.5


def test_languages_filter(world):
    from prodcat_pipeline import train

    res = train(world.config(head="linear", epochs=1, languages=["en", "de"]), out=world.tmp / "ende")
    assert res.metrics["validation"]["support"] == len(world.split("validation")["text"])  # evaluated on all
    # a real code the training split lacks: one line naming the languages it has
    with pytest.raises(ProdcatError, match="ja not in the training split; its languages: en, de, fr"):
        train(world.config(head="linear", languages=["de", "ja"]), out=world.tmp / "ja")
    # not a language code at all: refused by the configuration, before anything is loaded
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="unknown language code 'xx'"):
        world.config(head="linear", languages=["xx"])


def test_zero_epochs_evaluates_the_initial_head(world):
    from prodcat_pipeline import train

    res = train(world.config(head="linear", epochs=0), out=world.tmp / "zero")
    assert res.epochs_run == 0 and (world.tmp / "zero" / "best.pt").is_file()
    assert res.metrics["validation"]["macro_f1"] is not None


def test_second_train_does_not_reencode(world):
    from prodcat_pipeline import train

    first = train(world.config(head="linear", epochs=1), out=world.tmp / "a")
    assert first.cache_built is True
    calls, n_texts = world.encoder.calls, len(world.encoder.texts)
    assert calls > 0 and n_texts == len(set(world.columns["text"]))
    second = train(world.config(head="v2", epochs=1), out=world.tmp / "b")
    assert second.cache_built is False
    assert world.encoder.calls == calls and len(world.encoder.texts) == n_texts


# ---------------------------------------------------------------- init_from and compatibility


def test_init_from_loads_the_weights(world):
    from prodcat_pipeline import train

    train(world.config(head="v2", epochs=2), out=world.tmp / "src")
    train(world.config(head="v2", epochs=0, init_from=str(world.tmp / "src")), out=world.tmp / "dst")
    src, dst = load_ckpt(world.tmp / "src" / "best.pt"), load_ckpt(world.tmp / "dst" / "best.pt")
    for k, v in src["head_state"].items():
        assert torch.equal(v, dst["head_state"][k]), k
    with pytest.raises(ProdcatError, match="'v2' head"):
        train(world.config(head="linear", init_from=str(world.tmp / "src")), out=world.tmp / "bad")


def test_init_from_other_label_set_raises(world):
    from prodcat_pipeline import train

    other = write_parquet(world.tmp / "other" / "three.parquet", dataset_columns(150, seed=3, classes=CLASSES[:3]))
    train(world.config(data=other, head="linear", epochs=1), out=world.tmp / "three")
    with pytest.raises(ProdcatError, match="another label set") as exc:
        train(world.config(head="linear", init_from=str(world.tmp / "three")), out=world.tmp / "x")
    assert "3 labels" in str(exc.value)


def test_checkpoint_from_other_encoder_raises(world):
    from prodcat_pipeline import train

    train(world.config(model="minilm", head="linear", epochs=1), out=world.tmp / "minilm-run")
    with pytest.raises(ProdcatError, match="encoder 'minilm'"):
        train(world.config(head="linear", init_from=str(world.tmp / "minilm-run")), out=world.tmp / "x")
    with pytest.raises(ProdcatError, match="encoder 'minilm'"):
        train(world.config(head="linear", epochs=2), out=world.tmp / "minilm-run", resume=True)
    with pytest.raises(ProdcatError, match="encoder 'minilm'"):
        train(world.config(head="linear", teacher=str(world.tmp / "minilm-run"), kl_weight=1.0), out=world.tmp / "y")


# ---------------------------------------------------------------- language centring and teacher KL


def test_lang_centering_is_stored_with_the_head_and_applied_at_predict(world):
    from prodcat_pipeline import train
    from prodcat_pipeline.predictor import Predictor

    out = world.tmp / "centred"
    train(world.config(head="linear", epochs=2, lang_centering=True), out=out)
    ckpt = load_ckpt(out / "best.pt")
    tr = world.split("train")
    X = encoded(world, tr["text"])
    langs = np.array(tr["language"])
    vocab = sorted(LANGS, key=lambda c: -int(np.sum(langs == c)))  # most frequent first
    assert ckpt["languages"] == vocab
    means = np.stack([X[langs == c].mean(0) for c in vocab])
    state = ckpt["head_state"]
    assert state["transform.lang_means"].numpy() == pytest.approx(means, abs=1e-5)
    assert ckpt["head_args"]["n_centred_languages"] == 3

    titles = ["shoes de item 9001", "food fr item 9002", "toys en item 9003", "phones en item 9004"]
    codes = ["de", "fr", "en", "xx"]  # xx: a language the head never saw -> not shifted
    got = Predictor(out, device="cpu").predict(titles, top_k=4, languages=codes)
    # the same computation by hand: centre, L2-normalise, linear layer, softmax
    W, b = state["classifier.weight"].numpy(), state["classifier.bias"].numpy()
    x = encoded(world, titles)
    shift = np.stack([means[vocab.index(c)] if c in vocab else np.zeros(DIM) for c in codes])
    xc = x - shift
    xc = xc / np.linalg.norm(xc, axis=1, keepdims=True)
    logits = xc @ W.T + b
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    for i, row in enumerate(got):
        assert row["label"] == CLASSES[int(probs[i].argmax())]
        by_label = {t["label"]: t["probability"] for t in row["top_k"]}
        assert [by_label[c] for c in CLASSES] == pytest.approx(probs[i].tolist(), abs=1e-5)


def test_teacher_kl(world):
    from prodcat_pipeline import train

    teacher = world.tmp / "teacher"
    train(world.config(head="linear", epochs=2), out=teacher)
    other = world.tmp / "other-teacher"
    train(world.config(head="linear", epochs=1, seed=5, lr=0.05), out=other)

    # one batch per epoch: the epoch-1 loss is computed before any step, while student == teacher
    one = {"head": "linear", "epochs": 1, "batch_size": 1024, "lr_schedule": "none", "init_from": str(teacher)}
    plain = train(world.config(**one), out=world.tmp / "plain").history[0]["loss"]
    same = train(world.config(**one, teacher=str(teacher), kl_weight=5.0), out=world.tmp / "same").history[0]["loss"]
    diff = train(world.config(**one, teacher=str(other), kl_weight=5.0), out=world.tmp / "diff").history[0]["loss"]
    assert same == pytest.approx(plain, rel=1e-5)  # KL(student || itself) = 0
    assert diff > plain + 1e-3

    # and a normal multi-epoch run with a teacher trains fine
    res = train(world.config(head="v2", epochs=3, teacher=str(teacher), kl_weight=1.0), out=world.tmp / "kd")
    assert all(math.isfinite(h["loss"]) for h in res.history)
    assert res.metrics["validation"]["macro_f1"] > 0.7
