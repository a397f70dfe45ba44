"""The open-question studies' building blocks (core.study): new items (cold start), train subsets, what text to
embed, and the studies' records — each on a tiny data set with a known answer."""

import numpy as np
import pandas as pd
import pytest

from core import data, study
from core.data import DataError
from core.embeddings import EmbeddingSpec, item_embeddings
from core.models import create

FRUIT = ["apple", "banana", "cherry", "grape", "pear", "plum"]
MUSIC = ["violin", "guitar", "piano", "drum", "flute", "cello"]


def cold_shop(folder):
    """Train sessions mix fruit and instruments; the last (test) sessions end in a **new** item, "electric
    guitar", right after "guitar": the new item's title makes it the obvious next item for a text model."""
    rows, time = [], 0
    catalog = FRUIT + MUSIC
    for s in range(60):
        session = [catalog[(s + j) % len(catalog)] for j in range(3)]
        for position, item in enumerate(session):
            rows.append((f"s{s:03d}", item, time + position))
        time += 10
    for s in range(60, 75):  # the last 20%: the test sessions; each ends in the new item
        for position, item in enumerate([FRUIT[s % 6], "guitar", "electric guitar"]):
            rows.append((f"s{s:03d}", item, time + position))
        time += 10
    interactions = pd.DataFrame(rows, columns=["session_id", "item_id", "timestamp"])
    items = pd.DataFrame({"item_id": catalog + ["electric guitar"], "title": catalog + ["electric guitar"],
                          "category": ["fruit"] * 6 + ["music"] * 7,
                          "maker": ["orchard"] * 6 + ["luthier"] * 7})
    folder.mkdir(parents=True, exist_ok=True)
    interactions.to_csv(folder / "interactions.csv", index=False)
    items.to_csv(folder / "items.csv", index=False)
    return data.load(str(folder))


def test_the_paper_protocol_drops_new_targets_and_cold_mode_keeps_them(tmp_path):
    dataset = cold_shop(tmp_path / "coldshop")
    new = dataset.catalog.index_of["electric guitar"]
    assert dataset.split.train_popularity[new] == 0
    assert new not in dataset.split.targets  # the paper's protocol: the new item is removed from test sessions
    cold = data.cold_item_split(dataset.split)
    assert cold.n_test == 15 and set(cold.targets) == {new}
    assert [dataset.catalog.item_ids[i] for i in cold.prompts[0]][-1] == "guitar"


def test_cold_mode_needs_a_new_target(synthetic):
    with pytest.raises(DataError, match="unseen in train"):
        data.cold_item_split(synthetic.split)


def test_llmseqsim_recommends_the_new_item_its_title_points_to(tmp_path):
    dataset = cold_shop(tmp_path / "coldshop")
    cold = data.cold_item_split(dataset.split)
    model = create("llmseqsim").fit(dataset.split)
    items, _ = model.recommend(cold.prompts, 1)
    assert set(items[:, 0]) == {dataset.catalog.index_of["electric guitar"]}  # content-based: new items are fine
    assert model.prepare_new_items(dataset.split)[0] is False  # nothing to change


def test_llm2_models_map_new_items_from_their_titles_and_id_models_cannot(tmp_path):
    dataset = cold_shop(tmp_path / "coldshop")
    new = dataset.catalog.index_of["electric guitar"]
    options = dict(embedding_dim=16, heads=1, max_epochs=2, batch_size=16, max_length=5)
    plain = create("sasrec", **options).fit(dataset.split)
    assert plain.prepare_new_items(dataset.split)[0] is False
    llm = create("sasrec", item_init="llm", **options).fit(dataset.split)
    guitar = dataset.catalog.index_of["guitar"]
    trained_guitar = llm.learned_item_vectors()[guitar].copy()
    changed, how = llm.prepare_new_items(dataset.split)
    assert changed and "most similar title" in how
    after = llm.learned_item_vectors()
    # "electric guitar" takes the row and bias of "guitar", the seen item with the nearest title; nothing else moves
    assert np.array_equal(after[new], trained_guitar) and np.array_equal(after[guitar], trained_guitar)
    bias = llm.module.output.bias.detach().numpy()
    assert bias[new] == bias[guitar]


