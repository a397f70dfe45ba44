"""Hand-computed cases for every metric (one target per session)."""

import math

import numpy as np
import pytest

from core import metrics

LISTS = np.array([
    [5, 1, 2, 3],   # target 5 at rank 1
    [1, 2, 5, 3],   # target 5 at rank 3
    [1, 2, 3, 4],   # no hit
    [1, 1, 1, 5],   # duplicates: cut to K, then de-duplicated -> [1, -, -, 5]; 5 stays at rank 4
])
TARGETS = np.array([5, 5, 5, 5])


def test_rank_hit_at_1_and_3_and_none():
    assert metrics.target_rank(LISTS, TARGETS, 4).tolist() == [1, 3, 0, 4]


def test_cut_then_deduplicate():
    # Cut to K=2 first: [1, 1] -> [1, -1]; the 5 at position 4 is gone.
    assert metrics.cut_and_deduplicate(LISTS, 2)[3].tolist() == [1, -1]
    assert metrics.target_rank(LISTS, TARGETS, 3).tolist() == [1, 3, 0, 0]


def test_hit_rate():
    assert metrics.hit_rate(LISTS, TARGETS, 4).tolist() == [1, 1, 0, 1]
    assert metrics.hit_rate(LISTS, TARGETS, 1).tolist() == [1, 0, 0, 0]


def test_ndcg_values():
    expected = [1.0, 1 / math.log2(4), 0.0, 1 / math.log2(5)]
    assert metrics.ndcg(LISTS, TARGETS, 4) == pytest.approx(expected)


def test_mrr_values():
    assert metrics.mrr(LISTS, TARGETS, 4) == pytest.approx([1.0, 1 / 3, 0.0, 1 / 4])


def test_empty_lists_score_zero():
    empty = np.full((2, 3), -1)
    assert metrics.ndcg(empty, np.array([0, 1]), 3).tolist() == [0, 0]
    assert metrics.catalog_coverage(empty, 3, 10) == 0.0
    assert metrics.novelty(empty, 3, np.ones(10)).tolist() == [0, 0]


def test_catalog_coverage():
    # Distinct items in the top-2 lists: {5,1,2} -> 3 of 10
    assert metrics.catalog_coverage(LISTS, 2, 10) == pytest.approx(0.3)
    assert metrics.catalog_coverage(LISTS, 4, 10) == pytest.approx(0.5)  # {1,2,3,4,5}


def test_serendipity_counts_only_hits_outside_the_k_most_popular():
    popularity = np.array([100, 90, 80, 0, 0, 70, 0, 0, 0, 0])  # top-2 popular: items 0 and 1
    lists = np.array([[5, 2], [0, 5], [3, 4]])
    targets = np.array([5, 0, 9])
    # session 0: hit on 5, 5 not in top-2 popular -> 1; session 1: hit on 0 but 0 is popular -> 0; no hit -> 0
    assert metrics.serendipity(lists, targets, 2, popularity).tolist() == [1, 0, 0]
    # With K=1 only item 0 is "expected"; session 0 hits 5 at rank 1 -> 1; session 1's 5 is not the target.
    assert metrics.serendipity(lists, targets, 1, popularity).tolist() == [1, 0, 0]


def test_novelty_is_mean_self_information():
    popularity = np.array([2, 1, 1, 0])  # total (zero counted as 1) = 5
    lists = np.array([[0, 1], [3, -1]])
    expected0 = (-math.log2(2 / 5) - math.log2(1 / 5)) / 2
    expected1 = -math.log2(1 / 5)  # the empty slot is not averaged in
    assert metrics.novelty(lists, 2, popularity) == pytest.approx([expected0, expected1])


def test_bootstrap_interval_contains_mean_and_shrinks_with_n():
    rng = np.random.default_rng(1)
    small = rng.binomial(1, 0.1, 200).astype(float)
    large = rng.binomial(1, 0.1, 20000).astype(float)
    low, high = metrics.bootstrap_interval(small)
    assert low <= small.mean() <= high
    low_l, high_l = metrics.bootstrap_interval(large)
    assert (high_l - low_l) < (high - low)
    assert metrics.bootstrap_interval(np.ones(50)) == (1.0, 1.0)


def test_intra_list_diversity_hand_computed():
    vectors = np.array([[1, 0], [0, 1], [1, 1], [2, 0]], dtype=np.float32)  # item 3 points like item 0
    lists = np.array([[0, 1, -1], [0, 3, -1], [0, 2, 1], [2, -1, -1]])
    # [0, 1]: orthogonal -> distance 1; [0, 3]: same direction -> 0; [0, 2, 1]: pairs 0-2 and 2-1 at
    # cos 1/sqrt(2), 0-1 at cos 0 -> 1 - (2/sqrt(2) + 0) / 3; a single item -> 0
    expected = [1.0, 0.0, 1 - (2 / math.sqrt(2)) / 3, 0.0]
    assert metrics.intra_list_diversity(lists, 3, vectors) == pytest.approx(expected, abs=1e-6)
    assert metrics.intra_list_diversity(np.array([[0, 0, 1]]), 3, vectors) == pytest.approx([1.0])  # dedupe


def test_the_registry_drives_every_consumer(synthetic):
    from core.evaluate import score_lists

    lists = np.column_stack([synthetic.split.targets, np.arange(synthetic.split.n_test) % 30])
    vectors = np.eye(synthetic.catalog.n_items, dtype=np.float32)
    with_vectors = score_lists(lists, synthetic.split, synthetic.split.train_popularity, item_vectors=vectors)
    assert set(with_vectors["metrics"]) == set(metrics.metric_keys())
    assert set(with_vectors["intervals"]) == {f"{m}@{k}" for k in (10, 20) for m in metrics.ACCURACY}
    without = score_lists(lists, synthetic.split, synthetic.split.train_popularity)
    assert "Diversity@20" not in without["metrics"] and "NDCG@20" in without["metrics"]
