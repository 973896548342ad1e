"""pipeline.yaml on disk: read safely (size and alias-expansion limits), overridden by flags, written back as YAML."""

from __future__ import annotations

import os

from .errors import ProdcatError

MAX_YAML_BYTES = 1 << 20  # a pipeline.yaml is a few KB; anything near this is a mistake or an attack
MAX_YAML_NODES = 20_000  # after alias expansion: a YAML "billion laughs" is refused, not expanded


def read_yaml(path: str | os.PathLike) -> dict:
    import yaml

    too_big = f"a pipeline config is at most {MAX_YAML_BYTES:,} bytes"
    try:
        size = os.path.getsize(path)
        if size > MAX_YAML_BYTES:
            raise ProdcatError(f"{path} is {size:,} bytes: {too_big}")
        with open(path, "rb") as fh:  # read with a bound: a pipe or /dev/zero has no size to check first
            data = fh.read(MAX_YAML_BYTES + 1)
        if len(data) > MAX_YAML_BYTES:
            raise ProdcatError(f"{path} is more than {MAX_YAML_BYTES:,} bytes: {too_big}")
        raw = yaml.safe_load(data.decode("utf-8")) or {}
    except FileNotFoundError as exc:
        raise ProdcatError(f"config file not found: {path}") from exc
    except IsADirectoryError as exc:
        raise ProdcatError(f"config path {path} is a folder, not a YAML file") from exc
    except OSError as exc:
        raise ProdcatError(f"cannot read config {path}: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, yaml.YAMLError, ValueError) as exc:  # ValueError: an int of > 4300 digits
        raise ProdcatError(f"{path} is not valid YAML: {(str(exc).splitlines() or [''])[0]}") from exc
    except RecursionError:
        raise ProdcatError(f"{path} is not valid YAML: nested too deeply") from None
    if not isinstance(raw, dict):
        raise ProdcatError(f"{path} must hold a mapping of sections (data, encoder, ...)")
    _check_size(raw, path)
    return raw


def _check_size(node, path) -> None:
    """Count the values of the loaded document, aliases expanded (a stack, not recursion: nesting is unbounded)."""
    budget, stack = MAX_YAML_NODES, [node]
    while stack:
        node = stack.pop()
        budget -= 1
        if budget < 0:
            raise ProdcatError(f"{path} expands to more than {MAX_YAML_NODES:,} values (YAML aliases?); refused")
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def to_yaml(config) -> str:
    """The resolved configuration as YAML (what `prodcat config show` prints and run folders keep)."""
    import yaml

    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def apply_overrides(raw: dict, overrides: dict, source: str) -> dict:
    """Write dotted `overrides` ({"data.path": ...}; None values skipped) into the document `raw`, except the
    train.* ones, which are returned (flags are layered over the head's defaults later)."""
    flags: dict = {}
    for dotted, value in overrides.items():
        if value is None:
            continue
        if dotted.startswith("train."):
            flags[dotted.removeprefix("train.")] = value
            continue
        node = raw
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ProdcatError(f"{source}: key '{p}' must be a mapping")
        node[leaf] = value
    return flags
