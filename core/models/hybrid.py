"""The paper's hybrids (Boz et al. 2024, extended version, §5.4): recommenders built from other recommenders.

* ``embedding_ensemble`` — two models, usually two LLMSeqSim variants (two embedding models, or reduced vs not).
  ``mode="rank"``: the first model's top ``rank_cutoff`` items, then the second model's list, duplicates
  dropped, cut to K. ``mode="confidence"``: the first model's items scoring at least ``confidence`` (LLMSeqSim's
  score is the cosine similarity to the session), then the second's. Scores: ``1 - rank / K`` (the parts'
  scales differ, so the merged list shows its order, not a similarity).
* ``llmseqsim_sequential`` — per session: when the popularity of the prompt's **last** item (the share of train
  sessions that hold it) is at or above the ``quantile``-quantile of item popularity over the catalog, the
  sequential model's list (LLM2BERT4Rec by default), else LLMSeqSim's; an empty session goes to the sequential
  model. The paper's best on Beauty: quantile 0.25. Scores: the chosen part's.
* ``llmseqsim_popularity`` — LLMSeqSim's top ``candidates`` (100); items below the ``quantile``-quantile of
  popularity are removed, from the top of the list down, while more than K remain, then the list is cut to K
  (the paper's best on Beauty: quantile 0.5). The order is the authors' (``pop_property_single_model`` in
  their ``main/hybrids/properties.py``): when fewer than K candidates are popular, the rare ones that stay
  are the lowest-ranked. With ``diversity`` set, an item whose cosine similarity (LLMSeqSim's
  item vectors) to an item kept above it exceeds ``diversity`` is dropped too, again only while K remain.
  Scores: LLMSeqSim's cosine similarities.

A part is named as the app labels models: ``"llmseqsim"`` or ``"sasrec (embedding_dim=64, max_length=50)"``;
its options start from the dataset's defaults (``core.models.defaults``) when fitted through the store (CLI,
app), from the class defaults in a bare ``fit(split)``. The store fits (or loads) each part as a model of its
own (``core.store.fit_or_load``), so a part already trained with the same settings is never trained again; a
saved hybrid also carries its parts' weights, so it loads on its own. Popularity is counted on the train
sessions; ``popularity_source="all"`` counts the test sessions too, as the authors did — that leaks test
information into the switch and is labelled so. ``pick_sources`` says which part each pick came from (the
session builder's "why").
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Sequence

import numpy as np

from core.common import ConfigError, Progress
from core.config import Options, Space, apply_overrides, between, config_dict, one_of, option
from core.data import Split
from core.models.base import NO_ITEM, Card, Recommender, SessionLike

SPEC = re.compile(r"^\s*([a-z0-9_]+)\s*(?:\((.*)\))?\s*$")


def parse_part(spec: str) -> tuple[str, dict[str, str]]:
    """``"sasrec (embedding_dim=64, max_length=50)"`` -> ``("sasrec", {"embedding_dim": "64", ...})``; raises
    :class:`ConfigError` naming what is wrong (the syntax, an unknown model, a hybrid inside a hybrid)."""
    from core.models import REGISTRY

    match = SPEC.match(spec or "")
    if not match:
        raise ConfigError(f"part '{spec}': expected a model name, optionally followed by (option=value, ...)")
    name, inner = match.group(1), match.group(2)
    if name not in REGISTRY:
        raise ConfigError(f"part '{spec}': unknown model '{name}'; available: {', '.join(REGISTRY)}")
    if REGISTRY[name][0] == __name__:  # registered from this module
        raise ConfigError(f"part '{spec}': a hybrid cannot be a part of another hybrid")
    options: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in (inner or "").split(","))):
        if "=" not in pair:
            raise ConfigError(f"part '{spec}': expected option=value, got '{pair}'")
        key, value = (s.strip() for s in pair.split("=", 1))
        options[key] = value
    return name, options


def part_config(spec: str, dataset: str | None = None) -> tuple[str, Any]:
    """The model name and config a part spec stands for: ``dataset``'s defaults (``core.models.defaults``; the
    class defaults for None), then the spec's options. Raises :class:`ConfigError`."""
    from core.models.defaults import default_config

    name, options = parse_part(spec)
    try:
        return name, apply_overrides(default_config(name, dataset), options)
    except ConfigError as err:
        raise ConfigError(f"part '{spec}': {err}") from None


@dataclass(frozen=True)
class HybridConfig(Options):
    popularity_source: Literal["train", "all"] = option(
        "train", help="popularity counted on the train sessions, or on all sessions as the authors did (\"all\" "
                      "leaks test information into the switch)")

    def roles(self) -> dict[str, str]:
        """role -> part spec."""
        raise NotImplementedError

    def check(self) -> None:
        for role, spec in self.roles().items():
            try:
                part_config(spec)
            except ConfigError as err:
                raise ConfigError(f"option '{role}': {err}") from None


