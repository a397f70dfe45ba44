"""Fuzzy title search: typos, word order, every typed word first, popularity breaks ties."""

import numpy as np

from core.search import TitleSearch

TITLES = [
    "Neutrogena Oil-Free Acne Wash, 6 Ounce",  # 0
    "NYX Mega Shine Lip Gloss, Plush Red",  # 1
    "Burt's Bees Lip Balm",  # 2
    "Red Nail Polish",  # 3
    "CoverGirl Lip Gloss, Clear",  # 4
    "Maybelline Great Lash Mascara",  # 5
]


def test_empty_query_gives_nothing():
    assert TitleSearch(TITLES).search("") == []
    assert TitleSearch(TITLES).search("   ") == []


def test_typo_still_finds_the_title():
    assert TitleSearch(TITLES).search("neutrogna", limit=1)[0].item == 0
    assert TitleSearch(TITLES).search("maybeline mascra", limit=1)[0].item == 5


def test_titles_with_every_typed_word_come_first():
    results = TitleSearch(TITLES).search("lip gloss red", limit=3)
    assert results[0].item == 1  # the only title with all three words
    assert {r.item for r in results[:2]} == {1, 4}  # then the other lip gloss, before balm and polish


def test_word_order_does_not_matter():
    assert TitleSearch(TITLES).search("gloss lip red", limit=1)[0].item == 1


def test_popularity_breaks_ties():
    titles = ["Lip Gloss A", "Lip Gloss B"]
    assert TitleSearch(titles, popularity=np.array([1, 50])).search("lip gloss", limit=1)[0].item == 1
    assert TitleSearch(titles, popularity=np.array([50, 1])).search("lip gloss", limit=1)[0].item == 0


def test_limit_and_titles_returned():
    results = TitleSearch(TITLES).search("lip", limit=2)
    assert len(results) == 2
    assert all(r.title == TITLES[r.item] for r in results)
    assert results[0].score >= results[1].score
