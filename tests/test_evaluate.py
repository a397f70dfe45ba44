"""Evaluation runs, saved results and the CLI's evaluate command."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT
from tiny_data import write_tiny_dataset

from core import data, evaluate
from core.evaluate import EvaluationOptions
from core.models import create
from core.results import sd_key

KEYS = [f"{m}@{k}" for k in (10, 20) for m in ("NDCG", "HR", "MRR", "Coverage", "Serendipity", "Novelty")]


def test_known_lists_give_known_metrics(synthetic):
    split = synthetic.split
    perfect = np.column_stack([split.targets, np.full((split.n_test, 19), -1)])
    result = evaluate.score_lists(perfect, split, split.train_popularity)
    assert result["metrics"]["HR@20"] == 1.0 and result["metrics"]["NDCG@10"] == 1.0
    assert result["intervals"]["HR@20"] == [1.0, 1.0]
    assert sum(b["n_sessions"] for b in result["by_prompt_length"].values()) == split.n_test


def test_run_saves_results_and_reuses_the_fitted_model(synthetic):
    models = [create("popularity"), create("vsknn", k=20, sample_size=60)]
    report = evaluate.run(synthetic, models)
    vsknn = "vsknn (k=20, sample_size=60)"
    assert set(report.results) == {"popularity", vsknn}
    for result in report.results.values():
        assert set(KEYS) <= set(result.metrics) and result.status == "fitted"
    saved = evaluate.load_results(synthetic)
    assert saved[vsknn].metrics["HR@20"] == report.results[vsknn].metrics["HR@20"]
    assert saved[vsknn].by_prompt_length and saved[vsknn].intervals["NDCG@20"]
    again = evaluate.run(synthetic, [create("vsknn", k=20, sample_size=60)])
    assert again.results[vsknn].status == "loaded"
    assert again.results[vsknn].metrics["HR@20"] == report.results[vsknn].metrics["HR@20"]
    assert again.results[vsknn].fit_seconds == pytest.approx(report.results[vsknn].fit_seconds, abs=1e-3)


def test_paper_popularity_changes_only_beyond_accuracy_metrics(ml100k):
    model = create("vsknn", k=50, sample_size=200).fit(ml100k.split)
    ours = evaluate.evaluate_model(model, ml100k.split, EvaluationOptions(bootstrap_resamples=10))
    paper = evaluate.evaluate_model(model, ml100k.split, EvaluationOptions(paper_popularity=True,
                                                                           bootstrap_resamples=10))
    assert ours["metrics"]["NDCG@20"] == paper["metrics"]["NDCG@20"]
    assert ours["metrics"]["Novelty@20"] != paper["metrics"]["Novelty@20"]


def test_popularity_keeps_prompt_items_like_the_paper(ml100k):
    model = create("popularity").fit(ml100k.split)
    assert model.exclude_seen_in_evaluation is False
    assert create("popularity", filter_prompt_items=True).exclude_seen_in_evaluation is True


def test_cli_evaluate_writes_the_documented_json(tmp_path):
    output = tmp_path / "results.json"
    result = subprocess.run([sys.executable, "-m", "core", "evaluate", "--dataset", "ml-100k", "--models",
                             "popularity,vsknn", "--set", "vsknn.k=50", "--set", "sample_size=200",
                             "--output", str(output)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    report = json.loads(output.read_text())
    assert report["dataset"] == "ml-100k" and report["n_test_sessions"] > 0
    entry = report["models"]["vsknn (k=50, sample_size=200)"]
    assert set(KEYS + ["fit_seconds", "predict_seconds", "status"]) <= set(entry)
    assert "vsknn (k=50, sample_size=200)" in result.stdout


def test_diversity_is_measured_for_every_model_of_a_run_or_for_none(tmp_path):
    # LLMSeqSim embeds the catalog; the popularity list ranked before it is measured in the same vectors.
    dataset = data.load(str(write_tiny_dataset(tmp_path / "shop", title_suffix=" (run)")))
    report = evaluate.run(dataset, [create("popularity"), create("llmseqsim")])
    assert all("Diversity@20" in result.metrics for result in report.results.values())
    alone = data.load(str(write_tiny_dataset(tmp_path / "other", title_suffix=" (alone)")))
    report = evaluate.run(alone, [create("popularity"), create("vsknn")])
    assert all("Diversity@20" not in result.metrics for result in report.results.values())


def test_cli_refuses_an_output_folder_that_does_not_exist_before_running(tmp_path, capsys):
    from core import cli

    target = tmp_path / "missing" / "report.json"
    assert cli.main(["evaluate", "--dataset", "ml-100k", "--models", "popularity", "--output", str(target)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: --output {target}: the folder {target.parent} does not exist."]


@pytest.mark.parametrize("args, message", [
    (["--models", "nope"], "unknown model"),
    (["--set", "colour=red"], "has an option 'colour'"),
    (["--set", "vsknn.decay=sideways"], "must be one of"),
    (["--set", "vsknn.k=many"], "expects int"),
])
def test_cli_rejects_bad_options_in_one_line(args, message):
    result = subprocess.run([sys.executable, "-m", "core", "evaluate", "--dataset", "ml-100k", *args],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_idf_weighting_lifts_a_rare_item_over_a_common_one(synthetic):
    """Prompt [0]: item 2 gets two neighbours' votes, item 1 one; but item 2 is in 6 of 7 train sessions and item 1
    in one, so with the authors' IDF (1 + ln(7/1) = 2.95 vs 2 x (1 + ln(7/6)) = 2.31) item 1 leads."""
    import dataclasses

    train = [np.array(s) for s in ([0, 1], [0, 2], [0, 2], [3, 2], [4, 2], [5, 2], [6, 2])]
    split = dataclasses.replace(synthetic.split, train=train, train_times=np.arange(len(train), dtype=float))
    options = {"k": 10, "sample_size": 10, "decay": "none", "similarity": "dot"}
    plain = create("sknn", **options).fit(split)
    weighted = create("sknn", idf_weighting=True, **options).fit(split)
    assert plain.recommend([[0]], k=2)[0][0].tolist() == [2, 1]
    items, scores = weighted.recommend([[0]], k=2)
    assert items[0].tolist() == [1, 2]
    assert scores[0].tolist() == pytest.approx([1 + np.log(7), 2 * (1 + np.log(7 / 6))], rel=1e-5)


