"""LLMSeqSim on hand-made embeddings whose answers are known, and on real MiniLM vectors."""

import numpy as np
import pytest

from core import data
from core.decay import position_weights
from core.models.llmseqsim import LLMSeqSim

# Five items on the unit circle at 0, 30, 60, 90 and 180 degrees.
ANGLES = np.deg2rad([0, 30, 60, 90, 180])
VECTORS = np.stack([np.cos(ANGLES), np.sin(ANGLES)], axis=1).astype(np.float32)


def model(**config):
    m = LLMSeqSim(**config)
    m.n_items = len(VECTORS)
    m.set_state({"item_vectors": VECTORS})
    return m


def test_last_item_ranks_its_nearest_items_first():
    items, _ = model(combination="last").recommend([[3, 0]], k=3)  # last item at 0 degrees
    assert items.tolist() == [[1, 2, 4]]  # 30 < 60 < 180 degrees away; 0 and 3 are in the session


def test_mean_with_decay_uses_the_documented_weights():
    m = model(combination="mean", decay="harmonic")
    weights = position_weights("harmonic", 2)  # [1/2, 1]
    assert weights.tolist() == [0.5, 1.0]
    expected = (0.5 * VECTORS[3] + 1.0 * VECTORS[0]) / 1.5
    assert np.allclose(m.session_embedding([np.array([3, 0])])[0], expected, atol=1e-6)
    # Weighted towards 0 degrees (at ~26.6 degrees): 30 degrees is nearest, then 60.
    items, _ = m.recommend([[3, 0]], k=2)
    assert items.tolist() == [[1, 2]]


def test_plain_mean_is_halfway():
    m = model(combination="mean", decay="none")
    assert np.allclose(m.session_embedding([np.array([0, 3])])[0], (VECTORS[0] + VECTORS[3]) / 2)
    items, _ = m.recommend([[0, 3]], k=1)
    assert items.tolist() == [[2]] or items.tolist() == [[1]]  # 45 degrees: 30 and 60 tie


@pytest.mark.parametrize("similarity", ["cosine", "dot", "euclidean"])
def test_similarities_agree_on_unit_vectors(similarity):
    assert model(similarity=similarity).recommend([[0]], k=4)[0].tolist() == [[1, 2, 3, 4]]


def test_euclidean_differs_from_dot_for_unnormalised_vectors():
    m = LLMSeqSim(similarity="euclidean")
    m.n_items = 3
    m.set_state({"item_vectors": np.array([[1, 0], [10, 0], [0.9, 0.1]], dtype=np.float32)})
    assert m.recommend([[0]], k=1)[0].tolist() == [[2]]  # nearest in distance
    m_dot = LLMSeqSim(similarity="dot")
    m_dot.n_items = 3
    m_dot.set_state({"item_vectors": m.item_vectors})
    assert m_dot.recommend([[0]], k=1)[0].tolist() == [[1]]  # largest dot product


def test_real_minilm_vectors_find_the_sequel(ml100k):
    fitted = LLMSeqSim().fit(ml100k.split)
    assert fitted.item_vectors.shape == (1682, 384)
    catalog = ml100k.catalog
    godfather, part2 = catalog.index_of["127"], catalog.index_of["187"]
    items, _ = fitted.recommend([[godfather]], k=1)
    assert items[0, 0] == part2  # "Godfather, The" -> "Godfather: Part II, The"


def test_pca_reduction_option(ml100k):
    fitted = LLMSeqSim(reduction="pca", reduced_dim=32).fit(ml100k.split)
    assert fitted.item_vectors.shape == (1682, 32)
    with pytest.raises(ValueError, match="at most"):
        LLMSeqSim(reduction="lda", reduced_dim=500).fit(ml100k.split)


def test_lda_needs_categories():
    synthetic = data.synthetic()
    assert LLMSeqSim(reduction="lda", reduced_dim=2).fit(synthetic.split).item_vectors.shape[1] == 2
