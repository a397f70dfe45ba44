"""Several models' top-K lists for one session, side by side: shared items, the true next item, and a short
"why" for models built on the titles' text embeddings (``Recommender.text_embedding``; see ``core.explain``).

Most models rank Beauty's 12,101 items for one session in milliseconds; a generative one (LLMSeqPrompt samples
20 names with a language model) takes seconds on a CPU. :class:`RankingPool` runs every model's ranking in
background threads and remembers results by (model, session, K), so the page can draw what is ready at once
and fill in a slow model's column when it is done. One pool serves every browser session of a server: a
request only ever drops its own owner's stale requests, never another user's.
"""

from __future__ import annotations

import functools
import math
import threading
import time
import traceback
import weakref
from collections import Counter, OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Hashable, Sequence

import numpy as np

from core.common import UserError, describe_bug
from core.data import Catalog
from core.explain import nearest_session_items
from core.models.base import NO_ITEM, Recommender


@dataclass(frozen=True)
class Pick:
    rank: int  # 1 = best
    item: int
    title: str
    score: float
    shared: int  # how many of the other shown models also picked this item
    is_target: bool  # the session's true next item (when known)
    consensus: bool = False  # at least half of the models that ranked (and at least two) picked it
    why: tuple[tuple[int, float], ...] = ()  # (1-based position in the session, cosine): the most similar items
    source: str = ""  # a hybrid's pick: the part it came from (Recommender.pick_sources)


@dataclass(frozen=True)
class Ranking:
    """One model's raw answer for one session."""

    name: str
    items: np.ndarray
    scores: np.ndarray
    seconds: float
    error: str = ""  # one sentence when the model could not rank this session
    note: str = ""  # what a generative model did, e.g. "20 names sampled: 12 exact, 3 duplicated, 5 hallucinated"
    explainable: bool = False  # built on the titles' text embeddings: its picks get a "why"
    sources: tuple[str, ...] = ()  # a hybrid's: the part each pick came from


@dataclass
class ModelPicks:
    label: str
    name: str
    picks: list[Pick] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""
    note: str = ""


_MODEL_LOCKS: "weakref.WeakKeyDictionary[Recommender, threading.Lock]" = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def _lock_for(model: Recommender) -> threading.Lock:
    """One lock per model object, dropped with it (an id() key would outlive the model and be reused)."""
    with _LOCKS_GUARD:
        return _MODEL_LOCKS.setdefault(model, threading.Lock())


def rank(model: Recommender, session: Sequence[int], k: int) -> Ranking:
    """``model``'s top ``k`` for ``session`` (prompt items excluded, except where the model's own rule keeps them:
    MostPopular, as in the paper's evaluation). One call at a time per model object."""
    start = time.perf_counter()
    explainable = type(model).text_embedding(model.config) is not None
    with _lock_for(model):
        before = len(model.generation_counts())
        try:
            items, scores = model.recommend([list(session)], k, exclude_seen=model.exclude_seen_in_evaluation)
        except Exception as err:  # noqa: BLE001 (this column shows the error; a bug's traceback goes to the log)
            if not isinstance(err, UserError):
                traceback.print_exc()
            message = str(err) if isinstance(err, UserError) else describe_bug(err)
            return Ranking(model.name, np.zeros(0, np.int64), np.zeros(0, np.float32),
                           time.perf_counter() - start, error=message, explainable=explainable)
        counts = model.generation_counts()
        note = ""
        if len(counts) > before:
            note = generation_note(counts[-1])
        sources = model.pick_sources()
    return Ranking(model.name, items[0], scores[0], time.perf_counter() - start, note=note, explainable=explainable,
                   sources=tuple(sources[0]) if sources else ())


def generation_note(counts: dict[str, int]) -> str:
    """One sentence on how a generative model's names for one session went (``generation_counts``' entry)."""
    names = counts["exact"] + counts["duplicated"] + counts["hallucinated"]
    kinds = (f"{counts['exact']} exact, {counts['duplicated']} duplicated, {counts['hallucinated']} hallucinated "
             "(mapped to the nearest titles)")
    if counts.get("answers", 0) != 1:
        return f"{names} names sampled: {kinds}"
    read = (" — the answer could not be read, so the list is filled by similarity" if counts.get("parse_failed")
            else " — the answer was read with a fallback (markers or numbers missing)" if counts.get("parse_fallback")
            else "")
    return f"one answer of {names} names: {kinds}{read}"


