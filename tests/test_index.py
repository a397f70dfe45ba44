"""core.index: the index kind chosen by size and memory, forcing one, neighbours() the same for every kind, and
recall@20 against exact search measured when an approximate index is built."""

from __future__ import annotations

import numpy as np
import pytest

from core.common import ConfigError
from core.index import (
    KINDS,
    IndexOptions,
    ItemIndex,
    benchmark,
    choose_index,
    estimated_bytes,
    exact_top_k,
    measure_recall,
)
from core.synth import clustered_vectors

GB = 1024**3
# small lists and graphs so every kind builds in well under a second
SMALL = IndexOptions(hnsw_m=16, nlist=16, nprobe=4, pq_m=8, recall_queries=300)


@pytest.fixture(scope="module")
def twins():
    """1,000 clustered vectors and a near copy of each: item i's nearest neighbour is item i + 1000."""
    base = clustered_vectors(1000, 32, n_clusters=20, seed=2)
    noise = np.random.default_rng(0).standard_normal(base.shape).astype(np.float32)
    return np.concatenate([base, base + 0.02 * noise / np.sqrt(32)])


def test_choice_by_size_and_memory():
    assert choose_index(1000, 384, 4 * GB) == "exact"
    assert choose_index(200_000, 384, 4 * GB) == "exact"
    assert choose_index(200_001, 384, 4 * GB) == "hnsw"
    assert choose_index(1_000_000, 384, 4 * GB) == "hnsw"  # 1.8 GB
    assert choose_index(1_000_000, 384, 1 * GB) == "ivfpq"
    assert choose_index(100_000, 384, 100 * 1024**2) == "ivfpq"  # flat 147 MB, HNSW 172 MB: neither fits
    assert choose_index(100_000, 384, 150 * 1024**2) == "exact"  # flat 146.5 MB fits
    assert choose_index(300_000, 384, 520 * 1024**2) == "hnsw"  # 517 MB
    assert choose_index(300_000, 384, 510 * 1024**2) == "ivfpq"
    assert estimated_bytes("exact", 1_000_000, 384) == 1_536_000_000
    assert estimated_bytes("hnsw", 1_000_000, 384) == 1_000_000 * (1536 + 256 + 16)
    ivfpq = estimated_bytes("ivfpq", 1_000_000, 384)
    assert 1_000_000 * (48 + 8 + 768) < ivfpq < 1_000_000 * (48 + 8 + 768) + 10 * 1024**2
    with pytest.raises(ConfigError, match="unknown index kind"):
        estimated_bytes("lsh", 10, 4)


def test_forcing_a_kind(twins, monkeypatch):
    monkeypatch.setenv("LLMSEQ_FAISS_INDEX", "hnsw")
    index = ItemIndex(twins, options=SMALL)
    assert index.kind == "hnsw" and "LLMSEQ_FAISS_INDEX" in index.report.reason
    assert ItemIndex(twins, kind="exact").kind == "exact"  # the argument wins over the environment
    monkeypatch.setenv("LLMSEQ_FAISS_INDEX", "annoy")
    with pytest.raises(ConfigError, match="LLMSEQ_FAISS_INDEX='annoy'"):
        ItemIndex(twins)
    monkeypatch.delenv("LLMSEQ_FAISS_INDEX")
    with pytest.raises(ConfigError, match="unknown index kind 'flat'"):
        ItemIndex(twins, kind="flat")
    # a budget of 0.1 MB holds neither the flat vectors (256 KB) nor the graph: IVF-PQ
    monkeypatch.setenv("LLMSEQ_FAISS_MEMORY_MB", "0.1")
    assert ItemIndex(twins, options=SMALL).kind == "ivfpq"
    assert ItemIndex(twins, memory_budget_bytes=GB).kind == "exact"
    monkeypatch.setenv("LLMSEQ_FAISS_MEMORY_MB", "lots")
    with pytest.raises(ConfigError, match="LLMSEQ_FAISS_MEMORY_MB"):
        ItemIndex(twins)


