"""Top-K metrics for next-item prediction with one target per session.

Conventions (the paper's, Boz et al. 2024, from the authors' evaluation code):

* A recommendation list is first **cut to K, then de-duplicated** (a repeated item counts once, at its
  first position; later copies become empty slots). ``-1`` marks an empty slot.
* Accuracy is binary relevance with a single target; per-session values are averaged over sessions.
* Popularity for serendipity and novelty is a count vector over the catalog. The default passed by
  ``core.evaluate`` is train-only counts (no test leakage); ``--paper-popularity`` uses whole-dataset
  counts as the authors' code did.

Every per-session function returns one float per session so that means, bootstrap confidence intervals
and breakdowns all come from the same numbers. :data:`METRICS` is the registry every consumer loops over:
a new metric is one function here, one registry entry and its hand-computed test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from core.vectors import unit

EMPTY = -1


def cut_and_deduplicate(recommendations: np.ndarray, k: int) -> np.ndarray:
    """Cut each list to its first ``k`` entries, then blank (``-1``) every repeat of an earlier item."""
    lists = np.array(recommendations, dtype=np.int64, copy=True)[:, :k]
    for row in lists:
        _, first = np.unique(row, return_index=True)
        repeat = np.ones(len(row), dtype=bool)
        repeat[first] = False
        row[repeat] = EMPTY
    return lists


def target_rank(recommendations: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    """1-based rank of each session's target in its cut, de-duplicated top-K list; 0 where absent."""
    lists = cut_and_deduplicate(recommendations, k)
    hits = lists == np.asarray(targets)[:, None]
    found = hits.any(axis=1)
    return np.where(found, hits.argmax(axis=1) + 1, 0)


