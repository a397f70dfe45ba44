"""Several models' top-K lists for one session, side by side: shared items, the true next item, and a short
"why" for models that work in an LLM embedding space (see ``core.explain``)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from core.data import Catalog
from core.explain import nearest_session_items, uses_llm_embeddings
from core.models.base import Recommender


@dataclass(frozen=True)
class Pick:
    rank: int  # 1 = best
    item: int
    title: str
    score: float
    shared: int  # how many of the other shown models also picked this item
    is_target: bool  # the session's true next item (when known)
    why: tuple[tuple[int, float], ...] = ()  # (1-based position in the session, cosine): the most similar items


@dataclass
class ModelPicks:
    label: str
    name: str
    picks: list[Pick] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""  # one sentence when the model could not rank this session


def compare(models: dict[str, Recommender], session: Sequence[int], k: int, catalog: Catalog,
            vectors: np.ndarray | None = None, target: int | None = None) -> list[ModelPicks]:
    """Every model's top ``k`` for ``session`` (prompt items excluded, except where a model's own rule keeps
    them: MostPopular, as in the paper's evaluation)."""
    raw: list[tuple[ModelPicks, np.ndarray, np.ndarray]] = []
    for label, model in models.items():
        entry = ModelPicks(label=label, name=model.name)
        start = time.perf_counter()
        try:
            items, scores = model.recommend([list(session)], k, exclude_seen=model.exclude_seen_in_evaluation)
            raw.append((entry, items[0], scores[0]))
        except (ValueError, RuntimeError, KeyError, IndexError) as err:
            entry.error = f"{label} could not rank this session: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
            raw.append((entry, np.zeros(0, np.int64), np.zeros(0, np.float32)))
        entry.seconds = time.perf_counter() - start
    counts = Counter(int(i) for _, items, _ in raw for i in set(items.tolist()))
    position = {}  # item -> its first position in the session, 1-based (as the session builder numbers them)
    for index, item in enumerate(session):
        position.setdefault(int(item), index + 1)
    out = []
    for entry, items, scores in raw:
        why = [[] for _ in items]
        if vectors is not None and uses_llm_embeddings(entry.name) and len(session):
            why = nearest_session_items(vectors, session, items, n=2)
        entry.picks = [
            Pick(rank=rank + 1, item=int(item), title=catalog.title(int(item)), score=float(score),
                 shared=counts[int(item)] - 1, is_target=target is not None and int(item) == int(target),
                 why=tuple((position[j], sim) for j, sim in reasons))
            for rank, (item, score, reasons) in enumerate(zip(items, scores, why))
        ]
        out.append(entry)
    return out
