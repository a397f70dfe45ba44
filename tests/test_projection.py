"""2-D maps (core.projection): cached by content, never recomputed when cached, learned item vectors found in a
model's state; and a UMAP computed by a background job, as the app asks for it."""

import numpy as np
from tiny_data import write_tiny_dataset

from core import data
from core.jobs import JobManager, JobRequest
from core.models import create
from core.projection import cache_path, cached_projection, map_figure, most_popular, project


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


def test_a_click_selects_a_point_because_the_drag_mode_is_not_box_select():
    # Streamlit sets plotly's clickmode to "event" (no click selection) whenever dragmode is select or lasso:
    # the map's single clicks selected nothing while its dragmode was "select".
    figure = map_figure(np.zeros((3, 2), dtype=np.float32), ["a", "b", "c"])
    assert figure.layout.dragmode == "zoom"
    assert all(trace.type == "scattergl" and trace.customdata is not None for trace in figure.data)


def test_a_found_item_is_ringed_and_named_with_its_title_escaped():
    coords = np.array([[0, 0], [1, 2], [3, 4]], dtype=np.float32)
    figure = map_figure(coords, ["a", "<b>Lip</b> & Gloss", "c"], highlight=1)
    ring = next(trace for trace in figure.data if trace.name == "found")
    assert list(ring.customdata) == [1] and (ring.x[0], ring.y[0]) == (1.0, 2.0)  # clicking it selects item 1
    assert ring.marker.size > 20 and ring.marker.symbol == "circle-open"
    (note,) = figure.layout.annotations
    assert (note.x, note.y) == (1.0, 2.0) and note.text == "<b>&lt;b&gt;Lip&lt;/b&gt; &amp; Gloss</b>"
    long = map_figure(coords, ["a", "x" * 60 + "&", "c"], highlight=1).layout.annotations[0].text
    assert long == "<b>" + "x" * 49 + "…</b>"  # cut before escaping: never half an entity
    assert not map_figure(coords, ["a", "b", "c"]).layout.annotations


def test_topic_colouring_keeps_every_topic_in_the_legend_with_distinct_colours():
    names = [f"{t + 1:02d} · word{t}" for t in range(15)]
    colour = [names[i % 15] for i in range(30)]
    figure = map_figure(np.zeros((30, 2), dtype=np.float32), [str(i) for i in range(30)], colour=colour,
                        max_categories=15)
    assert [trace.name for trace in figure.data] == names  # in topic order, no "other"
    assert len(set(figure.layout.colorway[:15])) == 15  # no colour twice among the 15
    capped = map_figure(np.zeros((30, 2), dtype=np.float32), [str(i) for i in range(30)], colour=colour)
    assert [trace.name for trace in capped.data][-1] == "other" and len(capped.data) == 13  # 12 + other


def test_most_popular_items_of_a_selection():
    popularity = np.array([5, 9, 1, 9, 0, 7])
    assert most_popular([0, 1, 2, 3, 5, 5], popularity, n=3) == [1, 3, 5]  # 9, 9 (by index), 7; duplicates once
    assert most_popular([4, 2], popularity) == [2, 4]
