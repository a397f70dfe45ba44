"""The stakeholder demo (core.demo, pages/7_Demo.py): which test sessions it shows and with which models, on
hand-made top lists and on the tiny shop (tests/tiny_data.py), whose true next item is always item i+1."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ROOT
from streamlit.testing.v1 import AppTest
from tiny_data import N_ITEMS, write_tiny_dataset

from core import data, demo, evaluate
from core.embeddings import EmbeddingSpec, item_embeddings
from core.evaluate import load_results
from core.models import create, model_class
from core.models.base import Recommender
from core.trained import trained_models

FILLER = 900  # items that are never a target


def top_list(target: int, rank: int) -> list[int]:
    """A top-10 with ``target`` at ``rank`` (1-based; 0: absent)."""
    items = [FILLER + j for j in range(demo.TOP)]
    if rank:
        items[rank - 1] = target
    return items


def test_choose_takes_each_storys_best_sessions_and_its_models():
    # sample position -> (readable, rank of the target by text model t, by ID models i and i2)
    cases = {0: (True, 7, 0, 0),  # text story, but found below the top 5
             1: (True, 1, 0, 0),  # text story, rank 1
             2: (False, 2, 0, 0),  # text story, not readable
             3: (True, 0, 3, 0),  # ID story, one winner
             4: (True, 0, 1, 1),  # ID story, two winners
             5: (True, 0, 0, 0),  # nobody finds it
             6: (True, 1, 4, 0),  # both kinds, the worse kind's best rank is 4
             7: (True, 2, 0, 2)}  # both kinds, 2
    targets = np.arange(100, 108)
    top = {label: np.array([top_list(int(targets[s]), cases[s][column]) for s in cases])
           for column, label in ((1, "t"), (2, "i"), (3, "i2"))}
    readable = np.array([cases[s][0] for s in cases])
    chosen, hit_rate, notes = demo.choose(np.arange(10, 18), readable, targets, top,
                                          {"t": "text", "i": "id", "i2": "id"})
    assert [(s, story) for s, story, _ in chosen] == [(1, "text"), (0, "text"), (4, "id"), (3, "id"), (7, "both")]
    assert hit_rate == {"t": 5 / 8, "i": 3 / 8, "i2": 2 / 8}
    shown = {s: labels for s, _, labels in chosen}
    assert shown[1] == ["t", "i", "i2"]  # the text winner, then the ID models that miss, strongest first
    assert shown[4] == ["t", "i"]  # both ID models win at rank 1: the one with the higher hit rate; no other text model
    assert shown[7] == ["t", "i2", "i"]  # the winners of each kind, then the strongest other model
    assert notes == []
    _, _, notes = demo.choose(np.arange(10, 18), readable, targets, top, {"t": "text", "i": "id", "i2": "id"},
                              stories=(("both", 3),))
    assert notes == ["Only 2 of the 8 sampled test sessions show “Both kinds of model find the next item” (3 wanted)."]


def test_choose_shows_a_target_once():
    targets = np.array([5, 5, 6])
    top = {"t": np.array([top_list(5, 1), top_list(5, 1), top_list(6, 3)]), "i": np.array([top_list(0, 0)] * 3)}
    chosen, _, _ = demo.choose(np.arange(3), np.ones(3, bool), targets, top, {"t": "text", "i": "id"},
                               stories=(("text", 2),))
    assert [s for s, _, _ in chosen] == [0, 2]  # session 1 has the same next item as session 0


class Oracle(Recommender):
    """Knows the tiny shop's rule (the next item is last + 1): puts it first when ``knows(next item)``, else
    last; a text model when ``text``."""

    Config = object
    text = False
    name = "oracle"

    def __init__(self, knows, n_items: int = N_ITEMS) -> None:
        super().__init__()
        self.knows = knows
        self.n_items = n_items

    @classmethod
    def text_embedding(cls, config):
        return EmbeddingSpec() if cls.text else None

    def score(self, sessions):
        scores = np.zeros((len(sessions), self.n_items), dtype=np.float32)
        for row, session in enumerate(sessions):
            nxt = (int(session[-1]) + 1) % self.n_items
            scores[row, nxt] = 1.0 if self.knows(nxt) else -1.0
        return scores


class TextOracle(Oracle):
    text = True
    name = "textoracle"


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    return data.load(str(write_tiny_dataset(tmp_path_factory.mktemp("demo") / "demoshop")))


def oracles():
    # text finds next items 0, 2 (mod 4); ID finds 1, 2: so "text" <-> 0, "id" <-> 1, "both" <-> 2, nobody <-> 3
    return {"text": (TextOracle(lambda item: item % 4 in (0, 2)), "text-key"),
            "id": (Oracle(lambda item: item % 4 in (1, 2)), "id-key")}


def test_build_chooses_the_sessions_each_model_is_known_to_find(shop):
    built = demo.build(shop, oracles(), sample_size=60)
    assert [s.story for s in built.sessions] == ["text", "text", "id", "id", "both"]
    for session in built.sessions:
        assert session.target == shop.split.targets[session.row] == (session.prompt[-1] + 1) % N_ITEMS
        assert list(session.prompt) == shop.split.prompts[session.row].tolist()
        assert session.target % 4 == {"text": 0, "id": 1, "both": 2}[session.story]
        assert session.shown == ("text", "id")
        assert session.ranks == {"text": 1 if session.story != "id" else 0, "id": 1 if session.story != "text" else 0}
    assert len({s.target for s in built.sessions}) == 5
    assert {m.label: m.kind for m in built.models} == {"text": "text", "id": "id"}
    assert built.key == demo.demo_key(["id-key", "text-key"], 60)
    # deterministic: the same sample and choice again; saved and read back unchanged
    assert demo.build(shop, oracles(), sample_size=60) == built
    assert demo.Demo.from_json(built.to_json()) == built
    assert demo.Demo.from_json({"version": demo.VERSION - 1}) is None
    assert not np.array_equal(demo.sample_rows(shop.split.prompts, shop.catalog, 60, seed=1)[0],
                              demo.sample_rows(shop.split.prompts, shop.catalog, 60, seed=0)[0])


def test_no_session_found_or_no_model_of_a_kind_says_so(shop):
    nobody = {"text": (TextOracle(lambda item: False), "t"), "id": (Oracle(lambda item: False), "i")}
    built = demo.build(shop, nobody, sample_size=30)
    assert built.sessions == []
    assert built.notes == [f"None of the 30 sampled test sessions of {shop.name} has its true next item in the top 10 "
                           "of any usable model, so there is no session to show."]
    with pytest.raises(demo.NoDemo, match="needs at least one of each .* usable now: id"):
        demo.build(shop, {"id": nobody["id"]})


def test_sample_prefers_readable_sessions(shop):
    rows, readable = demo.sample_rows(shop.split.prompts, shop.catalog, n=shop.split.n_test)
    assert sorted(rows.tolist()) == list(range(shop.split.n_test))
    lengths = np.array([len(shop.split.prompts[r]) for r in rows])
    assert np.array_equal(readable, (lengths >= 2) & (lengths <= 6))
    assert not np.any(readable[1:] & ~readable[:-1])  # readable ones first


@pytest.fixture(scope="module")
def trained_shop(tmp_path_factory):
    """The tiny shop with popularity, V-SKNN and LLMSeqSim trained and evaluated (into the test cache)."""
    folder = write_tiny_dataset(tmp_path_factory.mktemp("demo-app") / "demoapp")
    dataset = data.load(str(folder))
    item_embeddings(dataset.catalog)
    evaluate.run(dataset, [create("popularity"), create("vsknn"), create("llmseqsim")])
    return str(folder), dataset


def test_build_and_save_with_trained_models_then_explain(trained_shop):
    _, dataset = trained_shop
    trained = trained_models(dataset)
    assert [m.name for m in demo.contenders(trained)] == ["popularity", "vsknn", "llmseqsim"]
    assert demo.saved(dataset, trained) is None
    built = demo.build_and_save(dataset, trained)
    assert demo.saved(dataset, trained) == built  # the next open reads it
    assert demo.demo_path(dataset.name, built.key).exists()
    assert built.sessions, built.notes
    session = built.sessions[0]
    vectors = item_embeddings(dataset.catalog)
    for label in session.shown:
        contender = built.model(label)
        picks = demo.explain(session, contender, dataset.catalog, vectors)
        assert [p.item for p in picks] == list(session.picks[label][:demo.SHOWN])
        assert [p.is_target for p in picks] == [p.item == session.target for p in picks]
        if contender.kind == "text":  # the session item whose title embedding is nearest
            assert all(p.why.startswith("resembles “") for p in picks)
        else:
            assert {p.why for p in picks} == {model_class(contender.name).card.why}
    figures = demo.headline(built, load_results(dataset), session.shown)
    results = {r.key: r for r in load_results(dataset).values()}
    assert figures == {label: {m: results[built.model(label).key].metrics[m] for m in ("NDCG@20", "HR@20")}
                       for label in session.shown}


def test_demo_page_shows_a_session_with_picks_and_next_moves_on(trained_shop):
    folder, dataset = trained_shop
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["dataset"] = folder
    at.run()
    at.switch_page("pages/7_Demo.py").run()
    assert not at.exception, at.exception
    body = "\n".join(element.proto.body for element in at.get("html"))
    built = demo.saved(dataset, trained_models(dataset))
    assert built is not None
    assert demo.STORY_HEADLINE[built.sessions[0].story] in body
    assert "What they chose next" in body and "class='why'" in body
    assert "Session 1 of" in "\n".join(m.value for m in at.markdown)
    at.button[1].click().run()  # Next
    assert "Session 2 of" in "\n".join(m.value for m in at.markdown)