def test_a_train_subset_is_the_latest_sessions_scored_on_the_same_prompts(synthetic):
    split = synthetic.split
    half = data.train_subset(split, 0.5)
    assert len(half.train) == round(len(split.train) / 2)
    assert all(a is b for a, b in zip(half.train, split.train[-len(half.train):]))
    assert half.prompts is split.prompts and half.targets is split.targets
    with pytest.raises(DataError, match=r"\(0, 1\]"):
        data.train_subset(split, 0)


def test_item_text_fields_are_read_embedded_and_validated(tmp_path):
    dataset = cold_shop(tmp_path / "coldshop")
    catalog = dataset.catalog
    assert catalog.text_fields == ["category", "maker"]
    assert catalog.item_texts(["category", "maker"])[catalog.index_of["apple"]] == \
        "apple. category: fruit. maker: orchard."
    assert catalog.item_texts()[catalog.index_of["apple"]] == "apple"  # the title alone by default
    with pytest.raises(DataError, match="no text field 'brand'; available: category, maker"):
        catalog.item_texts(["brand"])
    titles = item_embeddings(catalog, EmbeddingSpec())
    richer = item_embeddings(catalog, EmbeddingSpec(fields="category"))
    assert titles.shape == richer.shape and not np.allclose(titles, richer)  # another text, other vectors
    model = create("llmseqsim", embedding_fields="category").fit(dataset.split)
    assert np.allclose(model.item_vectors, richer)


def test_a_study_is_saved_read_back_and_summarised(tmp_path, monkeypatch):
    monkeypatch.setattr(study, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(study, "PUBLISHED", tmp_path / "published")
    assert study.load("shop", "data-size") is None
    rows = [{"model": m, "seed": 0, "fraction": f, "split": "test", "NDCG@20": v}
            for m, f, v in (("popularity", 0.5, 0.1), ("popularity", 1.0, 0.2), ("sasrec", 0.5, 0.05),
                            ("sasrec", 1.0, 0.3))]
    result = study.StudyResult("data-size", "shop", "python -m core study data-size --dataset shop", rows=rows)
    study.save(result)
    again = study.load("shop", "data-size")
    assert again is not None and again.rows == rows and again.source == "cache"
    table = study.summary(again).set_index("model")
    assert table.loc["sasrec", "NDCG@20 at 100%"] == 0.3 and table.loc["popularity", "NDCG@20 at 50%"] == 0.1
    (tmp_path / "cache" / "studies" / "shop" / "data-size.json").write_text("{not json")
    assert study.load("shop", "data-size") is None  # damaged: missing, never an error


def test_mean_pairwise_cosine_has_known_values():
    assert study.mean_pairwise_cosine(np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])) == pytest.approx(1.0)
    assert study.mean_pairwise_cosine(np.array([[1.0, 0.0], [0.0, 1.0]])) == pytest.approx(0.0)
    assert study.mean_pairwise_cosine(np.array([[1.0, 0.0], [-1.0, 0.0]])) == pytest.approx(-1.0)
    # three unit vectors 120° apart: every pair -0.5
    angles = np.deg2rad([0, 120, 240])
    assert study.mean_pairwise_cosine(np.column_stack([np.cos(angles), np.sin(angles)])) == pytest.approx(-0.5)


