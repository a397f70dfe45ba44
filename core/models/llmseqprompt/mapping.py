"""From a language model's sampled names to a top-K list of catalog items (the paper's LLMSeqPrompt mapping).

For one session, the ``n`` sampled names are taken in sampling order:

* **exact**: the name matches a catalog title (after :func:`.prompts.normalise_title`), occurs once
  among the samples, and is neither a prompt item nor already listed -> it goes in directly;
* **duplicated**: the name matches a title but occurs more than once among the samples (every occurrence
  counts), or names a prompt item;
* **hallucinated**: the name matches no title (every occurrence counts, repeated or not).

Each duplicated or hallucinated name is embedded (``core.embeddings``) and replaced by its nearest catalog
neighbour (``core.index``: cosine over the item embeddings) that is neither listed already nor in the
prompt; replacements go after the direct hits, in sampling order. Beyond the ``n`` mapped items (a list
longer than the number of samples), the rest of the catalog follows by cosine similarity to the mean vector
of all sampled names, then by popularity — so a list holds ``k`` distinct items, never a prompt item: fewer
than ``k`` only when the catalog has fewer items outside the prompt.

When several catalog items share a title, the name maps to the most popular of them in train.

A *ranked* answer (the list tasks, :meth:`NameMapper.map_lists`) keeps its order instead: the first
occurrence of a title is ``exact``; a later one, or a prompt item, is ``duplicated`` and dropped (its slot
would repeat an item); a ``hallucinated`` name is replaced in place by its nearest free neighbour. The names
may be restricted to a pool (Rank: the session's candidates; Classify: the cluster representatives): exact
matches and neighbours are then taken from the pool only.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from core.index import ItemIndex
from core.models.llmseqprompt.prompts import normalise_title

# texts -> (n, d) float32 L2-normalised vectors, same space as the item vectors
Encoder = Callable[[list[str]], np.ndarray]


@dataclass
class MappedSession:
    names: list[str]  # the sampled names, in sampling order
    kinds: list[str]  # per name: "exact", "duplicated" or "hallucinated"
    items: list[int]  # the mapped list, best first (direct hits, then replacements, then the rest); no prompt item
    replaced_by: dict[int, int] = field(default_factory=dict)  # sample position -> catalog item replacing it

    @property
    def counts(self) -> dict[str, int]:
        counted = Counter(self.kinds)
        return {kind: counted.get(kind, 0) for kind in ("exact", "duplicated", "hallucinated")}


class NameMapper:
    def __init__(self, titles: Sequence[str], item_vectors: np.ndarray, popularity: np.ndarray,
                 encoder: Encoder) -> None:
        self.item_vectors = np.ascontiguousarray(item_vectors, dtype=np.float32)
        self.popularity = np.asarray(popularity, dtype=np.float64)
        self.encoder = encoder
        self.titles = list(titles)
        self.index = ItemIndex(self.item_vectors)
        self.lookup: dict[str, int] = {}
        for item in np.argsort(-self.popularity, kind="stable"):  # most popular first wins a shared title
            key = normalise_title(titles[item]) if titles[item] else ""
            if key and key not in self.lookup:
                self.lookup[key] = int(item)
        # Tie-break for the tail of a list: popularity, as a tiny score offset below any cosine difference.
        self._popularity_offset = (self.popularity / (self.popularity.max() + 1.0) * 1e-6).astype(np.float64)

    def classify(self, names: Sequence[str], prompt: Sequence[int] | np.ndarray) -> tuple[list[str], list[int | None]]:
        keys = [normalise_title(n) for n in names]
        occurrences = Counter(keys)
        in_prompt = set(int(i) for i in prompt)
        kinds: list[str] = []
        direct: list[int | None] = []
        for key in keys:
            item = self.lookup.get(key) if key else None
            if item is None:
                kinds.append("hallucinated")
                direct.append(None)
            elif occurrences[key] > 1 or item in in_prompt:
                kinds.append("duplicated")
                direct.append(None)
            else:
                kinds.append("exact")
                direct.append(item)
        return kinds, direct

    def map(self, samples: Sequence[Sequence[str]], prompts: Sequence[np.ndarray], k: int) -> list[MappedSession]:
        """The top-``k`` list of each session from its sampled names."""
        classified = [self.classify(names, prompt) for names, prompt in zip(samples, prompts)]
        vector_of = self._encode(samples, [kinds for kinds, _ in classified])
        return [self._map_one(list(names), np.asarray(prompt, dtype=np.int64), kinds, direct, vector_of, k)
                for names, prompt, (kinds, direct) in zip(samples, prompts, classified)]

    def _encode(self, samples: Sequence[Sequence[str]], kinds: Sequence[Sequence[str]]) -> dict[str, np.ndarray]:
        """Vectors of every distinct name that is not a catalog title, encoded once for the whole batch."""
        to_encode = sorted({name for names, ks in zip(samples, kinds) for name, kind in zip(names, ks)
                            if kind != "exact" and self.lookup.get(normalise_title(name)) is None})
        encoded = self.encoder(to_encode) if to_encode else np.zeros((0, self.item_vectors.shape[1]), np.float32)
        return {name: encoded[i] for i, name in enumerate(to_encode)}

    def map_lists(self, answers: Sequence[Sequence[str]], prompts: Sequence[np.ndarray], k: int,
                  pools: Sequence[np.ndarray | None] | None = None, fill: bool = True) -> list[MappedSession]:
        """Ranked answers (module docstring), order kept: per session at most ``k`` items, no prompt item.
        ``pools[i]``: the items session ``i``'s names may map to (None = the catalog). ``fill``: complete each
        list to ``k`` from the catalog as :meth:`map` does (only without a pool: the caller completes a pooled
        list, e.g. Rank with LLMSeqSim's order)."""
        pools = list(pools) if pools is not None else [None] * len(answers)
        classified = [self._classify_ranked(list(names), np.asarray(prompt, dtype=np.int64), pool)
                      for names, prompt, pool in zip(answers, prompts, pools)]
        vector_of = self._encode(answers, [kinds for kinds, _ in classified])
        out = []
        for names, prompt, pool, (kinds, direct) in zip(answers, prompts, pools, classified):
            prompt = np.asarray(prompt, dtype=np.int64)
            blocked = np.zeros(len(self.item_vectors), dtype=bool)
            blocked[prompt] = True
            blocked[[i for i in direct if i is not None]] = True
            slots = list(direct)
            replaced_by: dict[int, int] = {}
            for position, kind in enumerate(kinds):
                if kind != "hallucinated":
                    continue
                vector = self._vector(names[position], vector_of)
                if pool is None:
                    found, _ = self.index.neighbours(vector[None, :], k=min(len(self.item_vectors),
                                                                           len(prompt) + len(names) + 1))
                    order = [int(i) for i in found[0] if i >= 0]
                else:
                    order = [int(i) for i in pool[np.argsort(-(self.item_vectors[pool] @ vector), kind="stable")]]
                free = next((i for i in order if not blocked[i]), None)
                if free is not None:
                    slots[position] = free
                    blocked[free] = True
                    replaced_by[position] = free
            items = [int(i) for i in slots if i is not None][:k]
            if fill and pool is None and len(items) < k:
                items += self._rest(names, blocked, vector_of, k - len(items))
            out.append(MappedSession(names=list(names), kinds=kinds, items=items, replaced_by=replaced_by))
        return out

    def _classify_ranked(self, names: list[str], prompt: np.ndarray,
                         pool: np.ndarray | None) -> tuple[list[str], list[int | None]]:
        if pool is None:
            lookup = self.lookup
        else:
            lookup = {}
            for item in pool[np.argsort(-self.popularity[pool], kind="stable")]:  # most popular wins a title
                key = normalise_title(self.titles[item]) if self.titles[item] else ""
                if key:
                    lookup.setdefault(key, int(item))
        in_prompt = set(prompt.tolist())
        taken: set[int] = set()
        kinds: list[str] = []
        direct: list[int | None] = []
        for name in names:
            key = normalise_title(name)
            item = lookup.get(key) if key else None
            if item is None:
                kinds.append("hallucinated")
                direct.append(None)
            elif item in taken or item in in_prompt:
                kinds.append("duplicated")
                direct.append(None)
            else:
                kinds.append("exact")
                direct.append(item)
                taken.add(item)
        return kinds, direct

    def _vector(self, name: str, vector_of: dict[str, np.ndarray]) -> np.ndarray:
        item = self.lookup.get(normalise_title(name))
        return self.item_vectors[item] if item is not None else vector_of[name]

    def _map_one(self, names: list[str], prompt: np.ndarray, kinds: list[str], direct: list[int | None],
                 vector_of: dict[str, np.ndarray], k: int) -> MappedSession:
        n_items = len(self.item_vectors)
        blocked = np.zeros(n_items, dtype=bool)
        blocked[prompt] = True
        items: list[int] = []
        for item in direct:
            if item is not None:
                items.append(item)
                blocked[item] = True
        replaced_by: dict[int, int] = {}
        pending = [p for p, kind in enumerate(kinds) if kind != "exact"]
        if pending and len(items) < k:
            # Enough neighbours that, after skipping blocked items, one is always left for each pending name.
            found, _ = self.index.neighbours(np.stack([self._vector(names[p], vector_of) for p in pending]),
                                             k=min(n_items, len(prompt) + len(names) + k + 1))
            for position, candidates in zip(pending, found):
                if len(items) >= k:
                    break
                free = next((int(i) for i in candidates if i >= 0 and not blocked[i]), None)
                if free is not None:
                    items.append(free)
                    blocked[free] = True
                    replaced_by[position] = free
        if len(items) < k:
            items += self._rest(names, blocked, vector_of, k - len(items))
        return MappedSession(names=names, kinds=kinds, items=items[:k], replaced_by=replaced_by)

    def _rest(self, names: Sequence[str], blocked: np.ndarray, vector_of: dict[str, np.ndarray],
              n: int) -> list[int]:
        """``n`` more unblocked items by cosine to the names' mean vector, then popularity (fewer when the
        catalog runs out)."""
        if names:
            centre = np.mean([self._vector(name, vector_of) for name in names], axis=0)
            rest = self.item_vectors @ centre + self._popularity_offset
        else:
            rest = self._popularity_offset.copy()
        rest[blocked] = -np.inf
        need = min(n, int((~blocked).sum()))
        if need <= 0:
            return []
        top = np.argpartition(-rest, need - 1)[:need]
        return top[np.lexsort((top, -rest[top]))].tolist()
