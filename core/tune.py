"""Hyperparameter search with Optuna: TPE over a dataset's forward-chaining validation folds, never its test split.

The authors tuned every model with TPE over validation folds and pruned the worst trials (Boz et al. 2024, §4.2:
"the 20% worst"); their search code was not published. Here:

* the **search space** of a model is declared next to its config (``Config.search_space``, ranges as
  :class:`core.config.Space`); an LLM2 twin searches its vanilla model's;
* a **trial** starts from the dataset's current defaults (``core.models.defaults``, the ``tuned`` preset),
  draws the space's options, fits the model on each validation fold's train sessions and scores NDCG@20 on the
  fold's later sessions; the **objective** is the mean over the folds. After each fold the running mean is
  reported and Optuna's ``PercentilePruner`` (percentile 80: the worst 20% of trials at that fold are stopped,
  after 5 trials) decides whether to go on; a draw the config refuses (e.g. ``k > sample_size``) is a pruned
  trial with the reason in its ``refused`` attribute;
* the **first trial** of a new study is the current defaults (enqueued), so the best trial is always compared
  with what the model gets today on the same folds;
* the **study** lives in ``cache/tune/<dataset>.sqlite3`` (Optuna's RDB storage, study ``<dataset>:<model>``):
  a killed search is continued by running the same command — trials already finished count towards
  ``--trials``, a trial that stopped mid-way is failed by Optuna's heartbeat and tried again — and two searches
  may run against one study;
* a hybrid's parts are trained once per fold and shared by its trials (its own options never change them);
* :func:`apply_best` writes the best trial's values into ``core/models/defaults.toml`` as the dataset's
  defaults, each with the fold figure, the number of trials and the date.
"""

from __future__ import annotations

import dataclasses
import math
import time
import typing
import warnings
from datetime import date
from pathlib import Path
from typing import Any, Callable

from core.common import ConfigError, Progress, UserError, prefixed
from core.config import Space, apply_overrides, config_dict, unwrap_hint
from core.data import Dataset
from core.storage import CACHE_DIR, atomic_write_text

PRUNE_PERCENTILE = 80.0  # Optuna keeps trials in the top 80% at each fold: the worst 20% are pruned
STARTUP_TRIALS = 5  # no pruning before this many trials have finished


class TuneError(UserError, ValueError):
    """A search that cannot run as asked (a model without a search space, a dataset without folds); one sentence."""


def search_space(name: str) -> dict[str, Space]:
    """The options ``core.tune`` searches for model ``name``; raises :class:`TuneError` when it has none."""
    from core.models import model_class

    space = getattr(model_class(name).Config, "search_space", None)
    if not space:
        raise TuneError(f"{name} declares no search space: nothing to tune (models with one: "
                        f"{', '.join(tunable_models())})")
    return dict(space)


def tunable_models() -> list[str]:
    from core.models import REGISTRY, model_class

    return [name for name in REGISTRY if getattr(model_class(name).Config, "search_space", None)]


def storage_path(dataset_name: str) -> Path:
    return CACHE_DIR / "tune" / f"{dataset_name}.sqlite3"


def study_name(dataset_name: str, model: str, fixed: dict[str, Any] | None = None) -> str:
    """``beauty:vsknn``; with fixed options ``beauty:llmseqsim_sequential[sequential=llm2gru4rec]`` (a study of
    its own: trials with other fixed options are not comparable)."""
    suffix = ",".join(f"{k}={v}" for k, v in sorted((fixed or {}).items()))
    return f"{dataset_name}:{model}" + (f"[{suffix}]" if suffix else "")


def study_names(dataset_name: str, model: str) -> list[str]:
    """The studies of ``model`` on ``dataset_name`` kept in its storage: the plain one first, then those with
    fixed options (``--set``), by name; [] when there is none."""
    import optuna

    path = storage_path(dataset_name)
    if not path.exists():
        return []
    plain = study_name(dataset_name, model)
    names = optuna.study.get_all_study_names(storage=f"sqlite:///{path}")
    return sorted((n for n in names if n == plain or n.startswith(plain + "[")), key=lambda n: (n != plain, n))


