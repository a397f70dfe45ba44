"""A demo for stakeholders: a few real test sessions where models built on LLM text embeddings and ID-based
models disagree about the true next item, chosen from the data, with a plain-language "why" for each pick.

Two kinds of model take part, each with its default-config save (``core.trained``): *text* models, built on the
titles' text embeddings (``Recommender.text_embedding`` is not None: LLMSeqSim, the LLM2X models) and *ID*
models, which only see item ids (popularity, session kNN, SASRec, GRU4Rec, BERT4Rec). Hybrids mix both kinds
(``Recommender.part_configs``), and generative models (``Recommender.generation_counts`` overridden: they sample
names, seconds a session on a CPU) are left out.

Every model ranks the same deterministic sample of test sessions (readable ones first: 2-6 items, all titled);
then per story the best sessions are chosen: ``"text"`` — some text model has the true next item in its top 10
and no ID model has; ``"id"`` — the reverse; ``"both"`` — at least one of each kind has. Within a story a
session ranks higher when the winners put the true item higher (top 5 is what the page shows), when more
models win, then by sample order. The choice is saved as JSON in ``cache/demo/<dataset>/<key>.json``, keyed by
the models used (their store keys, which hold the data) and the sampling settings, so it is computed once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Sequence

import numpy as np

from core.common import Progress, UserError
from core.data import Catalog, Dataset
from core.explain import nearest_session_items
from core.models import load as load_saved
from core.models import model_class
from core.models.base import NO_ITEM, Recommender
from core.results import EvaluationResult
from core.storage import CACHE_DIR, atomic_write_text, read_json
from core.trained import TrainedModel

if TYPE_CHECKING:
    from core.embeddings import EmbeddingSpec

VERSION = 1  # of the saved choice's format and rules: a change recomputes it
SAMPLE_SIZE = 400  # test sessions every model ranks (Beauty: ~0.3 s a model)
SEED = 0
TOP = 10  # a model "finds" the true next item when it is in this many picks
SHOWN = 5  # picks the page shows per model
READABLE = (2, 6)  # prompt lengths, inclusive, that read well on one screen
STORIES: tuple[tuple[str, int], ...] = (("text", 2), ("id", 2), ("both", 1))  # (story, sessions wanted)
Kind = Literal["text", "id"]
KIND_LABEL = {"text": "built on LLM text embeddings", "id": "item IDs only"}
STORY_HEADLINE = {"text": "The LLM-based model finds the next item; the ID-based models do not",
                  "id": "The ID-based model finds the next item; the LLM-based models do not",
                  "both": "Both kinds of model find the next item"}
# What an ID model's pick means, in plain words (a text model's "why" names the session item it resembles).


class NoDemo(UserError):
    """The demo cannot be built on this dataset (which models to train is in the message)."""


@dataclass(frozen=True)
class Contender:
    """A trained model taking part."""

    label: str
    name: str  # registry name
    key: str  # its store key (folder name): the data, titles, embeddings and config it was built from
    kind: Kind
    hit_rate: float = 0.0  # share of the sampled sessions with the true next item in its top TOP


@dataclass(frozen=True)
class DemoSession:
    row: int  # the test session's index in ``split.prompts``
    prompt: tuple[int, ...]  # item indices, oldest first
    target: int  # the true next item
    story: str  # "text", "id" or "both"
    ranks: dict[str, int]  # every contender's label -> rank of the target in its top TOP, 1-based; 0 = absent
    shown: tuple[str, ...]  # labels of the 2-3 models the page shows: text model first, then ID
    picks: dict[str, tuple[int, ...]]  # shown label -> its top TOP items, best first


@dataclass
class Demo:
    dataset: str
    key: str
    sample_size: int  # sessions actually ranked (the whole test split when smaller than SAMPLE_SIZE)
    models: list[Contender]
    sessions: list[DemoSession]
    notes: list[str] = field(default_factory=list)  # stories with fewer sessions than wanted, in a sentence each

    def model(self, label: str) -> Contender:
        return next(m for m in self.models if m.label == label)

    def to_json(self) -> dict[str, Any]:
        return {"version": VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_json(cls, payload: Any) -> "Demo | None":
        """The saved demo, or None when ``payload`` is not one of this version (damaged, older)."""
        try:
            if payload["version"] != VERSION:
                return None
            return cls(dataset=payload["dataset"], key=payload["key"], sample_size=int(payload["sample_size"]),
                       models=[Contender(**m) for m in payload["models"]],
                       sessions=[DemoSession(row=int(s["row"]), prompt=tuple(s["prompt"]), target=int(s["target"]),
                                             story=s["story"], ranks=dict(s["ranks"]), shown=tuple(s["shown"]),
                                             picks={k: tuple(v) for k, v in s["picks"].items()})
                                 for s in payload["sessions"]],
                       notes=list(payload.get("notes", [])))
        except (KeyError, TypeError, ValueError):
            return None


# ------------------------------------------------------------------------------------------------ models
def kind_of(cls: type[Recommender], config: Any) -> Kind | None:
    """``"text"`` or ``"id"`` for a model class with ``config`` that can take part; None for a hybrid (it mixes
    both kinds) or a generative model (it samples names: too slow for hundreds of sessions)."""
    if cls.part_configs(config) or cls.generation_counts is not Recommender.generation_counts:
        return None
    return "text" if cls.text_embedding(config) is not None else "id"


def contenders(trained: Sequence[TrainedModel]) -> list[TrainedModel]:
    """The default-config save of each registered model that can take part (see :func:`kind_of`), registry
    order (``trained`` is ``core.trained.trained_models``: each name's default config first, newest first)."""
    chosen: dict[str, TrainedModel] = {}
    for model in trained:
        if model.changed or model.name in chosen:
            continue
        cls = model_class(model.name)
        if kind_of(cls, cls.Config(**model.config)) is not None:
            chosen[model.name] = model
    return list(chosen.values())


def demo_key(model_keys: Sequence[str], sample_size: int = SAMPLE_SIZE, seed: int = SEED) -> str:
    """A short hash of the models used (store keys) and the sampling settings: the saved choice's name."""
    text = json.dumps({"models": sorted(model_keys), "n": sample_size, "seed": seed, "top": TOP, "v": VERSION})
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def demo_path(dataset_name: str, key: str) -> Path:
    return CACHE_DIR / "demo" / dataset_name / f"{key}.json"


def _require_both_kinds(kinds: dict[str, Kind], dataset_name: str) -> None:
    missing = [kind for kind in ("text", "id") if kind not in kinds.values()]
    if missing:
        have = ", ".join(kinds) or "none"
        raise NoDemo(f"The demo compares models built on LLM text embeddings with ID-based ones, so it needs at "
                     f"least one of each trained on {dataset_name} with its default options (e.g. llmseqsim and "
                     f"sasrec); usable now: {have}.")


# ------------------------------------------------------------------------------------------------ choosing
def sample_rows(prompts: Sequence[np.ndarray], catalog: Catalog, n: int = SAMPLE_SIZE,
                seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """``n`` test-session indices in a seeded random order, readable ones first (2-6 items, every item titled),
    and whether each is readable: ``(rows, readable)``, both of length min(n, len(prompts))."""
    order = np.random.default_rng(seed).permutation(len(prompts))
    low, high = READABLE
    readable = np.array([low <= len(prompts[i]) <= high and all(catalog.titles[int(j)] for j in prompts[i])
                         for i in order], dtype=bool)
    first = np.concatenate([order[readable], order[~readable]])[:n]
    return first, np.concatenate([readable[readable], readable[~readable]])[:n]


def target_ranks(top: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(n,) 1-based rank of each target in its row of ``top`` (n, k); 0 when absent."""
    found = top == np.asarray(targets)[:, None]
    return np.where(found.any(axis=1), found.argmax(axis=1) + 1, 0)


def _order(labels: list[str], ranks: dict[str, np.ndarray], s: int, hit_rate: dict[str, float],
           winners: bool) -> list[str]:
    """``labels`` best first: winners by the target's rank, then by sample hit rate; others by hit rate."""
    if winners:
        return sorted((m for m in labels if ranks[m][s]), key=lambda m: (ranks[m][s], -hit_rate[m], labels.index(m)))
    return sorted(labels, key=lambda m: (-hit_rate[m], labels.index(m)))


def choose(rows: np.ndarray, readable: np.ndarray, targets: np.ndarray, top: dict[str, np.ndarray],
           kinds: dict[str, Kind], stories: Sequence[tuple[str, int]] = STORIES
           ) -> tuple[list[tuple[int, str, list[str]]], dict[str, float], list[str]]:
    """Which sampled sessions to show, from every model's top lists over the sample.

    ``rows`` (n,) test-session indices, ``readable`` (n,) bool, ``targets`` (n,) their true next items, ``top``
    label -> (n, TOP) item indices, ``kinds`` label -> "text" | "id". Returns ``(chosen, hit_rate, notes)``:
    ``chosen`` holds (position in the sample, story, shown labels) in the order of ``stories``, at most one
    session per target item; ``hit_rate`` label -> share of the sample with the target in its top list;
    ``notes`` one sentence per story with fewer sessions than wanted.
    """
    labels = list(top)
    ranks = {m: target_ranks(top[m], targets) for m in labels}
    hit_rate = {m: float((ranks[m] > 0).mean()) if len(rows) else 0.0 for m in labels}
    text = [m for m in labels if kinds[m] == "text"]
    ids = [m for m in labels if kinds[m] == "id"]
    text_hit = np.any([ranks[m] > 0 for m in text], axis=0) if text else np.zeros(len(rows), bool)
    id_hit = np.any([ranks[m] > 0 for m in ids], axis=0) if ids else np.zeros(len(rows), bool)
    members = {"text": text_hit & ~id_hit, "id": id_hit & ~text_hit, "both": text_hit & id_hit}
    chosen: list[tuple[int, str, list[str]]] = []
    notes = []
    used_targets: set[int] = set()
    for story, wanted in stories:
        winners = text if story == "text" else ids if story == "id" else labels

        def preference(s: int) -> tuple:
            n_winners = sum(1 for m in winners if ranks[m][s])
            if story == "both":  # the worse of the two kinds' best ranks
                best = max(min(ranks[m][s] or TOP + 1 for m in text), min(ranks[m][s] or TOP + 1 for m in ids))
            else:
                best = min(ranks[m][s] for m in winners if ranks[m][s])
            return (not readable[s], best > SHOWN, best, -n_winners, s)

        found = 0
        for s in sorted(np.flatnonzero(members[story]).tolist(), key=preference):
            if found == wanted:
                break
            if int(targets[s]) in used_targets:
                continue
            used_targets.add(int(targets[s]))
            chosen.append((s, story, _shown(story, text, ids, ranks, s, hit_rate)))
            found += 1
        if found < wanted:
            notes.append(f"Only {found} of the {len(rows)} sampled test sessions show “{STORY_HEADLINE[story]}” "
                         f"({wanted} wanted).")
    return chosen, hit_rate, notes


def _shown(story: str, text: list[str], ids: list[str], ranks: dict[str, np.ndarray], s: int,
           hit_rate: dict[str, float]) -> list[str]:
    """The 2-3 models a session is shown with: the best text model and the best ID model for its story (a
    winner by its rank of the target, a loser by its sample hit rate: the strongest one that misses), then
    the next model of the losing kind (when both kinds win: the strongest other model, by sample hit rate)."""
    text_order = _order(text, ranks, s, hit_rate, winners=story in ("text", "both"))
    id_order = _order(ids, ranks, s, hit_rate, winners=story in ("id", "both"))
    shown = [text_order[0], id_order[0]]
    if story == "both":
        rest = sorted((m for m in text + ids if m not in shown), key=lambda m: (-hit_rate[m], (text + ids).index(m)))
    else:
        rest = id_order[1:] if story == "text" else text_order[1:]
    return shown + rest[:1]


# ------------------------------------------------------------------------------------------------ building
def rank_sample(models: dict[str, Recommender], prompts: Sequence[np.ndarray], progress: Progress | None = None,
                batch_size: int = 100) -> dict[str, np.ndarray]:
    """label -> (n, TOP) top items of each model for ``prompts``, with prompt items excluded as in evaluation
    (``Recommender.exclude_seen_in_evaluation``). ``progress(done, total, message)`` counts sessions ranked."""
    total = len(models) * len(prompts)
    done = 0
    out = {}
    for label, model in models.items():
        chunks = []
        for start in range(0, len(prompts), batch_size):
            batch = list(prompts[start:start + batch_size])
            items, _ = model.recommend(batch, TOP, exclude_seen=model.exclude_seen_in_evaluation)
            chunks.append(items)
            done += len(batch)
            if progress:
                progress(done, total, f"{label}: ranking the sample")
        out[label] = np.concatenate(chunks) if chunks else np.zeros((0, TOP), np.int64)
    return out


def build(dataset: Dataset, models: dict[str, tuple[Recommender, str]], progress: Progress | None = None,
          sample_size: int = SAMPLE_SIZE, seed: int = SEED) -> Demo:
    """The demo from fitted models: label -> (model, its store key). Raises :class:`NoDemo` without a model of
    each kind (:func:`kind_of`); a demo without any session (none found in the sample) says so in ``notes``."""
    kinds: dict[str, Kind] = {}
    for label, (model, _) in models.items():
        kind = kind_of(type(model), model.config)
        if kind is not None:
            kinds[label] = kind
    _require_both_kinds(kinds, dataset.name)
    split = dataset.split
    rows, readable = sample_rows(split.prompts, dataset.catalog, sample_size, seed)
    prompts = [split.prompts[int(r)] for r in rows]
    targets = split.targets[rows] if len(rows) else np.zeros(0, np.int64)
    top = rank_sample({label: models[label][0] for label in kinds}, prompts, progress)
    chosen, hit_rate, notes = choose(rows, readable, targets, top, kinds)
    contenders_ = [Contender(label=label, name=models[label][0].name, key=models[label][1], kind=kind,
                             hit_rate=hit_rate[label]) for label, kind in kinds.items()]
    sessions = [DemoSession(row=int(rows[s]), prompt=tuple(int(i) for i in prompts[s]), target=int(targets[s]),
                            story=story, ranks={m: int(target_ranks(top[m][s:s + 1], targets[s:s + 1])[0])
                                                for m in kinds},
                            shown=tuple(shown), picks={m: tuple(int(i) for i in top[m][s] if i != NO_ITEM)
                                                       for m in shown})
                for s, story, shown in chosen]
    if not sessions:
        notes = [f"None of the {len(rows)} sampled test sessions of {dataset.name} has its true next item in the "
                 f"top {TOP} of any usable model, so there is no session to show."]
    key = demo_key([c.key for c in contenders_], sample_size, seed)
    return Demo(dataset=dataset.name, key=key, sample_size=len(rows), models=contenders_, sessions=sessions,
                notes=notes)


def saved(dataset: Dataset, trained: Sequence[TrainedModel]) -> Demo | None:
    """The demo saved for these trained models (see :func:`contenders`), or None when there is none yet."""
    keys = [m.folder.name for m in contenders(trained)]
    path = demo_path(dataset.name, demo_key(keys))
    demo = Demo.from_json(read_json(path))
    return demo if demo is not None and demo.dataset == dataset.name else None


def build_and_save(dataset: Dataset, trained: Sequence[TrainedModel], progress: Progress | None = None) -> Demo:
    """Load the usable trained models, choose the sessions and save the choice (atomic write). Raises
    :class:`NoDemo` when a kind of model is missing, ``ArtifactError`` when a save cannot be read."""
    chosen = contenders(trained)
    _require_both_kinds({m.label: "text" if m.reads_titles else "id" for m in chosen}, dataset.name)
    demo = build(dataset, {m.label: (load_saved(m.folder), m.folder.name) for m in chosen}, progress)
    atomic_write_text(demo_path(dataset.name, demo.key), json.dumps(demo.to_json()))
    return demo


# ------------------------------------------------------------------------------------------------ showing
def _short(title: str, n: int = 50) -> str:
    return title if len(title) <= n else title[: n - 1] + "…"


@dataclass(frozen=True)
class ShownPick:
    rank: int
    item: int
    title: str  # as in the file: escape it before drawing
    is_target: bool
    why: str  # plain words, may quote a session item's title: escape it too


def explain(session: DemoSession, contender: Contender, catalog: Catalog, vectors: np.ndarray | None,
            n: int = SHOWN) -> list[ShownPick]:
    """The first ``n`` picks of a shown model with a plain-language reason: for a text model the session item
    its title embedding is closest to (cosine of ``vectors``, (n_items, d), the model's title embeddings;
    without them a general phrase); for an ID model what its kind of model learns (``Recommender.card.why``)."""
    items = list(session.picks[contender.label][:n])
    if contender.kind == "text":
        if vectors is not None and len(items):
            nearest = nearest_session_items(vectors, session.prompt, items, n=1)
            why = [f"resembles “{_short(catalog.title(best[0][0]))}” (cosine {best[0][1]:.2f})" if best else ""
                   for best in nearest]
        else:
            why = ["close to this session's items in text-embedding space"] * len(items)
    else:
        why = [model_class(contender.name).card.why] * len(items)
    return [ShownPick(rank=i + 1, item=item, title=catalog.title(item), is_target=item == session.target,
                      why=reason) for i, (item, reason) in enumerate(zip(items, why))]


def headline(demo: Demo, results: dict[str, EvaluationResult], labels: Sequence[str]) -> dict[str, dict[str, float]]:
    """label -> {"NDCG@20", "HR@20"} over the whole test split, from the saved evaluation results of exactly
    these models (matched by store key); a model without a saved result is left out."""
    by_key = {result.key: result for result in results.values()}
    out = {}
    for label in labels:
        result = by_key.get(demo.model(label).key)
        if result is not None and {"NDCG@20", "HR@20"} <= set(result.metrics):
            out[label] = {"NDCG@20": result.metrics["NDCG@20"], "HR@20": result.metrics["HR@20"]}
    return out


def text_spec(contender: Contender, trained: Sequence[TrainedModel]) -> "EmbeddingSpec | None":
    """The title embeddings a text contender was built from (for its "why"), None for an ID one or when its
    save is no longer among ``trained``."""
    for model in trained:
        if model.folder.name == contender.key:
            cls = model_class(model.name)
            return cls.text_embedding(cls.Config(**model.config))
    return None
