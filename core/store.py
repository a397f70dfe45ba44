"""One store for fitted models and their evaluation results, keyed by everything a model is built from.

A fitted model lives in ``cache/models/<dataset>/<name>-<data key>-<config hash>/`` (``config.json`` with the
fit time, ``state.safetensors``; written atomically by ``Recommender.save``). The data key hashes the catalog's
item ids and the train sessions and — for a model that reads the titles (``Recommender.text_embedding``:
LLMSeqSim, the LLM2X models, LLMSeqPrompt) — the embeddings it uses: every title, the categories, the
embedding provider and model (a local model folder's weights too) and the long-title rule. The config hash
covers every option, the seed included. So a model built on old titles, other sessions or other options is
never reused: it is fitted again. A saved model that cannot be read is reported and fitted again.

Evaluation results (``core.results.EvaluationResult``) are kept in ``cache/results/<dataset>/`` under the same
model key plus a hash of the evaluation options, so two variants, or a sample and the test split, never share a
file; listing them checks each key against the data as it is now.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from core.common import Progress
from core.config import config_dict, keyed_dict
from core.data import Dataset
from core.models import REGISTRY, model_class
from core.models import load as load_saved
from core.models.base import ArtifactError, Recommender
from core.results import EvaluationResult
from core.storage import CACHE_DIR, atomic_write_text, read_json


def config_hash(config: Any) -> str:
    return hashlib.sha256(json.dumps(keyed_dict(config), sort_keys=True, default=str).encode()).hexdigest()[:10]


def data_key(dataset: Dataset, name: str, config: Any) -> str:
    """What model ``name`` with ``config`` reads of ``dataset``, as a short hash (module docstring). A hybrid
    reads what its parts read, with their options: its key hashes theirs."""
    parts = part_models(dataset, name, config)
    if parts:
        digest = hashlib.sha256(dataset.fingerprint.encode())
        for role, (part_name, part_config) in sorted(parts.items()):
            digest.update(f"{role}={model_key(dataset, part_name, part_config)}".encode())
        return digest.hexdigest()[:12]
    spec = model_class(name).text_embedding(config)
    if spec is None:
        return dataset.fingerprint
    from core.embeddings import cache_key

    digest = hashlib.sha256(dataset.fingerprint.encode())
    digest.update(cache_key(dataset.catalog, spec).encode())
    digest.update(dataset.catalog.text_fingerprint.encode())
    return digest.hexdigest()[:12]


def model_key(dataset: Dataset, name: str, config: Any) -> str:
    """``<name>-<data key>-<config hash>``: the folder name of the fitted model and the stem of its results."""
    return f"{name}-{data_key(dataset, name, config)}-{config_hash(config)}"


def part_models(dataset: Dataset, name: str, config: Any) -> dict[str, tuple[str, Any]]:
    """A hybrid's parts as role -> (model name, config with ``dataset``'s defaults); {} for any other model."""
    return model_class(name).part_configs(config, dataset.name)


def models_root(dataset_name: str) -> Path:
    """Where a dataset's fitted models are saved, one folder each."""
    return CACHE_DIR / "models" / dataset_name


def model_folder(dataset: Dataset, model: Recommender) -> Path:
    return models_root(dataset.name) / model_key(dataset, model.name, model.config)


def changed_options(name: str, config: dict[str, Any], dataset: str | None = None) -> dict[str, Any]:
    """The options of ``config`` that differ from what ``name`` gets by default on ``dataset`` (its tuned
    defaults, ``core.models.defaults``; the class defaults when ``dataset`` is None or has none)."""
    from core.models.defaults import default_config

    defaults = config_dict(default_config(name, dataset))
    return {key: value for key, value in config.items() if defaults.get(key) != value}


def label(name: str, config: dict[str, Any], dataset: str | None = None) -> str:
    """``vsknn`` for the dataset's default config, ``vsknn (k=100, decay=log)`` otherwise."""
    changed = changed_options(name, config, dataset)
    return name if not changed else f"{name} ({', '.join(f'{k}={v}' for k, v in changed.items())})"


@dataclass(frozen=True)
class Fitted:
    """A model ready to recommend, and how it got here."""

    model: Recommender
    status: Literal["fitted", "loaded"]
    fit_seconds: float | None  # this fit's, or the one recorded when the loaded model was fitted
    folder: Path
    notes: list[str] = field(default_factory=list)  # e.g. a damaged save that was fitted again


