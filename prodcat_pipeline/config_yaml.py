"""pipeline.yaml on disk: read safely (size and alias-expansion limits) and written back as YAML."""

from __future__ import annotations

import os

from .errors import ProdcatError

MAX_YAML_BYTES = 1 << 20  # a pipeline.yaml is a few KB; anything near this is a mistake or an attack
MAX_YAML_NODES = 20_000  # after alias expansion: a YAML "billion laughs" is refused, not expanded


def read_yaml(path: str | os.PathLike) -> dict:
    import yaml

    try:
        size = os.path.getsize(path)
        if size > MAX_YAML_BYTES:
            raise ProdcatError(f"{path} is {size:,} bytes: a pipeline config is at most {MAX_YAML_BYTES:,}")
        with open(path, encoding="utf-8") as fh:
            raw = yaml.safe_load(fh) or {}
    except FileNotFoundError as exc:
        raise ProdcatError(f"config file not found: {path}") from exc
    except IsADirectoryError as exc:
        raise ProdcatError(f"config path {path} is a folder, not a YAML file") from exc
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ProdcatError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(raw, dict):
        raise ProdcatError(f"{path} must hold a mapping of sections (data, encoder, ...)")
    _check_size(raw, path)
    return raw


def _check_size(node, path, budget: list[int] | None = None) -> None:
    budget = budget if budget is not None else [MAX_YAML_NODES]
    budget[0] -= 1
    if budget[0] < 0:
        raise ProdcatError(f"{path} expands to more than {MAX_YAML_NODES:,} values (YAML aliases?); refused")
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    for child in children:
        _check_size(child, path, budget)


def to_yaml(config) -> str:
    """The resolved configuration as YAML (what `prodcat config show` prints and run folders keep)."""
    import yaml

    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
