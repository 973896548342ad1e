"""--lang_align: per-language ridge maps onto English, fitted on cluster mates, kept with the head."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from conftest import FakeEncoder, fake_vectors

from prodcat_pipeline.sampling import alignment_maps

LABELS = ["food", "phones", "shoes"]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_the_map_sends_a_language_towards_its_english_cluster_mates():
    rng = np.random.default_rng(0)
    dim, n = 16, 120
    english = _unit(rng.standard_normal((n, dim)))
    rotation = np.linalg.qr(rng.standard_normal((dim, dim)))[0]
    german = _unit(english @ rotation + 0.05 * rng.standard_normal((n, dim)))
    french = _unit(english[:10] @ rotation.T)  # 10 pairs: below the minimum, keeps the identity
    X = np.vstack([english, german, french]).astype(np.float32)
    lang = np.repeat([0, 1, 2], [n, n, 10])
    clusters = np.concatenate([np.arange(n), np.arange(n), np.arange(10)])
    clusters[n : n + 5] = -1  # rows without a cluster are not paired

    maps = alignment_maps(X, lang, clusters, n_languages=3, pivot=0, ridge=1.0, min_pairs=50)

    assert maps.shape == (3, dim, dim)
    identity = np.eye(dim, dtype=np.float32)
    assert np.array_equal(maps[0], identity) and np.array_equal(maps[2], identity)
    before = np.sum((german - english) ** 2)
    after = np.sum((german @ maps[1] - english) ** 2)
    assert after < 0.5 * before
    # more shrinkage towards the identity: the map stays closer to it
    strong = alignment_maps(X, lang, clusters, n_languages=3, pivot=0, ridge=100.0, min_pairs=50)[1]
    assert np.linalg.norm(strong - identity) < np.linalg.norm(maps[1] - identity)


def _columns(n_pairs: int = 70) -> dict[str, list]:
    """en + de rows of the same products (cluster = product), a few ja rows; validation: 6 products."""
    cols = {"text": [], "label": [], "split": [], "language": [], "cluster": []}
    for i in range(n_pairs + 6):
        split = "train" if i < n_pairs else "validation"
        langs = ["en", "de"] + (["ja"] if i % 10 == 0 else [])
        for lang in langs:
            cols["text"].append(f"{LABELS[i % 3]} {lang} product {i}")
            cols["label"].append(LABELS[i % 3])
            cols["split"].append(split)
            cols["language"].append(lang)
            cols["cluster"].append(f"p{i}")
    return cols


@pytest.fixture
def aligned_run(tmp_path, monkeypatch):
    import prodcat_pipeline.embedder as embedder
    import prodcat_pipeline.encoders as encoders
    from prodcat_pipeline import train
    from prodcat_pipeline.config import PipelineConfig, TrainConfig

    enc = FakeEncoder()
    monkeypatch.setattr(embedder, "load_encoder", lambda name, **_: enc)
    monkeypatch.setattr(encoders, "load_encoder", lambda name, **_: enc)  # what Predictor loads
    pq.write_table(pa.table(_columns()), tmp_path / "products.parquet")
    cfg = PipelineConfig()
    cfg.data.path, cfg.cache.dir, cfg.encoder.device = str(tmp_path / "products.parquet"), str(tmp_path / "c"), "cpu"
    cfg.train = TrainConfig(head="v2", epochs=2, batch_size=32, classifier_hidden=8, device="cpu", lang_align=True)
    result = train(cfg, out=tmp_path / "run")
    return result, cfg


def test_lang_align_is_kept_in_the_checkpoint_and_predict_applies_it(aligned_run):
    from prodcat_pipeline.cache import TRAINING_COLUMNS, open_cache
    from prodcat_pipeline.checkpoint import head_from_checkpoint, read_checkpoint
    from prodcat_pipeline.inference import predict_logits, softmax
    from prodcat_pipeline.predictor import Predictor
    from prodcat_pipeline.training_data import build_training_data

    result, cfg = aligned_run
    ckpt = read_checkpoint(result.out_dir / "best.pt")
    languages = ckpt["languages"]
    assert languages[0] == "en" and ckpt["head_args"]["n_aligned_languages"] == len(languages) == 3
    maps = ckpt["head_state"]["transform.lang_maps"].numpy()
    identity = np.eye(maps.shape[1], dtype=np.float32)
    assert np.array_equal(maps[languages.index("en")], identity)
    assert np.array_equal(maps[languages.index("ja")], identity)  # 7 pairs < 50
    assert not np.allclose(maps[languages.index("de")], identity)

    # training-time inference (the evaluation path) and `predict` give the same probabilities
    cached, _ = open_cache(cfg, columns=TRAINING_COLUMNS, show_progress=False)
    rows = build_training_data(cached, cfg.train, "cpu").eval_set("validation")
    head = head_from_checkpoint(ckpt)
    at_training = softmax(predict_logits(head, rows.X, rows.lang_ids, "cpu"))
    table = pq.read_table(cfg.data.path).to_pylist()
    val = [r for r in table if r["split"] == "validation"]
    assert [r["language"] for r in val] == list(rows.lang_codes)
    got = Predictor(result.out_dir, device="cpu").predict(
        [r["text"] for r in val], top_k=3, languages=[r["language"] for r in val]
    )
    for i, row in enumerate(got):
        by_label = {t["label"]: t["probability"] for t in row["top_k"]}
        assert [by_label[c] for c in LABELS] == pytest.approx(at_training[i].tolist(), abs=1e-5)

    # by hand for a German row: normalise(x W_de), then the head; an unseen language is not mapped
    x = torch.from_numpy(fake_vectors(["shoes de product 999"]))
    mapped = torch.nn.functional.normalize(x @ torch.from_numpy(maps[languages.index("de")]), dim=1)
    lang_de = torch.tensor([languages.index("de")])
    assert torch.allclose(head.transform(x, lang_de), mapped, atol=1e-6)
    assert torch.allclose(head.transform(x, torch.tensor([-1])), x, atol=1e-6)


def test_without_lang_align_checkpoints_keep_their_old_shape(tmp_path):
    from prodcat_pipeline.config import TrainConfig
    from prodcat_pipeline.heads import build_head, head_args

    args = head_args(TrainConfig(head="v2"), n_languages=3)
    assert "n_aligned_languages" not in args  # older checkpoints (without the key) still resume
    head = build_head("v2", 4, 2, args)
    assert "transform.lang_maps" not in head.state_dict()
    assert not head.transform.needs_languages


def test_identity_maps_skip_the_product_and_give_the_same_rows():
    """The pivot and languages with too few pairs keep the identity: their rows are only normalised (x @ I
    == x, bit for bit), and the identity flags follow the maps when they are changed or loaded."""
    from prodcat_pipeline.heads import InputTransform

    def by_hand(maps, x, lang):
        out = x.clone()
        for i in range(len(maps)):
            out[lang == i] = torch.nn.functional.normalize(x[lang == i] @ maps[i], dim=1)
        return out

    torch.manual_seed(0)
    t = InputTransform(16, n_aligned=4)
    with torch.no_grad():
        t.lang_maps[1] += 0.1 * torch.randn(16, 16)
    x, lang = torch.randn(64, 16), torch.randint(-1, 4, (64,))
    assert torch.equal(t.align(x, lang), by_hand(t.lang_maps, x, lang))
    with torch.no_grad():
        t.lang_maps[3] += 0.1 * torch.randn(16, 16)  # changed in place: no longer the identity
    assert torch.equal(t.align(x, lang), by_hand(t.lang_maps, x, lang))
    loaded = InputTransform(16, n_aligned=4)
    loaded.align(x, lang)  # flags worked out for its identity maps, then the fitted maps are loaded
    loaded.load_state_dict(t.state_dict())
    assert torch.equal(loaded.align(x, lang), by_hand(t.lang_maps, x, lang))
    assert loaded._identity_maps()[0] == [True, False, True, False]


def test_lang_align_trains_and_evaluates_under_amp(aligned_run, tmp_path):
    """Under autocast the mapped rows come out of the product in bf16; they are stored back as float32 (it
    failed: 'Index put requires the source and destination dtypes match')."""
    from prodcat_pipeline import train
    from prodcat_pipeline.heads import InputTransform

    _, cfg = aligned_run
    cfg.train.amp = True
    result = train(cfg, out=tmp_path / "amp")
    assert result.epochs_run == 2 and 0.0 <= result.metrics["validation"]["macro_f1"] <= 1.0
    t = InputTransform(8, n_aligned=2)
    with torch.no_grad():
        t.lang_maps[1] += 0.1
    x = torch.randn(6, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert t(x, torch.tensor([0, 1, -1, 1, 0, 1])).dtype == torch.float32
