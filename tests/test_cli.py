"""The command line as a user meets it: config pick-up, flags, help, interrupts, refused checkpoints,
the rebuild-or-refuse decision, and `prodcat train` vs `prodcat run` giving the same run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from test_knn_predict_run import assert_one_error_line, invoke
from test_train import CLASSES, World, make_world

from prodcat_pipeline.config import HEAD_DEFAULTS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def world(tmp_path, monkeypatch) -> World:
    monkeypatch.chdir(tmp_path)  # no ./pipeline.yaml unless a test writes one
    return make_world(tmp_path, monkeypatch)


def data_args(world: World) -> list:
    return ["--data", world.data, "--cache-dir", world.cache_dir]


def metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


# ---------------------------------------------------------------- pipeline.yaml pick-up and head_overrides


def write_pipeline_yaml(world: World, **head_overrides) -> Path:
    doc = {
        "data": {"path": str(world.data)},
        "cache": {"dir": str(world.cache_dir)},
        "train": {"batch_size": 32, "device": "cpu", "lang_min_samples": 3, "lr": 0.5},
        "head_overrides": head_overrides,
    }
    path = world.tmp / "pipeline.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_pipeline_yaml_in_the_current_folder_is_read_and_announced(world):
    write_pipeline_yaml(world, linear={"lr": 0.123, "epochs": 1})
    r = invoke(["train", "--head", "linear", "--out", world.tmp / "lin"])
    assert r.exit_code == 0, r.output
    assert "config: pipeline.yaml (found in the current folder" in r.stderr
    # head_overrides apply under `prodcat train` too; yaml's shared train.lr is shadowed, and says so
    m = metrics(world.tmp / "lin")
    assert (m["config"]["lr"], m["epochs_run"], m["config"]["batch_size"]) == (0.123, 1, 32)
    r = invoke(["train", "--head", "v2", "--epochs", "1", "--out", world.tmp / "v2"])
    assert r.exit_code == 0, r.output
    assert "note: pipeline.yaml sets train.lr=0.5, but the v2 head's default lr=0.001" in r.stderr
    assert metrics(world.tmp / "v2")["config"]["lr"] == HEAD_DEFAULTS["v2"]["lr"]
    # --no-config ignores it: the head's own defaults, the data from the flags
    r = invoke(
        ["train", "--no-config", "--head", "linear", "--epochs", "1", "--out", world.tmp / "n", *data_args(world)]
    )
    assert r.exit_code == 0, r.output
    assert "config:" not in r.stderr
    assert metrics(world.tmp / "n")["config"]["lr"] == HEAD_DEFAULTS["linear"]["lr"]


def test_config_show_prints_the_resolved_yaml(world):
    write_pipeline_yaml(world, linear={"lr": 0.123})
    r = invoke(["config", "show", "--head", "linear"])
    assert r.exit_code == 0, r.output
    shown = yaml.safe_load(r.stdout)
    assert shown["train"]["head"] == "linear" and shown["train"]["lr"] == 0.123
    assert shown["train"]["epochs"] == HEAD_DEFAULTS["linear"]["epochs"]
    r = invoke(["config", "show", "--head", "v3", "--lr", "0.01", "--no-normalize-input", "--amp"])
    shown = yaml.safe_load(r.stdout)
    assert (shown["train"]["lr"], shown["train"]["normalize_input"], shown["train"]["amp"]) == (0.01, False, True)
    r = invoke(["config", "show", "--batch_size", "48", "--classifier_no_residual"])  # underscore spellings
    assert r.exit_code == 0, r.output
    shown = yaml.safe_load(r.stdout)
    assert shown["train"]["batch_size"] == 48 and shown["train"]["classifier_no_residual"] is True


def test_every_run_folder_keeps_its_resolved_config(world):
    r = invoke(["train", "--head", "linear", "--epochs", "1", "--out", world.tmp / "lin", *data_args(world)])
    assert r.exit_code == 0, r.output
    saved = yaml.safe_load((world.tmp / "lin" / "config.yaml").read_text())
    assert saved["train"] == metrics(world.tmp / "lin")["config"]
    assert saved["data"]["path"] == str(world.data)


# ---------------------------------------------------------------- help, flags, entry points


def test_train_help_fits_80_columns_and_shows_one_spelling():
    from typer.testing import CliRunner

    from prodcat_pipeline.cli import app

    r = CliRunner().invoke(app, ["train", "--help"], terminal_width=80)
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "--batch-size" in r.stdout and "--batch_size" not in r.stdout
    for heading in ("Core:", "Schedule:", "Regularisation:", "Languages:", "Checkpoints:"):
        assert heading in lines
    assert "--no-amp" in r.stdout and "--no-normalize-input" in r.stdout


def test_python_dash_m_runs_the_cli():
    r = subprocess.run([sys.executable, "-m", "prodcat_pipeline", "--version"], capture_output=True, text=True)
    from prodcat_pipeline import __version__

    assert r.returncode == 0 and r.stdout.strip() == __version__


def test_knn_eval_through_the_cli(world):
    out = world.tmp / "knn"
    r = invoke(["knn-eval", *data_args(world), "--out", out, "--k", "5", "--weighting", "uniform"])
    assert r.exit_code == 0, r.output
    m = metrics(out)
    assert m["head"] == "knn" and m["knn"]["k"] == 5 and m["knn"]["weighting"] == "uniform"
    assert m["validation"]["macro_f1"] > 0.7 and "validation" in r.stdout
    assert_one_error_line(invoke(["knn-eval", *data_args(world), "--index", "annoy"]), "knn.index")


@pytest.mark.parametrize("command,hint", [("train", "--resume"), ("embed", "run the same command")])
def test_ctrl_c_exits_130_with_the_command_s_hint(world, monkeypatch, command, hint):
    import prodcat_pipeline.embedder as embedder
    import prodcat_pipeline.trainer as trainer

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer if command == "train" else embedder, command, interrupted)
    r = invoke([command, *data_args(world)])
    assert r.exit_code == 130
    assert "Traceback" not in r.output and hint in r.stderr


# ---------------------------------------------------------------- checkpoints that are not ours


@pytest.fixture
def run_dir(world) -> Path:
    out = world.tmp / "run"
    r = invoke(["train", "--head", "linear", "--epochs", "1", "--out", out, *data_args(world)])
    assert r.exit_code == 0, r.output
    return out


class Payload:
    """Unpickling this would create a file: what a crafted checkpoint could do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_checkpoint_with_code_in_it_is_refused_and_nothing_runs(run_dir, world):
    marker = world.tmp / "pwned"
    ckpt = torch.load(run_dir / "best.pt", weights_only=True)
    ckpt["extra"] = Payload(marker)
    torch.save(ckpt, run_dir / "best.pt")
    r = invoke(["predict", "--run", run_dir], input="shoes en item\n")
    assert_one_error_line(r, "refusing checkpoint", "best.pt")
    assert not marker.exists()
    r = invoke(["train", "--head", "linear", "--epochs", "1", "--out", world.tmp / "ft", "--init-from", run_dir,
                *data_args(world)])  # fmt: skip
    assert_one_error_line(r, "refusing checkpoint")
    assert not marker.exists()