def test_popularity_buckets_have_known_members():
    counts = np.array([0, 1, 4, 5, 19, 20, 100])
    fixed = {label: list(counts[mask]) for label, mask in evaluate.popularity_groups(counts)}
    assert fixed == {"0": [0], "1-4": [1, 4], "5-19": [5, 19], "20+": [20, 100]}
    quartiles = {label: list(c[mask]) for c in [np.array([10, 1, 2, 3, 1, 2, 10, 3])]
                 for label, mask in evaluate.popularity_groups(c, quantiles=4)}
    assert quartiles == {"1": [1, 1], "2": [2, 2], "3": [3, 3], "10": [10, 10]}  # equal sizes, in order
    tied = evaluate.popularity_groups(np.array([5, 5, 5, 5]), quantiles=4)
    assert [(label, int(mask.sum())) for label, mask in tied] == [("5", 4)]  # one bucket, not four empty cuts
    assert evaluate.popularity_groups(np.array([3, 7]), quantiles=1)[0][0] == "3-7"


def test_breakdown_by_target_popularity_is_of_the_targets_train_counts(synthetic):
    split = synthetic.split
    perfect = np.column_stack([split.targets, np.full((split.n_test, 19), -1)])
    result = evaluate.score_lists(perfect, split, split.train_popularity)
    buckets = result["by_target_popularity"]
    counts = split.train_popularity[split.targets]
    assert sum(b["n_sessions"] for b in buckets.values()) == split.n_test
    assert buckets["20+"]["n_sessions"] == int((counts >= 20).sum()) and buckets["20+"]["HR@20"] == 1.0
    quartiles = result["by_target_popularity_quantile"]
    assert sum(b["n_sessions"] for b in quartiles.values()) == split.n_test and len(quartiles) >= 2


def test_the_breakdown_table_has_a_column_per_bucket_with_its_sessions(synthetic):
    report = evaluate.run(synthetic, [create("popularity")], save=False)
    result = report.results["popularity"]
    text = evaluate.format_breakdown(report, "by_target_popularity").splitlines()
    assert text[0] == "NDCG@20 by target popularity (sessions)"
    buckets = result.by_target_popularity
    assert text[1].split()[1:] == [w for b, v in buckets.items() for w in (b, f"({v['n_sessions']:,})")]
    assert text[2].split() == ["popularity", *(f"{v['NDCG@20']:.4f}" for v in buckets.values())]


def test_breakdown_buckets_keep_each_metrics_std_over_their_sessions(synthetic):
    split = synthetic.split
    lists = np.column_stack([np.where(np.arange(split.n_test) % 3 == 0, split.targets, -1),
                             np.full((split.n_test, 19), -1)])  # every third session a hit at rank 1
    scored = evaluate.score_lists(lists, split, split.train_popularity)
    lengths = np.array([len(p) for p in split.prompts])
    hits = (np.arange(split.n_test) % 3 == 0).astype(float)
    for label, mask in evaluate._binned(lengths, evaluate.LENGTH_BINS):
        saved = scored["by_prompt_length"][label]
        assert saved["HR@20"] == pytest.approx(hits[mask].mean())
        expected = hits[mask].std(ddof=1) if mask.sum() > 1 else 0.0
        assert saved[sd_key("HR@20")] == pytest.approx(expected)


def test_labels_are_made_when_loading_so_a_variant_saved_under_the_plain_name_is_told_apart(synthetic):
    from core import store

    default, variant = evaluate.run(synthetic, [create("sknn"), create("sknn", k=7)]).results.values()
    stale = store.result_path(synthetic.name, variant.key, variant.evaluation)
    payload = json.loads(stale.read_text())
    payload["label"] = "sknn"  # as when the defaults were other at evaluation time
    stale.write_text(json.dumps(payload))
    loaded = evaluate.load_results(synthetic)
    assert loaded["sknn"].key == default.key  # the default config's run is the model's name...
    assert loaded["sknn (k=7)"].key == variant.key  # ... and the other one a labelled variant, not dropped
