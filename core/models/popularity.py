"""MostPopular: every session gets the items with the most train interactions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from core.common import Progress
from core.config import Options, option
from core.data import Split
from core.models.base import Card, Recommender


@dataclass(frozen=True)
class PopularityConfig(Options):
    # The paper's MostPopular does not remove the prompt's items from its list (authors' session_popular.py);
    # True gives the fairer variant that, like every other model, never recommends what the session holds.
    filter_prompt_items: bool = option(False, help="drop the session's own items from its list (the paper: keeps them)")


class Popularity(Recommender):
    name = "popularity"
    card = Card("item IDs", "The items bought most often in the training sessions, the same for everyone.",
                "interactions in train", "a best-seller")
    Config = PopularityConfig

    @property
    def exclude_seen_in_evaluation(self) -> bool:  # type: ignore[override]
        return self.config.filter_prompt_items

    def fit(self, split: Split, progress: Progress | None = None, confirm_spending: bool = False) -> "Popularity":
        self.n_items = split.catalog.n_items
        self.counts = split.train_popularity.astype(np.float32)
        return self

    def score(self, sessions: Sequence[np.ndarray]) -> np.ndarray:
        return np.broadcast_to(self.counts, (len(sessions), self.n_items)).copy()

    def state(self) -> dict[str, np.ndarray]:
        return {"counts": self.counts}

    def set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.counts = arrays["counts"]