def hit_rate(recommendations: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    """HR@K: 1 if the target is in the top-K list, else 0."""
    return (target_rank(recommendations, targets, k) > 0).astype(np.float64)


def ndcg(recommendations: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    """NDCG@K with one relevant item: ``1 / log2(rank + 1)`` if the target is at ``rank <= K``, else 0.

    The ideal DCG of a single relevant item is 1 (Järvelin & Kekäläinen 2002).
    """
    rank = target_rank(recommendations, targets, k)
    return np.where(rank > 0, 1.0 / np.log2(np.maximum(rank, 1) + 1.0), 0.0)


def mrr(recommendations: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    """MRR@K: ``1 / rank`` of the target within the top K, else 0."""
    rank = target_rank(recommendations, targets, k)
    return np.where(rank > 0, 1.0 / np.maximum(rank, 1), 0.0)


def catalog_coverage(recommendations: np.ndarray, k: int, n_items: int) -> float:
    """Coverage@K: distinct items recommended in any top-K list / catalog size (Ge et al. 2010)."""
    lists = cut_and_deduplicate(recommendations, k)
    return float(len(np.setdiff1d(np.unique(lists), [EMPTY])) / n_items)


def serendipity(recommendations: np.ndarray, targets: np.ndarray, k: int, popularity: np.ndarray) -> np.ndarray:
    """Serendipity@K (Ge, Delgado-Battenfeld & Jannach 2010, as the paper uses it).

    The "primitive" recommender is most-popular: the K items with the highest ``popularity`` are expected.
    A session scores 1 if its target is **not** among those K expected items and **is** in the top-K list;
    otherwise 0. Ties in popularity are broken by the lower item index (stable sort).
    """
    expected = np.argsort(-np.asarray(popularity), kind="stable")[:k]
    unexpected = ~np.isin(targets, expected)
    return (hit_rate(recommendations, targets, k) * unexpected).astype(np.float64)


def novelty(recommendations: np.ndarray, k: int, popularity: np.ndarray) -> np.ndarray:
    """Novelty@K: mean self-information ``-log2(count_i / total)`` over the list (Zhou et al., PNAS 2010).

    The mean is over the list's non-empty slots. An item with a zero count (possible with train-only
    counts) is treated as seen once, so it scores the highest finite self-information, not infinity.
    """
    counts = np.maximum(np.asarray(popularity, dtype=np.float64), 1.0)
    information = -np.log2(counts / counts.sum())
    lists = cut_and_deduplicate(recommendations, k)
    filled = lists != EMPTY
    values = np.where(filled, information[np.where(filled, lists, 0)], 0.0)
    n = filled.sum(axis=1)
    return np.where(n > 0, values.sum(axis=1) / np.maximum(n, 1), 0.0)


def intra_list_diversity(recommendations: np.ndarray, k: int, item_vectors: np.ndarray) -> np.ndarray:
    """Diversity@K: the mean pairwise cosine distance ``1 - cos(e_i, e_j)`` between the items of each cut,
    de-duplicated top-K list (Ziegler et al. 2005, "intra-list similarity", as a distance), in the space of
    ``item_vectors`` (the catalog's text embeddings). A list with fewer than two items scores 0."""
    lists = cut_and_deduplicate(recommendations, k)
    vectors = unit(item_vectors)
    out = np.zeros(len(lists))
    for row, items in enumerate(lists):
        items = items[items != EMPTY]
        if len(items) < 2:
            continue
        similarity = vectors[items] @ vectors[items].T
        pairs = len(items) * (len(items) - 1)
        out[row] = 1.0 - (similarity.sum() - np.trace(similarity)) / pairs
    return out


@dataclass(frozen=True)
class Metric:
    """One metric of the registry: evaluation, the CLI table, the reports and the Metrics page loop over it.

    ``compute(lists, k, **inputs)`` receives the (n_sessions, >=K) recommendation lists, the cut-off and the
    inputs named in ``needs`` (``targets``, ``popularity``, ``n_items``, ``item_vectors``); it returns one value
    per session (averaged, and for ``accuracy`` metrics bootstrapped and broken down by prompt length) or a
    single figure. A metric whose input is missing (no item vectors) is left out of that evaluation.
    """

    name: str
    compute: Callable[..., np.ndarray | float]
    needs: tuple[str, ...] = ("targets",)
    accuracy: bool = False  # a per-session hit measure: 95% interval and breakdown by prompt length
    description: str = ""


METRICS: tuple[Metric, ...] = (
    Metric("NDCG", lambda lists, k, targets: ndcg(lists, targets, k), accuracy=True,
           description="normalised discounted cumulative gain of the target"),
    Metric("HR", lambda lists, k, targets: hit_rate(lists, targets, k), accuracy=True,
           description="hit rate: the target is in the top K"),
    Metric("MRR", lambda lists, k, targets: mrr(lists, targets, k), accuracy=True,
           description="reciprocal rank of the target"),
    Metric("Coverage", lambda lists, k, n_items: catalog_coverage(lists, k, n_items), needs=("n_items",),
           description="share of the catalog recommended to anyone"),
    Metric("Serendipity", lambda lists, k, targets, popularity: serendipity(lists, targets, k, popularity),
           needs=("targets", "popularity"), description="hits outside the K most popular items"),
    Metric("Novelty", lambda lists, k, popularity: novelty(lists, k, popularity), needs=("popularity",),
           description="mean self-information of the recommended items"),
    Metric("Diversity", lambda lists, k, item_vectors: intra_list_diversity(lists, k, item_vectors),
           needs=("item_vectors",), description="mean pairwise cosine distance within a list (text embeddings)"),
)
METRIC_NAMES: tuple[str, ...] = tuple(metric.name for metric in METRICS)
ACCURACY: tuple[str, ...] = tuple(metric.name for metric in METRICS if metric.accuracy)


def metric_keys(ks: Sequence[int] = (10, 20)) -> list[str]:
    """``NDCG@10, HR@10, ..., Diversity@20``: every metric at every cut-off, @10 first."""
    return [f"{name}@{k}" for k in ks for name in METRIC_NAMES]


def bootstrap_interval(values: np.ndarray, n_resamples: int = 1000, level: float = 0.95,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of per-session values (Efron & Tibshirani 1993)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    chunk = max(1, 2_000_000 // len(values))  # resample in blocks: ~16 MB of indices at a time
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        means[start:start + size] = values[rng.integers(0, len(values), size=(size, len(values)))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1.0 - alpha))