def open_study(dataset_name: str, model: str, seed: int = 0, heartbeat_seconds: int = 30,
               grace_seconds: int = 90, fixed: dict[str, Any] | None = None) -> Any:
    """The study of ``model`` on ``dataset_name`` (created on first use, else loaded: a search continues).

    A trial whose process died stops sending heartbeats; ``grace_seconds`` later Optuna marks it failed and
    ``RetryHeartbeatStaleTrialCallback`` enqueues its options again."""
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    path = storage_path(dataset_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():  # the heartbeat is "experimental" in Optuna 5; it is what resumes a search
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = RDBStorage(f"sqlite:///{path}", heartbeat_interval=heartbeat_seconds, grace_period=grace_seconds,
                             heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
                             engine_kwargs={"connect_args": {"timeout": 60}})
    return optuna.create_study(storage=storage, study_name=study_name(dataset_name, model, fixed),
                               direction="maximize",
                               sampler=optuna.samplers.TPESampler(seed=seed),
                               pruner=optuna.pruners.PercentilePruner(PRUNE_PERCENTILE,
                                                                      n_startup_trials=STARTUP_TRIALS),
                               load_if_exists=True)


def finished_trials(study: Any) -> list[Any]:
    """Trials that count towards ``--trials``: complete or pruned (a failed one is tried again)."""
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))


def _suggest(trial: Any, config_class: type, space: dict[str, Space]) -> dict[str, Any]:
    """The trial's draw of every option of ``space`` (ints for an int option)."""
    types = typing.get_type_hints(config_class)
    values: dict[str, Any] = {}
    for key, bounds in space.items():
        if key not in types or key not in {f.name for f in dataclasses.fields(config_class)}:
            raise ConfigError(f"search space of {config_class.__name__}: '{key}' is not an option")
        if bounds.choices:
            values[key] = trial.suggest_categorical(key, list(bounds.choices))
        elif bounds.low is None or bounds.high is None:
            raise ConfigError(f"search space of {config_class.__name__}: '{key}' needs low and high, or choices")
        elif unwrap_hint(types[key])[0] is int:
            values[key] = trial.suggest_int(key, int(bounds.low), int(bounds.high), log=bounds.log)
        else:
            values[key] = trial.suggest_float(key, float(bounds.low), float(bounds.high), log=bounds.log)
    return values


def objective(dataset: Dataset, name: str, base: Any,
              progress_for: Callable[[Any], tuple[Progress | None, Callable[[], None]]] | None = None
              ) -> Callable[[Any], float]:
    """Optuna's objective for model ``name`` from config ``base``: mean NDCG@20 over ``dataset.folds``."""
    import optuna

    from core.evaluate import EvaluationOptions, evaluate_model
    from core.models import model_class

    cls = model_class(name)
    space = search_space(name)
    parts_of: dict[tuple[int, str, str], Any] = {}  # (fold, part name, its options) -> the fitted part
    evaluation = EvaluationOptions(ks=(20,), bootstrap_resamples=1)

    def run(trial: Any) -> float:
        values = _suggest(trial, cls.Config, space)
        try:
            config = apply_overrides(base, values)
        except ConfigError as err:
            trial.set_user_attr("refused", str(err))
            raise optuna.TrialPruned(str(err)) from None
        progress, close = progress_for(trial) if progress_for else (None, lambda: None)
        scores: list[float] = []
        try:
            for index, fold in enumerate(dataset.folds):
                model = cls(config)
                step = prefixed(progress, f"trial {trial.number}, fold {index + 1}/{len(dataset.folds)}")
                for role, (part_name, part_config) in cls.part_configs(config, dataset.name).items():
                    key = (index, part_name, repr(config_dict(part_config)))
                    if key not in parts_of:
                        parts_of[key] = model_class(part_name)(part_config).fit(fold, progress=step)
                    model.attach(role, parts_of[key])
                start = time.perf_counter()
                model.fit(fold, progress=step)
                score = float(evaluate_model(model, fold, evaluation)["metrics"]["NDCG@20"])
                scores.append(score)
                trial.set_user_attr(f"fold {index + 1} NDCG@20", score)
                trial.set_user_attr(f"fold {index + 1} seconds", round(time.perf_counter() - start, 1))
                trial.report(sum(scores) / len(scores), step=index)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"fold {index + 1}: mean NDCG@20 {sum(scores) / len(scores):.4f}")
        finally:
            close()
        return sum(scores) / len(scores)

    return run


