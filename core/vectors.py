"""Vector helpers shared by embeddings, similarity models, the index and the "why" of a pick."""

from __future__ import annotations

import numpy as np

TINY = 1e-12  # a zero vector stays zero (not NaN) when normalised


def unit(vectors: np.ndarray) -> np.ndarray:
    """Each row divided by its L2 norm, as float32; all-zero rows stay zero. Shape (n, d) -> (n, d)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    return (vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), TINY)).astype(np.float32)
