"""Topics (core.topics): k-means over item vectors named by c-TF-IDF title words, on a tiny catalog whose
titles and vectors form three obvious groups; deterministic, cached, and clear errors for a bad k."""

import numpy as np
import pytest

from core.common import UserError
from core.topics import Topics, cache_path, check_k, cluster, topic_words, topics

GROUPS = {  # title words -> number of items; the vectors of a group sit around one direction
    "red lipstick matte": 6,
    "hair shampoo argan": 4,
    "nail polish glitter": 3,
}


def catalog(seed: int = 0) -> tuple[np.ndarray, list[str], list[int]]:
    """(vectors (13, 8), titles, each item's true group), the items of the groups interleaved."""
    rng = np.random.default_rng(seed)
    truth = [g for g, n in enumerate(GROUPS.values()) for _ in range(n)]
    order = rng.permutation(len(truth))
    truth = [truth[i] for i in order]
    centres = np.eye(8, dtype=np.float32)[:3] * 5.0
    vectors = centres[truth] + rng.normal(scale=0.3, size=(len(truth), 8)).astype(np.float32)
    words = list(GROUPS)
    # each title: its group's words plus a word shared across groups and a size, which must not name a topic
    titles = [f"Brand {words[g].title()} {i} oz for women" for i, g in enumerate(truth)]
    return vectors, titles, truth


def test_clusters_are_the_groups_numbered_by_size_and_named_by_their_words():
    vectors, titles, truth = catalog()
    found = topics(vectors, titles, k=3)
    # the largest group (6 lipsticks) is topic 0, then the shampoos (4), then the polishes (3)
    assert list(found.labels) == truth
    assert list(found.sizes) == [6, 4, 3]
    assert [sorted(words) for words in found.words] == [["lipstick", "matte", "red"], ["argan", "hair", "shampoo"],
                                                        ["glitter", "nail", "polish"]]
    assert found.name(1).startswith("2 · ") and "shampoo" in found.name(1)
    assert found.item_names()[truth.index(2)] == found.name(2)
    assert found.counts(range(13)) == [(0, 6), (1, 4), (2, 3)]
    polishes = [i for i, g in enumerate(truth) if g == 2]
    assert found.counts(polishes + [truth.index(1)]) == [(2, 3), (1, 1)]


def test_words_shared_by_every_group_or_naming_a_size_never_name_a_topic():
    titles = ["red lipstick brand", "red lipstick brand", "hair shampoo brand", "hair shampoo brand ounce"]
    words = topic_words(titles, np.array([0, 0, 1, 1]), k=2, n_words=2)
    assert words == [["lipstick", "red"], ["hair", "shampoo"]]  # "brand" (everywhere) loses; "ounce" never counts
    assert topic_words(["12", "a b", "the"], np.array([0, 1, 1]), k=2) == [[], []]  # no usable word at all


def test_the_same_input_gives_the_same_topics_and_a_second_call_reads_the_cache(monkeypatch):
    vectors, titles, _ = catalog(seed=1)
    first = topics(vectors, titles, k=3, seed=5)
    assert cache_path(vectors, titles, 3, 5).exists()
    assert np.array_equal(cluster(vectors, 3, seed=5), first.labels)  # computed again: identical
    import core.topics

    monkeypatch.setattr(core.topics, "cluster", None)  # a cached answer must not cluster again
    again = topics(vectors, titles, k=3, seed=5)
    assert np.array_equal(again.labels, first.labels) and again.words == first.words
    assert cache_path(vectors, titles, 4, 5) != cache_path(vectors, titles, 3, 5)
    assert cache_path(vectors, [t + "!" for t in titles], 3, 5) != cache_path(vectors, titles, 3, 5)


def test_a_damaged_cache_is_computed_again():
    vectors, titles, truth = catalog(seed=2)
    path = cache_path(vectors, titles, 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not an array")
    assert isinstance(topics(vectors, titles, k=3), Topics)
    assert np.load(path).shape == (len(truth),)


@pytest.mark.parametrize("k, message", [(14, "14 topics need at least 14 items; the catalog has 13"),
                                         (1, "topics need k of at least 2, got 1")])
def test_a_bad_k_is_one_clear_sentence(k, message):
    vectors, titles, _ = catalog()
    with pytest.raises(UserError, match=message):
        topics(vectors, titles, k=k)
    with pytest.raises(UserError, match="at most 40 topics"):
        check_k(41, 1000)
    with pytest.raises(UserError, match="one title per item vector"):
        topics(vectors, titles[:-1], k=3)
