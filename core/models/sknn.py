"""Session-kNN (SKNN) and its sequence-aware variant V-SKNN (Ludewig & Jannach 2018; the paper's baselines).

For a prompt session, the candidate neighbours are the train sessions sharing at least one item with it;
``sample_size`` of them are kept (``random`` or most ``recent``), each gets a similarity to the prompt, the
``k`` most similar are the neighbours, and an item's score is the sum of the similarities of the
neighbours that contain it. V-SKNN weights the prompt's items by position (``decay``, harmonic by
default: the last item weighs 1, the one before 1/2, ...), so recent items matter more.

Similarity between a binary neighbour row ``x`` and the (weighted) prompt vector ``w``:
``cosine = x·w / (|x| |w|)`` or ``dot = x·w``.

Beyond the paper: catalog items that no neighbour holds are ranked after every neighbour item, by train
popularity, so a list always has ``k`` items (the authors' code returned shorter lists).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, Sequence, get_args

import numpy as np
from scipy import sparse

from core.common import ConfigError, Progress
from core.config import Options, Space, between, one_of, option
from core.data import Split
from core.decay import Decay, position_weights
from core.models.base import Card, Recommender


@dataclass(frozen=True)
class SKNNConfig(Options):
    k: int = option(100, low=1, help="neighbours that vote")
    sample_size: int = option(500, low=1, help="candidate neighbours considered per prompt")
    sampling: Literal["random", "recent"] = option("random", help="which sample_size candidates are kept")
    similarity: Literal["cosine", "dot"] = option("cosine", help="of a neighbour to the (weighted) prompt")
    decay: Decay = option("none", help="position weights of the prompt's items; \"none\" = plain SKNN")
    idf_weighting: bool = option(False, help="multiply each candidate's vote by its IDF, 1 + ln(train sessions / "
                                             "sessions holding it): rare items rise (the authors' V-SKNN)")
    seed: int = option(0, low=0, help="random sampling is seeded per prompt, so results do not depend on batch order")

    # core.tune's ranges (the authors' V-SKNN values, k 70 and sample 1,090, lie inside); a draw with
    # k > sample_size is refused by check() and counted as a pruned trial.
    search_space: ClassVar[dict[str, Space]] = {
        "k": between(20, 1500, log=True), "sample_size": between(100, 5000, log=True),
        "sampling": one_of("random", "recent"), "similarity": one_of("cosine", "dot"),
        "idf_weighting": one_of(False, True)}

    def check(self) -> None:
        if self.k > self.sample_size:
            raise ConfigError(f"option 'k' ({self.k}) must not exceed 'sample_size' ({self.sample_size})")


@dataclass(frozen=True)
class VSKNNConfig(SKNNConfig):
    # The authors' V-SKNN run behind the paper's Beauty row (github.com/dh-r/LLM-Sequential-Recommendation,
    # results/beauty/main/recs_V-SKNN_20230705153306_config.txt, and its online_material.md): k 70, sample 1,090,
    # random sampling, harmonic decay, dot similarity, IDF weighting. The IDF is what gives the paper's coverage
    # and novelty (README, "Reproduced on Amazon Beauty").
    k: int = 70
    sample_size: int = 1090
    sampling: Literal["random", "recent"] = "random"
    decay: Decay = "harmonic"
    similarity: Literal["cosine", "dot"] = "dot"
    idf_weighting: bool = True
    search_space: ClassVar[dict[str, Space]] = {**SKNNConfig.search_space,
                                                "decay": one_of(*(d for d in get_args(Decay) if d != "none"))}


class SKNN(Recommender):
    name = "sknn"
    card = Card("item IDs", "Items from past sessions that share items with this one (session-based kNN).",
                "summed neighbour similarity", "bought in sessions like this one")
    Config = SKNNConfig

    def fit(self, split: Split, progress: Progress | None = None, confirm_spending: bool = False) -> "SKNN":
        self.n_items = split.catalog.n_items
        self._build(
            indptr=np.cumsum([0] + [len(np.unique(s)) for s in split.train]).astype(np.int64),
            indices=np.concatenate([np.unique(s) for s in split.train]).astype(np.int64)
            if split.train else np.zeros(0, np.int64),
            times=np.asarray(split.train_times, dtype=np.float64),
            popularity=split.train_popularity.astype(np.float64),
        )
        if progress:
            progress(1, 1, f"indexed {len(split.train):,} sessions")
        return self

    def _build(self, indptr: np.ndarray, indices: np.ndarray, times: np.ndarray, popularity: np.ndarray) -> None:
        n_sessions = len(indptr) - 1
        data = np.ones(len(indices), dtype=np.float64)
        self.sessions = sparse.csr_matrix((data, indices, indptr), shape=(n_sessions, self.n_items))
        self.item_sessions = self.sessions.T.tocsr()  # item -> sessions holding it
        self.session_norm = np.sqrt(np.diff(indptr)).astype(np.float64)
        self.times = times
        self.recency_rank = np.argsort(np.argsort(-times, kind="stable"), kind="stable")  # 0 = most recent
        self.popularity = popularity
        holding = np.diff(self.item_sessions.indptr).astype(np.float64)  # train sessions holding each item
        self.idf = 1.0 + np.log(max(n_sessions, 1) / np.maximum(holding, 1.0))
        # Non-neighbour items: below any positive neighbour score, ordered by popularity.
        self.fallback = (popularity / (popularity.max() + 1.0) - 1.0).astype(np.float32)

    def _neighbour_scores(self, session: np.ndarray, row: int) -> np.ndarray:
        scores = self.fallback.copy()
        items, first = np.unique(session, return_index=True)
        if len(items) == 0:
            return scores
        # Keep the first occurrence's order (the authors' pd.unique), then weight by position.
        items = items[np.argsort(first)]
        weights = position_weights(self.config.decay, len(items))
        candidates = np.unique(self.item_sessions[items].indices)
        if len(candidates) > self.config.sample_size:
            if self.config.sampling == "recent":
                order = np.argsort(self.recency_rank[candidates], kind="stable")
                candidates = candidates[order[: self.config.sample_size]]
            else:
                rng = np.random.default_rng([self.config.seed, row, len(session)])
                candidates = rng.choice(candidates, size=self.config.sample_size, replace=False)
        prompt = np.zeros(self.n_items)
        prompt[items] = weights
        neighbours = self.sessions[candidates]
        similarity = neighbours @ prompt
        if self.config.similarity == "cosine":
            similarity = similarity / (self.session_norm[candidates] * np.sqrt((weights**2).sum()))
        if len(similarity) > self.config.k:
            keep = np.argpartition(-similarity, self.config.k - 1)[: self.config.k]
            neighbours, similarity = neighbours[keep], similarity[keep]
        votes = np.asarray(neighbours.T @ similarity).ravel()
        if self.config.idf_weighting:
            votes = votes * self.idf
        voted = votes > 0
        scores[voted] = votes[voted]
        return scores

    def score(self, sessions: Sequence[np.ndarray]) -> np.ndarray:
        out = np.empty((len(sessions), self.n_items), dtype=np.float32)
        for i, session in enumerate(sessions):
            # Seed from the session's content so a prompt gets the same sample in any batch.
            out[i] = self._neighbour_scores(session, int(np.sum(session * 7919 + 1) % (2**31)))
        return out

    def state(self) -> dict[str, np.ndarray]:
        return {"indptr": self.sessions.indptr.astype(np.int64), "indices": self.sessions.indices.astype(np.int64),
                "times": self.times, "popularity": self.popularity}

    def set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self._build(arrays["indptr"], arrays["indices"], arrays["times"], arrays["popularity"])


class VSKNN(SKNN):
    name = "vsknn"
    card = Card("item IDs", "Like SKNN, but the session's recent items weigh more (V-SKNN).",
                "summed neighbour similarity", "bought in sessions like this one")
    Config = VSKNNConfig