@dataclass(frozen=True)
class EmbeddingEnsembleConfig(HybridConfig):
    first: str = option("llmseqsim", help="the model whose top picks come first")
    second: str = option("llmseqsim (combination=mean)", help="the model that fills the rest of the list")
    mode: Literal["rank", "confidence"] = option("rank", help="rank: the first's top rank_cutoff; confidence: "
                                                              "the first's items scoring >= confidence")
    rank_cutoff: int = option(5, low=0, help="mode=rank: how many of the first model's picks lead the list")
    confidence: float = option(0.8, low=-1.0, high=1.0, help="mode=confidence: the first model's cosine "
                                                             "similarity (LLMSeqSim's score) to lead the list")
    search_space: ClassVar[dict[str, Space]] = {"mode": one_of("rank", "confidence"), "rank_cutoff": between(0, 20),
                                                 "confidence": between(0.5, 0.95)}

    def roles(self) -> dict[str, str]:
        return {"first": self.first, "second": self.second}


@dataclass(frozen=True)
class LLMSeqSimSequentialConfig(HybridConfig):
    similarity: str = option("llmseqsim", help="the part for sessions whose last item is rare")
    sequential: str = option("llm2bert4rec", help="the part for sessions whose last item is popular (the paper: "
                                                  "LLM2BERT4Rec; any trained model)")
    quantile: float = option(0.25, low=0.0, high=1.0, help="popularity quantile of the switch (the paper's best: 0.25)")
    search_space: ClassVar[dict[str, Space]] = {"quantile": between(0.0, 1.0)}

    def roles(self) -> dict[str, str]:
        return {"similarity": self.similarity, "sequential": self.sequential}


@dataclass(frozen=True)
class LLMSeqSimPopularityConfig(HybridConfig):
    similarity: str = option("llmseqsim", help="the part whose candidates are filtered")
    candidates: int = option(100, low=1, help="how many of its picks are filtered (the paper: 100)")
    quantile: float = option(0.5, low=0.0, high=1.0, help="items below this popularity quantile are removed, "
                                                          "top down, while K remain (the paper's best on Beauty: "
                                                          "0.5)")
    diversity: float | None = option(None, low=-1.0, high=1.0, help="drop an item more similar (cosine) than "
                                                                    "this to one kept above it; None = off")
    search_space: ClassVar[dict[str, Space]] = {"quantile": between(0.0, 1.0), "candidates": one_of(50, 100, 200)}

    def roles(self) -> dict[str, str]:
        return {"similarity": self.similarity}


