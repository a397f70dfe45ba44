"""The Embedding space page's interactions (streamlit.testing AppTest), on the tiny shop of tests/tiny_data.py:
a selection of one item lists its neighbours, a large selection is summarised, the search box finds and rings
an item, and topic colouring gives the map a legend of topics. A selection is what the chart's widget
returns after a click (its points' ``customdata`` are item indices); the browser test makes a real click."""

import json
import re

import numpy as np
import pytest
from conftest import ROOT
from streamlit.elements.plotly_chart import PlotlySelectionState, PlotlyState
from streamlit.testing.v1 import AppTest
from tiny_data import N_ITEMS, titles, write_tiny_dataset

from core import data, evaluate
from core.embeddings import item_embeddings
from core.models import create

PAGE = "pages/2_Embedding_Space.py"


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    folder = write_tiny_dataset(tmp_path_factory.mktemp("map") / "shop", title_suffix=" (map)")
    dataset = data.load(str(folder))
    item_embeddings(dataset.catalog)
    evaluate.run(dataset, [create("popularity")])
    return str(folder)


def page(shop):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["dataset"] = shop
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def select(at, items):
    """What the LLM map's widget holds after a click (one item) or a box (several)."""
    at.session_state["map-llm"] = PlotlyState({"selection": PlotlySelectionState(
        {"points": [{"customdata": i} for i in items], "point_indices": list(items), "box": [], "lasso": []})})
    at.run()
    assert not at.exception, at.exception


def html_of(at, css_class):
    return [e.proto.body for e in at.get("html") if f"class='{css_class}" in e.proto.body]


def table_titles(body):
    return re.findall(r"<td class='title'>(.*?)</td>", body)


def test_one_selected_point_lists_its_nearest_neighbours_with_their_similarity(shop):
    at = page(shop)
    assert any("Click a point" in c.value for c in at.caption)  # nothing selected yet: how to select
    select(at, [12])  # "Ember Mascara no. 12"
    assert [s.value for s in at.subheader] == ["Selected item"]
    assert titles()[12] in html_of(at, "focus-title")[0]
    (table,) = html_of(at, "map-items neighbours")
    near = table_titles(table)
    assert len(near) == 10 and titles()[12] + " (map)" not in near
    sims = [float(s) for s in re.findall(r"<td style='text-align:right;padding-right:8px'>([0-9.-]+)</td>", table)]
    assert len(sims) == 10 and sims == sorted(sims, reverse=True) and 0 < sims[-1] <= sims[0] <= 1
    # the 10 highest cosine similarities to item 12, computed here with numpy
    vectors = item_embeddings(data.load(shop).catalog)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cosine = unit @ unit[12]
    cosine[12] = -np.inf
    expected = np.argsort(-cosine)[:10]
    assert near == [titles()[i] + " (map)" for i in expected]
    assert np.allclose(sims, cosine[expected], atol=1e-3)
    next(b for b in at.button if b.label == "Add it to the session").click().run()
    assert at.session_state["session"]["items"] == [12]


def test_a_large_selection_is_summarised_not_listed(shop, monkeypatch):
    import core.projection

    monkeypatch.setattr(core.projection, "SUMMARY_THRESHOLD", 30)  # the tiny shop has 40 items
    at = page(shop)
    select(at, range(N_ITEMS))
    assert [s.value for s in at.subheader] == ["40 selected items"]
    assert not at.dataframe  # no list of the 40
    (popular,) = html_of(at, "map-items")
    assert len(table_titles(popular)) == 10
    (topics,) = html_of(at, "map-topics")
    counts = [int(n) for n in re.findall(r"<td style='text-align:right'>([0-9,]+)</td>", topics)]
    assert len(counts) == 8 and counts == sorted(counts, reverse=True)  # the 8 largest of the 12 topics


def test_a_small_selection_lists_its_items_and_the_neighbours_of_its_centre(shop):
    at = page(shop)
    select(at, [0, 1, 2])
    assert [s.value for s in at.subheader] == ["3 selected items"]
    assert list(at.dataframe[0].value["title"]) == [t + " (map)" for t in titles()[:3]]
    near = table_titles(html_of(at, "map-items neighbours")[0])
    assert len(near) == 10 and not {t + " (map)" for t in titles()[:3]} & set(near)


def test_search_rings_the_found_item_and_lists_its_neighbours(shop):
    at = page(shop)
    at.text_input(key="map_search").input("embr mascra").run()  # typos forgiven
    assert not at.exception, at.exception
    assert [s.value for s in at.subheader] == ["Found item"]
    found = next(s for s in at.selectbox if s.label == "Shown on the map").value
    assert titles()[found].startswith("Ember Mascara")
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    ring = next(trace for trace in figure["data"] if trace.get("name") == "found")
    assert ring["customdata"] == [found]
    assert figure["layout"]["annotations"][0]["text"] == f"<b>{titles()[found]} (map)</b>"
    assert len(table_titles(html_of(at, "map-items neighbours")[0])) == 10
    at.text_input(key="map_search").input("zzzzqqqq").run()
    assert any("No title matches" in c.value for c in at.caption)


def test_topic_colouring_draws_a_legend_of_k_named_topics(shop):
    at = page(shop)
    at.selectbox[0].select("topic").run()
    assert not at.exception, at.exception
    legend = [t["name"] for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"] if t.get("showlegend")
              is not False]
    assert len(legend) == 12 and legend[0].startswith("01 · ") and legend[-1].startswith("12 · ")
    at.number_input(key="_w_map_topics").set_value(5).run()
    legend = [t["name"] for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]]
    assert [name[:4] for name in legend] == ["1 · ", "2 · ", "3 · ", "4 · ", "5 · "]
    # five topics over five kinds of product: each topic's words name one kind
    kinds = {"gloss": "Lip Gloss", "mascara": "Mascara", "shampoo": "Shampoo", "polish": "Nail Polish",
             "cream": "Face Cream"}
    named = [next((kind for word, kind in kinds.items() if word in name), None) for name in legend]
    assert sorted(k for k in named if k) == sorted(kinds.values())
