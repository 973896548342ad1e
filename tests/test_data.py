"""Dataset loading: every input format gives the same normalised table; grouped split; bad input."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import LABELS, SAMPLE_ROWS, sample_columns, write_table

from prodcat_pipeline.config import DataConfig
from prodcat_pipeline.data import SPLITS, load_dataset
from prodcat_pipeline.errors import ProdcatError

COLUMNS = ["row_id", "text", "label", "split", "language", "cluster"]


def rows_of(ds) -> list[tuple]:
    """Order-independent view of a loaded dataset: (text, label name, split, language, cluster)."""
    t = ds.table.to_pydict()
    return sorted(
        zip(
            t["text"],
            [ds.label_names[i] for i in t["label"]],
            t["split"],
            t["language"],
            t["cluster"],
            strict=True,
        )
    )


EXPECTED = sorted(SAMPLE_ROWS)


def split_rows(split: str, rows=SAMPLE_ROWS):
    return [r for r in rows if r[2] == split]


def save_datasetdict(path: Path, splits: dict[str, list[tuple]], names=LABELS, label_ids=None, extra=None) -> Path:
    hf = pytest.importorskip("datasets")
    hf.disable_progress_bars()
    feats = hf.Features(
        {
            "text": hf.Value("string"),
            "label": hf.ClassLabel(names=list(names)),
            "language": hf.Value("string"),
            "cluster": hf.Value("string"),
        }
    )
    parts = {}
    for name, rows in splits.items():
        cols = sample_columns(rows)
        cols.pop("split")
        cols["label"] = [names.index(lab) for lab in cols["label"]]
        parts[name] = hf.Dataset.from_dict(cols, features=feats)
    hf.DatasetDict(parts).save_to_disk(str(path))
    return path


def check_normalised(ds) -> None:
    assert ds.table.column_names == COLUMNS
    assert ds.table["row_id"].to_pylist() == list(range(len(ds)))
    assert pa.types.is_int64(ds.table["label"].type)
    assert set(ds.table["split"].to_pylist()) <= set(SPLITS)


# ---------------------------------------------------------------- formats


def test_datasetdict_folder_keeps_classlabel_names(tmp_path):
    path = save_datasetdict(tmp_path / "dd", {s: split_rows(s) for s in SPLITS})
    ds = load_dataset(path)
    check_normalised(ds)
    assert ds.label_names == LABELS
    assert rows_of(ds) == EXPECTED
    assert ds.split_counts() == {"train": 6, "validation": 3, "test": 3}
    assert not ds.split_made and not ds.language_detected


def test_classlabel_names_order_is_kept_not_sorted(tmp_path):
    names = ["shoes", "phones", "food"]  # ClassLabel order differs from sorted order
    path = save_datasetdict(tmp_path / "dd", {s: split_rows(s) for s in SPLITS}, names=names)
    ds = load_dataset(path)
    assert ds.label_names == names
    t = ds.table.to_pydict()
    by_text = dict(zip(t["text"], t["label"], strict=True))
    assert by_text["Bio Vollmilch 1L"] == 2  # "food" is id 2 in the ClassLabel
    assert by_text["Herren Sneaker weiß Leder"] == 0
    assert rows_of(ds) == EXPECTED


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_single_file_with_split_column(tmp_path, suffix):
    path = write_table(tmp_path / f"sample{suffix}", sample_columns())
    ds = load_dataset(path)
    check_normalised(ds)
    assert ds.label_names == LABELS  # string labels: sorted names
    assert rows_of(ds) == EXPECTED
    assert ds.split_counts() == {"train": 6, "validation": 3, "test": 3}
    # row order of a single file is kept
    assert ds.table["text"].to_pylist() == [r[0] for r in SAMPLE_ROWS]


def test_folder_of_split_files_mixed_formats(tmp_path):
    folder = tmp_path / "splits"
    for split, suffix in (("train", ".parquet"), ("validation", ".csv"), ("test", ".jsonl")):
        cols = sample_columns(split_rows(split))
        cols.pop("split")
        write_table(folder / f"{split}{suffix}", cols)
    (folder / "README.md").write_text("not data")
    (folder / ".hidden.csv").write_text("junk")
    ds = load_dataset(folder)
    check_normalised(ds)
    assert ds.label_names == LABELS
    assert rows_of(ds) == EXPECTED


def test_all_formats_give_the_same_table(tmp_path):
    loaded = [
        load_dataset(save_datasetdict(tmp_path / "dd", {s: split_rows(s) for s in SPLITS})),
        load_dataset(write_table(tmp_path / "one.parquet", sample_columns())),
        load_dataset(write_table(tmp_path / "one.csv", sample_columns())),
        load_dataset(write_table(tmp_path / "one.jsonl", sample_columns())),
    ]
    for ds in loaded[1:]:
        assert rows_of(ds) == rows_of(loaded[0])
        assert ds.label_names == loaded[0].label_names
        assert ds.table.schema == loaded[0].table.schema


def test_string_labels_and_int_labels(tmp_path):
    cols = sample_columns()
    ids = {"food": 7, "phones": 3, "shoes": 11}
    cols["label"] = [ids[x] for x in cols["label"]]
    ds = load_dataset(write_table(tmp_path / "ints.parquet", cols))
    # plain integer labels without a ClassLabel: names are the distinct values, ids are dense
    assert ds.label_names == ["3", "7", "11"]
    assert sorted(set(ds.table["label"].to_pylist())) == [0, 1, 2]
    t = ds.table.to_pydict()
    assert dict(zip(t["text"], t["label"], strict=True))["Bio Vollmilch 1L"] == 1


def test_custom_column_names(tmp_path):
    cols = sample_columns(text="title", label="category", split="part", language="lang", cluster="product_id")
    cols["text"] = ["decoy"] * len(SAMPLE_ROWS)  # a column named like the default must not be used
    path = write_table(tmp_path / "custom.parquet", cols)
    cfg = DataConfig(
        path=str(path),
        text_column="title",
        label_column="category",
        split_column="part",
        language_column="lang",
        cluster_column="product_id",
    )
    ds = load_dataset(cfg)
    check_normalised(ds)
    assert rows_of(ds) == EXPECTED
    with pytest.raises(ProdcatError, match="label"):
        load_dataset(path)  # default column names: there is no `label` column


def test_full_split_next_to_others_is_ignored(tmp_path):
    splits = {s: split_rows(s) for s in SPLITS}
    splits["full"] = list(SAMPLE_ROWS)
    ds = load_dataset(save_datasetdict(tmp_path / "dd", splits))
    assert len(ds) == len(SAMPLE_ROWS)
    assert "full" not in ds.split_counts()
    assert rows_of(ds) == EXPECTED

    folder = tmp_path / "files"
    for split in (*SPLITS, "full"):
        cols = sample_columns(SAMPLE_ROWS if split == "full" else split_rows(split))
        cols.pop("split")
        write_table(folder / f"{split}.parquet", cols)
    ds = load_dataset(folder)
    assert len(ds) == len(SAMPLE_ROWS)
    assert rows_of(ds) == EXPECTED


def test_full_split_alone_gets_a_grouped_split(tmp_path):
    folder = tmp_path / "files"
    cols = sample_columns()
    cols.pop("split")
    write_table(folder / "full.parquet", cols)
    ds = load_dataset(folder)
    assert ds.split_made
    assert len(ds) == len(SAMPLE_ROWS)
    assert set(ds.split_counts()) <= set(SPLITS)


def test_split_aliases(tmp_path):
    cols = sample_columns()
    cols["split"] = [{"validation": "dev", "train": "Train", "test": " test "}[s] for s in cols["split"]]
    ds = load_dataset(write_table(tmp_path / "alias.parquet", cols))
    assert rows_of(ds) == EXPECTED


# ---------------------------------------------------------------- grouped split


def grouped_columns(n_rows: int = 3000, n_labels: int = 6, seed: int = 1) -> dict[str, list]:
    rng = np.random.default_rng(seed)
    text, label, cluster = [], [], []
    c = 0
    while len(text) < n_rows:
        size = int(rng.integers(1, 5))
        lab = f"L{int(rng.integers(0, n_labels))}"
        for j in range(size):
            text.append(f"item {c} variant {j}")
            label.append(lab)
            cluster.append(f"c{c}")
        c += 1
    return {"text": text, "label": label, "cluster": cluster, "language": ["en"] * len(text)}


def test_grouped_split_is_grouped_stratified_and_sized(tmp_path):
    cols = grouped_columns()
    path = write_table(tmp_path / "nosplit.parquet", cols)
    ds = load_dataset(path)
    assert ds.split_made
    t = ds.table.to_pydict()
    where = defaultdict(set)
    for cl, sp in zip(t["cluster"], t["split"], strict=True):
        where[cl].add(sp)
    assert all(len(s) == 1 for s in where.values()), "a cluster landed in two splits"
    counts = ds.split_counts()
    n = len(ds)
    assert abs(counts["train"] / n - 0.85) < 0.02
    assert abs(counts["validation"] / n - 0.05) < 0.02
    assert abs(counts["test"] / n - 0.10) < 0.02
    for lab in range(len(ds.label_names)):  # stratified: every label in every split
        present = {sp for sp, lb in zip(t["split"], t["label"], strict=True) if lb == lab}
        assert present == set(SPLITS)


def test_grouped_split_is_deterministic_per_seed(tmp_path):
    path = write_table(tmp_path / "nosplit.parquet", grouped_columns(1500))
    a = load_dataset(DataConfig(path=str(path), split_seed=3)).table["split"].to_pylist()
    b = load_dataset(DataConfig(path=str(path), split_seed=3)).table["split"].to_pylist()
    c = load_dataset(DataConfig(path=str(path), split_seed=4)).table["split"].to_pylist()
    assert a == b
    assert a != c


def test_grouped_split_honours_fractions(tmp_path):
    path = write_table(tmp_path / "nosplit.parquet", grouped_columns(2000))
    ds = load_dataset(DataConfig(path=str(path), split_fractions=(0.5, 0.25, 0.25)))
    counts = ds.split_counts()
    assert abs(counts["train"] / len(ds) - 0.5) < 0.03
    assert abs(counts["test"] / len(ds) - 0.25) < 0.03
    from prodcat_pipeline.config import load_config

    with pytest.raises(ProdcatError, match="data.split_fractions.*sum to 1"):  # refused by the config, up front
        load_config(overrides={"data.path": str(path), "data.split_fractions": (0.5, 0.2, 0.2)})


def test_rows_without_cluster_are_grouped_by_identical_title(tmp_path):
    rng = np.random.default_rng(0)
    titles = [f"Gadget {i}" for i in range(400)]
    text, labels = [], []
    for i, t in enumerate(titles):
        text += [t, f"  {t} ", t.lower()]  # the same title, padded, and lower-cased
        labels += [f"L{i % 4}"] * 3
    order = rng.permutation(len(text))
    cols = {"text": [text[i] for i in order], "label": [labels[i] for i in order]}
    ds = load_dataset(write_table(tmp_path / "noclusters.parquet", cols))
    assert ds.split_made
    t = ds.table.to_pydict()
    where = defaultdict(set)
    for txt, sp in zip(t["text"], t["split"], strict=True):
        where[txt.strip().lower()].add(sp)
    assert len(where) == len(titles)
    assert all(len(s) == 1 for s in where.values())
    assert set(t["split"]) == set(SPLITS)


def test_cluster_ids_win_and_missing_ids_fall_back_to_titles(tmp_path):
    text, labels, cluster = [], [], []
    for i in range(300):
        # two different titles sharing a cluster id, then a title without id repeated twice
        text += [f"Phone {i} black", f"Phone {i} white", f"Case {i}", f"Case {i}"]
        labels += [f"L{i % 3}"] * 4
        cluster += [f"p{i}", f"p{i}", None, None]
    ds = load_dataset(write_table(tmp_path / "mixed.parquet", {"text": text, "label": labels, "cluster": cluster}))
    sp = ds.table["split"].to_pylist()
    assert all(sp[4 * i] == sp[4 * i + 1] and sp[4 * i + 2] == sp[4 * i + 3] for i in range(300))
    # the two groups of one i are independent: some of them differ
    assert any(sp[4 * i] != sp[4 * i + 2] for i in range(300))


def test_grouped_split_treats_inner_whitespace_variants_as_one_title(tmp_path):
    text, labels = [], []
    for i in range(300):
        text += [f"Blue  Shirt {i}", f"Blue Shirt {i}"]
        labels += [f"L{i % 3}"] * 2
    ds = load_dataset(write_table(tmp_path / "ws.parquet", {"text": text, "label": labels}))
    sp = ds.table["split"].to_pylist()
    apart = [i for i in range(300) if sp[2 * i] != sp[2 * i + 1]]
    assert apart == []


# ---------------------------------------------------------------- languages

LANG_TITLES = {
    "Damen Laufschuhe schwarz Größe 39 wasserdicht": "de",
    "ワイヤレスイヤホン ブルートゥース 高音質 ノイズキャンセリング": "ja",
    "Chaussures de course pour femmes, noires, taille 39": "fr",
    "Wireless bluetooth headphones with noise cancelling": "en",
}


def test_language_detected_when_no_column(tmp_path):
    texts = list(LANG_TITLES) * 2
    cols = {"text": texts, "label": ["a", "b"] * len(LANG_TITLES), "split": ["train"] * len(texts)}
    ds = load_dataset(write_table(tmp_path / "nolang.parquet", cols))
    assert ds.language_detected
    t = ds.table.to_pydict()
    assert [LANG_TITLES[x] for x in t["text"]] == t["language"]


def test_language_column_is_kept_and_nulls_become_und(tmp_path):
    cols = sample_columns()
    cols["language"] = ["xx"] * 11 + [None]
    ds = load_dataset(write_table(tmp_path / "lang.parquet", cols))
    assert not ds.language_detected
    assert ds.table["language"].to_pylist() == ["xx"] * 11 + ["und"]


# ---------------------------------------------------------------- bad input


def assert_one_line(exc: pytest.ExceptionInfo, *needles: str) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and msg.strip() == msg and msg
    for needle in needles:
        assert needle in msg, (needle, msg)
    return msg


def test_missing_text_column_names_column_and_lists_found(tmp_path):
    cols = sample_columns(text="title")
    with pytest.raises(ProdcatError) as exc:
        load_dataset(write_table(tmp_path / "d.parquet", cols))
    assert_one_line(exc, "'text'", "title", "label", "split", "--text-column")


def test_missing_label_column(tmp_path):
    cols = sample_columns(label="category")
    with pytest.raises(ProdcatError) as exc:
        load_dataset(write_table(tmp_path / "d.csv", cols))
    assert_one_line(exc, "'label'", "category", "--label-column")


def test_text_column_of_numbers_is_rejected(tmp_path):
    cols = sample_columns()
    cols["text"] = list(range(len(SAMPLE_ROWS)))
    with pytest.raises(ProdcatError) as exc:
        load_dataset(write_table(tmp_path / "d.parquet", cols))
    assert_one_line(exc, "'text'", "not strings")


def test_empty_and_null_titles_fail_or_are_dropped(tmp_path):
    cols = sample_columns()
    cols["text"][3] = "   "
    cols["text"][7] = None
    path = write_table(tmp_path / "d.parquet", cols)
    with pytest.raises(ProdcatError) as exc:
        load_dataset(path)
    assert_one_line(exc, "2 rows", "empty or null title", "first at row 3", "--drop-empty")

    ds = load_dataset(DataConfig(path=str(path), drop_empty=True))
    assert len(ds) == len(SAMPLE_ROWS) - 2
    texts = ds.table["text"].to_pylist()
    assert None not in texts and all(t.strip() for t in texts)
    assert 3 not in ds.table["row_id"].to_pylist() and 7 not in ds.table["row_id"].to_pylist()


def test_null_labels(tmp_path):
    cols = sample_columns()
    cols["label"][5] = None
    with pytest.raises(ProdcatError) as exc:
        load_dataset(write_table(tmp_path / "d.jsonl", cols))
    assert_one_line(exc, "1 rows", "label column 'label'", "first at row 5")


def test_unknown_classlabel_id(tmp_path):
    path = save_datasetdict(tmp_path / "dd", {s: split_rows(s) for s in SPLITS})
    for split in SPLITS:  # shrink the ClassLabel to two names: id 2 is now unknown
        info_path = path / split / "dataset_info.json"
        info = json.loads(info_path.read_text())
        info["features"]["label"]["names"] = LABELS[:2]
        info_path.write_text(json.dumps(info))
    with pytest.raises(ProdcatError) as exc:
        load_dataset(path)
    assert_one_line(exc, "unknown label id 2", "ids 0..1")


def test_unknown_split_name(tmp_path):
    cols = sample_columns()
    cols["split"][4] = "holdout"
    with pytest.raises(ProdcatError) as exc:
        load_dataset(write_table(tmp_path / "d.parquet", cols))
    assert_one_line(exc, "'holdout'", "d.parquet")

    folder = tmp_path / "files"
    write_table(folder / "train.parquet", sample_columns())
    write_table(folder / "products.parquet", sample_columns())
    with pytest.raises(ProdcatError) as exc:
        load_dataset(folder)
    assert_one_line(exc, "'products'")


def test_splits_without_train_or_with_missing_values(tmp_path):
    cols = sample_columns()
    cols["split"] = ["validation"] * 6 + ["test"] * 6
    with pytest.raises(ProdcatError) as exc:
        load_dataset(write_table(tmp_path / "d.parquet", cols))
    assert_one_line(exc, "no 'train' split")

    cols = sample_columns()
    cols["split"][2] = None
    with pytest.raises(ProdcatError) as exc:
        load_dataset(write_table(tmp_path / "e.parquet", cols))
    assert_one_line(exc, "1 rows", "no split value")


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".arrow"])
def test_corrupt_file(tmp_path, suffix):
    path = tmp_path / f"broken{suffix}"
    path.write_bytes(b"PAR1\x00\xff\xfe garbage \x00\x01" * 50)
    with pytest.raises(ProdcatError) as exc:
        load_dataset(path)
    assert_one_line(exc, "cannot read", path.name)


def test_corrupt_parquet_in_split_folder(tmp_path):
    folder = tmp_path / "files"
    cols = sample_columns(split_rows("train"))
    cols.pop("split")
    write_table(folder / "train.parquet", cols)
    (folder / "test.parquet").write_bytes(b"\x00garbage" * 20)
    with pytest.raises(ProdcatError) as exc:
        load_dataset(folder)
    assert_one_line(exc, "cannot read", "test.parquet")


def test_nonexistent_path(tmp_path):
    with pytest.raises(ProdcatError) as exc:
        load_dataset(tmp_path / "nope.parquet")
    assert_one_line(exc, "not found", "nope.parquet")


def test_no_path_given():
    with pytest.raises(ProdcatError) as exc:
        load_dataset(DataConfig())
    assert_one_line(exc, "--data")


def test_unsupported_suffix(tmp_path):
    path = tmp_path / "products.xlsx"
    path.write_bytes(b"PK\x03\x04")
    with pytest.raises(ProdcatError) as exc:
        load_dataset(path)
    assert_one_line(exc, "unsupported", "products.xlsx")


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ProdcatError) as exc:
        load_dataset(tmp_path / "empty")
    assert_one_line(exc, "no data files")


def test_datasetdict_with_missing_arrow_file(tmp_path):
    path = save_datasetdict(tmp_path / "dd", {s: split_rows(s) for s in SPLITS})
    for f in (path / "test").glob("*.arrow"):
        f.unlink()
    with pytest.raises(ProdcatError) as exc:
        load_dataset(path)
    assert_one_line(exc, "missing")


def test_fingerprint_follows_content_and_settings(tmp_path):
    a = write_table(tmp_path / "a.parquet", sample_columns())
    fp = load_dataset(a).fingerprint
    assert load_dataset(a).fingerprint == fp
    assert load_dataset(DataConfig(path=str(a), split_seed=9)).fingerprint != fp
    cols = sample_columns()
    cols["text"][0] = "changed"
    pq.write_table(pa.table(cols), a)
    assert load_dataset(a).fingerprint != fp
