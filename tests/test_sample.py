"""Tests for the synthetic LSPC-style sample generator and its `datasets`-format writer."""

import json
from collections import Counter, defaultdict

import numpy as np
import pyarrow as pa
import pytest

from prodcat_pipeline.synthetic import (
    LABEL_NAMES,
    LANGUAGE_P,
    LANGUAGES,
    SPLITS,
    generate_titles,
    main,
    split_by_cluster,
    write_lspc_datasetdict,
)


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return generate_titles(4000, seed=0)


def _dup_fraction(t: pa.Table) -> float:
    pairs = list(zip(t.column("cluster").to_pylist(), t.column("text").to_pylist(), strict=True))
    return 1 - len(set(pairs)) / len(pairs)


def test_schema_and_values(table):
    assert table.num_rows == 4000
    assert table.schema.names == ["text", "label", "cluster", "language"]
    assert [str(f.type) for f in table.schema] == ["string", "int64", "int64", "string"]
    labels = table.column("label").to_numpy()
    assert labels.min() >= 0 and labels.max() < len(LABEL_NAMES) and len(set(labels.tolist())) == 6
    lengths = [len(s) for s in table.column("text").to_pylist()]
    assert min(lengths) > 0 and 40 <= np.median(lengths) <= 70


def test_deterministic_given_seed():
    a, b = generate_titles(500, seed=7), generate_titles(500, seed=7)
    assert a.equals(b)
    c = generate_titles(500, seed=8)
    assert not a.column("text").equals(c.column("text"))


def test_language_skew(table):
    counts = Counter(table.column("language").to_pylist())
    assert set(counts) == set(LANGUAGES)
    for code, p in zip(LANGUAGES, LANGUAGE_P, strict=True):
        assert abs(counts[code] / table.num_rows - p) < max(0.02, p / 2), (code, counts[code])
    assert 0.85 <= counts["en"] / table.num_rows <= 0.90


def test_each_cluster_has_one_label_and_language(table):
    seen = defaultdict(set)
    for c, lab, lang in zip(*(table.column(k).to_pylist() for k in ("cluster", "label", "language")), strict=True):
        seen[c].add((lab, lang))
    assert all(len(v) == 1 for v in seen.values())
    sizes = Counter(table.column("cluster").to_pylist()).values()
    assert sum(s == 1 for s in sizes) > len(sizes) / 3 and max(sizes) >= 10  # skewed cluster sizes


@pytest.mark.parametrize("rate", [0.0, 0.3, 0.5])
def test_duplicate_rate(rate):
    t = generate_titles(2000, seed=3, duplicate_rate=rate)
    assert abs(_dup_fraction(t) - rate) < 0.03


def test_split_keeps_clusters_whole(table):
    splits = split_by_cluster(table, seed=0)
    assert list(splits) == list(SPLITS)
    assert sum(t.num_rows for t in splits.values()) == table.num_rows
    owners = {}
    for name, t in splits.items():
        for c in set(t.column("cluster").to_pylist()):
            assert owners.setdefault(c, name) == name
        assert set(t.column("language").to_pylist()) == set(LANGUAGES)
    assert 0.80 < splits["train"].num_rows / table.num_rows < 0.90
    assert split_by_cluster(table, seed=0)["test"].equals(splits["test"])


def test_written_dir_loads_with_datasets(tmp_path, table):
    datasets = pytest.importorskip("datasets")
    splits = split_by_cluster(table.slice(0, 1500), seed=1)
    out = tmp_path / "lspc"
    write_lspc_datasetdict(splits, out, LABEL_NAMES)
    write_lspc_datasetdict(splits, out, LABEL_NAMES)  # replacing an existing folder works too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lspc"]  # no temp folders left behind
    assert json.loads((out / "dataset_dict.json").read_text()) == {"splits": list(SPLITS)}
    ds = datasets.load_from_disk(str(out))
    assert list(ds) == list(SPLITS)
    feature = ds["train"].features["label"]
    assert isinstance(feature, datasets.ClassLabel) and feature.names == LABEL_NAMES
    for name, t in splits.items():
        assert ds[name].num_rows == t.num_rows
        assert ds[name]["text"] == t.column("text").to_pylist()


def test_arrow_file_is_a_stream_with_hf_metadata(tmp_path):
    t = generate_titles(50, seed=2)
    write_lspc_datasetdict({"train": t}, tmp_path / "d", LABEL_NAMES)
    path = tmp_path / "d" / "train" / "data-00000-of-00001.arrow"
    with pa.OSFile(str(path)) as f:
        read = pa.ipc.open_stream(f).read_all()
    assert read.replace_schema_metadata(None).equals(t)
    meta = json.loads(read.schema.metadata[b"huggingface"])
    assert meta["info"]["features"]["label"] == {"names": LABEL_NAMES, "_type": "ClassLabel"}
    state = json.loads((path.parent / "state.json").read_text())
    assert state["_data_files"] == [{"filename": path.name}] and len(state["_fingerprint"]) == 16


def test_cli(tmp_path, capsys):
    assert main(["--rows", "300", "--seed", "4", "--duplicate-rate", "0.2", "--out", str(tmp_path / "s")]) == 0
    assert (tmp_path / "s" / "dataset_dict.json").exists()
    assert "train=" in capsys.readouterr().out
