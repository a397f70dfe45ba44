"""2-D maps (core.projection): cached by content, never recomputed when cached, learned item vectors found in a
model's state; and a UMAP computed by a background job, as the app asks for it."""

import numpy as np
from tiny_data import write_tiny_dataset

from core import data
from core.jobs import JobManager, JobRequest
from core.models import create
from core.projection import cache_path, cached_projection, map_figure, project


def test_pca_is_cached_and_keyed_by_content(monkeypatch):
    vectors = np.random.default_rng(0).normal(size=(30, 8)).astype(np.float32)
    assert cached_projection(vectors, "pca") is None
    coords = project(vectors, "pca")
    assert coords.shape == (30, 2) and cache_path(vectors, "pca").exists()
    import sklearn.decomposition

    monkeypatch.setattr(sklearn.decomposition, "PCA", None)  # a second call must not compute
    assert np.array_equal(project(vectors, "pca"), coords)
    other = vectors.copy()
    other[0, 0] += 1.0
    assert cache_path(other, "pca") != cache_path(vectors, "pca") and cached_projection(other, "pca") is None


def test_learned_item_vectors_come_from_the_item_table(synthetic):
    model = create("sasrec", embedding_dim=16, heads=2, layers=1, max_epochs=1).fit(synthetic.split)
    vectors = model.learned_item_vectors()
    assert vectors.shape == (synthetic.catalog.n_items, 16)  # padding/mask rows left out
    assert create("vsknn", k=10, sample_size=20).fit(synthetic.split).learned_item_vectors() is None
    assert create("llmseqsim").fit(synthetic.split).learned_item_vectors() is None  # the LLM vectors, not learned


def test_map_figure_carries_item_ids_for_selection():
    coords = np.arange(20, dtype=np.float32).reshape(10, 2)
    titles = [f"t{i}" for i in range(10)]
    figure = map_figure(coords, titles, colour=["a"] * 5 + ["b"] * 5, session=[1, 2], picks=[7])
    names = [trace.name for trace in figure.data]
    assert names == ["a", "b", "recommended", "session"]
    assert list(figure.data[1].customdata) == [5, 6, 7, 8, 9]
    assert list(figure.data[-1].text) == ["1", "2"]  # session positions


def test_a_job_embeds_the_catalog_and_computes_a_umap(tmp_path):
    folder = write_tiny_dataset(tmp_path / "shop")
    manager = JobManager()
    request = JobRequest(dataset=str(folder), embed={"provider": "local"},
                         projections=({"source": "embeddings", "method": "umap", "embedding": {"provider": "local"}},))
    job = manager.wait(manager.submit(request, title="map").id, timeout=300)
    assert job.status == "done", (job.error, list(job.log)[-5:])
    from core.embeddings import item_embeddings

    vectors = item_embeddings(data.load(str(folder)).catalog)  # from the cache the job filled
    coords = cached_projection(vectors, "umap")
    assert coords is not None and coords.shape == (vectors.shape[0], 2)


def test_map_hover_and_legend_show_titles_as_text_never_as_markup():
    coords = np.arange(8, dtype=np.float32).reshape(4, 2)
    titles = ["<img src=x onerror=alert(1)> a", "Lip Gloss <b>NEW</b> Cherry", "Tom & Jerry", "plain"]
    figure = map_figure(coords, titles, colour=["<i>cat</i>", "c", "c", "c"], title="<b>model</b>")
    hover = [text for trace in figure.data for text in trace.text]
    assert "&lt;img src=x onerror=alert(1)&gt; a" in hover and "Lip Gloss &lt;b&gt;NEW&lt;/b&gt; Cherry" in hover
    assert "Tom &amp; Jerry" in hover  # plotly shows the entities as the characters: the title exactly
    assert {trace.name for trace in figure.data} == {"&lt;i&gt;cat&lt;/i&gt;", "c"}
    assert figure.layout.title.text == "&lt;b&gt;model&lt;/b&gt;"
