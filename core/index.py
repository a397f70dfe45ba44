"""Nearest neighbours over item vectors with faiss (cosine similarity on L2-normalised vectors).

Exact search (``IndexFlatIP``) by default; an HNSW graph for catalogs over ``HNSW_THRESHOLD`` items, where
exact search would be slow and HNSW's recall (~0.99 at these settings) is plenty for browsing and mapping.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import faiss
import numpy as np

from core.vectors import unit

HNSW_THRESHOLD = 200_000
faiss.omp_set_num_threads(2)


class ItemIndex:
    def __init__(self, vectors: np.ndarray, exact: bool | None = None) -> None:
        self.vectors = np.ascontiguousarray(unit(vectors))
        self.n_items, dim = self.vectors.shape
        exact = self.n_items <= HNSW_THRESHOLD if exact is None else exact
        self.index: faiss.Index
        if exact:
            self.index = faiss.IndexFlatIP(dim)
        else:
            graph = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
            graph.hnsw.efSearch = 128
            self.index = graph
        self.index.add(self.vectors)

    def neighbours(self, query: int | Sequence[int] | np.ndarray, k: int = 10,
                   exclude: Iterable[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items most similar to each query: ``(item_ids, cosine similarities)``, each (n_queries, k).

        ``query`` is an item index, a list of item indices (each item is left out of its own neighbours) or
        one/several vectors. ``exclude`` holds items never returned (e.g. the session's items).
        """
        excluded = set(int(i) for i in exclude) if exclude is not None else set()
        array = np.asarray(query)
        if array.dtype.kind in "iu":
            ids = array.reshape(-1).astype(np.int64)
            if len(ids) and (ids.min() < 0 or ids.max() >= self.n_items):
                raise ValueError(f"item index outside 0..{self.n_items - 1}")
            vectors = self.vectors[ids]
            own = [{int(i)} for i in ids]
        else:
            vectors = np.atleast_2d(array).astype(np.float32)
            vectors = unit(vectors)
            own = [set() for _ in range(len(vectors))]
        k = min(k, self.n_items)
        wanted = min(self.n_items, k + len(excluded) + 1)
        sims, found = self.index.search(np.ascontiguousarray(vectors), wanted)
        out_ids = np.full((len(vectors), k), -1, dtype=np.int64)
        out_sims = np.full((len(vectors), k), -np.inf, dtype=np.float32)
        for row in range(len(vectors)):
            skip = excluded | own[row]
            kept = [(i, s) for i, s in zip(found[row], sims[row]) if i >= 0 and int(i) not in skip][:k]
            if kept:
                out_ids[row, :len(kept)] = [i for i, _ in kept]
                out_sims[row, :len(kept)] = [s for _, s in kept]
        return out_ids, out_sims
