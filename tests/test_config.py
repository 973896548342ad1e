"""One resolved configuration: defaults < pipeline.yaml < per-head defaults < head_overrides < flags."""

from __future__ import annotations

import pytest
import yaml

from prodcat_pipeline.config import HEAD_DEFAULTS, PipelineConfig, TrainConfig, load_config
from prodcat_pipeline.config_yaml import to_yaml
from prodcat_pipeline.errors import ProdcatError

DOC = {
    "data": {"path": "somewhere"},
    "train": {"lr": 0.5, "batch_size": 64, "epochs": 7},
    "head_overrides": {"v2": {"lr": 0.007}, "contrastive": {"epochs": 2}},
}


def test_each_layer_wins_over_the_one_before():
    linear = load_config(DOC, {"train.head": "linear"}).train
    assert linear.lr == HEAD_DEFAULTS["linear"]["lr"]  # the head's default beats the shared yaml value
    assert linear.epochs == HEAD_DEFAULTS["linear"]["epochs"]
    assert linear.batch_size == 64  # no head default for it: pipeline.yaml beats the built-in default
    assert linear.focal_gamma == TrainConfig().focal_gamma  # nothing set anywhere: the built-in default
    v2 = load_config(DOC, {"train.head": "residual"}).train  # aliases resolve
    assert (v2.head, v2.lr, v2.epochs) == ("v2", 0.007, HEAD_DEFAULTS["v2"]["epochs"])  # head_overrides beat them
    v3 = load_config(DOC, {"train.head": "v3"}).train
    assert v3.epochs == 2  # head_overrides keyed by an alias
    flagged = load_config(DOC, {"train.head": "v2", "train.lr": 0.9, "train.epochs": 1}).train
    assert (flagged.lr, flagged.epochs) == (0.9, 1)  # flags beat everything


def test_for_head_re_resolves_with_the_same_layers():
    cfg = load_config(DOC, {"train.batch_size": 32})
    assert cfg.train.head == "v2"
    for head in ("linear", "v2", "v3"):
        again = cfg.for_head(head)
        assert again.train == load_config(DOC, {"train.batch_size": 32, "train.head": head}).train
        assert again.for_head() == again  # idempotent
    assert cfg.for_head("linear").train.batch_size == 32  # the flag follows every head


def test_python_edits_count_as_explicit_settings():
    cfg = load_config(DOC)
    cfg.train.lr = 0.2
    assert cfg.for_head("linear").train.lr == 0.2  # an edit beats the head's default, like a flag
    hand_built = PipelineConfig()
    hand_built.train = TrainConfig(head="linear", epochs=3)
    resolved = hand_built.for_head()
    assert (resolved.train.epochs, resolved.train.lr) == (3, HEAD_DEFAULTS["linear"]["lr"])


def test_shadowed_yaml_settings_are_named():
    notes = load_config(DOC).for_head("linear").shadowed_settings()
    assert any("train.lr=0.5" in n and "head_overrides.linear.lr" in n for n in notes)
    assert not any("batch_size" in n for n in notes)
    assert load_config(DOC, {"train.lr": 0.3}).shadowed_settings("linear") == [
        n for n in notes if "train.lr=" not in n
    ]  # a flag replaces the value anyway: nothing to warn about


def test_yaml_round_trip(tmp_path):
    cfg = load_config(DOC, {"train.head": "v3", "train.languages": "de, FR"})
    assert cfg.train.languages == ["de", "fr"]
    text = to_yaml(cfg)
    again = load_config(yaml.safe_load(text))
    assert again.model_dump() == cfg.model_dump()


@pytest.mark.parametrize(
    "overrides,needle",
    [
        ({"train.head": "v9"}, "unknown head 'v9'"),
        ({"train.lr": float("inf")}, "train.lr"),
        ({"train.lr": float("nan")}, "train.lr"),
        ({"train.seed": -1}, "train.seed"),
        ({"train.seed": 2**70}, "train.seed"),
        ({"data.split_seed": -1}, "data.split_seed"),
        ({"train.device": "foo"}, "unknown device 'foo'"),
        ({"encoder.device": "gpu"}, "unknown device 'gpu'"),
        ({"train.languages": "en,xx"}, "unknown language code 'xx'"),
        ({"train.lang_loss_weights": "en=2,de"}, "code=weight"),
        ({"knn.k": 0}, "knn.k"),
        ({"head_overrides": {"v3": {"epoch": 1}}}, "head_overrides.v3.epoch"),
        ({"head_overrides": {"v3": {"lr": -1}}}, "head_overrides.v3.lr"),
        ({"head_overrides": {"v8": {"lr": 1}}}, "unknown head 'v8'"),
        ({"heads": ["linear", "v7"]}, "unknown head 'v7'"),
    ],
)
def test_bad_settings_are_one_line_errors(overrides, needle):
    with pytest.raises(ProdcatError) as exc:
        load_config(None, overrides)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_yaml_alias_bomb_and_huge_files_are_refused(tmp_path):
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 8):
        levels.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(levels) + "\nhead_overrides: {linear: {languages: *a7}}\n")
    assert bomb.stat().st_size < 2000
    with pytest.raises(ProdcatError, match="more than .* values"):
        load_config(bomb)
    huge = tmp_path / "huge.yaml"
    huge.write_text("# " + "x" * (2 << 20) + "\n")
    with pytest.raises(ProdcatError, match="at most"):
        load_config(huge)


def test_a_stored_config_reloads_exactly():
    from prodcat_pipeline.config import PipelineConfig

    cfg = load_config(DOC, {"train.head": "linear", "train.batch_size": 32})
    again = PipelineConfig.from_resolved(yaml.safe_load(to_yaml(cfg)))
    assert again.model_dump() == cfg.model_dump()
    assert again.for_head().train == cfg.train  # its train section is not re-resolved over
    with pytest.raises(ProdcatError, match="stored config"):
        PipelineConfig.from_resolved({**cfg.model_dump(), "train": {"lr": -1}})
