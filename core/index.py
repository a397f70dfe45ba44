"""Nearest neighbours over item vectors with faiss: cosine similarity on L2-normalised vectors, so the inner
product *is* the cosine.

Three kinds of index, chosen by catalog size and a memory budget (:func:`choose_index`, its docstring holds the
rule and the byte estimates), or forced (``kind=`` or ``$LLMSEQ_FAISS_INDEX``):

* ``exact``: ``IndexFlatIP``, brute force; every answer is the true top-k.
* ``hnsw``: ``IndexHNSWFlat`` (Malkov & Yashunin 2018, "Efficient and robust approximate nearest neighbor search
  using Hierarchical Navigable Small World graphs"), inner product, M=32, efConstruction=80, efSearch=128: a graph
  walk instead of a scan, the vectors stored in full so the similarities it returns are exact.
* ``ivfpq``: ``IndexIVFPQ`` (Jégou, Douze & Schmid 2011, "Product quantization for nearest neighbor search")
  over an inner-product coarse quantizer of ``nlist ≈ 4·√n`` lists (a flat scan of the centroids: an HNSW graph
  over them made training and adding 1M vectors 4× slower here). Each vector is stored as ``m`` one-byte codes
  (``m`` divides the dimension, ``dim/m ≈ 8``); ``nprobe`` lists are scanned per query. The top
  ``refine_factor × k`` candidates are re-scored exactly (``IndexRefine`` over a float16 copy of the vectors:
  cosine correct to ~1e-3), which brings recall up at 2 bytes per dimension instead of 4.

An approximate index measures its recall@20 against exact search when it is built (:func:`measure_recall`, on
a seeded sample of item vectors as queries) and keeps it with its build time and memory
(``index.recall_at_20``, ``index.build_seconds``, ``index.memory_bytes``, ``index.kind``). :func:`benchmark`
measures every kind on the same vectors (build, memory, latency, recall) for ``bench/scale.py``.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import faiss
import numpy as np

from core.common import ConfigError, Progress
from core.vectors import unit

faiss.omp_set_num_threads(2)

KINDS = ("exact", "hnsw", "ivfpq")
EXACT_MAX_ITEMS = 200_000  # above this, a scan per query is slow (~30 ms at 384 dims) and HNSW is the default
HNSW_THRESHOLD = EXACT_MAX_ITEMS  # the name earlier versions exported
ADD_BLOCK = 65_536  # vectors normalised and added at a time: memory for the copy stays ~100 MB at 384 dims
RECALL_K = 20
ENV_KIND = "LLMSEQ_FAISS_INDEX"
ENV_BUDGET = "LLMSEQ_FAISS_MEMORY_MB"


@dataclass(frozen=True)
class IndexOptions:
    """The parameters of each index kind; ``None`` means "derived from the catalog" (see each field)."""

    hnsw_m: int = 32  # graph degree (2·M links on level 0): faiss's usual value for 100–1000 dims
    ef_construction: int = 80  # candidates kept while inserting: faiss's 40 gave recall@20 0.83 at 1M, 80 gives 0.97
    ef_search: int = 128  # candidates kept while searching (256: recall 0.99 at 1.5× the query time)
    nlist: int | None = None  # IVF lists; None: 4·√n, at most n/39 (faiss wants 39 training points a centroid)
    nprobe: int | None = None  # lists scanned per query; None: nlist/32 (at least 8): ~3% of the catalog
    pq_m: int | None = None  # PQ sub-vectors; None: the largest divisor of dim up to dim/8 (8 dims a code)
    pq_bits: int | None = None  # bits a code; None: 8, fewer when the catalog is too small to train 256 centroids
    refine_factor: int = 8  # PQ candidates re-scored for each result wanted: recall@20 0.96 at 4, 0.999 at 8 (1M)
    kmeans_iterations: int = 10  # k-means iterations (coarse and PQ): faiss's 25 change recall little, cost 2.5×
    recall_queries: int = 1000  # item vectors used as queries to measure recall@20 (a seeded sample)
    seed: int = 0  # the sample of training vectors and of recall queries

    def __post_init__(self) -> None:
        for name in ("hnsw_m", "ef_construction", "ef_search", "refine_factor", "kmeans_iterations"):
            if getattr(self, name) < 1:
                raise ConfigError(f"index option {name} must be at least 1, got {getattr(self, name)}")
        for name in ("nlist", "nprobe", "pq_m"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"index option {name} must be at least 1, got {value}")
        if self.pq_bits is not None and not 1 <= self.pq_bits <= 16:
            raise ConfigError(f"index option pq_bits must be 1..16, got {self.pq_bits}")
        if self.recall_queries < 0:
            raise ConfigError(f"index option recall_queries must be 0 or more, got {self.recall_queries}")


# ------------------------------------------------------------------------------------- choosing an index


def default_memory_budget() -> int:
    """Bytes an index may take: ``$LLMSEQ_FAISS_MEMORY_MB`` megabytes when set, else a quarter of the machine's
    physical memory (5.9 GB on a 23.5 GB machine). Raises :class:`ConfigError` for a value that is not a positive
    number."""
    return index_settings()[1]


def index_settings() -> tuple[str, int]:
    """The environment's index settings, read here only: ``($LLMSEQ_FAISS_INDEX or "auto", memory budget in
    bytes)``. Raises :class:`ConfigError` (one sentence) for a kind not in ``auto, exact, hnsw, ivfpq`` or a
    budget that is not a positive number of megabytes."""
    kind = os.environ.get(ENV_KIND, "").strip().lower() or "auto"
    if kind not in ("auto", *KINDS):
        raise ConfigError(f"{ENV_KIND}={os.environ[ENV_KIND]!r}: choose auto, {', '.join(KINDS)}")
    raw = os.environ.get(ENV_BUDGET, "").strip()
    if raw:
        try:
            megabytes = float(raw)
        except ValueError:
            megabytes = -1.0
        if not megabytes > 0:
            raise ConfigError(f"{ENV_BUDGET}={raw!r}: give the index's memory budget in megabytes, e.g. 4096")
        return kind, int(megabytes * 1024**2)
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        physical = 16 * 1024**3
    return kind, physical // 4


def _pq_m(dim: int, options: IndexOptions) -> int:
    if options.pq_m is not None:
        if dim % options.pq_m:
            raise ConfigError(f"index option pq_m={options.pq_m} must divide the dimension {dim}")
        return options.pq_m
    return max(m for m in range(1, max(1, dim // 8) + 1) if dim % m == 0)


def _nlist(n_items: int, options: IndexOptions) -> int:
    if options.nlist is not None:
        return min(options.nlist, n_items)
    return max(1, min(round(4 * math.sqrt(n_items)), n_items // 39))


def _pq_bits(n_items: int, options: IndexOptions) -> int:
    if options.pq_bits is not None:
        return options.pq_bits
    return int(min(8, max(1, math.floor(math.log2(max(2, n_items // 39))))))


def estimated_bytes(kind: str, n_items: int, dim: int, options: IndexOptions = IndexOptions()) -> int:
    """Bytes the index of ``kind`` holds for ``n_items`` vectors of ``dim`` float32 (:func:`choose_index`)."""
    if kind == "exact":
        return n_items * dim * 4
    if kind == "hnsw":
        # vectors + level-0 links (2·M int32) + ~1 upper-level link + an int64 offset and an int32 level each
        return n_items * (dim * 4 + 8 * options.hnsw_m + 16)
    if kind == "ivfpq":
        m, bits, nlist = _pq_m(dim, options), _pq_bits(n_items, options), _nlist(n_items, options)
        codes = n_items * (math.ceil(m * bits / 8) + 8)  # PQ code + int64 id in its list
        return codes + n_items * dim * 2 + nlist * dim * 4 + (2**bits) * dim * 4  # fp16 refine + centroids
    raise ConfigError(f"unknown index kind {kind!r}: choose {', '.join(KINDS)}")


def choose_index(n_items: int, dim: int, memory_budget_bytes: int | None = None,
                 options: IndexOptions = IndexOptions()) -> str:
    """The index kind for a catalog: ``"exact"``, ``"hnsw"`` or ``"ivfpq"``.

    The rule (bytes for ``n`` vectors of ``d`` dimensions, M = ``options.hnsw_m``, m = PQ sub-vectors):

    1. ``exact`` when ``n <= 200,000`` and the flat vectors, ``4·n·d`` bytes, fit the budget: one query scans
       200k 384-dim vectors in ~30 ms on 2 cores (measured 20 ms at 100k, 140 ms at 1M), fine for browsing, and
       every answer is right.
    2. else ``hnsw`` when its graph with its vectors, ``n·(4·d + 8·M + 16)`` bytes, fits: queries in under 1 ms,
       the similarities exact, recall@20 ~0.97 (1M clustered vectors).
    3. else ``ivfpq``: ``n·(m + 8 + 2·d)`` bytes plus centroids (codes, ids, the float16 copy the top candidates
       are re-scored with) — the smallest; 1M × 384 dims: 0.8 GB against HNSW's 1.8 GB and exact's 1.5 GB.
       A budget that even this does not fit still gets it (it is the smallest there is).

    ``memory_budget_bytes`` None: :func:`default_memory_budget` (``$LLMSEQ_FAISS_MEMORY_MB``, else a quarter of
    physical memory). Raises :class:`ConfigError` for a negative size or a budget below 1 byte.
    """
    if n_items < 0 or dim < 1:
        raise ConfigError(f"an index needs n_items >= 0 and dim >= 1, got {n_items} items of {dim} dims")
    budget = default_memory_budget() if memory_budget_bytes is None else memory_budget_bytes
    if budget < 1:
        raise ConfigError(f"the index's memory budget must be positive, got {budget} bytes")
    if n_items <= EXACT_MAX_ITEMS and estimated_bytes("exact", n_items, dim) <= budget:
        return "exact"
    if estimated_bytes("hnsw", n_items, dim, options) <= budget:
        return "hnsw"
    return "ivfpq"


# ------------------------------------------------------------------------------------- exact ground truth


def exact_top_k(queries: np.ndarray, vectors: np.ndarray, k: int,
                block: int = 32_768) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force cosine top-``k`` of each query (n_queries, dim) over ``vectors`` (n, dim; any float array, a
    memory map too), normalised a block of rows at a time so the extra memory is ``n_queries × block`` floats:
    ``(ids, cosines)``, each (n_queries, min(k, n)), best first (the order among equal cosines unspecified)."""
    queries = unit(queries)
    k = min(k, len(vectors))
    best_ids = np.zeros((len(queries), 0), dtype=np.int64)
    best_sims = np.zeros((len(queries), 0), dtype=np.float32)
    for start in range(0, len(vectors), block):
        sims = queries @ unit(vectors[start:start + block]).T
        if sims.shape[1] > k:
            top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            sims, ids = np.take_along_axis(sims, top, 1), top + start
        else:
            ids = np.broadcast_to(np.arange(start, start + sims.shape[1], dtype=np.int64), sims.shape)
        best_sims, best_ids = np.concatenate([best_sims, sims], axis=1), np.concatenate([best_ids, ids], axis=1)
        if best_sims.shape[1] > k:
            top = np.argpartition(-best_sims, k - 1, axis=1)[:, :k]
            best_sims, best_ids = np.take_along_axis(best_sims, top, 1), np.take_along_axis(best_ids, top, 1)
    order = np.argsort(-best_sims, axis=1, kind="stable")
    return np.take_along_axis(best_ids, order, 1), np.take_along_axis(best_sims, order, 1)