def defaults_in_space(name: str, base: Any) -> dict[str, Any]:
    """The current defaults' value of every searched option (the study's first, enqueued trial)."""
    return {key: getattr(base, key) for key in search_space(name)}


def tune(dataset: Dataset, name: str, trials: int, timeout: float | None = None, seed: int = 0,
         progress_for: Callable[[Any], tuple[Progress | None, Callable[[], None]]] | None = None,
         heartbeat_seconds: int = 30, grace_seconds: int = 90, fixed: dict[str, Any] | None = None,
         on_trial: Callable[[Any], None] | None = None) -> Any:
    """Run the search until the study holds ``trials`` finished trials (or ``timeout`` seconds pass); returns the
    Optuna study. ``fixed`` options (not searched) are set on every trial and name a study of their own;
    ``on_trial(frozen_trial)`` is called as each trial ends. Raises :class:`TuneError` (no search space, no
    folds, a count or time that is not positive, a fixed option that is also searched) and
    :class:`ConfigError` (a bad fixed option)."""
    import optuna

    from core.models.defaults import default_config

    check_numbers(trials, timeout, grace_seconds)
    if not dataset.folds:
        raise TuneError(f"{dataset.name} has no validation folds (too few sessions or no order to cut in time): "
                        "nothing to tune on")
    searched = search_space(name)
    clash = sorted(set(fixed or {}) & set(searched))
    if clash:
        raise TuneError(f"{', '.join(clash)}: searched by the tune of {name}, so it cannot also be fixed with --set")
    base = apply_overrides(default_config(name, dataset.name), fixed or {})
    study = open_study(dataset.name, name, seed, heartbeat_seconds, grace_seconds, fixed)
    if not study.trials:
        study.enqueue_trial(defaults_in_space(name, base), user_attrs={"defaults": True})
        study.set_user_attr("fixed", {k: str(v) for k, v in (fixed or {}).items()})
    remaining = trials - len(finished_trials(study))
    if remaining <= 0:
        return study
    callbacks: list[Callable[[Any, Any], None]] = [optuna.study.MaxTrialsCallback(
        trials, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))]
    if on_trial is not None:
        callbacks.append(lambda _study, trial: on_trial(trial))
    study.optimize(objective(dataset, name, base, progress_for), n_trials=remaining, timeout=timeout,
                   callbacks=callbacks, gc_after_trial=True)
    return study


def check_numbers(trials: int, timeout: float | None, grace_seconds: int) -> None:
    """Raises :class:`TuneError` for a count or a time that is not positive (before any work starts)."""
    if trials < 1:
        raise TuneError(f"--trials must be at least 1, got {trials}")
    if timeout is not None and not timeout > 0:
        raise TuneError(f"--timeout must be a positive number of seconds, got {timeout:g}")
    if grace_seconds < 1:
        raise TuneError(f"--grace must be at least 1 second, got {grace_seconds}")


def trial_line(trial: Any) -> str:
    """One line for a finished trial: its state, mean fold NDCG@20 (or why it stopped) and its options."""
    options = ", ".join(f"{k}={_short(v)}" for k, v in trial.params.items())
    if trial.value is not None and trial.state.name == "COMPLETE":
        outcome = f"mean fold NDCG@20 {trial.value:.4f}"
    elif trial.user_attrs.get("refused"):
        outcome = f"refused ({trial.user_attrs['refused']})"
    else:
        outcome = trial.state.name.lower() + (" after a fold" if trial.state.name == "PRUNED" else "")
    defaults = " [the current defaults]" if trial.user_attrs.get("defaults") else ""
    return f"trial {trial.number}: {outcome}{defaults} — {options}"


