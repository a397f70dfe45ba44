"""The one contract every recommender follows (after benfred/implicit's shared base class).

* ``fit(split, progress=None)`` learns from ``split.train`` (never from the prompts/targets).
* ``recommend(sessions, k, exclude_seen=True)`` ranks the **full catalog** for any list of sessions — the
  test prompts or a session a user just typed — and returns ``(item_indices, scores)``, both of shape
  ``(n_sessions, k)``, best first, no duplicates, and no prompt item when ``exclude_seen``.
* ``save(folder)`` / ``Recommender.load(folder)``: config as JSON, arrays as safetensors (never pickle).

Most models only implement ``score(sessions) -> (n, n_items)``; the base class does masking and top-K.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import typing
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

import numpy as np
from safetensors.numpy import load_file, save_file

from core.data import Split

# progress(done, total, message): called by long jobs; the CLI passes tqdm, the app st.progress.
Progress = Callable[[int, int, str], None]


class ConfigError(ValueError):
    """An unknown option or a value of the wrong type."""


def apply_overrides(config: Any, overrides: dict[str, Any]) -> Any:
    """A copy of a config dataclass with ``overrides`` applied; strings are converted by the field's type."""
    fields = {f.name: f for f in dataclasses.fields(config)}
    hints = typing.get_type_hints(type(config))
    changes = {}
    for key, value in overrides.items():
        if key not in fields:
            raise ConfigError(f"unknown option '{key}' for {type(config).__name__}; options: {sorted(fields)}")
        changes[key] = _convert(value, hints[key], key)
    return dataclasses.replace(config, **changes)


def _convert(value: Any, hint: Any, key: str) -> Any:
    if not isinstance(value, str):
        return value
    args = typing.get_args(hint)
    if value.lower() in ("none", "null") and type(None) in args:
        return None
    # Optional[X] / X | None -> X; a Literal keeps its own args (its allowed values).
    target = hint
    if typing.get_origin(hint) is not typing.Literal and args:
        target = next(a for a in args if a is not type(None))
    if typing.get_origin(target) is typing.Literal:
        allowed = typing.get_args(target)
        if value not in allowed:
            raise ConfigError(f"option '{key}' must be one of {list(allowed)}, got '{value}'")
        return value
    try:
        if target is bool:
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return value.lower() in ("true", "1", "yes")
        return target(value)
    except (TypeError, ValueError):
        raise ConfigError(f"option '{key}' expects {getattr(target, '__name__', target)}, got '{value}'") from None


def config_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


class Recommender:
    name: ClassVar[str] = "base"
    Config: ClassVar[type] = object
    # The paper's MostPopular does not filter prompt items; evaluation asks each model what it does.
    exclude_seen_in_evaluation: bool = True

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        base = config if config is not None else self.Config()
        self.config = apply_overrides(base, overrides) if overrides else base
        self.n_items: int | None = None

    # ---------------------------------------------------------------------------------- to implement
    def fit(self, split: Split, progress: Progress | None = None) -> "Recommender":
        raise NotImplementedError

    def score(self, sessions: Sequence[np.ndarray]) -> np.ndarray:
        """Scores of every catalog item for each session, shape (n_sessions, n_items), higher is better."""
        raise NotImplementedError

    def state(self) -> dict[str, np.ndarray]:
        """Arrays that, with the config, restore the fitted model."""
        raise NotImplementedError

    def set_state(self, arrays: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    # ---------------------------------------------------------------------------------- shared
    def _check_fitted(self) -> None:
        if self.n_items is None:
            raise RuntimeError(f"{self.name}: call fit() (or load a saved model) before recommend().")

    def _as_sessions(self, sessions: Sequence[Sequence[int]]) -> list[np.ndarray]:
        out = []
        for i, session in enumerate(sessions):
            array = np.asarray(session, dtype=np.int64).reshape(-1)
            if len(array) and (array.min() < 0 or array.max() >= self.n_items):
                raise ValueError(f"session {i} holds an item index outside 0..{self.n_items - 1}")
            out.append(array)
        return out

    def recommend(self, sessions: Sequence[Sequence[int]], k: int, exclude_seen: bool = True,
                  batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` catalog items for each session: ``(item_indices, scores)``, each (n_sessions, k)."""
        self._check_fitted()
        sessions = self._as_sessions(sessions)
        k = min(k, self.n_items)
        items = np.empty((len(sessions), k), dtype=np.int64)
        scores = np.empty((len(sessions), k), dtype=np.float32)
        for start in range(0, len(sessions), batch_size):
            batch = sessions[start:start + batch_size]
            batch_scores = np.asarray(self.score(batch), dtype=np.float32)
            if exclude_seen:
                rows = np.repeat(np.arange(len(batch)), [len(s) for s in batch])
                if len(rows):
                    batch_scores[rows, np.concatenate(batch)] = -np.inf
            items[start:start + len(batch)], scores[start:start + len(batch)] = top_k(batch_scores, k)
        return items, scores

    def save(self, folder: Path) -> Path:
        """Write config.json + state.safetensors into ``folder`` atomically (a temp folder, then a rename)."""
        self._check_fitted()
        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            meta = {"model": self.name, "n_items": self.n_items, "config": config_dict(self.config)}
            (tmp / "config.json").write_text(json.dumps(meta, indent=2))
            arrays = {key: np.ascontiguousarray(value) for key, value in self.state().items()}
            save_file(arrays, str(tmp / "state.safetensors"))
            if folder.exists():
                old = folder.with_name(f".{folder.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(folder, old)
                os.replace(tmp, folder)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return folder

    @staticmethod
    def load(folder: Path) -> "Recommender":
        from core.models import model_class

        folder = Path(folder)
        meta = json.loads((folder / "config.json").read_text())
        cls = model_class(meta["model"])
        model = cls(cls.Config(**meta["config"]))
        model.n_items = int(meta["n_items"])
        model.set_state(load_file(str(folder / "state.safetensors")))
        return model


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``k`` largest scores per row, sorted descending (ties: lower index first)."""
    n_items = scores.shape[1]
    if k < n_items:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.tile(np.arange(n_items), (scores.shape[0], 1))
    values = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -values), axis=1)
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(values, order, axis=1)
