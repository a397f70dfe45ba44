"""The hybrids' rules with known answers: which part a session goes to, how two lists merge, what the
popularity filter removes; and that the store reuses a part trained before."""

import dataclasses

import numpy as np
import pytest

from core.common import ConfigError
from core.models import create
from core.models import load as load_saved
from core.models.base import Recommender
from core.models.hybrid import parse_part, session_share


class Fixed(Recommender):
    """A part whose scores are fixed: ``order`` best first, then the rest by index."""

    name = "fixed"

    def __init__(self, n_items: int, order: list[int], scores: list[float] | None = None) -> None:
        super().__init__()
        self.n_items = n_items
        self.vector = np.linspace(-1.0, -2.0, n_items).astype(np.float32)
        given = scores or [1.0 - 0.01 * rank for rank in range(len(order))]
        self.vector[order] = given

    def score(self, sessions):
        return np.tile(self.vector, (len(sessions), 1))


@pytest.fixture()
def shop(synthetic):
    """30 items; item 0 is in every train session (popular), items 20..29 in none (rare)."""
    train = [np.array([0, 1 + s % 19, 1 + (s + 1) % 19]) for s in range(38)]  # items 1..19: 4 sessions each
    return dataclasses.replace(synthetic.split, train=train)


def fitted(name, shop, parts, **options):
    model = create(name, **options)
    for role, part in parts.items():
        model.attach(role, part)
    return model.fit(shop)


def test_part_specs_read_as_the_app_labels_models():
    assert parse_part("llmseqsim") == ("llmseqsim", {})
    assert parse_part(" sasrec (embedding_dim=64, max_length=50) ") == ("sasrec", {"embedding_dim": "64",
                                                                                    "max_length": "50"})
    for spec, problem in [("nosuchmodel", "unknown model 'nosuchmodel'"), ("sasrec (64)", "expected option=value"),
                          ("llmseqsim_popularity", "cannot be a part of another hybrid"), ("", "expected a model")]:
        with pytest.raises(ConfigError, match=problem):
            parse_part(spec)
    with pytest.raises(ConfigError, match="option 'sequential'.*unknown option 'depth'"):
        create("llmseqsim_sequential", sequential="sasrec (depth=3)")


def test_popularity_is_the_share_of_sessions_holding_an_item():
    share = session_share([np.array([0, 0, 1]), np.array([1, 2]), np.array([3])], 5)
    assert share.tolist() == [1 / 3, 2 / 3, 1 / 3, 1 / 3, 0.0]


def test_a_session_ending_on_a_popular_item_goes_to_the_sequential_part(shop):
    n = shop.catalog.n_items
    similar, sequential = Fixed(n, [5, 6, 7]), Fixed(n, [10, 11, 12])
    model = fitted("llmseqsim_sequential", shop, {"similarity": similar, "sequential": sequential}, quantile=0.5)
    # item 0: in every session (popular); item 25: in none (below the median popularity); empty: sequential
    items, _ = model.recommend([[3, 0], [3, 25], []], k=3)
    assert items.tolist() == [[10, 11, 12], [5, 6, 7], [10, 11, 12]]
    sources = model.pick_sources()
    assert "popular" in sources[0][0] and sources[1][0].startswith("fixed: the last item is rare")


def test_counting_popularity_on_all_sessions_is_an_explicit_option(shop):
    n = shop.catalog.n_items
    parts = {"similarity": Fixed(n, [5]), "sequential": Fixed(n, [10])}
    train_only = fitted("llmseqsim_sequential", shop, parts)
    everything = fitted("llmseqsim_sequential", shop, dict(parts), popularity_source="all")
    assert train_only.popularity[25] == 0 and everything.popularity.sum() > train_only.popularity.sum()
    from core.config import field_help

    assert "leaks test information" in field_help(type(train_only.config), "popularity_source")


def test_rank_ensemble_puts_the_first_parts_top_picks_then_the_seconds(shop):
    n = shop.catalog.n_items
    first, second = Fixed(n, [4, 5, 6]), Fixed(n, [5, 9, 4, 8])
    model = fitted("embedding_ensemble", shop, {"first": first, "second": second}, mode="rank", rank_cutoff=2)
    items, scores = model.recommend([[1]], k=5)
    assert items[0].tolist() == [4, 5, 9, 8, 0]  # 4, 5 from the first; 9, 8 then 0 (its rest) from the second
    assert (np.diff(scores[0]) < 0).all()
    assert [s.split(" (")[0] for s in model.pick_sources()[0]] == ["first part"] * 2 + ["second part"] * 3


def test_confidence_ensemble_leads_with_the_first_parts_confident_picks(shop):
    n = shop.catalog.n_items
    first = Fixed(n, [7, 8, 9], scores=[0.95, 0.85, 0.5])
    second = Fixed(n, [9, 3, 2])
    model = fitted("embedding_ensemble", shop, {"first": first, "second": second}, mode="confidence",
                   confidence=0.8)
    items, _ = model.recommend([[1]], k=4)
    assert items[0].tolist() == [7, 8, 9, 3]  # 9 scores 0.5 with the first: it comes from the second