def summary(study: Any) -> dict[str, Any]:
    """The best trial and the defaults' trial: ``{"best": {...}, "defaults": {...} | None, "trials": n, ...}``."""
    from optuna.trial import TrialState

    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value) if complete else None
    defaults = next((t for t in complete if t.user_attrs.get("defaults")), None)
    return {"study": study.study_name, "finished": len(finished_trials(study)), "complete": len(complete),
            "pruned": sum(t.state == TrialState.PRUNED for t in study.get_trials(deepcopy=False)),
            "best": None if best is None else {"number": best.number, "value": best.value, "params": best.params},
            "defaults": None if defaults is None else {"number": defaults.number, "value": defaults.value,
                                                       "params": defaults.params}}


def best_is_defaults(info: dict[str, Any]) -> bool:
    """Whether the best trial of a ``summary`` is the current defaults' trial."""
    return bool(info["best"] and info["defaults"] and info["best"]["number"] == info["defaults"]["number"])


def apply_best(study: Any, dataset_name: str, name: str, path: Path | None = None) -> dict[str, Any] | None:
    """Write the best trial's values as ``dataset_name``'s defaults of ``name`` in ``defaults.toml`` (comments
    kept; the file is replaced atomically), each with the fold figure, the trial count and the date; returns
    the values, or None (nothing written) when the best trial is the current defaults. Raises
    :class:`TuneError` when no trial has finished."""
    import tomlkit

    from core.models import defaults as defaults_module

    info = summary(study)
    if info["best"] is None:
        raise TuneError(f"study {study.study_name} has no finished trial yet: nothing to apply")
    if best_is_defaults(info):
        return None  # the values would not change, and their record (how they were chosen) is kept
    best, before = info["best"], info["defaults"]
    figure = (f"NDCG@20 {best['value']:.4f}, mean of the validation folds; best of {info['finished']} Optuna TPE "
              f"trials, {date.today().isoformat()}"
              + (f" (the defaults before: {before['value']:.4f})" if before else ""))
    fixed = dict(study.user_attrs.get("fixed", {}))
    path = path or defaults_module.DEFAULTS_FILE
    document = tomlkit.parse(path.read_text())
    if dataset_name not in document:
        document[dataset_name] = tomlkit.table(is_super_table=True)
    section = tomlkit.table()
    sets = "".join(f" --set '{k}={v}'" for k, v in fixed.items())
    section.add(tomlkit.comment(f"python -m core tune --dataset {dataset_name} --model {name}{sets} --apply "
                                f"(study {study.study_name})"))
    for key, value in {**fixed, **best["params"]}.items():  # a fixed option is part of the setting that scored
        entry = tomlkit.inline_table()
        entry.update({"value": value, "fold": figure + (" (fixed with --set)" if key in fixed else "")})
        section.add(key, entry)
    document[dataset_name][name] = section
    atomic_write_text(path, tomlkit.dumps(document))
    defaults_module._table.cache_clear()
    return {**fixed, **best["params"]}


def describe(info: dict[str, Any]) -> str:
    """A few lines for the CLI: trials, best vs the defaults, the best values."""
    lines = [f"study {info['study']}: {info['finished']} finished trial(s) ({info['complete']} complete, "
             f"{info['pruned']} pruned)"]
    if info["best"]:
        lines.append(f"best: trial {info['best']['number']}, mean fold NDCG@20 {info['best']['value']:.4f}")
        lines.append("  " + ", ".join(f"{k}={_short(v)}" for k, v in info["best"]["params"].items()))
    if info["defaults"]:
        lines.append(f"the current defaults: trial {info['defaults']['number']}, mean fold NDCG@20 "
                     f"{info['defaults']['value']:.4f}")
    return "\n".join(lines)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) and math.isfinite(value) else str(value)