@pytest.mark.parametrize(
    "damage,needle",
    [
        (lambda p: p.write_bytes(p.read_bytes()[:100]), "cannot read checkpoint"),
        (lambda p: p.write_bytes(b"not a checkpoint at all"), "cannot read checkpoint"),
        (lambda p: torch.save({"state_dict": {"w": torch.zeros(2)}}, p), "not a prodcat head checkpoint"),
        (lambda p: torch.save([1, 2, 3], p), "not a prodcat head checkpoint"),
    ],
)
def test_corrupt_and_foreign_checkpoints_are_one_line(run_dir, damage, needle):
    damage(run_dir / "best.pt")
    assert_one_error_line(invoke(["predict", "--run", run_dir], input="toys de item\n"), needle, "best.pt")


def test_a_checkpoint_whose_weights_do_not_fit_its_head(run_dir):
    ckpt = torch.load(run_dir / "best.pt", weights_only=True)
    ckpt["label_names"] = ckpt["label_names"][:2]  # the classifier has 4 outputs
    torch.save(ckpt, run_dir / "best.pt")
    assert_one_error_line(invoke(["predict", "--run", run_dir], input="toys de item\n"), "do not fit")


# ---------------------------------------------------------------- rebuild or refuse


def test_a_missing_cache_is_built_a_corrupt_one_is_refused(world):
    r = invoke(["train", "--head", "linear", "--epochs", "1", "--out", world.tmp / "a", *data_args(world)])
    assert r.exit_code == 0 and "encoded the dataset into the cache first" in r.stdout
    calls = world.encoder.calls
    index = next(world.cache_dir.glob("*/datasets/*.parquet"))
    index.write_bytes(b"garbage" * 10)
    r = invoke(["train", "--head", "linear", "--epochs", "1", "--out", world.tmp / "b", *data_args(world)])
    assert_one_error_line(r, str(index), "is corrupt", "prodcat embed")
    shard = next(world.cache_dir.glob("*/emb_00000.npy"))
    shard.write_bytes(shard.read_bytes()[:64])
    r = invoke(["knn-eval", *data_args(world)])
    assert_one_error_line(r, str(shard), "is corrupt")
    assert world.encoder.calls == calls  # nothing was re-encoded without asking


