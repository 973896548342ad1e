"""`prodcat predict`'s input and output, streamed in batches: exactly one output row per input row, in input
order. Inputs: '-' (stdin) or .txt (one title per line, blank lines included), .csv/.tsv, .parquet, .jsonl.
Outputs: JSONL, CSV or Parquet, written under a temporary name and renamed when complete."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from .errors import ProdcatError

TABLE_SUFFIXES = (".parquet", ".pq", ".csv", ".tsv", ".jsonl", ".json", ".ndjson")


@dataclass
class InputBatch:
    titles: list[str | None]  # None: no readable title (see reasons)
    reasons: list[str | None]  # why a row has no title
    carry: dict[str, list]  # the --id-column / --keep-columns values, passed through
    languages: list[str | None] | None  # the --language-column values


@dataclass
class InputSpec:
    source: str
    text_column: str = "text"
    id_column: str | None = None
    keep_columns: tuple[str, ...] = ()
    language_column: str | None = None

    @property
    def carried(self) -> list[str]:
        return list(dict.fromkeys([c for c in (self.id_column, *self.keep_columns) if c]))

    @property
    def is_table(self) -> bool:
        return self.source != "-" and Path(self.source).suffix.lower() in TABLE_SUFFIXES


def count_rows(spec: InputSpec) -> int:
    """Rows the input holds (for the progress bar; 0 when unknown, e.g. stdin)."""
    if spec.source == "-":
        return 0
    path = Path(spec.source)
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    with open(path, "rb") as fh:
        n = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 24), b""))
    return max(0, n - (1 if path.suffix.lower() in (".csv", ".tsv") else 0))


def read_batches(spec: InputSpec, batch_rows: int = 8192) -> Iterator[InputBatch]:
    """The input in batches of at most `batch_rows` rows, every row kept (blank and unreadable ones too)."""
    if spec.source != "-" and not Path(spec.source).is_file():
        raise ProdcatError(f"input file not found: {spec.source}")
    if not spec.is_table:
        if spec.carried or spec.language_column:
            raise ProdcatError("--id-column, --keep-columns and --language-column need a table input "
                               "(.csv, .tsv, .parquet, .jsonl); plain text has one title per line")  # fmt: skip
        return _text_batches(spec, batch_rows)
    suffix = Path(spec.source).suffix.lower()
    if suffix in (".parquet", ".pq"):
        return _parquet_batches(spec, batch_rows)
    if suffix in (".csv", ".tsv"):
        return _csv_batches(spec, batch_rows)
    return _json_batches(spec, batch_rows)


def _text_batches(spec: InputSpec, batch_rows: int) -> Iterator[InputBatch]:
    fh = sys.stdin.buffer if spec.source == "-" else open(spec.source, "rb")  # noqa: SIM115
    try:
        titles, reasons = [], []
        for raw in fh:
            try:
                titles.append(raw.decode("utf-8").rstrip("\r\n"))
                reasons.append(None)
            except UnicodeDecodeError:
                titles.append(None)
                reasons.append("not UTF-8 text")
            if len(titles) == batch_rows:
                yield InputBatch(titles, reasons, {}, None)
                titles, reasons = [], []
        if titles:
            yield InputBatch(titles, reasons, {}, None)
    finally:
        if fh is not sys.stdin.buffer:
            fh.close()


def _needed(spec: InputSpec) -> list[str]:
    return list(dict.fromkeys([spec.text_column, *spec.carried, *([spec.language_column] if spec.language_column
                                                                   else [])]))  # fmt: skip


def _check_columns(spec: InputSpec, found: list[str]) -> None:
    flags = {spec.text_column: "--text-column", spec.id_column: "--id-column",
             spec.language_column: "--language-column"}  # fmt: skip
    for column in _needed(spec):
        if column not in found:
            flag = flags.get(column, "--keep-columns")
            raise ProdcatError(f"{spec.source} has no column '{column}' ({flag}); columns found: {', '.join(found)}")


def _table_batch(spec: InputSpec, table: pa.Table) -> InputBatch:
    """One batch of a table input: titles as strings (None where null), carried and language columns."""
    import pyarrow.compute as pc

    text = table[spec.text_column]
    if not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type)):
        try:
            text = pc.cast(text, pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise ProdcatError(
                f"text column '{spec.text_column}' of {spec.source} holds {text.type}, not text"
            ) from None
    titles = text.to_pylist()
    reasons = [None if t is not None else "no title (null)" for t in titles]
    carry = {c: table[c].to_pylist() for c in spec.carried}
    langs = table[spec.language_column].to_pylist() if spec.language_column else None
    return InputBatch(titles, reasons, carry, [None if v is None else str(v) for v in langs] if langs else langs)


def _parquet_batches(spec: InputSpec, batch_rows: int) -> Iterator[InputBatch]:
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(spec.source)
    except (OSError, pa.ArrowInvalid) as exc:
        raise ProdcatError(f"cannot read {spec.source} as Parquet: {str(exc).splitlines()[0]}") from None
    _check_columns(spec, file.schema_arrow.names)
    for batch in file.iter_batches(batch_size=batch_rows, columns=_needed(spec)):
        yield _table_batch(spec, pa.Table.from_batches([batch]))


def _csv_batches(spec: InputSpec, batch_rows: int) -> Iterator[InputBatch]:
    import pyarrow.csv as pcsv

    parse = pcsv.ParseOptions(delimiter="\t" if spec.source.lower().endswith(".tsv") else ",")
    try:
        header = pcsv.open_csv(spec.source, parse_options=parse).schema.names
    except (OSError, pa.ArrowInvalid) as exc:
        raise ProdcatError(f"cannot read {spec.source} as CSV: {str(exc).splitlines()[0]}") from None
    _check_columns(spec, header)
    needed = _needed(spec)
    convert = pcsv.ConvertOptions(include_columns=needed, column_types={c: pa.string() for c in needed})
    reader = pcsv.open_csv(spec.source, parse_options=parse, convert_options=convert)
    pending: list = []
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            break
        except pa.ArrowInvalid as exc:
            raise ProdcatError(f"cannot read {spec.source}: {str(exc).splitlines()[0]}") from None
        pending.append(batch)
        if sum(len(b) for b in pending) >= batch_rows:
            yield _table_batch(spec, pa.Table.from_batches(pending))
            pending = []
    if pending:
        yield _table_batch(spec, pa.Table.from_batches(pending))


def _json_batches(spec: InputSpec, batch_rows: int) -> Iterator[InputBatch]:
    """JSON lines, one record each; a line that is not a JSON object becomes a row with a reason."""

    def empty() -> InputBatch:
        return InputBatch([], [], {c: [] for c in spec.carried}, [] if spec.language_column else None)

    batch = empty()
    with open(spec.source, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            try:
                record = json.loads(raw)
                reason = None if isinstance(record, dict) else "not a JSON object"
                if b"\\ud" in raw.lower() and reason is None:  # a \uD800-style escape may leave a lone surrogate
                    json.dumps(record, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError:
                record, reason = {}, f"not valid Unicode (a lone surrogate, line {number})"
            except (ValueError, UnicodeDecodeError, RecursionError):
                record, reason = {}, "blank line" if not raw.strip() else f"unreadable JSON (line {number})"
            record = record if isinstance(record, dict) else {}
            title = record.get(spec.text_column)
            if reason is None and not isinstance(title, str):
                reason = "no title" if title is None else f"title is {type(title).__name__}, not text"
            batch.titles.append(title if reason is None else None)
            batch.reasons.append(reason)
            for c in spec.carried:
                batch.carry[c].append(record.get(c))
            if batch.languages is not None:
                lang = record.get(spec.language_column)
                batch.languages.append(None if lang is None else str(lang))
            if len(batch.titles) == batch_rows:
                yield batch
                batch = empty()
    if batch.titles:
        yield batch


# ---------------------------------------------------------------- output


class PredictionWriter:
    """Writes output rows (dicts with the same keys, in order) as JSONL, CSV or Parquet to a text stream or
    binary file; use as a context manager."""

    def __init__(self, fh, fmt: str):
        self.fh, self.fmt, self._csv, self._parquet = fh, fmt, None, None

    def write(self, rows: list[dict]) -> None:
        if not rows:
            return
        if self.fmt == "jsonl":
            self.fh.write("".join(_json_line(r) + "\n" for r in rows))
        elif self.fmt == "csv":
            if self._csv is None:
                self._csv = csv.writer(self.fh)
                self._csv.writerow(list(rows[0]))
            self._csv.writerows([_csv_cell(v) for v in r.values()] for r in rows)
        else:
            self._write_parquet(rows)

    def _write_parquet(self, rows: list[dict]) -> None:
        import pyarrow.parquet as pq

        top = pa.list_(pa.struct([("label", pa.string()), ("probability", pa.float64())]))
        columns = {k: [r[k] for r in rows] for k in rows[0]}
        arrays = {}
        for k, values in columns.items():
            if k == "top_k":
                arrays[k] = pa.array(values, top)
            elif k == "probability":
                arrays[k] = pa.array(values, pa.float64())
            else:
                try:
                    arrays[k] = pa.array(values)
                except (pa.ArrowInvalid, pa.ArrowTypeError):
                    arrays[k] = pa.array([None if v is None else str(v) for v in values], pa.string())
        table = pa.table(arrays)
        if self._parquet is None:
            schema = pa.schema([f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in table.schema])
            self._parquet = pq.ParquetWriter(self.fh, schema, compression="zstd")
        try:
            table = table.cast(self._parquet.schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            raise ProdcatError("a kept column changes type between rows; Parquet output needs one type per column "
                               "(write CSV or JSONL instead)") from None  # fmt: skip
        self._parquet.write_table(table)

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _json_line(row: dict) -> str:
    """One JSON line; a kept column's NaN/inf becomes null and a value JSON has no type for (a date, bytes)
    its text, so the line is always valid JSON."""
    try:
        return json.dumps(row, ensure_ascii=False, allow_nan=False, default=str)
    except ValueError:
        from .atomic import json_safe

        return json.dumps(json_safe(row), ensure_ascii=False, allow_nan=False, default=str)


def _csv_cell(v):
    if v is None:
        return ""
    if isinstance(v, list):  # top_k
        return ";".join(f"{t['label']}:{t['probability']:.4f}" for t in v)
    if isinstance(v, float):
        return f"{v:.6f}"
    return v


def output_format(output: str, fmt: str | None) -> str:
    """--format, else from --output's extension (.parquet, .csv), else jsonl."""
    if fmt is None:
        suffix = Path(output).suffix.lower() if output != "-" else ""
        fmt = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}.get(suffix, "jsonl")
    if fmt not in ("jsonl", "csv", "parquet"):
        raise ProdcatError(f"unknown --format '{fmt}': jsonl, csv or parquet")
    if fmt == "parquet" and output == "-":
        raise ProdcatError("Parquet output needs a file: pass --output predictions.parquet")
    return fmt
