"""`prodcat cache ls` / `prodcat cache rm` and the library calls behind them, on real (fake-encoded) caches."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import product_columns, write_table
from typer.testing import CliRunner

from prodcat_pipeline import embed
from prodcat_pipeline.cache_admin import find_cache, list_caches, remove_cache
from prodcat_pipeline.errors import ProdcatError
from prodcat_pipeline.reader import load_cache
from prodcat_pipeline.store import MANIFEST


def invoke(args: list, input: str | None = None):
    from prodcat_pipeline.cli import app

    return CliRunner().invoke(app, [str(a) for a in args], input=input)


def assert_one_error_line(result, *needles: str) -> str:
    """Exit 1, exactly one `Error:` line (the last on stderr), no traceback."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and result.stderr.strip().splitlines()[-1] == errors[0], result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def manifest_of(folder: Path) -> dict:
    return json.loads((folder / MANIFEST).read_text())


def files_of(folder: Path) -> dict[str, int]:
    files = (p for p in folder.rglob("*") if p.is_file() and p.name != ".prodcat.lock")
    return {p.relative_to(folder).as_posix(): p.stat().st_size for p in files}


@pytest.fixture
def two_datasets(tmp_path, fake_encoder, make_config, sample_parquet):
    """One cache holding two datasets: (root, folder, [config of each])."""
    other = write_table(tmp_path / "data" / "other.parquet", product_columns(60, split=True))
    configs = [make_config(sample_parquet), make_config(other)]
    folders = {embed(c).cache_dir for c in configs}
    assert len(folders) == 1
    return tmp_path / "cache", folders.pop(), configs


def copy_with_key(folder: Path, key: str) -> Path:
    """A second cache: `folder` copied under another key (as another encoder setting would make)."""
    twin = folder.with_name(f"use-multilingual-{key}")
    shutil.copytree(folder, twin)
    manifest = manifest_of(twin)
    (twin / MANIFEST).write_text(json.dumps({**manifest, "key": key}))
    return twin


# ---------------------------------------------------------------- listing


def test_list_caches_reports_vectors_size_and_datasets(two_datasets, sample_parquet):
    root, folder, _ = two_datasets
    m = manifest_of(folder)
    [info] = list_caches(root)
    assert info.folder == folder and info.damaged is None
    assert (info.encoder, info.key, info.dim, info.dtype) == ("use-multilingual", m["key"], 16, "float16")
    assert folder.name.endswith(info.key)
    assert info.vectors == sum(s["rows"] for s in m["shards"]) and info.shards == len(m["shards"])
    assert info.bytes == sum(files_of(folder).values())
    by_source = {d.source: d for d in info.datasets}
    sample = by_source[str(sample_parquet)]
    assert sample.rows == 12 and sample.splits == {"train": 6, "validation": 3, "test": 3}
    assert sample.index == folder / "datasets" / f"{sample.fingerprint}.parquet" and sample.bytes > 0
    assert {d.fingerprint for d in info.datasets} == set(m["datasets"])


def test_missing_or_empty_root_has_no_caches(tmp_path):
    assert list_caches(tmp_path / "nothing-here") == []
    (tmp_path / "empty").mkdir()
    r = invoke(["cache", "ls", "--cache-dir", tmp_path / "empty"])
    assert r.exit_code == 0 and r.stdout.strip() == f"no caches under {tmp_path / 'empty'}"


def test_cli_ls_shows_the_table_datasets_and_total(two_datasets, sample_parquet):
    root, folder, _ = two_datasets
    info = list_caches(root)[0]
    r = invoke(["cache", "ls", "--cache-dir", root])
    assert r.exit_code == 0, r.output
    row = next(line for line in r.stdout.splitlines() if line.strip().startswith(info.key))
    assert "use-multilingual" in row and f"{info.vectors:,}" in row and "16 float16" in row
    assert row.split()[-1] == "2"  # datasets
    assert f"{folder.name}  (modified " in r.stdout
    for d in info.datasets:
        assert any(d.fingerprint in line and f"{d.rows:,} rows" in line for line in r.stdout.splitlines())
    assert "train 6, validation 3, test 3" in r.stdout and str(sample_parquet) in r.stdout
    assert r.stdout.strip().splitlines()[-1].startswith("total: 1 cache, ") and str(root) in r.stdout
    table = r.stdout.split(f"{folder.name}  (modified")[0]
    assert max(len(line.rstrip()) for line in table.splitlines()) <= 80


def test_damaged_manifest_is_listed_not_a_crash(two_datasets):
    root, folder, _ = two_datasets
    broken = root / "minilm-0123456789abcdef"
    broken.mkdir()
    (broken / MANIFEST).write_text("{not json")
    (broken / "emb_00000.npy").write_bytes(b"x" * 100)
    infos = {i.name: i for i in list_caches(root)}
    assert infos[folder.name].damaged is None
    assert "unreadable manifest.json" in infos[broken.name].damaged and infos[broken.name].bytes >= 100
    r = invoke(["cache", "ls", "--cache-dir", root])
    assert r.exit_code == 0, r.output
    assert f"{broken.name}  (modified" in r.stdout and "damaged: unreadable manifest.json" in r.stdout
    # its datasets cannot be edited, but the whole folder can go (where a cache would be)
    assert_one_error_line(invoke(["cache", "rm", "0123456789", "--dataset", "x", "--cache-dir", root, "--yes"]),
                          "damaged", f"prodcat cache rm {broken.name}")  # fmt: skip
    assert remove_cache("0123456789", root) >= 100 and not broken.exists()


