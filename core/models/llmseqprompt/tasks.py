"""LLMSeqPrompt's four fine-tuning tasks (Boz et al., extended version, §4.1–4.4): what the language model is
asked, what it learns to answer, and how an answer is read back.

* ``genitem`` (§4.1, the default): prompt = the session's item names; answer = the next item's name; 20
  names are *sampled* (temperature 0.25) and mapped to the catalog.
* ``genlist`` (§4.2): the answer is a ranked list of 20 names. Training target: the true next item first,
  then LLMSeqSim's top-20 for the prompt with the true item removed (the 20th dropped when it was absent).
* ``classify`` (§4.3): the catalog is cut into 200 clusters (k-means on the item embeddings), each named by
  its most popular train item (its *representative*); the prompt lists the session and all
  representatives; the target is the 20 representatives whose cluster centres are nearest the true item's
  embedding, nearest first. At inference each chosen cluster gives its item most similar to the session
  (LLMSeqSim's score), in the model's order of the clusters, then each its second, ... (round robin).
* ``rank`` (§4.4): the candidates are LLMSeqSim's top-20 for the prompt, shuffled into the prompt; the target
  is the ranked list: the true item first if present (in training it replaces the 20th when missing), then
  LLMSeqSim's order. At test time the model re-ranks LLMSeqSim's top-20; candidates it does not name follow
  in LLMSeqSim's order.

The three list tasks answer once per session with temperature 0 and top_p 1 (the paper's setting). Prompt
and answer wrap their items in ``BEGIN``/``END`` lines; answers number their lines (``1. name``).
:func:`parse_list` reads an answer with fallbacks and says how it went (``ok``, ``fallback``, ``failed``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from core.models.llmseqprompt.prompts import SYSTEM_PROMPT, USER_PREFIX

TASKS: tuple[str, ...] = ("genitem", "genlist", "classify", "rank")  # LLMSeqPromptConfig.task's values
LIST_LENGTH = 20  # names in a list answer (the paper's)
N_CLUSTERS = 200  # classify: k-means clusters (the paper's)
BEGIN, END = "BEGIN", "END"

SYSTEMS = {
    "genitem": SYSTEM_PROMPT,
    "genlist": (f"Provide a ranked list of {LIST_LENGTH} unique item recommendations that are complementary to the "
                "user's item list, the most likely next item first. Ensure the recommendations are from items "
                f"included in the data you are fine-tuned with. Write only the item names between {BEGIN} and "
                f"{END}, one a line, numbered."),
    "classify": (f"Choose the {LIST_LENGTH} categories most likely to hold the user's next item, the most likely "
                 "first, from the category list; each category is named by its most popular item. Write only the "
                 f"category names between {BEGIN} and {END}, one a line, numbered."),
    "rank": ("Rank the candidate items by how likely the user is to choose each one next, the most likely "
             f"first. Write only the candidate names between {BEGIN} and {END}, one a line, numbered."),
}
CANDIDATES_HEADER = {"classify": "The category list:\n", "rank": "The candidates:\n"}


@dataclass(frozen=True)
class Prompt:
    """What a language model is shown for one session."""

    session: tuple[str, ...]  # the session's item names, oldest first
    candidates: tuple[str, ...] = ()  # rank: LLMSeqSim's top-20, shuffled; classify: the representatives


Example = tuple[Prompt, tuple[str, ...]]  # (prompt, answer names best first; genitem: the one next name)


def block(names: Sequence[str], numbered: bool = False) -> str:
    """Names between BEGIN and END lines, one a line (``1. name`` when ``numbered``)."""
    lines = [f"{i}. {name}" if numbered else name for i, name in enumerate(names, start=1)]
    return "\n".join([BEGIN, *lines, END])


@dataclass(frozen=True)
class Task:
    name: str

    @property
    def is_list(self) -> bool:
        return self.name != "genitem"

    @property
    def system(self) -> str:
        return SYSTEMS[self.name]

    def user_text(self, prompt: Prompt, with_candidates: bool = True) -> str:
        """The user message. ``with_candidates=False`` leaves out classify's category list (the same in every
        prompt: a from-scratch model learns nothing from it and its context cannot hold it)."""
        if not self.is_list:
            return USER_PREFIX + "\n".join(prompt.session)
        text = USER_PREFIX + block(prompt.session)
        if self.name in CANDIDATES_HEADER and (with_candidates or self.name == "rank"):
            text += "\n" + CANDIDATES_HEADER[self.name] + block(prompt.candidates)
        return text

    def answer_text(self, names: Sequence[str]) -> str:
        return block(names, numbered=True) if self.is_list else (names[0] if names else "")

    def messages(self, prompt: Prompt, answer: Sequence[str] | None = None) -> list[dict[str, str]]:
        """The chat-format record (OpenAI's fine-tuning JSONL; a model folder's chat template)."""
        messages = [{"role": "system", "content": self.system}, {"role": "user", "content": self.user_text(prompt)}]
        if answer is not None:
            messages.append({"role": "assistant", "content": self.answer_text(answer)})
        return messages

    def parse(self, text: str) -> "Parsed":
        if self.is_list:
            return parse_list(text)
        line = next((part.strip() for part in (text or "").split("\n") if part.strip()), "")
        return Parsed([line] if line else [], "ok" if line else "failed")


@dataclass(frozen=True)
class Parsed:
    names: list[str]
    outcome: Literal["ok", "fallback", "failed"]  # ok: BEGIN/END and numbered lines; fallback: read otherwise


_NUMBERED = re.compile(r"^\s*\(?(\d{1,3})\s*[.):]\s*(.*?)\s*$")
_BULLET = re.compile(r"^\s*(?:[-*•]\s+)")


def parse_list(text: str) -> Parsed:
    """The names of a list answer, best first. Never raises.

    The expected form is ``BEGIN``, numbered lines ``1. name``, ``END``. Fallbacks, each marking the answer
    ``fallback``: a missing BEGIN or END (the answer was cut short, or the model forgot the markers) reads what
    is there; unnumbered lines are read as names (bullets stripped); a single line holding ``;`` or `` | ``
    is split on them. An answer with no name at all is ``failed``."""
    lines = [line.strip() for line in str(text or "").replace("\r", "\n").split("\n")]
    marks = [line.strip("* ").upper() for line in lines]
    ok = True
    if BEGIN in marks:
        lines, marks = lines[marks.index(BEGIN) + 1:], marks[marks.index(BEGIN) + 1:]
    else:
        ok = False
    if END in marks:
        lines = lines[:marks.index(END)]
    else:
        ok = False
    lines = [line for line in lines if line]
    names: list[str] = []
    for line in lines:
        numbered = _NUMBERED.match(line)
        if numbered:
            if numbered.group(2):
                names.append(numbered.group(2))
            continue
        ok = False
        names.append(_BULLET.sub("", line).strip())
    if len(names) == 1 and (";" in names[0] or " | " in names[0]):
        names = [part.strip() for part in re.split(r";| \| ", names[0]) if part.strip()]
        ok = False
    names = [name.strip(" \"'`") for name in names if name.strip(" \"'`")]
    if not names:
        return Parsed([], "failed")
    return Parsed(names, "ok" if ok else "fallback")


# ------------------------------------------------------------------------------------------ training targets
def genlist_answer(target: int, similar: Sequence[int]) -> list[int]:
    """GenList's target list: the true item, then LLMSeqSim's list without it, ``LIST_LENGTH`` in all."""
    return [target] + [int(i) for i in similar if int(i) != target][:LIST_LENGTH - 1]


def rank_candidates(target: int, similar: Sequence[int]) -> list[int]:
    """Rank's training candidates: LLMSeqSim's top-20, the true item replacing the 20th when missing."""
    top = [int(i) for i in similar[:LIST_LENGTH]]
    return top if target in top else top[:LIST_LENGTH - 1] + [target]


def rank_answer(target: int, candidates: Sequence[int]) -> list[int]:
    """Rank's target: the true item first (when a candidate), then the candidates in LLMSeqSim's order."""
    rest = [int(i) for i in candidates if int(i) != target]
    return [target] + rest if target in candidates else rest


@dataclass
class Clusters:
    """Classify's categories: k-means on the item vectors (``faiss.Kmeans``, seeded)."""

    centroids: np.ndarray  # (n_clusters, d) float32
    cluster_of: np.ndarray  # (n_items,) int64
    representatives: np.ndarray  # (n_clusters,) int64: each cluster's most popular train item

    @classmethod
    def fit(cls, vectors: np.ndarray, popularity: np.ndarray, titled: np.ndarray, n_clusters: int = N_CLUSTERS,
            seed: int = 0) -> "Clusters":
        """``vectors`` (n_items, d) float32; ``popularity`` (n_items,) train counts; ``titled`` (n_items,) bool:
        only titled items represent a cluster. ``n_clusters`` is capped at the number of titled items, and
        a cluster without a titled item is dropped (its items join the nearest kept cluster)."""
        import faiss

        if not titled.any():
            raise ValueError("no item has a title, so no cluster can be named: classify needs titled items")
        x = np.ascontiguousarray(vectors, dtype=np.float32)
        k = max(1, min(n_clusters, int(titled.sum())))
        kmeans = faiss.Kmeans(x.shape[1], k, niter=20, seed=seed, verbose=False, min_points_per_centroid=1)
        kmeans.train(x)
        _, assigned = kmeans.index.search(x, 1)
        cluster_of = assigned[:, 0].astype(np.int64)
        keep, representatives = [], []
        for c in range(k):
            members = np.flatnonzero((cluster_of == c) & titled)
            if len(members):
                keep.append(c)
                representatives.append(int(members[np.lexsort((members, -popularity[members]))[0]]))
        centroids = np.asarray(kmeans.centroids)[keep]
        # Items of a dropped cluster (no titled member) join their nearest kept one.
        renumber = {c: i for i, c in enumerate(keep)}
        nearest = np.argmax(x @ centroids.T - 0.5 * (centroids**2).sum(axis=1), axis=1)
        cluster_of = np.array([renumber.get(int(c), int(n)) for c, n in zip(cluster_of, nearest)], dtype=np.int64)
        return cls(np.ascontiguousarray(centroids, dtype=np.float32), cluster_of, np.array(representatives, np.int64))

    def nearest(self, vector: np.ndarray, n: int = LIST_LENGTH) -> list[int]:
        """The ``n`` clusters whose centres are nearest ``vector`` (euclidean, as k-means), nearest first."""
        distances = ((self.centroids - vector[None, :]) ** 2).sum(axis=1)
        return np.argsort(distances, kind="stable")[:n].tolist()


