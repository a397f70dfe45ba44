"""core.synth: synthetic data sets for benchmarks — deterministic, the right counts, a long tail, sessions with
category structure, and files the product's own loader reads."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from core import data, synth
from core.cli import main
from core.common import ConfigError


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synth")
    return synth.generate(3000, 4000, seed=5, out=folder), folder


def test_counts_ids_and_time_order(small):
    report, folder = small
    interactions = pd.read_csv(folder / "interactions.csv", dtype={"session_id": str, "item_id": str})
    items = pd.read_csv(folder / "items.csv", dtype=str)
    assert list(interactions.columns) == ["session_id", "item_id", "timestamp"]
    assert list(items.columns) == ["item_id", "title", "category"]
    assert len(items) == 3000 and items["item_id"].is_unique
    assert items["item_id"].tolist() == sorted(items["item_id"])  # zero-padded: id order is item order
    assert interactions["session_id"].nunique() == 4000
    assert len(interactions) == report.n_interactions
    assert interactions["item_id"].isin(items["item_id"]).all()
    lengths = interactions.groupby("session_id").size()
    assert lengths.min() >= 2 and lengths.max() <= 200
    assert 8.0 < lengths.mean() < 10.0  # Beauty's mean is 8.9
    assert 4 <= lengths.median() <= 8  # heavy-tailed: the median well below the mean's tail
    steps = interactions.groupby("session_id")["timestamp"].diff().dropna()
    assert (steps >= 1).all()  # strictly increasing within each session
    assert report.items_with_interactions == interactions["item_id"].nunique()
    assert items["title"].str.len().min() > 10 and (items["category"] != "").all()


def test_popularity_is_long_tailed(small):
    report, folder = small
    counts = pd.read_csv(folder / "interactions.csv")["item_id"].value_counts().to_numpy()
    top_percent = counts[:30].sum() / counts.sum()
    assert top_percent == pytest.approx(report.top_percent_share)
    assert top_percent > 0.08  # 8× a uniform catalog's 1%
    assert counts[:300].sum() / counts.sum() > 0.35  # the top 10% of items
    # flattening the Zipf exponent flattens the head
    flat = synth.generate(3000, 4000, seed=5, out=folder / "flat", popularity_exponent=0.0)
    assert flat.top_percent_share < 0.03


def test_sessions_follow_categories(small):
    _, folder = small
    interactions = pd.read_csv(folder / "interactions.csv", dtype=str)
    category = interactions["item_id"].map(pd.read_csv(folder / "items.csv", dtype=str)
                                           .set_index("item_id")["category"]).to_numpy()
    sessions = interactions["session_id"].to_numpy()
    same_session = sessions[1:] == sessions[:-1]
    same_category = (category[1:] == category[:-1])[same_session].mean()
    assert same_category > 0.5  # ~110 categories: 1% if items were drawn independently
    repeats = 1 - len(interactions.drop_duplicates(["session_id", "item_id"])) / len(interactions)
    assert repeats < 0.15


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    a = synth.generate(500, 300, seed=1, out=tmp_path / "a")
    b = synth.generate(500, 300, seed=1, out=tmp_path / "b")
    c = synth.generate(500, 300, seed=2, out=tmp_path / "c")
    assert a.interactions_path.read_bytes() == b.interactions_path.read_bytes()
    assert a.items_path.read_bytes() == b.items_path.read_bytes()
    assert a.interactions_path.read_bytes() != c.interactions_path.read_bytes()


def test_the_products_loader_reads_it(small):
    report, folder = small
    dataset = data.load(str(folder))
    assert dataset.name.startswith("data-")
    assert dataset.catalog.n_items == report.items_with_interactions
    assert len(dataset.split.train) == 3200 and dataset.split.n_test > 750
    assert dataset.has_timestamps and dataset.catalog.has_categories
    assert not any("share their title" in note for note in dataset.warnings) or report.repeated_titles > 0


def test_gzip_holds_the_same_rows(tmp_path):
    plain = synth.generate(400, 200, seed=4, out=tmp_path / "plain")
    packed = synth.generate(400, 200, seed=4, out=tmp_path / "packed", compress=True)
    assert packed.interactions_path.name == "interactions.csv.gz"
    assert gzip.decompress(packed.interactions_path.read_bytes()) == plain.interactions_path.read_bytes()
    assert data.load_files(packed.interactions_path, packed.items_path).split.n_test > 0


def test_bad_options_are_one_sentence(tmp_path):
    with pytest.raises(ConfigError, match="n_items must be at least 1"):
        synth.generate(0, 10, out=tmp_path)
    with pytest.raises(ConfigError, match="mean_length"):
        synth.generate(10, 10, out=tmp_path, mean_length=1.0)
    with pytest.raises(ConfigError, match="unknown option 'zipf'"):
        synth.generate(10, 10, out=tmp_path, zipf=1.0)
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_cli_writes_what_prepare_loads(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["synth", "--items", "800", "--sessions", "600", "--out", str(out), "--seed", "3"]) == 0
    assert f"prepare --dataset {out}" in capsys.readouterr().out
    assert main(["prepare", "--interactions", str(out / "interactions.csv"), "--items", str(out / "items.csv")]) == 0
    assert "480 train sessions" in capsys.readouterr().out
    assert main(["synth", "--items", "10", "--sessions", "-1"]) == 2


def test_clustered_vectors():
    vectors = synth.clustered_vectors(2000, 16, n_clusters=5, seed=1)
    assert vectors.shape == (2000, 16) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert np.array_equal(vectors, synth.clustered_vectors(2000, 16, n_clusters=5, seed=1))
    # clustered: an item's nearest neighbour is far closer than a random pair
    sims = vectors[:200] @ vectors.T
    np.fill_diagonal(sims[:, :200], -1)
    assert sims.max(axis=1).mean() > 0.5 > abs(float((vectors[:1000] * vectors[1000:]).sum(axis=1).mean())) + 0.3