# ---------------------------------------------------------------- removing


def test_rm_dataset_removes_only_its_index(two_datasets, sample_parquet, fake_encoder):
    root, folder, (sample_cfg, other_cfg) = two_datasets
    before = files_of(folder)
    shards_before = manifest_of(folder)["shards"]
    fp = next(d.fingerprint for d in list_caches(root)[0].datasets if d.source == str(sample_parquet))
    r = invoke(["cache", "rm", folder.name, "--dataset", sample_parquet, "--cache-dir", root, "--yes"])
    assert r.exit_code == 0, r.output
    assert f"removed dataset {fp}" in r.stdout and "freed" in r.stdout and "vectors stay" in r.stdout
    after = files_of(folder)
    assert set(before) - set(after) == {f"datasets/{fp}.parquet"}
    assert {k: v for k, v in before.items() if k.endswith((".npy", "meta_00000.parquet"))}.items() <= after.items()
    m = manifest_of(folder)
    assert fp not in m["datasets"] and len(m["datasets"]) == 1 and m["shards"] == shards_before
    assert load_cache(other_cfg).rows.num_rows == 60  # the other dataset still reads
    calls = fake_encoder.calls
    assert embed(sample_cfg).encoded == 0 and fake_encoder.calls == calls  # re-indexed from the kept vectors


def test_rm_dataset_by_fingerprint_prefix_returns_freed_bytes(two_datasets):
    root, folder, _ = two_datasets
    ds = list_caches(root)[0].datasets[0]
    total = sum(files_of(folder).values())
    freed = remove_cache(folder, root, dataset=ds.fingerprint[:8])
    assert 0 < freed == total - sum(files_of(folder).values())
    assert ds.fingerprint not in manifest_of(folder)["datasets"]


def test_rm_whole_cache_asks_first_and_frees_it(two_datasets):
    root, folder, _ = two_datasets
    key = list_caches(root)[0].key
    size = sum(files_of(folder).values())
    r = invoke(["cache", "rm", key[:6], "--cache-dir", root], input="n\n")
    assert r.exit_code == 1 and folder.exists() and "Remove cache" in r.output
    r = invoke(["cache", "rm", key[:6], "--cache-dir", root], input="y\n")
    assert r.exit_code == 0, r.output
    assert not folder.exists() and list(root.iterdir()) == []
    assert f"removed cache {folder}" in r.stdout and "freed" in r.stdout
    assert size > 0


def test_rm_by_path_and_library_call(two_datasets):
    root, folder, _ = two_datasets
    size = sum(files_of(folder).values())
    assert find_cache(folder, root).folder == folder
    assert remove_cache(str(folder), root) == size and not folder.exists()


def test_unknown_and_ambiguous_targets_name_the_choices(two_datasets):
    root, folder, _ = two_datasets
    key = list_caches(root)[0].key
    twin = copy_with_key(folder, key[:6] + "0" * 10 if key[6] != "0" else key[:6] + "1" * 10)
    err = assert_one_error_line(invoke(["cache", "rm", "nosuchcache", "--cache-dir", root, "--yes"]), "no cache")
    assert folder.name in err and twin.name in err
    err = assert_one_error_line(invoke(["cache", "rm", key[:6], "--cache-dir", root, "--yes"]), "matches 2 caches")
    assert folder.name in err and twin.name in err
    assert_one_error_line(invoke(["cache", "rm", key, "--dataset", "nope", "--cache-dir", root, "--yes"]),
                          "has no dataset 'nope'", str(root.parent / "data"))  # fmt: skip
    assert folder.exists() and twin.exists()
    with pytest.raises(ProdcatError, match="matches 2 caches"):
        remove_cache(key[:6], root)


def test_refuses_folders_that_are_not_prodcat_caches(tmp_path, two_datasets):
    root, folder, _ = two_datasets
    plain = tmp_path / "project"
    (plain / "src").mkdir(parents=True)
    assert_one_error_line(invoke(["cache", "rm", plain, "--cache-dir", root, "--yes"]), "not a prodcat cache folder")
    foreign = root / "other-tool-0123456789abcdef"
    foreign.mkdir()
    (foreign / MANIFEST).write_text(json.dumps({"format": "something-else/2", "files": []}))
    for target in (foreign, foreign.name):
        assert_one_error_line(invoke(["cache", "rm", target, "--cache-dir", root, "--yes"]),
                              "not a prodcat cache folder", "something-else/2")  # fmt: skip
    outside = tmp_path / "elsewhere-0123456789abcdef"
    outside.mkdir()
    (outside / MANIFEST).write_text("garbage")
    assert_one_error_line(invoke(["cache", "rm", outside, "--cache-dir", root, "--yes"]), "not a prodcat cache")
    assert plain.exists() and foreign.exists() and outside.exists() and folder.exists()


def test_help_fits_80_columns():
    for cmd in (["cache", "--help"], ["cache", "ls", "--help"], ["cache", "rm", "--help"]):
        r = invoke(cmd)
        assert r.exit_code == 0, r.output
        assert max(len(line) for line in r.stdout.splitlines()) <= 80, r.stdout
