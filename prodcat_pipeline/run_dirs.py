"""Output folders of runs: a folder that already holds a run is refused unless the caller overwrites it
(which clears it first, so no stale checkpoint survives) or resumes it, and a folder another process is
writing is refused outright (its lock, prodcat_pipeline.locks, is held until the writing function returns)."""

from __future__ import annotations

import functools
import shutil
from contextlib import ExitStack
from contextvars import ContextVar
from pathlib import Path

from .atomic import remove_stale_temporaries
from .errors import ProdcatError
from .locks import LOCK_NAME, folder_lock

_LOCKS: ContextVar[ExitStack | None] = ContextVar("prodcat_run_folder_locks", default=None)


def holds_run_folders(fn):
    """Decorate a function that writes run folders (train, knn_eval, tune, run): the locks that
    prepare_run_folder takes inside it are held until it returns or raises."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with ExitStack() as stack:
            token = _LOCKS.set(stack)
            try:
                return fn(*args, **kwargs)
            finally:
                _LOCKS.reset(token)

    return wrapper


# files only prodcat writes into a run folder: their presence marks one
RUN_MARKERS = ("best.pt", "last.pt", "metrics.json", "knn.json", "ensemble.json", "comparison.json", "config.yaml")


def _contents(path: Path) -> list[Path]:
    return [p for p in path.iterdir() if p.name != LOCK_NAME]


def is_run_folder(path: Path) -> bool:
    return any((path / m).exists() for m in RUN_MARKERS) or any(path.glob("epoch_*.pt"))


def prepare_run_folder(out: str | Path, *, overwrite: bool = False, resume: bool = False) -> Path:
    """Make `out` ready for a new run, holding its lock until the enclosing @holds_run_folders function returns:
    created when missing; a folder another process is writing is refused; an existing run there is kept for
    `resume` (temporaries of a killed writer removed), cleared with `overwrite`, else refused in one line.
    A non-empty folder that holds no run is never cleared."""
    out = Path(out)
    stack = _LOCKS.get()
    if stack is None:
        raise RuntimeError("prepare_run_folder must be called inside a function decorated with @holds_run_folders")
    if out.exists() and not out.is_dir():
        raise ProdcatError(f"--out {out} is a file, not a folder: choose a folder for the run")
    stack.enter_context(folder_lock(out, what="run folder", wait=False))
    if _contents(out):
        if not is_run_folder(out):
            raise ProdcatError(f"--out {out} is not empty and holds no prodcat run: choose an empty or new folder")
        if resume:
            remove_stale_temporaries(out)
            return out
        if not overwrite:
            raise ProdcatError(
                f"{out} already holds a run: pass --overwrite to replace it (clears the folder) or --resume to "
                "continue it, or choose another --out"
            )
        for child in _contents(out):
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    return out


def prune_epoch_checkpoints(out: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` epoch_*.pt of a run folder (keep 0: keep all); returns what went."""
    if keep <= 0:
        return []
    old = sorted(out.glob("epoch_*.pt"))[:-keep]
    for p in old:
        p.unlink(missing_ok=True)
    return old
