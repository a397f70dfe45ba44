"""Side-by-side picks (core.picks) and their "why" (core.explain), on the tiny dataset where i -> i+1."""

import numpy as np
import pytest
from tiny_data import write_tiny_dataset

from core import data
from core.explain import nearest_session_items
from core.models import create
from core.picks import compare


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    return data.load(str(write_tiny_dataset(tmp_path_factory.mktemp("picks") / "shop")))


def test_nearest_session_items_by_cosine():
    vectors = np.array([[1, 0], [0, 1], [1, 1], [1, 0.1]], dtype=np.float32)
    # pick 3 is almost item 0, far from item 1; repeated session items count once
    assert [i for i, _ in nearest_session_items(vectors, [1, 0, 0], [3], n=2)[0]] == [0, 1]
    assert nearest_session_items(vectors, [0], [2], n=2)[0][0][1] == pytest.approx(np.sqrt(0.5))
    assert nearest_session_items(vectors, [], [2]) == [[]]


def test_only_models_built_on_text_embeddings_get_a_why(shop):
    from core.picks import rank

    reads_titles = {name: type(create(name)).text_embedding(create(name).config) is not None
                    for name in ("llmseqsim", "llm2sasrec", "llmseqprompt", "vsknn", "sasrec", "popularity")}
    assert reads_titles == {"llmseqsim": True, "llm2sasrec": True, "llmseqprompt": True, "vsknn": False,
                            "sasrec": False, "popularity": False}
    assert not rank(create("vsknn", k=10, sample_size=50).fit(shop.split), [1], 3).explainable


def test_compare_marks_shared_items_the_target_and_explains(shop):
    models = {"popularity": create("popularity").fit(shop.split),
              "vsknn": create("vsknn", k=10, sample_size=50).fit(shop.split),
              "vsknn again": create("vsknn", k=10, sample_size=50).fit(shop.split)}
    vectors = np.eye(shop.catalog.n_items, dtype=np.float32)
    results = compare(models, [3, 4], k=5, catalog=shop.catalog, vectors=vectors, target=5)
    assert [r.label for r in results] == ["popularity", "vsknn", "vsknn again"]
    sknn = results[1]
    assert sknn.picks[0].item == 5 and sknn.picks[0].is_target  # learned i -> i+1
    assert all(p.shared >= 1 for p in sknn.picks)  # its twin picked the same five
    assert all(not p.why for p in sknn.picks)  # not an LLM model: no "why"
    assert results[0].picks[0].score >= results[0].picks[-1].score


def test_llm_picks_name_session_positions(shop):
    model = create("llmseqsim").fit(shop.split)  # built on text embeddings: its picks get a "why"
    vectors = np.eye(shop.catalog.n_items, dtype=np.float32)
    picks = compare({"x": model}, [7, 8], k=3, catalog=shop.catalog, vectors=vectors)[0].picks
    assert all(len(p.why) == 2 and {pos for pos, _ in p.why} == {1, 2} for p in picks)


def test_a_failing_model_gives_one_sentence(shop):
    model = create("popularity").fit(shop.split)
    result = compare({"broken": model}, [shop.catalog.n_items + 3], k=3, catalog=shop.catalog)[0]
    assert result.error.startswith("broken could not rank this session") and not result.picks


def test_the_pool_remembers_rankings_and_lets_slow_ones_finish_later(shop):
    import threading
    from concurrent.futures import wait

    from core.picks import RankingPool

    fast = create("popularity").fit(shop.split)
    slow = create("popularity").fit(shop.split)
    release = threading.Event()
    original = slow.recommend

    def slow_recommend(*args, **kwargs):
        release.wait(10)
        return original(*args, **kwargs)

    slow.recommend = slow_recommend
    pool = RankingPool()
    first = pool.submit("fast", fast, [1, 2], 5)
    assert pool.submit("fast", fast, [1, 2], 5) is first  # same model, session and K: remembered
    assert pool.submit("fast", fast, [1, 3], 5) is not first
    late = pool.submit("slow", slow, [1, 2], 5, owner="a")
    stale = pool.submit("slow", slow, [4, 5], 5, owner="a")  # waits behind `late`...
    theirs = pool.submit("slow", slow, [8, 9], 5, owner="b")  # another visitor's request waits too
    shared = pool.submit("slow", slow, [2, 3], 5, owner="c")
    assert pool.submit("slow", slow, [2, 3], 5, owner="a") is shared  # asked by two visitors: computed once
    assert stale.cancelled()  # a moved on: a's older request is dropped...
    newest = pool.submit("slow", slow, [6, 7], 5, owner="a")  # ...but never one another visitor waits for
    wait([first, late], timeout=0.5)
    assert first.done() and not late.done()  # the page draws what is ready (a slow model holds up nothing)...
    assert stale.cancelled() and not newest.done()
    assert not theirs.cancelled() and not shared.cancelled()
    release.set()
    assert theirs.result(timeout=10).error == "" and shared.result(timeout=10).error == ""
    assert late.result(timeout=10).items.tolist() == first.result().items.tolist()  # ...and the rest later
    assert newest.result(timeout=10).error == ""
    assert pool.last_seconds("fast") < 1.0 and pool.last_seconds("unknown") is None


