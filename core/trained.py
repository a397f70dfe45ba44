"""What is trained: the fitted models saved under ``cache/models/<dataset>/`` for a dataset's current data.

``core.evaluate.fit_or_load`` saves each fitted model in ``<name>-<data fingerprint>-<config hash>/``. A folder
counts as trained for a dataset when its fingerprint matches the dataset's (same catalog and train sessions)
and it holds a complete save (``state.safetensors`` is written last, inside an atomic rename) whose options
this version still knows (a save from an older version with a removed option is skipped, not loaded). The
app lists these to show every trained model's picks, and names the registered models that have none.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import evaluate
from core.data import BUNDLED, Dataset
from core.models import REGISTRY, model_class


@dataclass(frozen=True)
class TrainedModel:
    name: str  # registry name
    folder: Path
    config: dict[str, Any]
    changed: dict[str, Any]  # options that differ from the model's defaults
    fit_seconds: float | None
    saved_at: float  # modification time of the weights, seconds since the epoch

    @property
    def label(self) -> str:
        """``vsknn`` for the default config, ``vsknn (k=100, decay=log)`` otherwise."""
        if not self.changed:
            return self.name
        return f"{self.name} ({', '.join(f'{k}={v}' for k, v in self.changed.items())})"


def default_config(name: str) -> dict[str, Any]:
    return dataclasses.asdict(model_class(name).Config())


def _read(folder: Path) -> TrainedModel | None:
    weights = folder / "state.safetensors"
    try:
        meta = json.loads((folder / "config.json").read_text())
        saved_at = weights.stat().st_mtime
    except (OSError, json.JSONDecodeError):
        return None
    name = meta.get("model")
    if name not in REGISTRY:
        return None
    config = meta.get("config", {})
    try:
        defaults = default_config(name)
    except (ImportError, AttributeError):  # a registered model whose module is broken or not written yet
        return None
    if set(config) - set(defaults):  # saved by an older version with options this one no longer has
        return None
    changed = {key: value for key, value in config.items() if defaults.get(key) != value}
    seconds_file = folder / "fit_seconds.txt"
    fit_seconds = float(seconds_file.read_text()) if seconds_file.exists() else None
    return TrainedModel(name=name, folder=folder, config=config, changed=changed, fit_seconds=fit_seconds,
                        saved_at=saved_at)


def trained_models(dataset: Dataset) -> list[TrainedModel]:
    """Every complete save for this dataset's data: registry order, then default config first, newest first."""
    folder = evaluate.models_folder(dataset.name)
    if not folder.is_dir():
        return []
    marker = f"-{evaluate.fingerprint(dataset)}-"
    found = []
    for entry in folder.iterdir():
        if entry.name.startswith(".") or marker not in entry.name or not entry.is_dir():
            continue
        model = _read(entry)
        if model is not None:
            found.append(model)
    order = {name: i for i, name in enumerate(REGISTRY)}
    return sorted(found, key=lambda m: (order[m.name], bool(m.changed), -m.saved_at))


def untrained_names(dataset: Dataset, trained: list[TrainedModel] | None = None) -> list[str]:
    """Registered models with no save for this dataset."""
    have = {m.name for m in (trained if trained is not None else trained_models(dataset))}
    return [name for name in REGISTRY if name not in have]


def train_command(dataset_key: str, name: str) -> str:
    """The CLI line that trains ``name`` on a dataset (bundled name or folder) and saves it for the app."""
    where = dataset_key if dataset_key in BUNDLED else f"'{dataset_key}'"
    return f".venv/bin/python -m core train --dataset {where} --models {name}"
