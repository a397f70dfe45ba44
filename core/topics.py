"""Topics for catalogs without categories (Amazon Beauty has none): k-means over the item embeddings, each
cluster named by its most distinctive title words.

Clustering: scikit-learn's ``KMeans`` (seeded, ``n_init=4``) over the unit-normalised vectors, so Euclidean
distance ranks like the cosine similarity the rest of the app uses. Clusters are renumbered by size, largest
first (topic 0), ties by their first item, so the numbering does not depend on k-means' internal order.

Naming: class-based TF-IDF (c-TF-IDF, Grootendorst 2022, "BERTopic", arXiv 2203.05794): every cluster's titles
form one document; a word's weight in cluster c is ``tf(w, c) * log(1 + A / f(w))`` with ``tf`` the share of
c's word occurrences that are w, ``f(w)`` w's occurrences over all clusters and ``A`` the mean number of word
occurrences per cluster. A word counts once per title (a title saying "shampoo" twice is one vote); English
stop words, numbers and words under 3 letters are left out, and so are sizes and pack words ("ounce",
"pack") that say nothing of what an item is.

On Beauty's 12,101 x 384 MiniLM vectors, k = 12 takes about 2 s on 2 cores; results are cached under
``cache/topics/`` keyed by the vectors' bytes, the titles, k and the seed (written atomically).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from core.common import UserError
from core.storage import CACHE_DIR, atomic_save_npy, atomic_write_text, load_npy, read_json
from core.vectors import unit

DEFAULT_TOPICS = 12
MAX_TOPICS = 40  # more colours than this cannot be told apart on a map
N_WORDS = 3  # words naming a topic
# Words frequent in product titles that name a size or a pack, never a kind of item.
EXTRA_STOP_WORDS = frozenset({"ounce", "ounces", "pack", "count", "size", "piece", "pcs", "set", "new",
                              "value", "travel", "fluid", "mini", "sample"})
VERSION = 1  # bump when the clustering or the naming changes: older cached topics are then ignored


@dataclass(frozen=True)
class Topics:
    """``labels``: (n_items,) int64, each item's topic in 0..k-1 (topic 0 the largest); ``words``: per topic its
    most distinctive title words, most distinctive first (empty when its titles hold no usable word)."""

    labels: np.ndarray
    words: list[list[str]]

    @property
    def k(self) -> int:
        return len(self.words)

    @property
    def sizes(self) -> np.ndarray:
        """(k,) items per topic."""
        return np.bincount(self.labels, minlength=self.k)

    def name(self, topic: int) -> str:
        """``"03 · lipstick, lip, matte"``: the number (1-based, zero-padded so names sort in topic order) and
        its words."""
        number = f"{topic + 1:0{len(str(self.k))}d}"
        return f"{number} · {', '.join(self.words[topic])}" if self.words[topic] else f"{number} · (no words)"

    def item_names(self) -> list[str]:
        """Every item's topic name, (n_items,), for colouring a map by topic."""
        names = [self.name(t) for t in range(self.k)]
        return [names[t] for t in self.labels]

    def counts(self, items: Sequence[int]) -> list[tuple[int, int]]:
        """``(topic, number of items)`` of ``items``' topics, most frequent first (ties by topic)."""
        found = np.bincount(self.labels[np.asarray(items, dtype=np.int64)], minlength=self.k)
        return [(int(t), int(found[t])) for t in sorted(np.flatnonzero(found), key=lambda t: (-found[t], t))]


def check_k(k: int, n_items: int) -> None:
    """Raises UserError (one sentence) unless 2 <= k <= min(n_items, MAX_TOPICS)."""
    if k < 2:
        raise UserError(f"topics need k of at least 2, got {k}")
    if k > n_items:
        raise UserError(f"{k} topics need at least {k} items; the catalog has {n_items}")
    if k > MAX_TOPICS:
        raise UserError(f"at most {MAX_TOPICS} topics can be told apart on a map, got {k}")