# ------------------------------------------------------------------------------------- the index


@dataclass
class BuildReport:
    """What building an index measured (kept on the index as attributes of the same names)."""

    kind: str
    n_items: int
    dim: int
    build_seconds: float
    memory_bytes: int
    recall_at_20: float | None  # None when not measured
    reason: str
    parameters: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        recall = "not measured" if self.recall_at_20 is None else f"{self.recall_at_20:.3f}"
        params = ", ".join(f"{k}={v}" for k, v in self.parameters.items())
        return (f"{self.kind} index over {self.n_items:,} × {self.dim} ({params}): built in "
                f"{self.build_seconds:.1f} s, {self.memory_bytes / 1024**2:,.0f} MB, recall@20 vs exact {recall} "
                f"({self.reason})")


def _float_view(index: faiss.Index, n: int, dim: int) -> np.ndarray:
    """The flat vectors a faiss IndexFlat stores, as a read-only numpy view (no copy; valid while it lives)."""
    flat: Any = faiss.downcast_index(index)  # the stubs type it as a plain Index
    view = faiss.rev_swig_ptr(flat.get_xb(), n * dim).reshape(n, dim)
    view.flags.writeable = False
    return view


class ItemIndex:
    """Cosine nearest neighbours over ``vectors`` (n_items, dim), of the kind :func:`choose_index` picks.

    ``kind``: ``"auto"`` (``$LLMSEQ_FAISS_INDEX`` when set, else :func:`choose_index`), or ``"exact"``,
    ``"hnsw"``, ``"ivfpq"`` to force one. ``exact`` (True/False) is the earlier spelling of ``kind="exact"`` /
    ``"hnsw"``. ``memory_budget_bytes`` None: :func:`default_memory_budget`. ``measure``: whether an approximate
    index measures its recall@20 (``options.recall_queries`` queries; an exact index has 1.0 by construction).
    ``progress`` hears the build's steps. Raises :class:`ConfigError` for an unknown kind or bad options,
    ``ValueError`` for vectors that are not a non-empty 2-D array.

    After building: ``kind``, ``n_items``, ``dim``, ``build_seconds`` (recall measurement included, which is
    ``recall_seconds``), ``memory_bytes`` (the faiss index's
    structures; for exact and HNSW they include the only copy of the vectors the index keeps), ``recall_at_20``,
    ``report`` (a :class:`BuildReport`; ``report.line()`` for a log).
    """

    def __init__(self, vectors: np.ndarray, kind: str = "auto", memory_budget_bytes: int | None = None, *,
                 exact: bool | None = None, options: IndexOptions = IndexOptions(), measure: bool = True,
                 progress: Progress | None = None) -> None:
        if getattr(vectors, "ndim", None) != 2 or len(vectors) == 0:
            raise ValueError(f"an item index needs a non-empty 2-D array of vectors, got shape "
                             f"{getattr(vectors, 'shape', None)}")
        start = time.perf_counter()
        self.n_items, self.dim = int(vectors.shape[0]), int(vectors.shape[1])
        self.options = options
        if exact is not None:
            kind = "exact" if exact else "hnsw"
        env_kind, budget = index_settings() if kind == "auto" else (kind, 0)
        budget = budget if memory_budget_bytes is None else memory_budget_bytes
        if kind == "auto" and env_kind != "auto":
            kind, reason = env_kind, f"forced by {ENV_KIND}"
        elif kind == "auto":
            kind = choose_index(self.n_items, self.dim, budget, options)
            reason = f"chosen for {self.n_items:,} items and a {budget / 1024**3:.1f} GB budget"
        elif kind in KINDS:
            reason = "asked for"
        else:
            raise ConfigError(f"unknown index kind {kind!r}: choose auto, {', '.join(KINDS)}")
        self.kind = kind
        self._parts: list[faiss.Index] = []  # sub-indexes the Python side must keep alive
        self._stored: np.ndarray | None = None  # the exact/HNSW index's vectors, viewed in place
        self.parameters: dict[str, int] = {}
        self.memory_bytes = 0
        if kind == "exact":
            self.index = self._build_exact(vectors, progress)
        elif kind == "hnsw":
            self.index = self._build_hnsw(vectors, progress)
        else:
            self.index = self._build_ivfpq(vectors, progress)
        self.recall_at_20: float | None = 1.0 if kind == "exact" else None
        self.recall_seconds = 0.0
        if kind != "exact" and measure and options.recall_queries:
            if progress:
                progress(0, 1, f"measuring recall@{RECALL_K} against exact search")
            measuring = time.perf_counter()
            self.recall_at_20 = measure_recall(self, vectors, options.recall_queries, seed=options.seed)
            self.recall_seconds = time.perf_counter() - measuring
        self.build_seconds = time.perf_counter() - start
        self.report = BuildReport(kind=kind, n_items=self.n_items, dim=self.dim, build_seconds=self.build_seconds,
                                  memory_bytes=self.memory_bytes, recall_at_20=self.recall_at_20, reason=reason,
                                  parameters=self.parameters)
        if progress:
            progress(1, 1, self.report.line())

    # -- building

    def _add_in_blocks(self, index: faiss.Index, vectors: np.ndarray, progress: Progress | None, what: str) -> None:
        for start in range(0, self.n_items, ADD_BLOCK):
            index.add(np.ascontiguousarray(unit(vectors[start:start + ADD_BLOCK])))
            if progress:
                progress(min(start + ADD_BLOCK, self.n_items), self.n_items, what)

    def _build_exact(self, vectors: np.ndarray, progress: Progress | None) -> faiss.Index:
        index = faiss.IndexFlatIP(self.dim)
        self._add_in_blocks(index, vectors, progress, "exact index: adding vectors")
        self._stored = _float_view(index, self.n_items, self.dim)
        self.memory_bytes = self.n_items * self.dim * 4
        return index

    def _build_hnsw(self, vectors: np.ndarray, progress: Progress | None) -> faiss.Index:
        o = self.options
        index = faiss.IndexHNSWFlat(self.dim, o.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = o.ef_construction
        index.hnsw.efSearch = o.ef_search
        self.parameters = {"M": o.hnsw_m, "efConstruction": o.ef_construction, "efSearch": o.ef_search}
        self._add_in_blocks(index, vectors, progress, "HNSW index: adding vectors")
        self._stored = _float_view(index.storage, self.n_items, self.dim)
        graph: Any = index.hnsw  # the stubs leave out its arrays
        self.memory_bytes = (self.n_items * self.dim * 4 + graph.neighbors.size() * 4 + graph.offsets.size() * 8
                             + graph.levels.size() * 4)
        return index

    def _build_ivfpq(self, vectors: np.ndarray, progress: Progress | None) -> faiss.Index:
        o = self.options
        nlist, m, bits = _nlist(self.n_items, o), _pq_m(self.dim, o), _pq_bits(self.n_items, o)
        nprobe = min(nlist, o.nprobe if o.nprobe is not None else max(8, nlist // 32))
        quantizer = faiss.IndexFlatIP(self.dim)
        ivf = faiss.IndexIVFPQ(quantizer, self.dim, nlist, m, bits, faiss.METRIC_INNER_PRODUCT)
        ivf.cp.niter = o.kmeans_iterations
        # sizes are chosen so that faiss has enough training points; its "please provide more" notes are noise
        ivf.cp.min_points_per_centroid = 1
        ivf.pq.cp.min_points_per_centroid = 1
        ivf.pq.cp.niter = o.kmeans_iterations
        ivf.nprobe = nprobe
        store = faiss.IndexScalarQuantizer(self.dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
        index = faiss.IndexRefine(ivf, store)
        index.k_factor = o.refine_factor
        self._parts = [quantizer, ivf, store]
        self.parameters = {"nlist": nlist, "nprobe": nprobe, "m": m, "bits": bits, "refine_factor": o.refine_factor}
        n_train = min(self.n_items, max(40 * nlist, 40 * 2**bits, 50_000))
        rng = np.random.default_rng(o.seed)
        sample = np.sort(rng.choice(self.n_items, n_train, replace=False))
        if progress:
            progress(0, self.n_items, f"IVF-PQ index: training on {n_train:,} vectors")
        index.train(np.ascontiguousarray(unit(vectors[sample])))
        self._add_in_blocks(index, vectors, progress, "IVF-PQ index: adding vectors")
        codes = ivf.ntotal * (ivf.code_size + 8)  # a code and an int64 id in its list
        centroids = quantizer.ntotal * self.dim * 4 + ivf.pq.M * ivf.pq.ksub * ivf.pq.dsub * 4
        self.memory_bytes = codes + centroids + store.ntotal * store.code_size
        return index

    # -- searching

    @property
    def vectors(self) -> np.ndarray:
        """The normalised item vectors (n_items, dim): the index's own copy for exact and HNSW (read-only, no
        copy); for IVF-PQ decoded from its float16 store (a new array)."""
        if self._stored is not None:
            return self._stored
        return self.item_vectors(np.arange(self.n_items))

    def item_vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of items ``ids`` (len(ids), dim), float32 (float16-rounded for IVF-PQ)."""
        ids = np.asarray(ids, dtype=np.int64)
        if self._stored is not None:
            return np.asarray(self._stored[ids])
        return self.index.reconstruct_batch(ids)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The raw faiss search of unit ``queries`` (n, dim): ``(similarities, ids)``, each (n, k); ids -1 where
        fewer than k were found (an IVF list scan can come up short)."""
        return self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)

    def neighbours(self, query: int | Sequence[int] | np.ndarray, k: int = 10,
                   exclude: Iterable[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items most similar to each query: ``(item_ids, cosine similarities)``, each (n_queries, k).

        ``query`` is an item index, a list of item indices (each item is left out of its own neighbours) or
        one/several vectors. ``exclude`` holds items never returned (e.g. the session's items). Rows with fewer
        than ``k`` items found hold -1 / -inf at the end. Raises ``ValueError`` for an item index out of range.
        """
        excluded = set(int(i) for i in exclude) if exclude is not None else set()
        array = np.asarray(query)
        if array.dtype.kind in "iu":
            ids = array.reshape(-1).astype(np.int64)
            if len(ids) and (ids.min() < 0 or ids.max() >= self.n_items):
                raise ValueError(f"item index outside 0..{self.n_items - 1}")
            vectors = self.item_vectors(ids)
            own = [{int(i)} for i in ids]
        else:
            vectors = np.atleast_2d(array).astype(np.float32)
            vectors = unit(vectors)
            own = [set() for _ in range(len(vectors))]
        k = min(k, self.n_items)
        wanted = min(self.n_items, k + len(excluded) + 1)
        sims, found = self.search(vectors, wanted)
        out_ids = np.full((len(vectors), k), -1, dtype=np.int64)
        out_sims = np.full((len(vectors), k), -np.inf, dtype=np.float32)
        for row in range(len(vectors)):
            skip = excluded | own[row]
            kept = [(i, s) for i, s in zip(found[row], sims[row]) if i >= 0 and int(i) not in skip][:k]
            if kept:
                out_ids[row, :len(kept)] = [i for i, _ in kept]
                out_sims[row, :len(kept)] = [s for _, s in kept]
        return out_ids, out_sims


# ------------------------------------------------------------------------------------- measuring


def recall_queries(n_items: int, n_queries: int = 1000, seed: int = 0) -> np.ndarray:
    """The item indices :func:`measure_recall` queries with: a seeded sample of ``min(n_queries, n_items)``,
    sorted."""
    return np.sort(np.random.default_rng(seed).choice(n_items, min(n_queries, n_items), replace=False))


def exact_neighbours(vectors: np.ndarray, query_ids: np.ndarray, k: int = RECALL_K) -> tuple[np.ndarray, np.ndarray]:
    """The exact ``k`` nearest *other* items of each item in ``query_ids``: ``(ids, cosines)``, each
    (len(query_ids), k), by brute force (:func:`exact_top_k`); the ground truth of :func:`measure_recall`."""
    ids, sims = exact_top_k(vectors[query_ids], vectors, k + 1)
    keep = ids != query_ids[:, None]
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]  # drop the item itself (or, if absent, the last)
    return np.take_along_axis(ids, order, 1), np.take_along_axis(sims, order, 1)


def measure_recall(index: ItemIndex, vectors: np.ndarray, n_queries: int = 1000, k: int = RECALL_K,
                   seed: int = 0, truth: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> float:
    """Recall@k of ``index`` against exact search, with ``n_queries`` item vectors (:func:`recall_queries`: a
    seeded sample of rows of ``vectors``, the vectors the index was built from) as queries.

    For each query item, its ``k`` nearest *other* items (as :meth:`ItemIndex.neighbours` returns them) are
    compared with the exact ones (:func:`exact_neighbours`, brute force in blocks). A found item counts as a hit
    when its true cosine reaches the exact k-th cosine (less 1e-5), so ties at the k-th place do not count
    against the index. Recall = hits / (n_queries × k), in [0, 1]; 1.0 for an exact index. ``truth``: ``(query
    ids, exact ids, exact cosines)`` computed once for several indexes (:func:`benchmark`).
    """
    n = len(vectors)
    k = min(k, n - 1)
    if k < 1:
        return 1.0
    if truth is None:
        query_ids = recall_queries(n, n_queries, seed)
        truth = (query_ids, *exact_neighbours(vectors, query_ids, k))
    query_ids, _, truth_sims = truth
    kth = truth_sims[:, k - 1]
    queries = unit(vectors[query_ids])
    found, _ = index.neighbours(query_ids, k=k)
    hits = 0
    for row in range(len(query_ids)):
        ids = found[row][found[row] >= 0]
        if len(ids):
            true = unit(vectors[np.sort(ids)]) @ queries[row]
            hits += int((true >= kth[row] - 1e-5).sum())
    return hits / (len(query_ids) * k)


def _resident_bytes() -> int:
    try:
        with open("/proc/self/statm") as stream:
            return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def benchmark(vectors: np.ndarray, kinds: Sequence[str] = KINDS, n_queries: int = 1000, single_queries: int = 200,
              options: IndexOptions = IndexOptions(), progress: Progress | None = None) -> list[dict[str, Any]]:
    """Build each index of ``kinds`` over ``vectors`` (n, dim) and measure it; one row (a dict) per kind:

    ``kind``, ``n_items``, ``dim``, ``build_seconds`` (the index alone), ``recall_seconds`` (what measuring
    recall@20 adds to a build: exact neighbours of the queries by brute force, then the comparison),
    ``memory_mb`` (the index's structures, :attr:`ItemIndex.memory_bytes`),
    ``rss_growth_mb`` (the process's resident memory after the build less before: what the index really took,
    allocator slack included), ``ms_per_query_single`` (mean of ``single_queries`` calls of
    ``neighbours(item, k=20)``), ``ms_per_query_batched`` (one ``neighbours`` call for ``n_queries`` items, per
    query), ``recall_at_20`` (:func:`measure_recall` on ``n_queries`` items; exact's measured too, as a check).
    Query items are a seeded sample (``options.seed``). Each index is released before the next is built.
    """
    rows: list[dict[str, Any]] = []
    n = len(vectors)
    batch = recall_queries(n, n_queries, options.seed)
    single = batch[:single_queries]
    if progress:
        progress(0, len(kinds), f"exact neighbours of {len(batch):,} items (the ground truth)")
    started = time.perf_counter()
    truth = (batch, *exact_neighbours(vectors, batch))
    truth_seconds = time.perf_counter() - started
    for number, kind in enumerate(kinds):
        if progress:
            progress(number, len(kinds), f"building the {kind} index")
        before = _resident_bytes()
        start = time.perf_counter()
        index = ItemIndex(vectors, kind=kind, options=options, measure=False)
        built = time.perf_counter() - start
        grown = _resident_bytes() - before
        started = time.perf_counter()
        for item in single:
            index.neighbours(int(item), k=RECALL_K)
        single_ms = (time.perf_counter() - started) * 1000 / max(1, len(single))
        started = time.perf_counter()
        index.neighbours(batch, k=RECALL_K)
        batched_ms = (time.perf_counter() - started) * 1000 / max(1, len(batch))
        started = time.perf_counter()
        recall = measure_recall(index, vectors, truth=truth)
        recall_seconds = time.perf_counter() - started + truth_seconds
        rows.append({"kind": kind, "n_items": n, "dim": int(vectors.shape[1]),
                     "build_seconds": round(built, 2),
                     "recall_seconds": round(recall_seconds, 2),
                     "memory_mb": round(index.memory_bytes / 1024**2, 1), "rss_growth_mb": round(grown / 1024**2, 1),
                     "ms_per_query_single": round(single_ms, 3), "ms_per_query_batched": round(batched_ms, 3),
                     "recall_at_20": round(recall, 4), "parameters": dict(index.parameters)})
        del index
    if progress:
        progress(len(kinds), len(kinds), "indexes measured")
    return rows