def test_popularity_filter_removes_rare_items_top_down_while_k_remain(shop):
    n = shop.catalog.n_items
    # candidates, best first: rare 25, popular 0, rare 26, popular 1, rare 27, popular 2
    similar = Fixed(n, [25, 0, 26, 1, 27, 2])
    model = fitted("llmseqsim_popularity", shop, {"similarity": similar}, candidates=6, quantile=0.5)
    items, scores = model.recommend([[3]], k=4)
    # six candidates, four must remain: the rare ones go from the top (25, then 26; the authors' order), 27 stays
    assert items[0].tolist() == [0, 1, 27, 2]
    assert scores[0].tolist() == pytest.approx([0.99, 0.97, 0.96, 0.95])
    items, _ = model.recommend([[3]], k=2)
    assert items[0].tolist() == [0, 1]  # with K=2 every rare candidate goes before the list is cut


def test_diversity_drops_near_duplicates_of_a_kept_item(shop):
    n = shop.catalog.n_items
    similar = Fixed(n, [0, 1, 2, 3])
    vectors = np.eye(n, dtype=np.float32)
    vectors[1] = vectors[0] + 0.01  # item 1 is a near copy of item 0
    similar.item_vectors = vectors
    model = fitted("llmseqsim_popularity", shop, {"similarity": similar}, candidates=4, quantile=0.0,
                   diversity=0.9)
    assert model.recommend([[5]], k=2)[0][0].tolist() == [0, 2]
    assert model.recommend([[5]], k=4)[0][0].tolist() == [0, 1, 2, 3]  # nothing may go: only K are left


def test_the_store_reuses_a_part_trained_before_and_a_saved_hybrid_loads_alone(tmp_path, monkeypatch):
    from tiny_data import write_tiny_dataset

    from core import data, store

    dataset = data.load(str(write_tiny_dataset(tmp_path / "shop")))
    spec = "sasrec (embedding_dim=16, heads=2, layers=1, max_epochs=2)"
    part = store.fit_or_load(create("sasrec", embedding_dim=16, heads=2, layers=1, max_epochs=2), dataset)
    fits = []
    original = type(part.model).fit
    monkeypatch.setattr(type(part.model), "fit", lambda self, *a, **k: fits.append(self) or original(self, *a, **k))
    hybrid = store.fit_or_load(create("llmseqsim_sequential", sequential=spec), dataset)
    assert hybrid.status == "fitted" and fits == []  # the sasrec part came from the store
    loaded = load_saved(hybrid.folder)
    prompts = dataset.split.prompts[:10]
    assert np.array_equal(loaded.recommend(prompts, k=5)[0], hybrid.model.recommend(prompts, k=5)[0])
    other = store.model_key(dataset, "llmseqsim_sequential", create("llmseqsim_sequential", sequential=spec,
                                                                    quantile=0.5).config)
    assert other != hybrid.folder.name


def test_the_session_builder_says_which_part_each_pick_came_from(shop):
    from core.picks import compare
    from ui.components import picks_table

    n = shop.catalog.n_items
    model = fitted("embedding_ensemble", shop, {"first": Fixed(n, [4, 5]), "second": Fixed(n, [9, 8])},
                   rank_cutoff=1)
    [entry] = compare({"ensemble": model}, [1], 3, shop.catalog)
    assert [(p.item, p.source) for p in entry.picks] == [(4, "first part (fixed)"), (9, "second part (fixed)"),
                                                         (8, "second part (fixed)")]
    assert "from first part (fixed)" in picks_table(entry, shop.catalog, "1 − rank/K", n_models=1)
    [plain] = compare({"popularity": create("popularity").fit(shop)}, [1], 3, shop.catalog)
    assert all(p.source == "" for p in plain.picks)


def test_the_store_says_which_parts_it_fitted_and_which_it_loaded(tmp_path):
    from tiny_data import write_tiny_dataset

    from core import data, store

    # a shop of its own (name and titles): no part of it is saved by another test
    dataset = data.load(str(write_tiny_dataset(tmp_path / "parts-shop", title_suffix=" (parts)")))
    first = store.fit_or_load(create("embedding_ensemble"), dataset)
    assert [n.split(", ")[0] for n in first.notes] == ["embedding_ensemble: its first part",
                                                       "embedding_ensemble: its second part"]
    assert all(" was fitted in " in n for n in first.notes)
    again = store.fit_or_load(create("embedding_ensemble", rank_cutoff=2), dataset)  # another hybrid, same parts
    assert again.status == "fitted" and all(" was loaded (" in n for n in again.notes)
    assert "llmseqsim (combination=mean)" in again.notes[1]


def test_two_parts_of_one_model_are_told_apart_in_the_why():
    from core.models.hybrid import part_label

    assert part_label(create("llmseqsim")) == "llmseqsim"
    assert part_label(create("llmseqsim", combination="mean")) == "llmseqsim (combination=mean)"