def test_evaluate_cold_items_scores_only_new_targets_and_keeps_its_own_results(tmp_path):
    from core import evaluate
    from core.evaluate import EvaluationOptions

    dataset = cold_shop(tmp_path / "coldshop")
    usual = evaluate.run(dataset, [create("llmseqsim"), create("popularity")])
    cold = evaluate.run(dataset, [create("llmseqsim"), create("popularity")], EvaluationOptions(cold_items=True))
    assert cold.n_test_sessions == 15 and usual.n_test_sessions == dataset.split.n_test
    assert cold.results["llmseqsim"].metrics["HR@10"] == 1.0  # "electric guitar" after "guitar", by its title
    assert cold.results["popularity"].metrics["HR@10"] == 0.0  # a count ranks a never-seen item last (13 items)
    assert any(n.startswith("llmseqsim: new items: content-based") for n in cold.results["llmseqsim"].notes)
    saved = evaluate.load_results(dataset, EvaluationOptions(cold_items=True))
    assert saved["llmseqsim"].n_test_sessions == 15
    assert evaluate.load_results(dataset)["llmseqsim"].n_test_sessions == dataset.split.n_test  # not replaced
    # results saved before the option existed keep their tag: the default options hash as they always did
    assert evaluate.options_tag(EvaluationOptions()) == "04597e"