@pytest.mark.parametrize("kind", KINDS)
def test_neighbours_the_same_for_every_kind(twins, kind):
    index = ItemIndex(twins, kind=kind, options=SMALL)
    assert index.kind == kind
    items = np.arange(0, 1000, 37)
    ids, sims = index.neighbours(items, k=5)
    assert ids.shape == sims.shape == (len(items), 5)
    assert ids[:, 0].tolist() == (items + 1000).tolist()  # the near copy first
    assert not (ids == items[:, None]).any()  # never the item itself
    assert (np.diff(sims, axis=1) <= 1e-6).all()  # best first
    true = np.einsum("qd,qkd->qk", twins[items] / np.linalg.norm(twins[items], axis=1, keepdims=True),
                     twins[ids] / np.linalg.norm(twins[ids], axis=2, keepdims=True))
    assert np.abs(sims - true).max() < (2e-3 if kind == "ivfpq" else 1e-5)  # cosines (fp16 re-scoring for PQ)
    excluded, _ = index.neighbours(5, k=3, exclude=[1005, 7])
    assert 1005 not in excluded[0] and 7 not in excluded[0] and 5 not in excluded[0]
    by_vector, _ = index.neighbours(twins[5] * 3.0, k=2)  # a vector query: itself is a fair answer
    assert sorted(by_vector[0].tolist()) == [5, 1005]
    with pytest.raises(ValueError, match="outside 0..1999"):
        index.neighbours(2000)


def test_recall_measured_when_built():
    vectors = clustered_vectors(5000, 32, seed=1)
    exact = ItemIndex(vectors, kind="exact")
    assert exact.recall_at_20 == 1.0 and measure_recall(exact, vectors, 500) == 1.0
    messages = []
    hnsw = ItemIndex(vectors, kind="hnsw", options=IndexOptions(recall_queries=500),
                     progress=lambda done, total, message: messages.append(message))
    assert hnsw.recall_at_20 is not None and hnsw.recall_at_20 > 0.9
    assert "recall@20 vs exact" in messages[-1] and hnsw.build_seconds > 0
    # the measure is not blind: a starved IVF-PQ (1 list of 64 scanned, 2-bit codes, no re-scoring) misses most
    starved = ItemIndex(vectors, kind="ivfpq", options=IndexOptions(nlist=64, nprobe=1, pq_m=4, pq_bits=2,
                                                                    refine_factor=1, recall_queries=500))
    assert starved.recall_at_20 is not None and starved.recall_at_20 < 0.5


def test_memory_matches_the_estimates(twins):
    for kind in KINDS:
        index = ItemIndex(twins, kind=kind, options=SMALL, measure=False)
        estimate = estimated_bytes(kind, len(twins), twins.shape[1], SMALL)
        assert 0.8 * estimate < index.memory_bytes < 1.2 * estimate, kind


def test_exact_top_k_in_blocks():
    rng = np.random.default_rng(3)
    vectors, queries = rng.standard_normal((50, 6)), rng.standard_normal((4, 6))
    ids, sims = exact_top_k(queries, vectors, 5, block=7)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    full = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ unit.T
    assert ids.tolist() == np.argsort(-full, axis=1)[:, :5].tolist()
    assert np.allclose(sims, np.sort(full, axis=1)[:, ::-1][:, :5], atol=1e-6)


def test_benchmark_rows(twins):
    rows = benchmark(twins, kinds=("exact", "hnsw"), n_queries=100, single_queries=10, options=SMALL)
    assert [row["kind"] for row in rows] == ["exact", "hnsw"]
    assert rows[0]["recall_at_20"] == 1.0 and rows[0]["n_items"] == 2000
    assert {"build_seconds", "memory_mb", "rss_growth_mb", "ms_per_query_single",
            "ms_per_query_batched"} <= set(rows[1])


def test_bad_vectors_and_options():
    with pytest.raises(ValueError, match="non-empty 2-D"):
        ItemIndex(np.zeros(4, dtype=np.float32))
    with pytest.raises(ConfigError, match="pq_m=5 must divide the dimension 32"):
        ItemIndex(np.eye(40, 32, dtype=np.float32), kind="ivfpq", options=IndexOptions(pq_m=5))
    with pytest.raises(ConfigError, match="nprobe"):
        IndexOptions(nprobe=0)
