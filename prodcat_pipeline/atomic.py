"""Atomic file writes: write to a temporary name in the same folder, fsync, then rename."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

TMP_MARK = ".tmp-"


@contextmanager
def atomic_path(final: str | os.PathLike):
    """Yield a temporary path next to `final`; on success it is renamed onto `final`, else removed."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=final.name + TMP_MARK, dir=final.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it owner-only: the file gets what open() would give
        os.replace(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_atomic(final: str | os.PathLike, writer: Callable[[Path], None]) -> None:
    with atomic_path(final) as tmp:
        writer(tmp)


def json_safe(value):
    """`value` with every NaN or infinity replaced by None (JSON has no such numbers: json.dumps would write the
    invalid tokens NaN/Infinity) and numpy scalars and arrays made plain Python values."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return json_safe(value.tolist())
    return value


def write_json_atomic(final: str | os.PathLike, obj) -> None:
    """`obj` as indented JSON, atomically; always valid JSON (NaN and infinities become null)."""
    text = json.dumps(json_safe(obj), indent=2, default=str, allow_nan=False)
    write_atomic(final, lambda p: p.write_text(text, encoding="utf-8"))


def write_npy_atomic(final: str | os.PathLike, array) -> None:
    import numpy as np

    def _save(p: Path) -> None:
        with open(p, "wb") as fh:
            np.save(fh, array, allow_pickle=False)

    write_atomic(final, _save)


def write_parquet_atomic(final: str | os.PathLike, table) -> None:
    import pyarrow.parquet as pq

    write_atomic(final, lambda p: pq.write_table(table, p, compression="zstd"))


def remove_stale_temporaries(folder: str | os.PathLike) -> int:
    """Delete temporaries (files and folders) a killed writer left behind; they were never listed anywhere.
    The caller holds the folder's lock, so no live writer owns them."""
    import shutil

    n = 0
    for p in sorted(Path(folder).rglob(f"*{TMP_MARK}*"), key=lambda p: len(p.parts)):
        if not p.exists() and not p.is_symlink():  # inside a temporary folder already removed
            continue
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() and not p.is_symlink() else p.unlink(missing_ok=True)
        n += 1
    return n


_UMASK: int | None = None


def _umask() -> int:
    """The process umask, read once (reading it means setting it, so it is not read again per file)."""
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0o022)
        os.umask(_UMASK)
    return _UMASK


@contextmanager
def atomic_folder(final: str | os.PathLike):
    """Yield a temporary folder next to `final`; on success it replaces `final` (an older folder there is
    removed only after the new one is in place), else it is removed."""
    import shutil

    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=final.name + TMP_MARK, dir=final.parent))
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it owner-only; a run folder gets the usual permissions
    try:
        yield tmp
        old = None
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=final.name + ".old" + TMP_MARK, dir=final.parent))
            os.replace(final, old / final.name)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