def cluster(vectors: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """(n_items,) int64 k-means labels of the unit-normalised ``vectors`` (n_items, dim), renumbered by size
    (0 the largest; ties by their first item). Deterministic for a seed. UserError on a bad k."""
    from sklearn.cluster import KMeans

    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or not np.isfinite(vectors).all():
        raise UserError("topics need a finite 2-D array of item vectors")
    check_k(k, len(vectors))
    raw = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(unit(vectors))
    sizes = np.bincount(raw, minlength=k)
    first = np.array([np.flatnonzero(raw == c)[0] if sizes[c] else len(raw) for c in range(k)])
    order = sorted(range(k), key=lambda c: (-sizes[c], first[c]))
    renumber = np.empty(k, dtype=np.int64)
    renumber[order] = np.arange(k)
    return renumber[raw]


def topic_words(titles: Sequence[str], labels: np.ndarray, k: int, n_words: int = N_WORDS) -> list[list[str]]:
    """The ``n_words`` most distinctive words of each of the k clusters' titles by c-TF-IDF (module docstring),
    best first (ties alphabetical); a topic whose titles hold no usable word gets none."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

    vectorizer = CountVectorizer(stop_words=sorted(ENGLISH_STOP_WORDS | EXTRA_STOP_WORDS), binary=True,
                                 token_pattern=r"(?u)\b[^\W\d_]{3,}\b")
    try:
        per_title = vectorizer.fit_transform(list(titles))
    except ValueError:  # no title has a usable word
        return [[] for _ in range(k)]
    vocabulary = vectorizer.get_feature_names_out()
    membership = np.zeros((k, len(labels)))
    membership[np.asarray(labels), np.arange(len(labels))] = 1.0
    counts = np.asarray((per_title.T @ membership.T).T)  # (k, vocabulary): titles of the cluster holding the word
    totals = counts.sum(axis=1, keepdims=True)
    tf = counts / np.maximum(totals, 1.0)
    idf = np.log(1.0 + counts.sum(axis=1).mean() / np.maximum(counts.sum(axis=0), 1.0))
    weights = tf * idf
    words = []
    for topic in range(k):
        found = np.flatnonzero(counts[topic] > 0)
        best = sorted(found, key=lambda w: (-weights[topic, w], vocabulary[w]))[:n_words]
        words.append([str(vocabulary[w]) for w in best])
    return words


def cache_path(vectors: np.ndarray, titles: Sequence[str], k: int, seed: int = 0) -> Path:
    digest = hashlib.sha256(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
    for title in titles:
        digest.update(title.encode("utf-8", "surrogatepass") + b"\x00")
    digest.update(json.dumps({"k": k, "seed": seed, "version": VERSION}).encode())
    return CACHE_DIR / "topics" / f"k{k}-{len(vectors)}-{digest.hexdigest()[:16]}.npy"


def topics(vectors: np.ndarray, titles: Sequence[str], k: int = DEFAULT_TOPICS, seed: int = 0) -> Topics:
    """k topics of the items (``vectors``: (n_items, dim), ``titles``: n_items strings), from the cache or
    computed and cached (labels as .npy, words as .json beside it). UserError on a bad k or mismatched
    inputs."""
    if len(titles) != len(vectors):
        raise UserError(f"topics need one title per item vector ({len(titles)} titles, {len(vectors)} vectors)")
    check_k(k, len(vectors))
    path = cache_path(vectors, titles, k, seed)
    labels, words = load_npy(path), read_json(path.with_suffix(".json"))
    if (labels is not None and labels.shape == (len(vectors),) and labels.dtype.kind == "i"
            and isinstance(words, list) and len(words) == k and labels.min() >= 0 and labels.max() < k):
        return Topics(labels=labels.astype(np.int64), words=[[str(w) for w in ws] for ws in words])
    labels = cluster(vectors, k, seed)
    found = Topics(labels=labels, words=topic_words(titles, labels, k))
    atomic_write_text(path.with_suffix(".json"), json.dumps(found.words))  # words first: labels mark it complete
    atomic_save_npy(path, labels)
    return found
