"""Dataset loading: one loader for LSPC DatasetDict folders, Parquet/CSV/JSONL files and split folders."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .config import DataConfig
from .errors import ProdcatError
from .splits import SPLITS, split_groups
from .text import preprocess_texts, update_with_file

log = logging.getLogger(__name__)

SPLIT_ALIASES = {"val": "validation", "valid": "validation", "dev": "validation", "full": "full"}
FILE_SUFFIXES = (".parquet", ".pq", ".csv", ".tsv", ".jsonl", ".json", ".arrow")
FINGERPRINT_VERSION = "data-v1"


@dataclass
class Dataset:
    """A loaded dataset: one table with columns row_id, text, label, split, language, cluster."""

    table: pa.Table
    label_names: list[str]
    fingerprint: str
    source: str
    language_detected: bool = False
    split_made: bool = False  # True when the train/validation/test split was made here (grouped by cluster)
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.table.num_rows

    def split_counts(self) -> dict[str, int]:
        counts = pc.value_counts(self.table["split"]).to_pylist()
        return {c["values"]: c["counts"] for c in counts}


# ---------------------------------------------------------------- locating and fingerprinting files


def _data_files(path: Path) -> list[tuple[str | None, Path]]:
    """(split name or None, file) pairs that make up the dataset at `path`, in a stable order."""
    if not path.exists():
        raise ProdcatError(f"data path not found: {path}")
    if path.is_file():
        if path.suffix.lower() not in FILE_SUFFIXES:
            raise ProdcatError(
                f"unsupported data file {path.name}: expected one of {', '.join(FILE_SUFFIXES)} "
                "or a folder written by datasets.save_to_disk"
            )
        return [(None, path)]
    if (path / "dataset_dict.json").exists():
        meta = _read_json(path / "dataset_dict.json")
        out = []
        for split in meta.get("splits", []):
            out += [(split, f) for f in _arrow_files(path / split)]
        if not out:
            raise ProdcatError(f"{path}/dataset_dict.json lists no split with data files")
        return out
    if (path / "state.json").exists():
        return [(None, f) for f in _arrow_files(path)]
    out = []
    for f in sorted(path.iterdir()):
        if f.is_file() and f.suffix.lower() in FILE_SUFFIXES and not f.name.startswith("."):
            out.append((f.stem, f))
    if not out:
        raise ProdcatError(
            f"no data files in {path}: expected train/validation/test files (.parquet, .csv, .jsonl) "
            "or a folder written by datasets.save_to_disk"
        )
    return out


def _arrow_files(split_dir: Path) -> list[Path]:
    state_path = split_dir / "state.json"
    if not state_path.exists():
        raise ProdcatError(f"{split_dir} has no state.json: not a datasets.save_to_disk split folder")
    state = _read_json(state_path)
    files = [split_dir / d["filename"] for d in state.get("_data_files", [])]
    for f in files:
        if not f.exists():
            raise ProdcatError(f"{f} is listed in {state_path} but missing")
    return files


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ProdcatError(f"cannot read {path}: {exc}") from exc


def dataset_fingerprint(cfg: DataConfig) -> str:
    """Content hash of the data files plus the settings that shape the loaded table (cheap: no parsing)."""
    if cfg.path is None:
        raise ProdcatError("no dataset given: pass --data PATH or set data.path in pipeline.yaml")
    root = Path(cfg.path)
    h = hashlib.sha256(FINGERPRINT_VERSION.encode())
    settings = cfg.model_dump(exclude={"path"})
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    for split, f in _data_files(root):
        h.update(f"{split}:{f.name}:".encode())
        info = f.parent / "dataset_info.json"  # ClassLabel names live here, not in the arrow data
        if f.suffix == ".arrow" and info.exists():
            h.update(info.read_bytes())
        try:
            update_with_file(h, f)
        except OSError as exc:
            raise ProdcatError(f"cannot read data file {f}: {exc.strerror or exc}") from exc
    return h.hexdigest()[:20]


# ---------------------------------------------------------------- reading


def _read_table(f: Path) -> pa.Table:
    suffix = f.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return pq.ParquetFile(f).read()
        if suffix in (".csv", ".tsv"):
            import pyarrow.csv as pcsv

            opts = pcsv.ParseOptions(delimiter="\t" if suffix == ".tsv" else ",", newlines_in_values=True)
            return pcsv.read_csv(f, parse_options=opts)
        if suffix in (".jsonl", ".json"):
            return _read_json_lines(f)
        if suffix == ".arrow":
            with pa.memory_map(str(f)) as src:
                try:
                    return pa.ipc.open_stream(src).read_all()
                except pa.ArrowInvalid:
                    return pa.ipc.open_file(src).read_all()
    except (pa.ArrowInvalid, OSError, ValueError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ProdcatError(f"cannot read {f}: {msg}") from exc
    raise ProdcatError(f"unsupported data file {f.name}")


def _read_json_lines(f: Path) -> pa.Table:
    import pyarrow.json as pjson

    try:
        return pjson.read_json(f)
    except pa.ArrowInvalid:
        # a JSON array of records rather than JSON lines
        try:
            rows = json.loads(f.read_text(encoding="utf-8"))
        except RecursionError:
            raise ProdcatError(f"cannot read {f}: JSON nested too deeply") from None
        if not isinstance(rows, list):
            raise
        bad = next((r for r in rows if not isinstance(r, dict)), None)
        if bad is not None:
            raise ProdcatError(
                f'cannot read {f}: a JSON array must hold one object per row ({{"text": ..., "label": ...}}), '
                f"found {type(bad).__name__}"
            ) from None
        try:
            return pa.Table.from_pylist(rows)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            raise ProdcatError(f"cannot read {f}: {str(exc).splitlines()[0]}") from None


def _class_label_names(split_dir: Path, column: str) -> list[str] | None:
    info_path = split_dir / "dataset_info.json"
    if not info_path.exists():
        return None
    feat = _read_json(info_path).get("features", {}).get(column, {})
    if feat.get("_type") == "ClassLabel" and feat.get("names"):
        return list(feat["names"])
    return None


def _canonical_split(name: str | None, source: str) -> str | None:
    if name is None:
        return None
    key = name.strip().lower()
    key = SPLIT_ALIASES.get(key, key)
    if key not in (*SPLITS, "full"):
        raise ProdcatError(
            f"unknown split name '{name}' in {source}: expected train, validation (val/dev), test or full"
        )
    return key


def _require_column(table: pa.Table, column: str, role: str, flag: str, source: str) -> pa.ChunkedArray:
    if column not in table.column_names:
        found = ", ".join(table.column_names)
        raise ProdcatError(
            f"{source} has no {role} column '{column}' (columns found: {found}); pick another with {flag}"
        )
    return table[column]


def load_dataset(cfg: DataConfig | str | Path) -> Dataset:
    """Load a dataset into one normalised table; make a grouped split and detect languages when needed.

    Example:
        >>> ds = load_dataset("data/lspc_sample")
        >>> ds.split_counts()
        {'train': ..., 'validation': ..., 'test': ...}
    """
    if not isinstance(cfg, DataConfig):
        cfg = DataConfig(path=str(cfg))
    fingerprint = dataset_fingerprint(cfg)
    root = Path(cfg.path)
    files = _data_files(root)
    parts, names_seen = [], None
    for split, f in files:
        source = str(f)
        table = _read_table(f)
        split = _canonical_split(split, source)
        if split == "full" and any(_canonical_split(s, source) in SPLITS for s, _ in files if s):
            continue  # `full` is the union of the other splits: never evaluated, never trained twice
        names = _class_label_names(f.parent, cfg.label_column)
        if names is not None:
            names_seen = names
        parts.append(_normalise(table, split, cfg, source))
    table = pa.concat_tables(parts, promote_options="permissive")
    table, label_names = _encode_labels(table, names_seen, cfg)
    table = table.append_column("row_id", pa.array(np.arange(table.num_rows, dtype=np.int64)))
    table = _check_texts(table, cfg, str(root))

    splits = set(pc.unique(table["split"]).drop_null().to_pylist())
    split_made = False
    if not splits or splits == {"full"}:
        table = table.set_column(table.column_names.index("split"), "split", make_grouped_split(table, cfg))
        split_made = True
    elif "train" not in splits:
        raise ProdcatError(f"{root} has splits {sorted(splits)} but no 'train' split")
    elif table["split"].null_count:
        raise ProdcatError(f"{table['split'].null_count} rows in {root} have no split value")

    language_detected = False
    if table["language"].null_count == table.num_rows:
        from .language import detect_languages

        table = table.set_column(table.column_names.index("language"), "language", detect_languages(table["text"]))
        language_detected = True
    elif table["language"].null_count:
        table = table.set_column(
            table.column_names.index("language"), "language", pc.fill_null(table["language"], "und")
        )
    cols = ["row_id", "text", "label", "split", "language", "cluster"]
    return Dataset(
        table=table.select(cols),
        label_names=label_names,
        fingerprint=fingerprint,
        source=str(root),
        language_detected=language_detected,
        split_made=split_made,
        info={"files": [str(f) for _, f in files]},
    )


def _normalise(table: pa.Table, split: str | None, cfg: DataConfig, source: str) -> pa.Table:
    text = _require_column(table, cfg.text_column, "text", "--text-column", source)
    label = _require_column(table, cfg.label_column, "label", "--label-column", source)
    if not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type) or pa.types.is_null(text.type)):
        raise ProdcatError(f"text column '{cfg.text_column}' in {source} holds {text.type}, not strings")
    if not _is_scalar_type(label.type):
        raise ProdcatError(f"label column '{cfg.label_column}' in {source} holds {label.type}: give one label per "
                           "row (a string or an integer), or pick another column with --label-column")  # fmt: skip
    n = table.num_rows
    if split is not None:
        split_col = pa.array([split] * n, pa.string())
    elif cfg.split_column in table.column_names:
        # canonicalise each distinct value once, then map rows by their dictionary index (no per-row Python)
        column = _as_strings(table, cfg.split_column, "split", source)
        encoded = pc.dictionary_encode(column).combine_chunks()
        names = pa.array([_canonical_split(v, source) for v in encoded.dictionary.to_pylist()], pa.string())
        split_col = pc.take(names, encoded.indices)
    else:
        split_col = pa.nulls(n, pa.string())
    if cfg.language_column in table.column_names:
        lang = _as_strings(table, cfg.language_column, "language", source)
    else:
        lang = pa.nulls(n, pa.string())
    if cfg.cluster_column in table.column_names:
        cluster = _as_strings(table, cfg.cluster_column, "cluster", source)
    else:
        cluster = pa.nulls(n, pa.string())
    return pa.table(
        {
            "text": pc.cast(text, pa.string()),
            "label": label,
            "split": split_col,
            "language": lang,
            "cluster": cluster,
        }
    )


def _is_scalar_type(t: pa.DataType) -> bool:
    """One value per row that reads as a label: text, an integer, a number, a boolean (dictionary of these)."""
    t = t.value_type if pa.types.is_dictionary(t) else t
    return any(check(t) for check in (pa.types.is_string, pa.types.is_large_string, pa.types.is_integer,
                                      pa.types.is_floating, pa.types.is_boolean, pa.types.is_null))  # fmt: skip


def _as_strings(table: pa.Table, column: str, role: str, source: str) -> pa.ChunkedArray:
    """A split, language or cluster column as strings, or one line naming it when it holds lists or records."""
    col = table[column]
    if not _is_scalar_type(col.type):
        fix = "data.split_column in pipeline.yaml" if role == "split" else f"--{role}-column"
        raise ProdcatError(f"{role} column '{column}' in {source} holds {col.type}: give one value per row "
                           f"(text or a number), or pick another column with {fix}")  # fmt: skip
    return pc.cast(col, pa.string())


def _encode_labels(table: pa.Table, names: list[str] | None, cfg: DataConfig) -> tuple[pa.Table, list[str]]:
    label = table["label"]
    if label.null_count:
        first = pc.index(pc.is_null(label), True).as_py()
        raise ProdcatError(
            f"{label.null_count} rows have no value in label column '{cfg.label_column}' (first at row {first})"
        )
    if pa.types.is_integer(label.type):
        values = label.to_numpy()
        if names is not None:
            bad = (values < 0) | (values >= len(names))
            if bad.any():
                raise ProdcatError(
                    f"unknown label id {int(values[bad][0])} in column '{cfg.label_column}': "
                    f"the ClassLabel has {len(names)} names (ids 0..{len(names) - 1})"
                )
            ids = values.astype(np.int64)
        else:
            uniq, ids = np.unique(values, return_inverse=True)
            names = [str(v) for v in uniq]
    else:
        strings = pc.cast(label, pa.string())
        names = sorted(pc.unique(strings).to_pylist())
        ids = pc.index_in(strings, value_set=pa.array(names)).to_numpy().astype(np.int64)
    return table.set_column(table.column_names.index("label"), "label", pa.array(ids)), list(names)


def _check_texts(table: pa.Table, cfg: DataConfig, source: str) -> pa.Table:
    text = table["text"]
    empty = pc.or_kleene(pc.is_null(text), pc.equal(pc.utf8_trim_whitespace(text), ""))
    empty = pc.fill_null(empty, True)
    n_empty = pc.sum(empty).as_py() or 0
    if n_empty == 0:
        return table
    if cfg.drop_empty:
        log.warning("dropping %d rows with an empty or null title", n_empty)
        return table.filter(pc.invert(empty))
    first = table["row_id"].filter(empty)[0].as_py()
    raise ProdcatError(
        f"{n_empty} rows in {source} have an empty or null title in column '{cfg.text_column}' "
        f"(first at row {first}); remove them or pass --drop-empty"
    )


# ---------------------------------------------------------------- grouped split


def make_grouped_split(table: pa.Table, cfg: DataConfig) -> pa.Array:
    """Assign whole clusters to train/validation/test, stratified by label, seeded.

    Rows without a cluster id are grouped by their whitespace-normalised, lower-cased title, so
    duplicate offers never land in two splits.
    """
    text_key = pc.utf8_lower(preprocess_texts(table["text"]))
    key = table["cluster"]
    key = pc.if_else(pc.is_null(key), pc.binary_join_element_wise("text:", text_key, ""), key)
    groups = pc.dictionary_encode(key).combine_chunks().indices.to_numpy()
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    group_label = np.zeros(n_groups, dtype=np.int64)
    group_label[groups] = table["label"].to_numpy()  # any member's label; clusters are single-label in LSPC
    sizes = np.bincount(groups, minlength=n_groups)
    assignment = split_groups(sizes, group_label, cfg.split_fractions, cfg.split_seed)
    return pa.array(np.array(SPLITS, dtype=object)[assignment[groups]], pa.string())