def saved_fit_seconds(folder: Path, meta: dict[str, Any]) -> float | None:
    value = meta.get("fit_seconds")
    if value is None:  # saved by an older version: a text file beside the weights
        try:
            value = float((folder / "fit_seconds.txt").read_text())
        except (OSError, ValueError):
            return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def attach_parts(model: Recommender, dataset: Dataset, progress: Progress | None = None,
                 confirm_spending: bool = False) -> list[str]:
    """Fit or load each of ``model``'s parts (``Recommender.part_configs``, with ``dataset``'s defaults) and
    attach it; returns one note a part (fitted or loaded, from which folder). Nothing for a model without parts."""
    notes: list[str] = []
    for role, (part_name, part_config) in part_models(dataset, model.name, model.config).items():
        part = fit_or_load(model_class(part_name)(part_config), dataset, progress=progress,
                           confirm_spending=confirm_spending)  # a part trained before is loaded, not retrained
        notes += part.notes
        took = f" in {part.fit_seconds:.1f} s" if part.status == "fitted" and part.fit_seconds is not None else ""
        notes.append(f"{model.name}: its {role} part, {label(part_name, config_dict(part_config), dataset.name)}, "
                     f"was {part.status}{took} ({part.folder.name})")
        model.attach(role, part.model)
    return notes


def fit_or_load(model: Recommender, dataset: Dataset, progress: Progress | None = None,
                retrain: bool = False, confirm_spending: bool = False) -> Fitted:
    """The fitted model from the store when one was built from the same data and options, else fit and save it.

    Raises what ``model.fit`` raises; a damaged save is not an error: it is reported in ``Fitted.notes`` and
    the model is fitted again. ``confirm_spending`` goes to ``fit``: a paid model spends only with it.
    """
    folder = model_folder(dataset, model)
    notes: list[str] = []
    if not retrain and (folder / "state.safetensors").exists():
        try:
            loaded = load_saved(folder)
            return Fitted(loaded, "loaded", saved_fit_seconds(folder, Recommender.read_meta(folder)), folder)
        except ArtifactError as err:
            notes.append(f"{err}; fitting it again.")
    start = time.perf_counter()
    notes += attach_parts(model, dataset, progress, confirm_spending)
    model.fit(dataset.split, progress=progress, confirm_spending=confirm_spending)
    seconds = time.perf_counter() - start
    model.save(folder, meta={"fit_seconds": round(seconds, 3), "dataset": dataset.name,
                             "saved": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    return Fitted(model, "fitted", seconds, folder, notes)


# --------------------------------------------------------------------------------------------- results
def results_folder(dataset_name: str) -> Path:
    return CACHE_DIR / "results" / dataset_name


def result_path(dataset_name: str, key: str, evaluation: str) -> Path:
    """``cache/results/<dataset>/<model key>-<evaluation options tag>.json``."""
    return results_folder(dataset_name) / f"{key}-{evaluation}.json"


def save_result(result: EvaluationResult) -> Path:
    path = result_path(result.dataset, result.key, result.evaluation)
    atomic_write_text(path, json.dumps(result.to_json(), indent=2))
    return path


def load_results(dataset: Dataset, evaluation: str) -> dict[str, EvaluationResult]:
    """The saved results of this dataset's current data with these evaluation options (``evaluation``, their
    tag), by model label, in registry order with each model's default config first.

    A result counts only when its key is what its model and config give on the data as it is now (same
    sessions, same titles and embeddings); damaged files and results of other data or an older version are
    skipped, never fatal. Labels are made now, not read from the file: a label saved when the model's defaults
    were other (before a tuning changed ``defaults.toml``) would call an old variant by the plain name. So
    ``sasrec`` is the result of the dataset's default config and every other run is ``sasrec (max_epochs=1)``,
    ``sasrec (seed=2)`` etc. (:func:`label`). Two results that would still share a label (options the label
    leaves out) are told apart by their config hash and date, ``sasrec [cf4e4783d2, 2026-11-30]``, the newest
    first: none is silently dropped.
    """
    found = []
    for path in sorted(results_folder(dataset.name).glob("*.json")):
        result = EvaluationResult.from_json(read_json(path))
        if result is None or result.evaluation != evaluation or result.model not in REGISTRY:
            continue
        try:
            current = model_key(dataset, result.model, model_class(result.model).Config(**result.config))
        except (TypeError, ValueError):
            continue
        if current == result.key:
            found.append(dataclasses.replace(result, label=label(result.model, result.config, dataset.name)))
    order = {name: i for i, name in enumerate(REGISTRY)}
    found.sort(key=lambda r: (order[r.model], r.label != r.model, r.label, _newest_first(r.created)))
    shared = Counter(r.label for r in found)
    return {(f"{r.label} [{r.key.rsplit('-', 1)[-1]}, {r.created[:10] or 'undated'}]" if shared[r.label] > 1
             else r.label): r for r in found}


def _newest_first(created: str) -> tuple[int, ...]:
    return tuple(-ord(c) for c in created)