def assemble(rankings: dict[str, Ranking], session: Sequence[int], catalog: Catalog,
             vectors: np.ndarray | None = None, target: int | None = None) -> list[ModelPicks]:
    """Picks with titles, the number of other models sharing each, the true next item and the "why". A pick is
    marked ``consensus`` when at least half of the models that ranked the session (and at least two) picked it:
    with 5 kNN-like models most items are shared by some other, so "shared" alone means little."""
    counts = Counter(int(i) for r in rankings.values() for i in set(r.items.tolist()) if i != NO_ITEM)
    ranked = sum(1 for r in rankings.values() if not r.error)
    agreeing = max(2, math.ceil(ranked / 2))  # "picked by several models" keeps its meaning with many models
    position: dict[int, int] = {}  # item -> its first position in the session, 1-based (as the page numbers them)
    for index, item in enumerate(session):
        position.setdefault(int(item), index + 1)
    out = []
    for label, ranking in rankings.items():
        entry = ModelPicks(label=label, name=ranking.name, seconds=ranking.seconds, note=ranking.note)
        if ranking.error:
            entry.error = f"{label} could not rank this session: {ranking.error}"
        real = ranking.items != NO_ITEM  # a list is shorter than K when fewer items are allowed
        items, scores = ranking.items[real], ranking.scores[real]
        sources = list(ranking.sources) + [""] * (len(items) - len(ranking.sources))
        why: list[list[tuple[int, float]]] = [[] for _ in items]
        if vectors is not None and ranking.explainable and len(session) and len(items):
            why = nearest_session_items(vectors, session, items, n=2)
        entry.picks = [
            Pick(rank=rank_ + 1, item=int(item), title=catalog.title(int(item)), score=float(score),
                 shared=counts[int(item)] - 1, is_target=target is not None and int(item) == int(target),
                 consensus=counts[int(item)] >= agreeing,
                 why=tuple((position[j], sim) for j, sim in reasons), source=source)
            for rank_, (item, score, reasons, source) in enumerate(zip(items, scores, why, sources))
        ]
        out.append(entry)
    return out


def export_rows(entries: Sequence[ModelPicks], catalog: Catalog, session: Sequence[int]) -> list[dict[str, Any]]:
    """One row per (model, pick): ``session`` (the session's item ids, oldest first, space-separated),
    ``model``, ``variant`` (the label), ``rank``, ``item_id`` (the file's id), ``title``, ``score``,
    ``picked_by`` (how many models picked it) and ``true_next`` — the picks as a CSV table."""
    ids = " ".join(str(catalog.item_ids[int(i)]) for i in session)
    return [{"session": ids, "model": entry.name, "variant": entry.label, "rank": pick.rank,
             "item_id": str(catalog.item_ids[pick.item]), "title": pick.title, "score": pick.score,
             "picked_by": pick.shared + 1, "true_next": pick.is_target}
            for entry in entries for pick in entry.picks]


def export_session(dataset: str, session: Sequence[int], catalog: Catalog, entries: Sequence[ModelPicks], k: int,
                   target: int | None = None, link: str = "") -> dict[str, Any]:
    """A session with every model's picks as one JSON-ready dict: the dataset, the session's items in order
    (id and title), the true next item when known, K, the link that reproduces the view, and per model (by
    label) its picks or its error."""
    def item(index: int) -> dict[str, str]:
        return {"item_id": str(catalog.item_ids[index]), "title": catalog.title(index)}

    return {"dataset": dataset, "session": [item(int(i)) for i in session],
            "true_next": item(int(target)) if target is not None else None, "k": k, "link": link,
            "models": {entry.label: {"model": entry.name, "error": entry.error or None,
                                     "picks": [{"rank": p.rank, **item(p.item), "score": p.score,
                                                "picked_by": p.shared + 1} for p in entry.picks]}
                       for entry in entries}}