class Hybrid(Recommender):
    """A recommender over parts (module docstring). Subclasses implement ``combine``."""

    Config: ClassVar[type] = HybridConfig
    stochastic_fit: ClassVar[bool] = False  # a hybrid's own fit draws nothing; its parts' seeds are their options

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.parts: dict[str, Recommender] = {}
        self.part_names: dict[str, str] = {}  # role -> how the "why" names it (part_label)
        self._sources: list[list[str]] = []

    # ---------------------------------------------------------------------------------- parts
    @classmethod
    def part_configs(cls, config: Any, dataset: str | None = None) -> dict[str, tuple[str, Any]]:
        """role -> (model name, config) of each part, with ``dataset``'s defaults."""
        return {role: part_config(spec, dataset) for role, spec in config.roles().items()}

    @classmethod
    def text_embedding(cls, config: Any) -> Any:
        """The title embeddings of the first part that reads titles (for the "why" of its picks), else None."""
        from core.models import model_class

        for name, part in cls.part_configs(config).values():
            spec = model_class(name).text_embedding(part)
            if spec is not None:
                return spec
        return None

    def attach(self, role: str, model: Recommender) -> None:
        """A fitted part (from the store), used as is by ``fit``."""
        self.parts[role] = model

    def fit(self, split: Split, progress: Progress | None = None, confirm_spending: bool = False) -> "Hybrid":
        from core.models import model_class

        for role, (name, config) in self.part_configs(self.config).items():
            if role not in self.parts:
                self.parts[role] = model_class(name)(config).fit(split, progress=progress,
                                                                 confirm_spending=confirm_spending)
        self.part_names = {role: part_label(part) for role, part in self.parts.items()}
        self.n_items = split.catalog.n_items
        sessions = list(split.train)
        if self.config.popularity_source == "all":
            sessions += [np.append(p, t) for p, t in zip(split.prompts, split.targets)]
        self.popularity = session_share(sessions, self.n_items)
        return self

    # ---------------------------------------------------------------------------------- ranking
    def recommend(self, sessions: Sequence[SessionLike], k: int, exclude_seen: bool = True,
                  batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
        self._check_fitted()
        arrays = self._as_sessions(sessions)
        k = min(k, self.n_items)
        items = np.full((len(arrays), k), NO_ITEM, dtype=np.int64)
        scores = np.full((len(arrays), k), -np.inf, dtype=np.float32)
        sources: list[list[str]] = []
        for start in range(0, len(arrays), batch_size):
            batch = arrays[start:start + batch_size]
            for row, (picked, picked_scores, picked_sources) in enumerate(self.combine(batch, k, exclude_seen)):
                n = min(len(picked), k)
                items[start + row, :n], scores[start + row, :n] = picked[:n], picked_scores[:n]
                sources.append(picked_sources[:k])
        self._sources = sources
        return items, scores

    def combine(self, sessions: list[np.ndarray], k: int,
                exclude_seen: bool) -> list[tuple[np.ndarray, np.ndarray, list[str]]]:
        """Per session: (items, scores, source of each item), at most k, best first, no NO_ITEM."""
        raise NotImplementedError

    def part_lists(self, role: str, sessions: list[np.ndarray], k: int,
                   exclude_seen: bool) -> list[tuple[np.ndarray, np.ndarray]]:
        """A part's top-k for each session, NO_ITEM dropped."""
        part = self.parts[role]
        items, scores = part.recommend(sessions, k, exclude_seen=exclude_seen)
        return [(i[i != NO_ITEM], s[i != NO_ITEM]) for i, s in zip(items, scores)]

    def pick_sources(self) -> list[list[str]]:
        return self._sources

    def popularity_threshold(self) -> float:
        """The popularity (share of sessions) at the config's ``quantile`` of the catalog's items."""
        return float(np.quantile(self.popularity, getattr(self.config, "quantile")))

    def score(self, sessions: Sequence[np.ndarray]) -> np.ndarray:
        raise NotImplementedError(f"{self.name} ranks lists, not scores: use recommend()")

    # ---------------------------------------------------------------------------------- saving
    def state(self) -> dict[str, np.ndarray]:
        meta = {role: {"model": part.name, "n_items": part.n_items, "config": config_dict(part.config)}
                for role, part in self.parts.items()}
        arrays = {"popularity": self.popularity, "parts.json": np.frombuffer(json.dumps(meta).encode(), np.uint8)}
        for role, part in self.parts.items():
            arrays.update({f"part.{role}.{key}": value for key, value in part.state().items()})
        return arrays

    def set_state(self, arrays: dict[str, np.ndarray]) -> None:
        from core.models import model_class

        meta = json.loads(bytes(np.asarray(arrays["parts.json"], dtype=np.uint8)).decode())
        self.parts = {}
        for role, info in meta.items():
            cls = model_class(info["model"])
            part = cls(cls.Config(**info["config"]))
            part.n_items = int(info["n_items"])
            prefix = f"part.{role}."
            part.set_state({key[len(prefix):]: value for key, value in arrays.items() if key.startswith(prefix)})
            self.parts[role] = part
        self.part_names = {role: part_label(part) for role, part in self.parts.items()}
        self.popularity = np.asarray(arrays["popularity"], dtype=np.float64)


def part_label(part: Recommender) -> str:
    """How the "why" names a part: ``llmseqsim``, or ``llmseqsim (combination=mean)`` with the options that
    differ from its class defaults (two parts of one model stay apart)."""
    if not dataclasses.is_dataclass(part.config) or isinstance(part.config, type):
        return part.name
    defaults = config_dict(part.Config())
    changed = {k: v for k, v in config_dict(part.config).items() if defaults.get(k) != v}
    return part.name + (f" ({', '.join(f'{k}={v}' for k, v in changed.items())})" if changed else "")


def session_share(sessions: Sequence[np.ndarray], n_items: int) -> np.ndarray:
    """(n_items,) float64: the share of ``sessions`` that hold each item (a session counts an item once)."""
    counts = np.zeros(n_items, dtype=np.float64)
    for session in sessions:
        counts[np.unique(np.asarray(session, dtype=np.int64))] += 1
    return counts / max(len(sessions), 1)


def _merge(lists: list[tuple[np.ndarray, str]], k: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Concatenate (items, source) lists in order, duplicates dropped, cut to k; scores 1 - rank / k."""
    seen: set[int] = set()
    picked: list[int] = []
    sources: list[str] = []
    for items, source in lists:
        for item in items.tolist():
            if item not in seen and len(picked) < k:
                seen.add(item)
                picked.append(item)
                sources.append(source)
    return (np.asarray(picked, dtype=np.int64), 1.0 - np.arange(len(picked), dtype=np.float32) / max(k, 1),
            sources)


class EmbeddingEnsemble(Hybrid):
    name = "embedding_ensemble"
    card = Card("titles and item IDs", "A hybrid: one model's top picks, then another's.",
                "1 − rank/K", "one of its two models picked it")
    Config = EmbeddingEnsembleConfig

    def combine(self, sessions: list[np.ndarray], k: int,
                exclude_seen: bool) -> list[tuple[np.ndarray, np.ndarray, list[str]]]:
        config = self.config
        lead_k = min(config.rank_cutoff, k) if config.mode == "rank" else k
        first = self.part_lists("first", sessions, max(lead_k, 1), exclude_seen) if lead_k else \
            [(np.zeros(0, np.int64), np.zeros(0, np.float32))] * len(sessions)
        second = self.part_lists("second", sessions, min(k + lead_k, self.n_items), exclude_seen)
        out = []
        for (items, scores), (rest, _) in zip(first, second):
            lead = items[:lead_k] if config.mode == "rank" else items[scores >= config.confidence]
            out.append(_merge([(lead, f"first part ({self.part_names['first']})"),
                               (rest, f"second part ({self.part_names['second']})")], k))
        return out


class LLMSeqSimSequential(Hybrid):
    name = "llmseqsim_sequential"
    card = Card("titles and item IDs", "A hybrid: a sequential model after a popular last item, else LLMSeqSim.",
                "1 − rank/K", "one of its two models picked it")
    Config = LLMSeqSimSequentialConfig

    def routes(self, sessions: list[np.ndarray]) -> np.ndarray:
        """True where a session goes to the sequential part (its last item's popularity >= the threshold)."""
        threshold = self.popularity_threshold()
        return np.array([len(s) == 0 or self.popularity[s[-1]] >= threshold for s in sessions], dtype=bool)

    def combine(self, sessions: list[np.ndarray], k: int,
                exclude_seen: bool) -> list[tuple[np.ndarray, np.ndarray, list[str]]]:
        routes = self.routes(sessions)
        out: list[Any] = [None] * len(sessions)
        for role, chosen in (("sequential", routes), ("similarity", ~routes)):
            rows = np.flatnonzero(chosen)
            if not len(rows):
                continue
            why = (f"{self.part_names[role]}: the last item is "
                   + ("popular" if role == "sequential" else "rare") + f" (quantile {self.config.quantile:g})")
            for row, (items, scores) in zip(rows, self.part_lists(role, [sessions[r] for r in rows], k,
                                                                   exclude_seen)):
                out[row] = (items, scores, [why] * len(items))
        return out


class LLMSeqSimPopularity(Hybrid):
    name = "llmseqsim_popularity"
    card = Card("titles and item IDs", "A hybrid: LLMSeqSim's candidates, unpopular ones dropped.",
                "1 − rank/K", "its title reads like this session's, and it sells")
    Config = LLMSeqSimPopularityConfig

    def combine(self, sessions: list[np.ndarray], k: int,
                exclude_seen: bool) -> list[tuple[np.ndarray, np.ndarray, list[str]]]:
        config = self.config
        threshold = self.popularity_threshold()
        vectors = getattr(self.parts["similarity"], "item_vectors", None) if config.diversity is not None else None
        name = self.part_names["similarity"]
        out = []
        for items, scores in self.part_lists("similarity", sessions, max(config.candidates, k), exclude_seen):
            keep = np.ones(len(items), dtype=bool)
            for position in range(len(items)):  # unpopular items go, top down, while more than k remain
                if keep.sum() <= k:
                    break
                if self.popularity[items[position]] < threshold:
                    keep[position] = False
            if vectors is not None:
                keep = _diverse(items, keep, vectors, config.diversity, k)
            kept = min(int(keep.sum()), k)
            out.append((items[keep][:k], scores[keep][:k], [f"{name}, filtered by popularity"] * kept))
        return out


def _diverse(items: np.ndarray, keep: np.ndarray, vectors: np.ndarray, limit: float, k: int) -> np.ndarray:
    """Drop, top to bottom, a kept item whose cosine similarity to one kept above it exceeds ``limit``, while
    more than k remain."""
    from core.vectors import unit

    keep = keep.copy()
    unit_vectors = unit(np.asarray(vectors[items], dtype=np.float32))
    kept: list[int] = []
    for position in range(len(items)):
        if not keep[position]:
            continue
        if kept and keep.sum() > k and float((unit_vectors[kept] @ unit_vectors[position]).max()) > limit:
            keep[position] = False
            continue
        kept.append(position)
    return keep