def test_open_cache_builds_only_on_cache_missing(world):
    from prodcat_pipeline.cache import open_cache
    from prodcat_pipeline.errors import CacheCorrupt

    cfg = world.config()
    cached, built = open_cache(cfg)
    assert built and world.encoder.calls > 0
    calls = world.encoder.calls
    again, built = open_cache(cfg)
    assert not built and world.encoder.calls == calls
    assert np.array_equal(again.column("vec"), cached.column("vec"))
    (cached.folder / "manifest.json").write_text("{broken")
    with pytest.raises(CacheCorrupt, match="manifest.json is corrupt"):
        open_cache(cfg)
    assert world.encoder.calls == calls


# ---------------------------------------------------------------- one run, two commands


@pytest.mark.slow
def test_train_and_run_give_the_same_config_and_metrics_on_the_sample(tmp_path, monkeypatch):
    """The bundled sample, the real encoder, ./pipeline.yaml: `prodcat train --head X` == `prodcat run --heads X`."""
    monkeypatch.chdir(ROOT)
    cache = tmp_path / "cache"
    flags = ["--epochs", "4", "--seed", "3", "--lr", "0.05", "--cache-dir", cache]
    for head in ("linear", "v2"):
        r = invoke(["train", "--head", head, "--out", tmp_path / f"train-{head}", *flags])
        assert r.exit_code == 0, r.output
        r = invoke(["run", "--heads", head, "--no-knn", "--out", tmp_path / f"run-{head}", *flags])
        assert r.exit_code == 0, r.output
        a, b = metrics(tmp_path / f"train-{head}"), metrics(tmp_path / f"run-{head}" / head)
        assert a["config"] == b["config"] and a["config"]["head"] == head and a["config"]["lr"] == 0.05
        for split in ("validation", "test"):
            assert a[split]["macro_f1"] == b[split]["macro_f1"] and a[split]["confusion"] == b[split]["confusion"]
        ca = yaml.safe_load((tmp_path / f"train-{head}" / "config.yaml").read_text())
        cb = yaml.safe_load((tmp_path / f"run-{head}" / head / "config.yaml").read_text())
        run_level = {"out", "heads", "run_knn"}  # what `run` is asked to do, not how a head trains
        assert {k: v for k, v in ca.items() if k not in run_level} == {
            k: v for k, v in cb.items() if k not in run_level
        }
    assert set(metrics(tmp_path / "train-linear")["label_names"]) != set(CLASSES)  # the real sample, not the toy
