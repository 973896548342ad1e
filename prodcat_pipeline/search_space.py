"""The search spaces `prodcat tune` samples from: built in per head, narrowed by pipeline.yaml's `tune.space`."""

from __future__ import annotations

# A setting is sampled from ("float", low, high, log), ("int", low, high, step), ("cat", [choices]) or
# ("fixed", value). Ranges are wide around the per-head defaults chosen on the real validation sets
# (config.HEAD_DEFAULTS), so a search can only gain on them.
SPACES: dict[str, dict[str, tuple]] = {
    "linear": {
        "lr": ("float", 0.01, 1.0, True),
        "weight_decay": ("float", 1e-4, 0.3, True),
        "label_smoothing": ("float", 0.0, 0.15, False),
        "epochs": ("int", 10, 40, 10),
    },
    "v2": {
        "lr": ("float", 2e-4, 5e-3, True),
        "weight_decay": ("float", 1e-3, 0.2, True),
        "classifier_dropout": ("float", 0.0, 0.5, False),
        "label_smoothing": ("float", 0.0, 0.15, False),
        "epochs": ("int", 10, 40, 10),
    },
    "knn": {  # every pair is scored from one neighbour search, so the k-NN's "trials" are this whole grid
        "k": ("cat", [5, 10, 20, 50, 100]),
        "temperature": ("cat", [0.02, 0.03, 0.05, 0.07, 0.1, 0.2]),
    },
}
SPACES["v3"] = {
    **SPACES["v2"],
    "contrastive_weight": ("float", 0.01, 0.5, True),
    "contrastive_temp": ("float", 0.03, 0.3, True),
}


def space_for(head: str, user: dict | None = None) -> dict[str, tuple]:
    """The built-in space of `head` with the user's `tune.space.<head>` entries (validated by validate_space)
    replacing or adding settings."""
    given = (user or {}).get(head) or {}
    return {**SPACES[head], **{name: _spec(value, f"tune.space.{head}.{name}") for name, value in given.items()}}


def suggest(trial, space: dict[str, tuple]) -> dict:
    """One Optuna trial's settings from `space`."""
    params = {}
    for name, spec in space.items():
        kind = spec[0]
        if kind == "float":
            params[name] = trial.suggest_float(name, spec[1], spec[2], log=spec[3])
        elif kind == "int":
            params[name] = trial.suggest_int(name, spec[1], spec[2], step=spec[3])
        elif kind == "cat":
            params[name] = trial.suggest_categorical(name, spec[1])
        else:
            params[name] = spec[1]
    return params


def validate_space(raw: dict, train_model, canonical_head) -> dict[str, dict]:
    """pipeline.yaml's `tune.space` checked (each setting must be one the head has, with values it accepts;
    ValueError naming the key otherwise) and returned as written, under canonical head names. `train_model`
    is config.TrainConfig and `canonical_head` config's function of that name (passed in: no import cycle)."""
    from pydantic import ValidationError

    if not isinstance(raw, dict):
        raise ValueError("tune.space must map heads to settings, e.g. {v2: {lr: {low: 1e-4, high: 1e-3}}}")
    out: dict[str, dict] = {}
    for head_key, settings in raw.items():
        head = "knn" if str(head_key).lower() == "knn" else canonical_head(head_key)
        if not isinstance(settings, dict):
            raise ValueError(f"tune.space.{head} must be a mapping of settings")
        out[head] = {}
        for name, value in settings.items():
            where = f"tune.space.{head}.{name}"
            allowed = ("k", "temperature") if head == "knn" else tuple(train_model.model_fields)
            if name not in allowed or name in ("head", "seed", "device"):
                raise ValueError(f"unknown key '{where}': {head} settings are {', '.join(sorted(allowed)[:12])}...")
            spec = _spec(value, where)
            for v in spec[1:3] if spec[0] in ("float", "int") else spec[1] if spec[0] == "cat" else spec[1:]:
                if head == "knn":
                    if not (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < float("inf")):
                        raise ValueError(f"key '{where}': {v!r} must be a positive number")
                    continue
                try:
                    train_model.model_validate({name: v})
                except ValidationError as exc:
                    msg = exc.errors()[0]["msg"].removeprefix("Value error, ")
                    raise ValueError(f"key '{where}': {msg} (got {v!r})") from None
            out[head][name] = value
    return out


def _spec(value, where: str) -> tuple:
    if isinstance(value, dict):
        if set(value) - {"low", "high", "log", "step"} or not {"low", "high"} <= set(value):
            raise ValueError(f"key '{where}': a range is {{low: .., high: .., log: true|false}}")
        low, high = value["low"], value["high"]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) or low > high:
            raise ValueError(f"key '{where}': low and high must be numbers with low <= high")
        if isinstance(low, int) and isinstance(high, int) and not value.get("log"):
            return ("int", low, high, int(value.get("step", 1)))
        log = bool(value.get("log", low > 0 and high / low >= 10))
        if log and low <= 0:
            raise ValueError(f"key '{where}': a log range needs low > 0")
        return ("float", float(low), float(high), log)
    if isinstance(value, list):
        if not value:
            raise ValueError(f"key '{where}': an empty list of choices")
        return ("cat", list(value))
    return ("fixed", value)
