"""`prodcat embed` through typer's CliRunner: help, success, reuse, one-line errors, bad flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import sample_columns, write_table
from typer.testing import CliRunner

from prodcat_pipeline.cli import app

WIDE = {"COLUMNS": "250", "TERMINAL_WIDTH": "250", "NO_COLOR": "1"}  # no wrapped or cut-off option names


@pytest.fixture
def runner(monkeypatch, tmp_path) -> CliRunner:
    monkeypatch.chdir(tmp_path)  # a stray pipeline.yaml in the working folder must not be picked up
    return CliRunner()


def invoke(runner: CliRunner, *args: str):
    # click >= 8.2 keeps stderr apart from stdout in `result.stderr`; `result.output` holds both
    return runner.invoke(app, [str(a) for a in args], env=WIDE)


def assert_one_error_line(result, *needles: str) -> str:
    assert result.exit_code == 1, (result.exit_code, result.output)
    assert isinstance(result.exception, SystemExit), result.exception  # not an unexpected exception
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# ---------------------------------------------------------------- help and flags


def test_root_help_lists_commands_and_options(runner):
    result = invoke(runner, "--help")
    assert result.exit_code == 0
    for word in ("embed", "--version", "--help"):
        assert word in result.stdout


def test_embed_help_lists_every_option(runner):
    result = invoke(runner, "embed", "--help")
    assert result.exit_code == 0
    for opt in (
        "--data",
        "--model",
        "--cache-dir",
        "--batch-size",
        "--shard-size",
        "--dtype",
        "--device",
        "--text-column",
        "--label-column",
        "--language-column",
        "--cluster-column",
        "--drop-empty",
        "--no-drop-empty",
        "--config",
        "--verbose",
    ):
        assert opt in result.stdout, opt
    assert invoke(runner, "embed", "-h").stdout == result.stdout


def test_embed_help_shows_language_column_default(runner):
    result = invoke(runner, "embed", "--help")
    assert "[language]" in result.stdout or "default language" in result.stdout


def test_version_flag(runner):
    from prodcat_pipeline import __version__

    result = invoke(runner, "--version")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == __version__


@pytest.mark.parametrize(
    "args",
    [
        ("embed", "--bogus"),
        ("embed", "--batch-size", "many"),
        ("embed", "--data"),
        ("nosuchcommand",),
    ],
)
def test_bad_flags_exit_2(runner, tmp_path, args):
    result = invoke(runner, *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stdout == ""  # usage errors go to stderr


# ---------------------------------------------------------------- success and reuse


def test_embed_succeeds_and_second_run_encodes_nothing(runner, tmp_path, fake_encoder):
    data = write_table(tmp_path / "d.parquet", sample_columns())
    cache = tmp_path / "cache"
    first = invoke(runner, "embed", "--data", data, "--cache-dir", cache)
    assert first.exit_code == 0, first.output
    assert "12 rows, 12 distinct titles: encoded 12, reused 0 from the cache" in first.stdout
    assert "titles/s" in first.stdout
    folder = Path(first.stdout.split("cache: ", 1)[1].strip())
    assert folder.parent == cache and (folder / "manifest.json").is_file()
    assert first.stderr == ""
    assert len(fake_encoder.texts) == 12

    second = invoke(runner, "embed", "--data", data, "--cache-dir", cache)
    assert second.exit_code == 0, second.output
    assert "encoded 0, reused 12 from the cache" in second.stdout
    assert "titles/s" not in second.stdout
    assert len(fake_encoder.texts) == 12


def test_embed_notes_made_split_and_detected_languages(runner, tmp_path, fake_encoder):
    cols = sample_columns()
    cols.pop("split")
    cols.pop("language")
    data = write_table(tmp_path / "nosplit.csv", cols)
    result = invoke(runner, "embed", "-d", data, "--cache_dir", tmp_path / "cache")
    assert result.exit_code == 0, result.output
    assert "note: no split in the data: made a grouped 85/5/10 split by cluster" in result.stdout
    assert "note: no language column: languages detected with py3langid" in result.stdout


def test_embed_flags_reach_the_cache(runner, tmp_path, fake_encoder):
    cols = sample_columns(text="title", label="category")
    data = write_table(tmp_path / "custom.jsonl", cols)
    result = invoke(
        runner,
        "embed",
        "--data",
        data,
        "--cache-dir",
        tmp_path / "cache",
        "--text-column",
        "title",
        "--label_column",
        "category",
        "--shard-size",
        "5",
        "--batch-size",
        "3",
        "--dtype",
        "float32",
    )
    assert result.exit_code == 0, result.output
    folder = Path(result.stdout.split("cache: ", 1)[1].strip())
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["dtype"] == "float32"
    assert [s["rows"] for s in manifest["shards"]] == [5, 5, 2]
    assert {k["batch_size"] for k in fake_encoder.kwargs} == {3}
    (entry,) = manifest["datasets"].values()
    assert entry["columns"]["text_column"] == "title"


def test_config_file_and_flag_precedence(runner, tmp_path, fake_encoder):
    data = write_table(tmp_path / "d.parquet", sample_columns())
    cfg = tmp_path / "pipeline.yaml"
    cfg.write_text(f"data:\n  path: {data}\ncache:\n  dir: {tmp_path / 'cache'}\n  shard_size: 5\n")
    result = invoke(runner, "embed", "--config", cfg, "--shard-size", "4")
    assert result.exit_code == 0, result.output
    folder = Path(result.stdout.split("cache: ", 1)[1].strip())
    manifest = json.loads((folder / "manifest.json").read_text())
    assert [s["rows"] for s in manifest["shards"]] == [4, 4, 4]  # the flag wins over the file

    cfg.write_text("cache:\n  shard_sise: 5\n")
    assert_one_error_line(invoke(runner, "embed", "--config", cfg), "unknown key", "shard_sise")


# ---------------------------------------------------------------- bad input: one `Error:` line, exit 1


def _missing_column(tmp_path):
    return write_table(tmp_path / "d.parquet", sample_columns(text="title")), ("'text'", "title")


def _empty_title(tmp_path):
    cols = sample_columns()
    cols["text"][2] = ""
    return write_table(tmp_path / "d.csv", cols), ("empty or null title", "--drop-empty")


def _unknown_split(tmp_path):
    cols = sample_columns()
    cols["split"][0] = "holdout"
    return write_table(tmp_path / "d.jsonl", cols), ("holdout",)


def _unreadable(tmp_path):
    path = tmp_path / "d.parquet"
    path.write_bytes(b"\x00\x01garbage" * 100)
    return path, ("cannot read", "d.parquet")


def _missing_path(tmp_path):
    return tmp_path / "nope.parquet", ("not found",)


def _null_label(tmp_path):
    cols = sample_columns()
    cols["label"][1] = None
    return write_table(tmp_path / "d.parquet", cols), ("label column",)


BAD_INPUTS = {
    "missing column": _missing_column,
    "empty title": _empty_title,
    "unknown split": _unknown_split,
    "unreadable file": _unreadable,
    "missing path": _missing_path,
    "null label": _null_label,
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_is_one_error_line(runner, tmp_path, fake_encoder, name):
    data, needles = BAD_INPUTS[name](tmp_path)
    result = invoke(runner, "embed", "--data", data, "--cache-dir", tmp_path / "cache")
    assert_one_error_line(result, *needles)
    assert fake_encoder.calls == 0


def test_empty_title_with_drop_empty_succeeds(runner, tmp_path, fake_encoder):
    data, _ = _empty_title(tmp_path)
    result = invoke(runner, "embed", "--data", data, "--cache-dir", tmp_path / "cache", "--drop-empty")
    assert result.exit_code == 0, result.output
    assert "11 rows" in result.stdout


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (("--dtype", "float64"), ("cache.dtype", "float64")),
        (("--shard-size", "0"), ("cache.shard_size",)),
        (("--device", "cuda:7"), ("cuda:7",)),
    ],
)
def test_bad_settings_are_one_error_line(runner, tmp_path, fake_encoder, args, needles):
    import torch

    if args[0] == "--device" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    data = write_table(tmp_path / "d.parquet", sample_columns())
    result = invoke(runner, "embed", "--data", data, "--cache-dir", tmp_path / "cache", *args)
    assert_one_error_line(result, *needles)


def _build(runner, tmp_path) -> tuple[Path, Path]:
    data = write_table(tmp_path / "d.parquet", sample_columns())
    result = invoke(runner, "embed", "--data", data, "--cache-dir", tmp_path / "cache", "--shard-size", "5")
    assert result.exit_code == 0, result.output
    return data, Path(result.stdout.split("cache: ", 1)[1].strip())


def test_mismatched_manifest_is_one_error_line(runner, tmp_path, fake_encoder):
    data, folder = _build(runner, tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["key"] = "ffffffffffffffff"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    result = invoke(runner, "embed", "--data", data, "--cache-dir", tmp_path / "cache")
    assert_one_error_line(result, "does not match", str(folder))


@pytest.mark.parametrize("damage", ["garbage json", "truncated shard"])
def test_corrupt_cache_is_one_error_line(runner, tmp_path, fake_encoder, damage):
    data, folder = _build(runner, tmp_path)
    if damage == "garbage json":
        (folder / "manifest.json").write_text("{not json")
    else:
        shard = folder / "emb_00001.npy"
        shard.write_bytes(shard.read_bytes()[:90])
    result = invoke(runner, "embed", "--data", data, "--cache-dir", tmp_path / "cache")
    assert_one_error_line(result, "corrupt", str(folder))


def test_manifest_that_is_a_json_list_is_one_error_line(runner, tmp_path, fake_encoder):
    data, folder = _build(runner, tmp_path)
    (folder / "manifest.json").write_text("[]")
    result = invoke(runner, "embed", "--data", data, "--cache-dir", tmp_path / "cache")
    assert_one_error_line(result, str(folder))
