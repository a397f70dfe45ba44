"""Ray (the ``scale`` extra): item embeddings on Ray Data give the single-process vectors, resume from their
shards and land in the cache's own file; evaluation on Ray actors gives the single-process lists.

Skipped without Ray: ``make test-scale`` installs it and runs these (``pytest -m scale``). One local Ray is
started for the module (2 CPUs here) and shared by its tests."""

import json
import os

import numpy as np
import pytest

pytest.importorskip("ray", reason="Ray is not installed: make test-scale runs these")
pytestmark = pytest.mark.scale

from core import distributed  # noqa: E402
from core.data import Catalog  # noqa: E402
from core.embeddings import (  # noqa: E402
    EmbeddingError,
    EmbeddingSpec,
    cached_path,
    catalog_texts,
    embedding_notes,
    item_embeddings,
    provider,
)
from core.evaluate import EvaluationOptions, evaluate_model  # noqa: E402
from core.models import create  # noqa: E402


@pytest.fixture(scope="module")
def ray_cluster():
    with distributed.ray_session(min_cpus=2) as session:
        yield session


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_ray_embedding_gives_the_single_process_vectors_on_ml100k(ray_cluster, ml100k):
    read = catalog_texts(ml100k.catalog)
    assert read.texts == [t for t in ml100k.catalog.titles if t] and read.titled.all()
    seen = []
    on_ray = distributed.encode_on_ray(read.texts, actors=2, shard_rows=256,
                                       progress=lambda done, total, message: seen.append((done, total)))
    single = item_embeddings(ml100k.catalog)  # the product's single-process path (its shipped vectors)
    assert on_ray.shape == single.shape == (1682, 384) and on_ray.dtype == np.float32
    assert cosines(on_ray, single).min() >= 0.9999
    assert seen[-1] == (1682, 1682) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    fresh = provider(EmbeddingSpec()).encode(read.texts[:300])  # and a fresh single-process computation
    assert cosines(on_ray[:300], fresh).min() >= 0.9999


def shop_catalog(n: int = 30) -> Catalog:
    """A catalog of its own (no vectors cached or shipped), item 4 untitled, one title past the window."""
    titles = [f"Glow shade {i} lipstick {'with a very long description ' * 60 if i == 7 else ''}".strip()
              for i in range(n)]
    titles[4] = ""
    return Catalog(item_ids=np.array([f"s{i:02d}" for i in range(n)], dtype=object), titles=titles,
                   categories=[""] * n, popularity=np.ones(n, dtype=np.int64))


def test_ray_item_embeddings_write_the_caches_own_file_and_resume_from_shards(ray_cluster):
    catalog, spec = shop_catalog(), EmbeddingSpec(long_titles="head_tail")
    read = catalog_texts(catalog, spec)
    assert len(read.texts) == 29 and not read.titled[4] and read.too_long == 1
    folder = distributed.shard_dir(catalog, spec)
    # A shard "left by a killed run": rows 0..9 of the titled texts, with vectors the model would never give.
    planted = np.zeros((10, 384), dtype=np.float32)
    planted[:, 0] = 1.0
    folder.mkdir(parents=True)
    np.save(folder / "rows-0000000000-0000000010.npy", planted)
    vectors = distributed.ray_item_embeddings(catalog, spec, actors=2, shard_rows=10)
    titled_rows = np.flatnonzero(read.titled)
    assert np.array_equal(vectors[titled_rows[:10]], planted)  # resumed: the shard was not computed again
    assert not folder.exists()  # assembled into the cache's file, the shards removed
    path = cached_path(catalog, spec)
    assert np.array_equal(np.load(path), vectors)
    assert json.loads(path.with_suffix(".json").read_text()) == {"too_long": 1, "window": 256, "spec": spec.label}
    assert embedding_notes(catalog, spec)  # the record item_embeddings writes, read as for any cached vectors

    # Computed again without the planted shard, it is the single-process path's result item for item.
    path.unlink()
    computed = distributed.ray_item_embeddings(catalog, spec, actors=1, shard_rows=10)
    path.unlink()
    single = item_embeddings(catalog, spec)
    assert cosines(computed, single).min() >= 0.9999  # the untitled item too (the titled items' mean)
    assert np.array_equal(distributed.ray_item_embeddings(catalog, spec), single)  # and from the cache after


def test_evaluation_on_ray_actors_ranks_exactly_as_one_process(ray_cluster, ml100k):
    options = EvaluationOptions(bootstrap_resamples=10)
    for model in (create("vsknn", k=50, sample_size=200).fit(ml100k.split),
                  create("sasrec", embedding_dim=16, heads=2, layers=1, max_epochs=1,
                         max_length=20).fit(ml100k.split)):
        one = evaluate_model(model, ml100k.split, options, batch_size=32)
        on_ray = evaluate_model(model, ml100k.split, options, batch_size=32, workers=2, engine="ray")
        assert np.array_equal(one["recommendations"], on_ray["recommendations"]), model.name
        assert one["metrics"] == on_ray["metrics"]


def test_a_problem_in_an_actor_reaches_the_driver_as_one_sentence(ray_cluster):
    # The actors' environment is the one Ray was started with (this test's): without a key there, the OpenAI
    # provider cannot be built in an actor, and the driver says so as the single-process path does.
    if "OPENAI_API_KEY" in os.environ:
        pytest.skip("OPENAI_API_KEY is set here: the actors would have a key")
    with pytest.raises(EmbeddingError, match="^OPENAI_API_KEY is not set"):
        distributed.encode_on_ray(["Glow lipstick", "Dune mascara"], EmbeddingSpec(provider="openai"), actors=1)


def test_more_workers_than_the_cluster_has_cpus_is_refused_not_waited_for(ray_cluster, ml100k):
    import ray

    cpus = int(ray.cluster_resources()["CPU"])  # the machine's cores
    model = create("popularity").fit(ml100k.split)
    with pytest.raises(distributed.DistributedError, match=f"has {cpus} CPU.*need {cpus + 1}"):
        distributed.rank_prompts(model, ml100k.split.prompts, 5, workers=cpus + 1, engine="ray", batch_size=16)


def test_throughput_helper_counts_the_texts(ray_cluster):
    texts = [f"Glow shade {i} lipstick" for i in range(40)]
    single = distributed.embedding_throughput(texts, "single")
    on_ray = distributed.embedding_throughput(texts, "ray", actors=1)
    assert single.texts == on_ray.texts == 40 and single.startup_seconds == 0.0
    assert on_ray.startup_seconds == 0.0  # the module's Ray was already running: joined, not started
    assert single.titles_per_second == pytest.approx(40 / single.seconds)