def _cli(*args):
    import subprocess
    import sys

    from conftest import ROOT

    return subprocess.run([sys.executable, "-m", "core", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=600)


def test_the_study_command_prints_its_table_and_saves_the_result(tmp_path):
    import json

    folder = tmp_path / "coldshop"
    cold_shop(folder)
    output = tmp_path / "out.json"
    done = _cli("study", "cold-items", "--dataset", str(folder), "--models", "popularity,llmseqsim",
                "--output", str(output))
    assert done.returncode == 0, done.stderr
    assert "15 of 15 held-out sessions end in an item never seen in train" in done.stdout
    saved = json.loads(output.read_text())
    assert saved["command"] == f"python -m core study cold-items --dataset {folder} --models popularity,llmseqsim"
    new = {row["model"]: row["HR@10"] for row in saved["rows"] if row["split"] == "new items"}
    assert new == {"popularity": 0.0, "llmseqsim": 1.0}
    bad = _cli("study", "data-size", "--dataset", str(folder), "--fractions", "half")
    assert bad.returncode == 2 and "--fractions takes percentages" in bad.stderr
    unknown = _cli("study", "data-size", "--dataset", str(folder), "--models", "sasrek")
    assert unknown.returncode == 2 and "unknown model(s) ['sasrek']" in unknown.stderr


def _result(name, rows):
    return study.StudyResult(name, "shop", f"python -m core study {name} --dataset shop", rows=rows)


def test_findings_answers_are_written_from_the_numbers():
    from core import findings

    size = _result("embedding-size", [
        {"model": m, "embedding": e, "parameters": p, "dimension": d, "postprocessing": post, "split": "test",
         "NDCG@20": v}
        for m, e, p, d, post, v in (
            ("llmseqsim", "small", 22.7e6, 384, "none", 0.044), ("llmseqsim", "big", 109.5e6, 768, "none", 0.038),
            ("llmseqsim", "big", 109.5e6, 768, "mean-centred", 0.046),
            ("llm2sasrec", "small", 22.7e6, 384, None, 0.030), ("llm2sasrec", "big", 109.5e6, 768, None, 0.033))])
    assert findings.answer(size) == (
        "The bigger big (109.5M parameters, 768-d) against small (22.7M, 384-d) helps some models only: test NDCG@20 "
        "llmseqsim 0.0380 vs 0.0440 (-14%), llm2sasrec 0.0330 vs 0.0300 (+10%). What helps most is post-processing "
        "the vectors: mean-centred gives LLMSeqSim with big 0.0460 (+21% over the raw vectors).")
    cold = _result("cold-items", [
        {"model": "sasrec", "split": "test", "NDCG@20": 0.03, "n_sessions": 100},
        {"model": "sasrec", "split": "new items", "NDCG@20": 0.0, "n_sessions": 12},
        {"model": "llmseqsim", "split": "test", "NDCG@20": 0.04, "n_sessions": 100},
        {"model": "llmseqsim", "split": "new items", "NDCG@20": 0.02, "n_sessions": 12},
        {"model": "llm2sasrec", "split": "test", "NDCG@20": 0.035, "n_sessions": 100},
        {"model": "llm2sasrec", "split": "new items", "NDCG@20": 0.0, "n_sessions": 12},
        {"model": "llm2sasrec", "split": "new items, mapped", "NDCG@20": 0.01, "n_sessions": 12}])
    assert findings.answer(cold) == (
        "On the 12 test sessions whose target is a new item, llmseqsim is best with NDCG@20 0.0200, while sasrec "
        "never ranks the new target in the top 20 (0.0000). Mapping new items' rows from their title embeddings "
        "takes llm2sasrec from 0.0000 to 0.0100.")
    text = _result("item-text", [
        {"model": "llmseqsim", "text": t, "split": "test", "NDCG@20": v}
        for t, v in (("title", 0.02), ("title + category", 0.025), ("title + category + tags", 0.03))])
    assert findings.answer(text) == ("llmseqsim: embedding title + category + tags gives NDCG@20 0.0300 against "
                                     "0.0200 for the title alone (+50%).")
    for result in (size, cold, text):
        assert len(findings.figure(result).data) >= 1


def test_embedding_size_compares_a_local_and_an_openai_compatible_model(tmp_path, monkeypatch):
    from fake_openai import API_KEY, DIM, FakeOpenAI

    dataset = cold_shop(tmp_path / "coldshop")
    with FakeOpenAI() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
        assert {e["name"] for e in study.available_embeddings()} >= {"all-MiniLM-L6-v2", "text-embedding-3-small"}
        result = study.embedding_size(dataset, models=["llmseqsim"],
                                      embeddings=["all-MiniLM-L6-v2", "text-embedding-3-small"])
        with pytest.raises(study.StudyError, match=r"\['text-embedding-9'\] are not available"):
            study.embedding_size(dataset, models=["llmseqsim"], embeddings=["text-embedding-9"])
    test = pd.DataFrame(result.rows).query("split == 'test'")
    assert set(test["embedding"]) == {"all-MiniLM-L6-v2", "text-embedding-3-small"}
    assert set(test["dimension"]) == {384, DIM}  # the width of the vectors, as the server sent them
    assert len(test) == 2 * len(study.POSTPROCESSING)  # per embedding, each post-processing once, on test
    validation = pd.DataFrame(result.rows).query("split == 'validation'")
    assert len(validation) == 2 * len(study.POSTPROCESSING) * len(study.AGGREGATIONS)
    chosen = test.iloc[0]  # its aggregation is the one with the best fold mean
    folds = validation[(validation["embedding"] == chosen["embedding"])
                       & (validation["postprocessing"] == chosen["postprocessing"])]
    assert chosen["aggregation"] == folds.loc[folds["NDCG@20"].idxmax(), "aggregation"]
    assert any(n.startswith("text-embedding-3-small: mean cosine") for n in result.notes)
    assert list(study.summary(result)["parameters"]).count("–") == len(study.POSTPROCESSING)  # unpublished


def test_item_text_study_compares_the_title_with_more_text(tmp_path, synthetic):
    dataset = cold_shop(tmp_path / "coldshop")
    result = study.item_text(dataset, models=["llmseqsim"])
    test = pd.DataFrame(result.rows).query("split == 'test'")
    assert list(test["text"]) == ["title", "title + category", "title + category + maker"]
    assert test["NDCG@20"].notna().all()
    with pytest.raises(study.StudyError, match="no text besides the title"):
        study.item_text(data.Dataset(name="bare", catalog=dataclasses_replace(synthetic.catalog), split=synthetic.split,
                                     folds=synthetic.folds), models=["llmseqsim"])


def dataclasses_replace(catalog):
    import dataclasses

    return dataclasses.replace(catalog, categories=[""] * catalog.n_items, attributes={})


def test_an_interaction_column_in_the_items_file_is_named_not_dropped_silently(tmp_path):
    folder = tmp_path / "ordered"
    cold_shop(folder)
    items = pd.read_csv(folder / "items.csv")
    items["order"] = range(len(items))
    items.to_csv(folder / "items.csv", index=False)
    dataset = data.load(str(folder))
    assert any("column(s) order are interaction columns, ignored in an items file" in w for w in dataset.warnings)
    assert dataset.catalog.text_fields == ["category", "maker"]
