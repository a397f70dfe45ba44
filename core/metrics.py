"""Top-K metrics for next-item prediction with one target per session.

Conventions (the paper's, Boz et al. 2024, from the authors' evaluation code):

* A recommendation list is first **cut to K, then de-duplicated** (a repeated item counts once, at its
  first position; later copies become empty slots). ``-1`` marks an empty slot.
* Accuracy is binary relevance with a single target; per-session values are averaged over sessions.
* Popularity for serendipity and novelty is a count vector over the catalog. The default passed by
  ``core.evaluate`` is train-only counts (no test leakage); ``--paper-popularity`` uses whole-dataset
  counts as the authors' code did.

Every per-session function returns one float per session so that means, bootstrap confidence intervals
and breakdowns all come from the same numbers.
"""

from __future__ import annotations

import numpy as np

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


ACCURACY = {"NDCG": ndcg, "HR": hit_rate, "MRR": mrr}


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