def test_a_generative_models_log_becomes_a_note(shop):
    from core.picks import rank

    model = create("popularity").fit(shop.split)
    counts = []
    model.generation_counts = lambda: counts  # what a generative model reports (Recommender.generation_counts)
    original = model.recommend

    def generating(*args, **kwargs):
        counts.append({"exact": 12, "duplicated": 3, "hallucinated": 5})
        return original(*args, **kwargs)

    model.recommend = generating
    assert rank(model, [1, 2], 5).note.startswith("20 names sampled: 12 exact, 3 duplicated, 5 hallucinated")


def ranking(name, items):
    from core.picks import Ranking

    return Ranking(name, np.array(items, dtype=np.int64), np.linspace(1.0, 0.5, len(items)).astype(np.float32), 0.01)


def test_several_models_mark_means_at_least_half_of_them(shop):
    from core.picks import assemble

    four = {"a": ranking("a", [1, 2, 3]), "b": ranking("b", [1, 2, 4]), "c": ranking("c", [1, 5, 6]),
            "d": ranking("d", [7, 8, 9])}
    marked = {e.label: [p.item for p in e.picks if p.consensus] for e in assemble(four, [0], shop.catalog)}
    assert marked == {"a": [1, 2], "b": [1, 2], "c": [1], "d": []}  # 2 of 4 is half
    five = {**four, "e": ranking("e", [10, 11, 12])}
    marked = {e.label: [p.item for p in e.picks if p.consensus] for e in assemble(five, [0], shop.catalog)}
    assert marked["a"] == [1] and marked["b"] == [1]  # 2 of 5 is not
    alone = assemble({"a": ranking("a", [1, 2])}, [0], shop.catalog)[0]
    assert not any(p.consensus for p in alone.picks)  # one model agrees with nobody


def test_a_session_and_its_picks_export_with_ids_titles_and_the_true_next_item(shop):
    from core.picks import assemble, export_rows, export_session

    entries = assemble({"x": ranking("popularity", [5, 6]), "y": ranking("vsknn", [5])}, [3, 4], shop.catalog,
                       target=5)
    rows = export_rows(entries, shop.catalog, [3, 4])
    assert {r["session"] for r in rows} == {f"{shop.catalog.item_ids[3]} {shop.catalog.item_ids[4]}"}
    assert [(r["variant"], r["rank"], r["item_id"], r["picked_by"], r["true_next"]) for r in rows] == [
        ("x", 1, str(shop.catalog.item_ids[5]), 2, True), ("x", 2, str(shop.catalog.item_ids[6]), 1, False),
        ("y", 1, str(shop.catalog.item_ids[5]), 2, True)]
    exported = export_session("shop", [3, 4], shop.catalog, entries, k=2, target=5, link="http://x/?item=a")
    assert [i["item_id"] for i in exported["session"]] == [str(shop.catalog.item_ids[i]) for i in (3, 4)]
    assert exported["true_next"]["title"] == shop.catalog.title(5) and exported["link"] == "http://x/?item=a"
    assert [p["rank"] for p in exported["models"]["x"]["picks"]] == [1, 2] and exported["models"]["y"]["error"] is None


def test_overlap_says_what_stayed_came_in_and_left(shop):
    from core.picks import assemble, overlap

    pinned, current = (assemble({"m": ranking("m", items)}, [0], shop.catalog)[0] for items in ([1, 2, 3], [3, 4, 1]))
    moved = overlap(pinned, current)
    assert (moved.both, moved.only_current, moved.only_pinned) == ((3, 1), (4,), (2,))
    assert moved.jaccard == pytest.approx(2 / 4)


def test_every_registered_model_says_what_it_reads_and_what_its_score_means():
    from core.models import REGISTRY, model_class

    for name in REGISTRY:
        card = model_class(name).card
        assert card.how != "A registered recommender." and card.score != "score", name  # its own card
        text = type(create(name)).text_embedding(create(name).config) is not None
        hybrid = bool(model_class(name).part_configs(create(name).config))
        assert ("titles" in card.reads) == (text or hybrid), name
