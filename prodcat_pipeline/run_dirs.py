"""Output folders of runs: a folder that already holds a run is refused unless the caller overwrites it
(which clears it first, so no stale checkpoint survives) or resumes it."""

from __future__ import annotations

import shutil
from pathlib import Path

from .errors import ProdcatError

# files only prodcat writes into a run folder: their presence marks one
RUN_MARKERS = ("best.pt", "last.pt", "metrics.json", "knn.json", "ensemble.json", "comparison.json", "config.yaml")


def is_run_folder(path: Path) -> bool:
    return any((path / m).exists() for m in RUN_MARKERS) or any(path.glob("epoch_*.pt"))


def prepare_run_folder(out: str | Path, *, overwrite: bool = False, resume: bool = False) -> Path:
    """Make `out` ready for a new run: created when missing; an existing run there is kept for `resume`,
    cleared with `overwrite`, else refused in one line. A non-empty folder that holds no run is never cleared."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ProdcatError(f"--out {out} is a file, not a folder: choose a folder for the run")
    if out.is_dir() and any(out.iterdir()):
        if not is_run_folder(out):
            raise ProdcatError(f"--out {out} is not empty and holds no prodcat run: choose an empty or new folder")
        if resume:
            return out
        if not overwrite:
            raise ProdcatError(
                f"{out} already holds a run: pass --overwrite to replace it (clears the folder) or --resume to "
                "continue it, or choose another --out"
            )
        for child in out.iterdir():
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return out


def prune_epoch_checkpoints(out: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` epoch_*.pt of a run folder (keep 0: keep all); returns what went."""
    if keep <= 0:
        return []
    old = sorted(out.glob("epoch_*.pt"))[:-keep]
    for p in old:
        p.unlink(missing_ok=True)
    return old
