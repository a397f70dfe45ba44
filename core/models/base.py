"""The one contract every recommender follows (after benfred/implicit's shared base class).

* ``fit(split, progress=None)`` learns from ``split.train`` (never from the prompts/targets).
* ``recommend(sessions, k, exclude_seen=True)`` ranks the **full catalog** for any list of sessions — the
  test prompts or a session a user just typed — and returns ``(item_indices, scores)``, both of shape
  ``(n_sessions, min(k, n_items))``, best first, no duplicates, and no prompt item when ``exclude_seen``.
  When fewer items may be recommended than asked for, a row ends with ``NO_ITEM`` (-1): lists are never
  padded with excluded items.
* ``save(folder)`` / ``core.models.load(folder)``: config as JSON, arrays as safetensors (never pickle).

Most models only implement ``score(sessions) -> (n, n_items)``; the base class does masking and top-K.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Sequence

import numpy as np
from safetensors.numpy import save_file

from core.common import ConfigError, Progress, UserError
from core.config import apply_overrides, config_dict
from core.data import Split
from core.storage import deferred_termination

if TYPE_CHECKING:
    from core.embeddings import EmbeddingSpec

NO_ITEM = -1  # marks the end of a list shorter than k (fewer items allowed than asked for)
SessionLike = Sequence[int] | np.ndarray  # a session: item indices, oldest first


class ArtifactError(UserError, RuntimeError):
    """A saved artifact cannot be read (truncated, damaged, written by another version); one sentence."""


@dataclass(frozen=True)
class Card:
    """What a model reads and how it picks, for people comparing picks (the app's hover text, the demo's why)."""

    reads: Literal["item IDs", "titles", "titles and item IDs"]
    how: str  # one plain sentence
    score: str  # the unit of its scores, short: they differ (a count, a cosine, a logit)
    why: str = "learned from past sessions"  # a pick's reason in plain words, when no text similarity says more


class Recommender:
    name: ClassVar[str] = "base"
    card: ClassVar[Card] = Card("item IDs", "A registered recommender.", "score")
    Config: ClassVar[type] = object
    # The paper's MostPopular does not filter prompt items; evaluation asks each model what it does.
    exclude_seen_in_evaluation: bool = True
    # Fitting draws random numbers (weights, batch order, sampling): fits with other seeds differ, so a
    # reproduction runs such a model over several seeds (core.reproduce); a deterministic model runs once.
    stochastic_fit: ClassVar[bool] = False

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        try:
            base = config if config is not None else self.Config()
            self.config = apply_overrides(base, overrides) if overrides else base
        except ConfigError as err:
            raise ConfigError(f"{self.name}: {err}") from None
        self.n_items = 0  # the catalog's size once fitted (0: not fitted yet)

    # ---------------------------------------------------------------------------------- to implement
    def fit(self, split: Split, progress: Progress | None = None, confirm_spending: bool = False) -> "Recommender":
        """Learn from ``split.train``. A model that costs money to fit (see ``spending_estimate``) spends only
        with ``confirm_spending``; every other model ignores it."""
        raise NotImplementedError

    def score(self, sessions: Sequence[np.ndarray]) -> np.ndarray:
        """Scores of every catalog item for each session, shape (n_sessions, n_items), higher is better;
        ``-inf`` = never recommend this item for this session."""
        raise NotImplementedError

    def state(self) -> dict[str, np.ndarray]:
        """Arrays that, with the config, restore the fitted model."""
        raise NotImplementedError

    def set_state(self, arrays: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    # ---------------------------------------------------------------------------------- capabilities
    # What a model can do beyond ranking, with safe defaults: callers (evaluation, the store, the app) ask these,
    # never a model's name or its attributes.
    @classmethod
    def text_embedding(cls, config: Any) -> "EmbeddingSpec | None":
        """The text embeddings of the item titles a model with ``config`` is built from, or None when it never
        reads the titles. The store puts them (and so the titles) in the saved model's key; the app explains
        such a model's picks by their nearest session items in that space."""
        return None

    def learned_item_vectors(self) -> np.ndarray | None:
        """(n_items, d) item vectors the model learned (e.g. SASRec's item table), for the map; None if none."""
        return None

    def generation_counts(self) -> list[dict[str, int]]:
        """For a generative model, one entry per session it ranked so far: how many sampled names were
        ``exact``, ``duplicated`` and ``hallucinated``. Empty for every other model."""
        return []

    @classmethod
    def part_configs(cls, config: Any, dataset: str | None = None) -> dict[str, tuple[str, Any]]:
        """A hybrid's parts, role -> (model name, config with ``dataset``'s defaults), which the store fits or
        loads as models of their own and hands over with ``attach``. Empty for every other model."""
        return {}

    def attach(self, role: str, model: "Recommender") -> None:
        """Take a fitted part (a hybrid only; see ``part_configs``)."""
        raise TypeError(f"{self.name} has no parts")

    def pick_sources(self) -> list[list[str]]:
        """For a hybrid, per row of the last ``recommend`` call, which part each pick came from (one short
        phrase per pick). Empty for every other model."""
        return []

    def prepare_new_items(self, split: Split) -> tuple[bool, str]:
        """Make the items without train interactions in ``split`` (new items) scorable where the model can, for
        a cold-item evaluation (``core.study``): (whether the model was changed, one sentence on what it does
        with new items). Changes only this fitted object in memory, never a saved model. Default: nothing."""
        return False, "new items are scored with what the model learned without them"

    def spending_estimate(self, split: Split) -> str | None:
        """What ``fit`` on ``split`` would cost in money (one sentence), or None when it is free."""
        return None

    # ---------------------------------------------------------------------------------- shared
    def _check_fitted(self) -> None:
        if self.n_items <= 0:
            raise RuntimeError(f"{self.name}: call fit() (or load a saved model) before recommend().")

    def _as_sessions(self, sessions: Sequence[SessionLike]) -> list[np.ndarray]:
        out = []
        for i, session in enumerate(sessions):
            array = np.asarray(session, dtype=np.int64).reshape(-1)
            if len(array) and (array.min() < 0 or array.max() >= self.n_items):
                raise ValueError(f"session {i} holds an item index outside 0..{self.n_items - 1}")
            out.append(array)
        return out

    def recommend(self, sessions: Sequence[SessionLike], k: int, exclude_seen: bool = True,
                  batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` catalog items for each session: ``(item_indices, scores)``, each (n_sessions, min(k, n_items)).

        A list is never padded with an item that may not be recommended: when fewer than ``k`` items are
        allowed (a small catalog, a session holding most of it), the row ends with ``NO_ITEM`` (-1) and
        score ``-inf``. Metrics and the app count only real items.
        """
        self._check_fitted()
        arrays = self._as_sessions(sessions)
        k = min(k, self.n_items)
        items = np.empty((len(arrays), k), dtype=np.int64)
        scores = np.empty((len(arrays), k), dtype=np.float32)
        for start in range(0, len(arrays), batch_size):
            batch = arrays[start:start + batch_size]
            batch_scores = np.asarray(self.score(batch), dtype=np.float32)
            if exclude_seen:
                rows = np.repeat(np.arange(len(batch)), [len(s) for s in batch])
                if len(rows):
                    batch_scores[rows, np.concatenate(batch)] = -np.inf
            items[start:start + len(batch)], scores[start:start + len(batch)] = top_k(batch_scores, k)
        return mark_missing(items, scores)

    def save(self, folder: Path, meta: dict[str, Any] | None = None) -> Path:
        """Write config.json (with ``meta``, e.g. the fit time) + state.safetensors into ``folder`` atomically
        (a temp folder, then a rename): a crash never leaves a half-written model."""
        self._check_fitted()
        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        with deferred_termination():  # a job cancelled now stops once the model is saved
            return self._save(folder, meta)

    def _save(self, folder: Path, meta: dict[str, Any] | None) -> Path:
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            info = {"model": self.name, "n_items": self.n_items, "config": config_dict(self.config), **(meta or {})}
            (tmp / "config.json").write_text(json.dumps(info, indent=2))
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
    def read_meta(folder: Path) -> dict[str, Any]:
        """A saved model's config.json; raises :class:`ArtifactError` when it is missing or damaged."""
        path = Path(folder) / "config.json"
        try:
            meta = json.loads(path.read_text())
            if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
                raise ValueError("no config")
            int(meta["n_items"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ArtifactError(f"{folder}: the saved model's config.json is damaged ({type(err).__name__})") from None
        return meta


def mark_missing(items: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Replace the entries of top-K lists whose score is -inf or NaN (items that may not be recommended) by
    ``NO_ITEM``, so a list is shorter than K rather than padded with them."""
    missing = ~np.isfinite(scores) & ~(scores == np.inf)
    if missing.any():
        items = items.copy()
        scores = scores.copy()
        items[missing] = NO_ITEM
        scores[missing] = -np.inf
    return items, scores


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
