"""Head checkpoints: one plain dict per file (no pickled objects), written atomically, loaded with
torch's weights-only unpickler, checked against the cache and head shape they are used with."""

from __future__ import annotations

from pathlib import Path

from .errors import ProdcatError
from .heads import SHAPE_KEYS, build_head
from .reader import CachedDataset

CHECKPOINT_FORMAT = "prodcat-head/1"


def checkpoint_meta(config, cached: CachedDataset, head_args: dict, languages: list[str]) -> dict:
    """What every checkpoint of a run holds besides its tag, weights and loop state (`train` and run_folder)."""
    tc = config.train
    meta = {"format": CHECKPOINT_FORMAT, "head": tc.head, "head_args": head_args, "dim": cached.dim}
    meta |= {"config": config.model_dump(mode="json"), "cache_key": cached.key, "encoder": cached.encoder}
    from .provenance import command_line

    return meta | {"label_names": cached.label_names, "languages": languages, "command": command_line()}


def save_checkpoint(path: Path, ckpt: dict) -> None:
    import torch

    from .atomic import atomic_path

    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def read_checkpoint(path: Path) -> dict:
    """A checkpoint file's dict; anything but tensors and plain data in it is refused (no code runs)."""
    import pickle
    import re

    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) (\S+)", str(exc))
        if found:  # a pickled object or function: loading it could run code
            raise ProdcatError(
                f"refusing checkpoint {path}: it holds a Python object ({found.group(1)}), not just tensors and "
                "plain data; prodcat never loads such files"
            ) from exc
        raise ProdcatError(f"cannot read checkpoint {path}: not a torch checkpoint, or damaged") from exc
    except Exception as exc:  # truncated, not a torch file, unreadable
        raise ProdcatError(f"cannot read checkpoint {path}: {str(exc).splitlines()[0][:200]}") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ProdcatError(f"{path} is not a prodcat head checkpoint")
    expected = {"head": str, "head_args": dict, "dim": int, "label_names": list, "cache_key": str, "encoder": dict}
    expected |= {"head_state": dict, "state": dict, "config": dict}
    wrong = [k for k, kind in expected.items() if not isinstance(ckpt.get(k), kind)]
    if wrong or not all(isinstance(n, str) for n in ckpt["label_names"]):
        raise ProdcatError(
            f"checkpoint {path} is damaged: {', '.join(wrong) or 'label_names'} missing or of the wrong type"
        )
    return ckpt


def load_checkpoint(run: str | Path, cached: CachedDataset | None = None, which: str = "best") -> dict:
    """A run's `best.pt` (or `last.pt`, or a checkpoint file); with `cached`, check it was trained on the same
    cache and labels."""
    run = Path(run)
    path = run if run.is_file() else run / f"{which}.pt"
    if not path.exists():
        raise ProdcatError(f"no checkpoint at {path}: train a head there first (or drop --resume)")
    ckpt = read_checkpoint(path)
    if cached is not None:
        if ckpt["label_names"] != cached.label_names:
            raise ProdcatError(
                f"checkpoint {path} was trained on another label set ({len(ckpt['label_names'])} labels: "
                f"{', '.join(ckpt['label_names'][:4])}...), not this dataset's {len(cached.label_names)} labels"
            )
        if ckpt["cache_key"] != cached.key:
            raise ProdcatError(
                f"checkpoint {path} was trained on vectors of encoder '{ckpt['encoder'].get('name')}' "
                f"(cache {ckpt['cache_key']}), not '{cached.encoder.get('name')}' (cache {cached.key}); "
                "use the same --model"
            )
    return ckpt


def check_compatible(ckpt: dict, head_name: str, head_args: dict, where: str) -> None:
    """Refuse to load a checkpoint into a head of another kind or shape."""
    if ckpt["head"] != head_name:
        raise ProdcatError(f"{where} holds a '{ckpt['head']}' head, not '{head_name}'; pass --head {ckpt['head']}")
    diff = [k for k in SHAPE_KEYS if ckpt["head_args"].get(k) != head_args.get(k)]
    if diff:
        detail = ", ".join(f"{k}={ckpt['head_args'].get(k)}" for k in diff)
        raise ProdcatError(f"{where} was trained with {detail}; use the same settings to continue from it")


def head_from_checkpoint(ckpt: dict, device: str = "cpu", source: str | Path = "checkpoint"):
    """The trained head a checkpoint holds, in eval mode on `device`; one with non-finite weights is refused
    (`source` names the file in messages)."""
    import torch

    state = ckpt.get("head_state")
    if not isinstance(state, dict) or not all(isinstance(t, torch.Tensor) for t in state.values()):
        raise ProdcatError(f"{source} has no head weights (head_state)")
    bad = next((k for k, t in state.items() if t.is_floating_point() and not torch.isfinite(t).all()), None)
    if bad is not None:
        raise ProdcatError(f"{source}: weight {bad} holds NaN or infinite values (a diverged run): retrain it")
    head = build_head(ckpt["head"], ckpt["dim"], len(ckpt["label_names"]), ckpt["head_args"])
    try:
        head.load_state_dict(ckpt["head_state"])
    except (RuntimeError, KeyError) as exc:
        raise ProdcatError(
            f"{source}: the weights do not fit its own head description ({len(ckpt['label_names'])} labels, "
            f"{ckpt['head']}): {str(exc).splitlines()[0]}"
        ) from exc
    return head.to(device).eval()