def expand_clusters(chosen: Sequence[int], cluster_of: np.ndarray, scores: np.ndarray, blocked: np.ndarray,
                    k: int) -> tuple[list[int], list[int]]:
    """Classify at inference: ``k`` items from the chosen clusters (model order), round robin — each cluster's
    best item by ``scores`` (n_items,: LLMSeqSim's similarity to the session), then each one's second, ...;
    then the rest of the catalog by ``scores``. ``blocked`` (n_items,) bool: never listed (prompt items).
    Returns (items, the position in ``chosen`` each came from, -1 for the rest)."""
    queues = []
    for cluster in chosen:
        members = np.flatnonzero((cluster_of == cluster) & ~blocked)
        queues.append(members[np.lexsort((members, -scores[members]))].tolist())
    items: list[int] = []
    origin: list[int] = []
    depth = 0
    while len(items) < k and any(depth < len(q) for q in queues):
        for position, queue in enumerate(queues):
            if depth < len(queue) and len(items) < k:
                items.append(queue[depth])
                origin.append(position)
        depth += 1
    if len(items) < k:
        rest = scores.astype(np.float64).copy()
        rest[blocked] = -np.inf
        rest[items] = -np.inf
        order = np.lexsort((np.arange(len(rest)), -rest))
        extra = [int(i) for i in order[:k - len(items)] if np.isfinite(rest[i])]
        items += extra
        origin += [-1] * len(extra)
    return items, origin

