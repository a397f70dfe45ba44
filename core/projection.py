"""2-D maps of item vectors (UMAP, or PCA as the fast fallback), cached under ``cache/projections/``.

UMAP (umap-learn, cosine metric) on Beauty's 12,101 x 384 MiniLM vectors takes about a minute and a half on
2 cores in a fresh process (most of it numba compiling), so the app computes it only when asked, in a
background job, and reads it from the cache afterwards. PCA takes a second or two and is what the map shows
until a UMAP exists. The cache key is a hash of the vectors' bytes plus the method and its parameters, so
new embeddings or a retrained model never reuse a stale map.

``learned_item_vectors`` gets a trained model's own item vectors (e.g. SASRec's item table after training)
so the app can show what training did to the LLM space.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import numpy as np

from core.embeddings import _atomic_save  # the embeddings cache's atomic .npy write
from core.models.base import Progress, Recommender

Method = Literal["umap", "pca"]
UMAP_PARAMS = {"n_neighbors": 15, "min_dist": 0.1, "metric": "cosine"}  # umap-learn's defaults, but cosine


def cache_path(vectors: np.ndarray, method: Method, seed: int = 0) -> Path:
    from core.evaluate import CACHE_DIR

    digest = hashlib.sha256(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
    digest.update(json.dumps({"method": method, "seed": seed, **(UMAP_PARAMS if method == "umap" else {})},
                             sort_keys=True).encode())
    return CACHE_DIR / "projections" / f"{method}-{vectors.shape[0]}x{vectors.shape[1]}-{digest.hexdigest()[:16]}.npy"


def cached_projection(vectors: np.ndarray, method: Method, seed: int = 0) -> np.ndarray | None:
    """The cached 2-D coordinates, or None when this map has never been computed (never computes)."""
    path = cache_path(vectors, method, seed)
    if not path.exists():
        return None
    coords = np.load(path)
    return coords if coords.shape == (len(vectors), 2) else None


def project(vectors: np.ndarray, method: Method = "pca", seed: int = 0,
            progress: Progress | None = None) -> np.ndarray:
    """(n, 2) float32 coordinates of ``vectors``, from the cache or computed and cached."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    cached = cached_projection(vectors, method, seed)
    if cached is not None:
        return cached
    if method not in ("umap", "pca"):
        raise ValueError(f"unknown projection '{method}'; use 'umap' or 'pca'")
    if len(vectors) < 3:
        raise ValueError(f"a map needs at least 3 items, got {len(vectors)}")
    if progress:
        progress(0, 1, f"{method.upper()} of {len(vectors):,} items")
    if method == "pca":
        from sklearn.decomposition import PCA

        coords = PCA(n_components=2, random_state=seed).fit_transform(vectors)
    else:
        import umap

        neighbours = min(UMAP_PARAMS["n_neighbors"], len(vectors) - 1)
        reducer = umap.UMAP(n_components=2, random_state=seed, n_jobs=1,
                            **{**UMAP_PARAMS, "n_neighbors": neighbours})
        coords = reducer.fit_transform(vectors)
    coords = np.asarray(coords, dtype=np.float32)
    _atomic_save(cache_path(vectors, method, seed), coords)
    if progress:
        progress(1, 1, f"{method.upper()} done")
    return coords


def learned_item_vectors(model: Recommender) -> np.ndarray | None:
    """A trained model's own item vectors, (n_items, d), or None when it has none (e.g. SKNN).

    Looks in the model's saved state for a 2-D array named like an item table (``item_table``,
    ``item_vectors``, ``item_embedding``...) with at least ``n_items`` rows; the first ``n_items`` rows are the
    catalog items (padding and mask rows come after them in this project's models).
    """
    arrays = model.state()
    for key in sorted(arrays):
        lowered = key.lower()
        array = arrays[key]
        if ("item" in lowered and any(word in lowered for word in ("table", "emb", "vector"))
                and array.ndim == 2 and array.shape[0] >= model.n_items):
            return np.asarray(array[: model.n_items], dtype=np.float32)
    return None


def source_vectors(dataset: Any, source: str, embedding: dict[str, Any] | None = None) -> np.ndarray:
    """The vectors a map shows: ``"embeddings"`` (the catalog's LLM embeddings for ``embedding``, an
    EmbeddingSpec as a dict) or the folder of a trained model (its learned item vectors)."""
    if source == "embeddings":
        from core.embeddings import EmbeddingSpec, item_embeddings

        return item_embeddings(dataset.catalog, EmbeddingSpec(**(embedding or {})))
    model = Recommender.load(Path(source))
    vectors = learned_item_vectors(model)
    if vectors is None:
        raise ValueError(f"{model.name} has no item vectors to map")
    return vectors

