"""What is trained: the fitted models saved in the store (``core.store``) for a dataset's current data.

A folder counts as trained for a dataset when its name is the key its saved model and options give on the
dataset as it is now (same item ids and train sessions; for text models the same titles and embeddings) and it
holds a complete save. A save from an older version with a removed option, or a damaged one, is skipped (and
counted in ``damaged``), never loaded. The app lists these to show every trained model's picks, and names
the registered models that have none.
"""

from __future__ import annotations

import functools
import shlex
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import safe_open

from core import store, uploads
from core.data import BUNDLED, DataError, Dataset
from core.models import REGISTRY, model_class
from core.models.base import ArtifactError, Recommender


@dataclass(frozen=True)
class TrainedModel:
    name: str  # registry name
    folder: Path
    config: dict[str, Any]
    changed: dict[str, Any]  # options that differ from the model's defaults on this dataset
    fit_seconds: float | None
    saved_at: float  # modification time of the weights, seconds since the epoch
    reads_titles: bool = False  # built from the titles' text embeddings (Recommender.text_embedding)

    @functools.cached_property  # computed once (it builds the default config): pages read it many times a redraw
    def label(self) -> str:
        """``vsknn`` for the default config, ``vsknn (k=100, decay=log)`` otherwise."""
        return store.label(self.name, self.config, self.folder.parent.name)


def _read(folder: Path, dataset: Dataset) -> TrainedModel | None:
    """The save in ``folder`` when it belongs to the dataset's current data; None otherwise.
    Raises :class:`ArtifactError` for a damaged save."""
    meta = Recommender.read_meta(folder)
    name = meta.get("model")
    if name not in REGISTRY:
        return None
    try:
        config = model_class(name).Config(**meta["config"])
    except (ImportError, AttributeError, TypeError, ValueError):  # an older version's options, or a broken module
        return None
    if store.model_key(dataset, name, config) != folder.name:
        return None
    weights = folder / "state.safetensors"
    try:
        saved_at = weights.stat().st_mtime
        with safe_open(str(weights), framework="np"):  # reads the header: a truncated file fails here
            pass
    except Exception as err:  # noqa: BLE001 (missing, truncated or not safetensors: a damaged save)
        raise ArtifactError(f"{folder}: the saved weights cannot be read ({type(err).__name__})") from None
    return TrainedModel(name=name, folder=folder, config=meta["config"],
                        changed=store.changed_options(name, meta["config"], dataset.name),
                        fit_seconds=store.saved_fit_seconds(folder, meta), saved_at=saved_at,
                        reads_titles=model_class(name).text_embedding(config) is not None)


# What _read found in each folder, per dataset object (the app keeps its datasets loaded): a folder is read again
# only when its config or weights change. Reading builds and validates the config and hashes it against the
# data, ~10 ms a folder: 1 s for Beauty's 100 saves on every redraw of a page without this.
_READS: dict[int, tuple[weakref.ref, dict[tuple[str, int, int], TrainedModel | None]]] = {}


def _read_remembered(folder: Path, dataset: Dataset) -> TrainedModel | None:
    try:
        stamp = (str(folder), (folder / "config.json").stat().st_mtime_ns,
                 (folder / "state.safetensors").stat().st_mtime_ns)
    except OSError:
        return _read(folder, dataset)  # incomplete or damaged: _read says which
    owner, reads = _READS.get(id(dataset), (None, {}))
    if owner is None or owner() is not dataset:
        reads = {}
        _READS[id(dataset)] = (weakref.ref(dataset), reads)
    if stamp not in reads:
        reads[stamp] = _read(folder, dataset)  # a damaged save raises: never remembered
    return reads[stamp]


def trained_models(dataset: Dataset, damaged: list[str] | None = None) -> list[TrainedModel]:
    """Every complete save for this dataset's data: registry order, then default config first, newest first.
    Damaged saves of this dataset are skipped; their folder names are appended to ``damaged`` when given."""
    root = store.models_root(dataset.name)
    if not root.is_dir():
        return []
    found = []
    for entry in root.iterdir():
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        try:
            model = _read_remembered(entry, dataset)
        except ArtifactError:
            if damaged is not None:
                damaged.append(entry.name)
            continue
        if model is not None:
            found.append(model)
    order = {name: i for i, name in enumerate(REGISTRY)}
    return sorted(found, key=lambda m: (order[m.name], bool(m.changed), -m.saved_at))


def untrained_names(dataset: Dataset, trained: list[TrainedModel] | None = None) -> list[str]:
    """Registered models with no save for this dataset."""
    have = {m.name for m in (trained if trained is not None else trained_models(dataset))}
    return [name for name in REGISTRY if name not in have]


def train_command(dataset_key: str, name: str) -> str:
    """The CLI line that trains ``name`` on a data set (a key as the app holds it: a bundled name or a folder) and
    saves it where the app finds it: an upload by its id (``--dataset data-<12 hex>``, ``core.uploads``), any
    other folder by its path, quoted for a shell."""
    where = dataset_key
    if dataset_key not in BUNDLED:
        try:
            identity = uploads.url_name(dataset_key)
        except DataError:
            identity = None
        where = identity if identity and uploads.upload_folder(identity) is not None else shlex.quote(dataset_key)
    return f".venv/bin/python -m core train --dataset {where} --models {name}"
