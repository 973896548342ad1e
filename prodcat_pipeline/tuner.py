"""`prodcat tune`: hyper-parameter search over the cached vectors (Optuna TPE, median pruning), selected on
validation macro-F1, every trial in one process sharing the loaded cache.

Per head: a study of `tune.trials` trials (linear and v2 trials trained `tune.parallel` at a time in one
batched pass, see multihead.py) -> the best trial's own weights as a normal run folder `<out>/<head>`.
The k-NN scores its whole k x temperature grid from one neighbour search. Then the LogisticRegression
baseline, optionally an ensemble of the bests, and `<out>/best`: a copy of the best run on validation.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .config import PipelineConfig
from .errors import ProdcatError
from .reader import CachedDataset
from .run_dirs import holds_run_folders, prepare_run_folder

log = logging.getLogger(__name__)


@dataclass
class TuneResult:
    out_dir: Path
    trials: list[dict]  # the rows of trials.csv
    rows: list[dict]  # the comparison table: each head's best, the k-NN, logreg, the ensemble
    languages: list[str]
    best: str  # name of the run copied to <out>/best
    best_val_macro_f1: float


@holds_run_folders
def tune(
    config: PipelineConfig | None = None, *, out: str | Path | None = None, show_progress=None, overwrite: bool = False
) -> TuneResult:
    """Search each head of `config.tune.heads`; write `<out>/trials.csv`, `tune.png`, `comparison.*`, one run
    folder per head, `ensemble/` (with tune.ensemble) and `best/` (an `out` holding results is refused unless
    `overwrite`).

    Example:
        >>> cfg = load_config(overrides={"data.path": "data/lspc_sample", "tune.trials": 8})
        >>> tune(cfg, out="runs/tune").best_val_macro_f1
    """
    from .baselines import logistic_regression
    from .cache import TRAINING_COLUMNS, open_cache
    from .config import load_config
    from .pipeline import comparison_rows, write_comparison
    from .tune_report import write_trials_csv, write_tune_plot

    config = config or load_config()
    out = Path(out or "runs/tune")
    for head in config.tune.heads:  # bad settings fail before any work
        if head != "knn":
            config.for_head(head)
            _import_optuna()
    prepare_run_folder(out, overwrite=overwrite)
    cached, _ = open_cache(config, columns=TRAINING_COLUMNS, show_progress=show_progress)
    if not cached.mask("validation").any():
        raise ProdcatError("tune selects on the validation split and this dataset has none; give it one")
    trials, finals, studies = [], {}, {}
    for head in config.tune.heads:
        t = time.perf_counter()
        if head == "knn":
            rows, finals[head] = _tune_knn(config, cached, out)
        else:
            rows, finals[head], studies[head] = _tune_head(config, head, cached, out, show_progress)
        log.info("tuned %s: %d trials in %.1fs", head, len(rows), time.perf_counter() - t)
        trials += rows
    results = {h: json.loads((p / "metrics.json").read_text()) for h, p in finals.items()}
    if config.tune.ensemble and len(finals) >= 2:
        from .ensembles import ensemble

        finals["ensemble"] = out / "ensemble"
        results["ensemble"] = ensemble(list(finals.values())[:-1], out=out / "ensemble", cached=cached).metrics
    best = max(results, key=lambda h: results[h]["validation"]["macro_f1"])
    _copy_folder(finals[best], out / "best")
    baseline = [logistic_regression(cached, config, out=out / "logreg")] if config.run_logreg else []
    rows, languages = comparison_rows([*results.values(), *baseline], config.train.lang_top_k)
    write_comparison(out, rows, languages)
    write_trials_csv(out / "trials.csv", trials)
    write_tune_plot(out / "tune.png", trials, studies)
    return TuneResult(out, trials, rows, languages, best, results[best]["validation"]["macro_f1"])


def _tune_head(config: PipelineConfig, head: str, cached: CachedDataset, out: Path, show_progress):
    """Optuna study for one head -> (trial rows, run folder of the best trial, study)."""
    optuna = _import_optuna()

    from .search_space import space_for, suggest
    from .trainer import train

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    head_config = config.for_head(head)
    space = space_for(head, config.tune.space)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=config.train.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=2)
        if config.tune.pruning
        else optuna.pruners.NopPruner(),
    )
    defaults = {k: getattr(head_config.train, k) for k in space if _inside(space[k], getattr(head_config.train, k))}
    study.enqueue_trial(defaults)  # the head's defaults are trial 0: tuning can only match or beat them
    batched = head in ("linear", "v2") and config.tune.parallel > 1 and _multihead_supports(head_config, head, space)
    data = _training_data(head_config, head, space, cached) if batched else None  # shared by every group
    rows: list[dict] = []
    kept: dict = {}  # the best batched trial's result (its head weights), by trial number
    n = config.tune.trials
    while len(rows) < n:
        group = [study.ask() for _ in range(min(config.tune.parallel if batched else 1, n - len(rows)))]
        params = [suggest(t, space) for t in group]
        if batched:
            rows += _batched_trials(head_config, head, group, params, study, cached, show_progress, kept, data)
        else:
            rows.append(_one_trial(head_config, head, group[0], params[0], study, cached, out))
    final, best = out / head, study.best_trial.number
    if best in kept:  # trained batched: the best trial's own weights become a normal run folder
        from .run_folder import write_head_run

        best_config = head_config.model_copy(update={"train": kept[best].config}, deep=True)
        write_head_run(final, best_config, cached, kept[best], data=data)
    elif (out / "trials" / f"{head}-{best:03d}").exists():  # trained one at a time: its folder is the run
        _copy_folder(out / "trials" / f"{head}-{best:03d}", final)
    else:  # not reachable with Optuna's bookkeeping; train the best settings again rather than fail
        best_params = study.best_trial.params | _fixed(space)
        train(_with_params(head_config, head, best_params), out=final, cached=cached, show_progress=show_progress,
              overwrite=True)  # fmt: skip
    shutil.rmtree(out / "trials", ignore_errors=True)
    return rows, final, study


def _one_trial(head_config, head, trial, params, study, cached, out) -> dict:
    import optuna

    from .trainer import train

    seen = {"epochs": 0}

    def report(record):
        seen["epochs"] = record["epoch"]
        if record["val_macro_f1"] is not None:
            trial.report(record["val_macro_f1"], record["epoch"])
            if trial.should_prune():
                raise optuna.TrialPruned()

    folder = out / "trials" / f"{head}-{trial.number:03d}"
    t = time.perf_counter()
    row = {"head": head, "trial": trial.number, **params}
    try:
        result = train(_with_params(head_config, head, params), out=folder, cached=cached, on_epoch=report,
                       show_progress=False, overwrite=True)  # fmt: skip
    except optuna.TrialPruned:
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        shutil.rmtree(folder, ignore_errors=True)
        return row | {"state": "pruned", "epochs_run": seen["epochs"], "seconds": round(time.perf_counter() - t, 3)}
    val = result.metrics["validation"]
    study.tell(trial, val["macro_f1"])
    best_number = study.best_trial.number
    for p in (out / "trials").glob(f"{head}-*"):  # keep only the best trial's folder
        if p != out / "trials" / f"{head}-{best_number:03d}":
            shutil.rmtree(p, ignore_errors=True)
    return row | {"state": "complete", "val_macro_f1": val["macro_f1"], "val_micro_f1": val["micro_f1"],
                  "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
                  "seconds": round(time.perf_counter() - t, 3)}  # fmt: skip


def _training_data(head_config, head: str, space: dict, cached: CachedDataset):
    """The training data view that every batched group of the head trains on (the space's fixed values set)."""
    from .encoders import resolve_device
    from .training_data import build_training_data

    tc = _with_params(head_config, head, _fixed(space)).train
    return build_training_data(cached, tc, resolve_device(tc.device))


def _batched_trials(head_config, head, group, params, study, cached, show_progress, kept: dict, data) -> list[dict]:
    """Trials of one head shape trained together (multihead.train_many); pruned per epoch."""
    import optuna

    from .multihead import train_many

    def on_epoch(epoch, scores):
        stop = []
        for trial, score in zip(group, scores, strict=True):
            if score is None:
                stop.append(True)
                continue
            trial.report(score, epoch)
            stop.append(trial.should_prune())
        return stop

    t = time.perf_counter()
    results = train_many(head_config, params, cached=cached, on_epoch=on_epoch, show_progress=show_progress, data=data)
    seconds = round((time.perf_counter() - t) / len(group), 3)
    rows = []
    for trial, p, r in zip(group, params, results, strict=True):
        row = {"head": head, "trial": trial.number, **p, "seconds": seconds, "epochs_run": len(r.history)}
        if r.pruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            rows.append(row | {"state": "pruned"})
        else:
            study.tell(trial, r.best_score)
            if study.best_trial.number == trial.number:
                kept.clear()
                kept[trial.number] = r
            rows.append(row | {"state": "complete", "val_macro_f1": r.best_score, "val_micro_f1": r.best_micro,
                               "best_epoch": r.best_epoch})  # fmt: skip
    return rows


def _tune_knn(config: PipelineConfig, cached: CachedDataset, out: Path):
    """Every (k, temperature) of the k-NN space scored from one neighbour search; the best written as a run."""
    from .knn import knn_eval
    from .search_space import space_for

    space = space_for("knn", config.tune.space)
    knn_config = config.model_copy(deep=True)
    knn_config.knn.k = knn_config.knn.temperature = None  # both chosen on validation among the space's values
    t = time.perf_counter()
    result = knn_eval(
        knn_config,
        out=out / "knn",
        cached=cached,
        candidates=(_values(space["k"]), _values(space["temperature"])),
        overwrite=True,
    )
    table = result.metrics["knn"].get("validation_search") or []
    seconds = round((time.perf_counter() - t) / max(len(table), 1), 4)
    rows = [{"head": "knn", "trial": i, "k": r["k"], "temperature": r["temperature"], "state": "complete",
             "val_macro_f1": r["macro_f1"], "val_micro_f1": r.get("micro_f1"), "seconds": seconds}
            for i, r in enumerate(table)]  # fmt: skip
    return rows, out / "knn"


def _values(spec: tuple) -> list:
    if spec[0] == "cat":
        return list(spec[1])
    if spec[0] == "fixed":
        return [spec[1]]
    raise ProdcatError("tune.space.knn: k and temperature take a list of values or one value, not a range")


def _with_params(head_config: PipelineConfig, head: str, params: dict) -> PipelineConfig:
    cfg = head_config.for_head(head)
    for key, value in params.items():
        setattr(cfg.train, key, value)
    return cfg


def _inside(spec: tuple, value) -> bool:
    if spec[0] in ("float", "int"):
        return spec[1] <= value <= spec[2]
    return spec[0] == "cat" and value in spec[1]


def _multihead_supports(head_config: PipelineConfig, head: str, space: dict) -> bool:
    """Whether these trials can be trained batched (else they run one by one through the trainer).

    Batched trials share one model shape and one data order, so every parameter the search varies
    must be one that ``multihead`` keeps per trial (a searched ``classifier_hidden`` is not), and the
    settings every trial gets (the config with the space's fixed values) must be ones it implements."""
    from .multihead import PER_TRIAL, unsupported_options

    varied = {name for name, spec in space.items() if spec[0] != "fixed"}
    fixed = _with_params(head_config, head, _fixed(space)).train
    return varied <= set(PER_TRIAL) and not unsupported_options(fixed)


def _fixed(space: dict) -> dict:
    """The settings the space fixes to one value (every trial gets them)."""
    return {name: spec[1] for name, spec in space.items() if spec[0] == "fixed"}


def _copy_folder(src: Path, dst: Path) -> None:
    from .atomic import atomic_folder

    with atomic_folder(dst) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns("last.pt", "epoch_*.pt"))


def _import_optuna():
    """optuna, or one line saying how to get it: it comes with the `tune` extra, not with prodcat itself."""
    try:
        import optuna
    except ImportError:
        raise ProdcatError('`prodcat tune` needs optuna: pip install "prodcat[tune]"') from None
    return optuna
