"""Dimension reduction of item embeddings: PCA, LDA or Gaussian random projection (scikit-learn).

Fitted on the whole catalog (the paper's LLM2Sequential and LLMSeqSim reduce the catalog's vectors once).
LDA needs a class per item (``catalog.categories``: Steam and MovieLens have genres, Beauty has none) and
gives at most ``n_classes - 1`` dimensions.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
import pandas as pd

from core.common import ConfigError
from core.vectors import unit

Method = Literal["pca", "lda", "random"]
METHODS: tuple[str, ...] = ("pca", "lda", "random")


def reduce_dimensions(vectors: np.ndarray, method: str = "pca", dim: int = 64,
                      classes: Sequence[str] | None = None, normalize: bool = False, seed: int = 0,
                      whiten: bool = False) -> np.ndarray:
    """``vectors`` (n, d) -> (n, dim) float32. ``dim >= d`` with PCA/random keeps the vectors (no padding; PCA
    centres them). ``whiten`` (PCA only): every component scaled to unit variance, so the few directions that
    carry most of the variance of text embeddings no longer dominate similarities."""
    vectors = np.asarray(vectors, dtype=np.float32)
    n, d = vectors.shape
    if dim < 1:
        raise ConfigError(f"reduction dimension must be positive, got {dim}")
    if whiten and method != "pca":
        raise ConfigError(f"whitening is a PCA option; reduction '{method}' cannot whiten")
    if method == "pca":
        if dim >= min(n, d) and not whiten:
            reduced = vectors - vectors.mean(axis=0)
        else:
            from sklearn.decomposition import PCA

            reduced = PCA(n_components=min(dim, n, d), whiten=whiten, random_state=seed).fit_transform(vectors)
    elif method == "random":
        if dim >= d:
            reduced = vectors
        else:
            from sklearn.random_projection import GaussianRandomProjection

            reduced = GaussianRandomProjection(n_components=dim, random_state=seed).fit_transform(vectors)
    elif method == "lda":
        if classes is None or not any(classes):
            raise ConfigError("LDA needs item classes (a 'category' column); this catalog has none — use pca or random")
        labels = np.asarray([c or "(none)" for c in classes])
        n_classes = len(np.unique(labels))
        if n_classes < 2:
            raise ConfigError("LDA needs at least 2 item classes")
        if dim > n_classes - 1:
            raise ConfigError(f"LDA gives at most n_classes - 1 = {n_classes - 1} dimensions, asked for {dim}; "
                             "use pca or random for wider models")
        from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

        within = vectors - pd.DataFrame(vectors).groupby(labels).transform("mean").to_numpy(dtype=np.float32)
        if not np.abs(within).max(initial=0.0) > 1e-6:
            raise ConfigError("LDA cannot run on these item vectors: they do not vary within any category (are the "
                             "titles identical?); use pca or random")
        try:
            reduced = LinearDiscriminantAnalysis(n_components=dim).fit_transform(vectors, labels)
        except (ValueError, IndexError, np.linalg.LinAlgError) as err:
            raise ConfigError(f"LDA cannot run on these item vectors ({type(err).__name__}: "
                             f"{str(err).splitlines()[0] if str(err) else 'degenerate data'}); use pca or random") \
                from None
    else:
        raise ConfigError(f"unknown reduction '{method}'; use one of {list(METHODS)}")
    reduced = np.asarray(reduced, dtype=np.float32)
    if normalize:
        reduced = unit(reduced)
    return reduced