@dataclass(frozen=True)
class Overlap:
    """One model's picks for two sessions (the pinned one and the current one)."""

    both: tuple[int, ...]  # picked for both, in the current ranking's order
    only_current: tuple[int, ...]
    only_pinned: tuple[int, ...]

    @property
    def jaccard(self) -> float:
        union = len(self.both) + len(self.only_current) + len(self.only_pinned)
        return len(self.both) / union if union else 1.0


def overlap(pinned: ModelPicks, current: ModelPicks) -> Overlap:
    """How a model's top-K moved between two sessions: what stayed, what came in, what left."""
    before = [p.item for p in pinned.picks]
    now = [p.item for p in current.picks]
    return Overlap(both=tuple(i for i in now if i in before), only_current=tuple(i for i in now if i not in before),
                   only_pinned=tuple(i for i in before if i not in now))


def compare(models: dict[str, Recommender], session: Sequence[int], k: int, catalog: Catalog,
            vectors: np.ndarray | None = None, target: int | None = None) -> list[ModelPicks]:
    """Every model's picks for ``session``, computed here and now (see RankingPool for the app's way)."""
    return assemble({label: rank(model, session, k) for label, model in models.items()}, session, catalog,
                    vectors, target)


class RankingPool:
    """Rankings computed in background threads and remembered (the last ``max_remembered``).

    Each model has its own single worker thread, so a slow model never holds up the fast ones. A request for
    a new session drops the requests for that model still waiting *from the same owner* (a user clicking
    through sessions does not queue up seconds of generation for sessions no longer on screen); a waiting
    request that another owner also asked for is kept for them. Several owners asking for the same ranking
    share one computation.
    """

    def __init__(self, max_remembered: int = 512) -> None:
        self._workers: dict[Hashable, ThreadPoolExecutor] = {}
        self._seconds: dict[Hashable, float] = {}  # each model's latest ranking time
        self._futures: OrderedDict[tuple, Future] = OrderedDict()
        self._owners: dict[tuple, set[Hashable]] = {}  # who is waiting for each remembered request
        self._lock = threading.Lock()
        self._max = max_remembered

    def submit(self, model_key: Hashable, model: Recommender, session: Sequence[int], k: int,
               owner: Hashable | None = None) -> Future:
        """The ranking of ``session`` by the model known as ``model_key`` (e.g. its folder and save time) for
        ``owner`` (a browser session): the remembered one, or a new one started. A request without an owner
        never drops another request and is never dropped."""
        session = tuple(int(i) for i in session)
        key = (model_key, session, k)
        if owner is None:
            owner = object()  # nobody else is this owner
        with self._lock:
            for other, waiting in list(self._futures.items()):
                if other[0] != model_key or other == key or waiting.done():
                    continue
                owners = self._owners.get(other, set())
                owners.discard(owner)
                if not owners and waiting.cancel():  # nobody else waits for it
                    del self._futures[other]
                    self._owners.pop(other, None)
            future = self._futures.get(key)
            if future is None or future.cancelled() or (future.done() and future.exception() is not None):
                worker = self._workers.get(model_key)
                if worker is None:
                    worker = self._workers[model_key] = ThreadPoolExecutor(1, thread_name_prefix="ranking")
                future = self._futures[key] = worker.submit(rank, model, session, k)
                future.add_done_callback(functools.partial(self._record, model_key))
                self._owners[key] = set()
            self._owners.setdefault(key, set()).add(owner)
            self._futures.move_to_end(key)
            while len(self._futures) > self._max:
                dropped, _ = self._futures.popitem(last=False)
                self._owners.pop(dropped, None)
            return future

    def _record(self, model_key: Hashable, future: Future) -> None:
        if not future.cancelled() and future.exception() is None:
            self._seconds[model_key] = future.result().seconds

    def last_seconds(self, model_key: Hashable) -> float | None:
        """How long the model's latest ranking took (None before its first): tells a page whether to wait."""
        return self._seconds.get(model_key)
