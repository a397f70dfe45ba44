"""Tables, figures and the HTML report over saved results (core.report), on hand-made results."""

import io

import numpy as np
import pandas as pd
import pytest

from core import report, store
from core.config import config_dict
from core.models import model_class
from core.results import EvaluationResult, sd_key


def result(ndcg, hr, coverage, interval=(0.01, 0.03)):
    metrics = {"NDCG@20": ndcg, "HR@20": hr, "MRR@20": ndcg / 2, "Coverage@20": coverage, "Novelty@20": 10.0,
               "Serendipity@20": hr / 2, "NDCG@10": ndcg * 0.9, "HR@10": hr * 0.8}
    return EvaluationResult(dataset="beauty", model="x", label="x", config={}, n_test_sessions=4469,
                            metrics=metrics, fit_seconds=1.5, intervals={"NDCG@20": list(interval)},
                            by_prompt_length={"1": {"n_sessions": 3, "NDCG@20": 0.1},
                                              "2": {"n_sessions": 5, "NDCG@20": 0.2},
                                              "10+": {"n_sessions": 7, "NDCG@20": 0.3}})


RESULTS = {"vsknn": result(0.0467, 0.0953, 0.685), "popularity": result(0.0061, 0.0152, 0.0017)}


def test_formatted_table_shows_value_and_interval():
    table = report.formatted_table(RESULTS, ks=(20,))
    assert table.loc["vsknn", "NDCG@20"] == "0.0467 [0.0100, 0.0300]"
    assert table.loc["vsknn", "HR@20"] == "0.0953"  # no interval saved for it: value only
    assert table.loc["popularity", "test sessions"] == "4,469"


def test_paper_figures_are_labelled_and_only_on_beauty():
    beauty = report.long_frame(RESULTS, "beauty", with_paper=True)
    paper = beauty[beauty["source"] == report.PAPER_LABEL]
    assert set(paper["model"]) == set(report.PAPER_BEAUTY)
    assert paper.set_index(["model", "metric"]).loc[("vsknn", "NDCG@20"), "value"] == 0.0475
    assert (report.long_frame(RESULTS, "ml-100k", with_paper=True)["source"] == "ours").all()


def test_paper_comparison_ratio():
    table = report.paper_comparison(RESULTS).set_index(["model", "metric"])
    assert abs(table.loc[("vsknn", "NDCG@20"), "ours / paper"] - 0.0467 / 0.0475) < 1e-12
    assert pd.isna(table.loc[("sasrec", "NDCG@20"), "ours"])  # not evaluated here: missing, not zero


def test_figures_give_each_model_one_colour_in_every_chart():
    frame = report.long_frame(RESULTS, "beauty", with_paper=True)
    colours = report.model_colours(["vsknn", "popularity"])
    assert colours["vsknn"] != colours["popularity"]
    bars = report.bar_figure(frame, "NDCG@20", colours)
    ours = {t.name: t.marker.color for t in bars.data if t.name != report.PAPER_LABEL}
    assert ours == colours
    assert [t.name for t in bars.data if t.marker.pattern.shape == "/"] == [report.PAPER_LABEL]
    points = report.tradeoff_figure(RESULTS, colours=colours)
    assert {t.name: t.marker.color for t in points.data} == colours  # one trace per model, named in the legend
    lines = report.breakdown_figure(RESULTS, colours=colours, minimum=1)
    assert {t.name: t.line.color for t in lines.data} == colours
    assert list(lines.data[0].x) == ["1<br>n=3", "2<br>n=5", "10+<br>n=7"]  # the bins in order, with their n


def test_a_long_label_is_wrapped_whole_not_cut():
    label = "vsknn (k=70, sample_size=1090, similarity=dot, decay=harmonic, idf_weighting=True)"
    text = report.wrapped(label)
    assert text.replace("<br>", " ") == label and max(len(line) for line in text.split("<br>")) <= report.WRAP


def test_csv_and_html_exports():
    csv = report.csv_export(RESULTS)
    assert csv.splitlines()[0] == "model,metric,value,low,high,source,std,n"  # std, n: see csv_export
    page = report.html_report("beauty", RESULTS)
    assert page.startswith("<!DOCTYPE html>") and page.count("<script") >= 5
    assert "<script src=" not in page and "plotly.js v" in page  # plotly.js inlined: opens offline
    assert "Next to the paper" in page and "0.0467 [0.0100,\u00a00.0300]" in page  # the interval kept on one line
    assert "Next to the paper" not in report.html_report("ml-100k", RESULTS)


def test_the_report_never_renders_a_label_as_html():
    label = "llmseqprompt (model_folder=<img src=x onerror=alert(1)>)"
    results = {label: result(0.01, 0.02, 0.3)}
    page = report.html_report("<b>shop</b>", results)
    assert "<img src=x" not in page and "<b>shop</b>" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    figure = report.bar_figure(report.long_frame(results), "NDCG@20")
    assert figure.data[0].name.replace("<br>", " ") == "llmseqprompt (model_folder=&lt;img src=x onerror=alert(1)&gt;)"


# ------------------------------------------------------------------------------------------------ seeds
def run(ndcg, seed=0, **options):
    """A saved SASRec run as ``core.evaluate`` makes it: the full config, labelled by ``core.store.label``."""
    config = config_dict(model_class("sasrec").Config(seed=seed, **options))
    return EvaluationResult(dataset="beauty", model="sasrec", label=store.label("sasrec", config), config=config,
                            n_test_sessions=100, metrics={"NDCG@20": ndcg, "HR@20": 2 * ndcg},
                            intervals={"NDCG@20": [ndcg - 0.004, ndcg + 0.006]}, fit_seconds=float(seed + 1),
                            by_prompt_length={"1": {"n_sessions": 3, "NDCG@20": ndcg}})


SEEDS = {r.label: r for r in (run(0.01), run(0.03, seed=2), run(0.02, seed=1), run(0.05, dropout=0.5))}


def test_runs_differing_only_in_the_seed_are_one_row_with_mean_std_and_n():
    rows = report.seed_groups(SEEDS)
    assert list(rows) == ["sasrec (3 seeds)", "sasrec (dropout=0.5)"]
    group = rows["sasrec (3 seeds)"]
    assert group.grouped and group.seeds == [0, 1, 2]
    assert group.mean["NDCG@20"] == pytest.approx(0.02) and group.std["NDCG@20"] == pytest.approx(0.01)  # ddof=1
    assert group.n["NDCG@20"] == 3 and group.interval("NDCG@20") is None
    assert group.fit_seconds == pytest.approx(2.0)
    alone = rows["sasrec (dropout=0.5)"]  # another option changed: not one of the seeds
    assert not alone.grouped and alone.std == {} and alone.interval("NDCG@20") == pytest.approx([0.046, 0.056])
    assert list(report.seed_groups(SEEDS, group=False)) == list(SEEDS)  # the toggle off: every run a row


def test_a_variant_with_seeds_is_labelled_with_its_options():
    results = {r.label: r for r in (run(0.01, dropout=0.5), run(0.02, seed=1, dropout=0.5), run(0.04, seed=1))}
    rows = report.seed_groups(results)
    assert list(rows) == ["sasrec (dropout=0.5, 2 seeds)", "sasrec (seed=1)"]  # one run keeps its label
    assert rows["sasrec (dropout=0.5, 2 seeds)"].std["NDCG@20"] == pytest.approx(0.01 / 2 ** 0.5)


def test_grouped_table_csv_and_figure_show_the_spread_over_seeds():
    table = report.formatted_table(SEEDS, ks=(20,), group_seeds=True)
    assert table.loc["sasrec (3 seeds)", "NDCG@20"] == "0.0200 ± 0.0100"
    assert table.loc["sasrec (3 seeds)", "trained"] == "3 (seeds 0, 1, 2)"
    assert table.loc["sasrec (dropout=0.5)", "trained"] == "seed 0 · max 100 epochs"  # no save in the store
    assert table.loc["sasrec (dropout=0.5)", "NDCG@20"] == "0.0500 [0.0460, 0.0560]"  # bootstrap, as today
    assert report.formatted_table(SEEDS, ks=(20,)).loc["sasrec (seed=2)", "NDCG@20"] == "0.0300 [0.0260, 0.0360]"

    csv = pd.read_csv(io.StringIO(report.csv_export(SEEDS, group_seeds=True))).set_index(["model", "metric"])
    assert list(csv.columns) == ["value", "low", "high", "source", "std", "n"]
    grouped = csv.loc[("sasrec (3 seeds)", "NDCG@20")]
    assert grouped["value"] == pytest.approx(0.02) and grouped["std"] == pytest.approx(0.01)
    assert grouped["n"] == 3 and pd.isna(grouped["low"])
    single = csv.loc[("sasrec (dropout=0.5)", "NDCG@20")]
    assert single["n"] == 1 and pd.isna(single["std"]) and single["high"] == pytest.approx(0.056)

    figure = report.bar_figure(report.long_frame(SEEDS, group_seeds=True), "NDCG@20")
    assert [bar.name for bar in figure.data] == ["sasrec (3 seeds)", "sasrec (dropout=0.5)"]
    assert [bar.x[0] for bar in figure.data] == pytest.approx([0.02, 0.05])
    assert [bar.error_x.array[0] for bar in figure.data] == pytest.approx([0.01, 0.006])  # ± std; bootstrap's upper
    assert [bar.error_x.arrayminus[0] for bar in figure.data] == pytest.approx([0.01, 0.004])  # ... and lower
    assert "std over seeds" in figure.layout.title.subtitle.text
    assert "std over seeds" not in report.bar_figure(report.long_frame(SEEDS), "NDCG@20").layout.title.subtitle.text


def test_grouped_html_report_and_other_charts_use_the_means():
    page = report.html_report("beauty", SEEDS, group_seeds=True)
    assert "sasrec (3 seeds)" in page and "0.0200 ±\u00a00.0100" in page and "standard deviation" in page
    assert report.wide_table(SEEDS, group_seeds=True).loc["sasrec (3 seeds)", "NDCG@20"] == pytest.approx(0.02)
    lengths = report.breakdown_frame(SEEDS, group_seeds=True, minimum=1).set_index("model")
    assert lengths.loc["sasrec (3 seeds)", "value"] == pytest.approx(0.02)
    assert lengths.loc["sasrec (3 seeds)", "sessions"] == 3
    paper = report.paper_comparison(SEEDS, group_seeds=True).set_index(["model", "metric"])
    assert paper.loc[("sasrec", "NDCG@20"), "ours"] == pytest.approx(0.02)
    assert paper.loc[("sasrec", "NDCG@20"), "runs"] == 3


def test_a_metric_only_some_seeds_have_says_over_how_many():
    older = run(0.01)
    newer = run(0.03, seed=1)
    newer.metrics["Diversity@20"] = 0.4  # the older run predates the metric
    table = report.formatted_table({r.label: r for r in (older, newer)}, ks=(20,), group_seeds=True)
    assert table.loc["sasrec (2 seeds)", "Diversity@20"] == "0.4000 (n=1)"
    assert table.loc["sasrec (2 seeds)", "NDCG@20"] == "0.0200 ± 0.0141"


# ------------------------------------------------------------------------------------------------ breakdowns
def bucket(values, metric="NDCG@20"):
    """A breakdown bucket as the evaluation saves it, from per-session values."""
    values = np.asarray(values, dtype=float)
    return {"n_sessions": len(values), metric: values.mean(), sd_key(metric): values.std(ddof=1)}


def test_small_buckets_merge_into_a_neighbour_with_the_pooled_mean_and_std():
    sessions = {"1": [0, 1], "2": [1], "3": [0, 0, 1]}
    buckets = {label: bucket(v) if len(v) > 1 else {"n_sessions": 1, "NDCG@20": 1.0, sd_key("NDCG@20"): 0.0}
               for label, v in sessions.items()}
    merged = report.merged_buckets(buckets, minimum=3)
    assert list(merged) == ["1-2", "3"]  # 2 + 1 sessions reach 3; "3" holds 3 alone
    assert merged["1-2"]["n_sessions"] == 3 and merged["1-2"]["parts"] == ["1", "2"]
    assert merged["1-2"]["NDCG@20"] == pytest.approx(2 / 3)
    assert merged["1-2"][sd_key("NDCG@20")] == pytest.approx(np.std([0, 1, 1], ddof=1))  # exact, from n/mean/sd
    remainder = report.merged_buckets(buckets, minimum=4)  # "3" alone would be too small: it joins "1-2"
    assert list(remainder) == ["1-3"]
    assert remainder["1-3"][sd_key("NDCG@20")] == pytest.approx(np.std([0, 1, 1, 0, 0, 1], ddof=1))
    assert list(report.merged_buckets({"4-5": bucket([0, 1]), "10+": bucket([1, 0])}, 4)) == ["4+"]


def test_the_minimum_bucket_is_100_sessions_or_2_percent():
    assert report.min_bucket_sessions(4469) == 100 and report.min_bucket_sessions(10_000) == 200


def test_bucket_interval_is_the_normal_approximation_and_old_results_get_a_bound():
    low, high = report.normal_interval(0.5, 0.5, 100)
    assert (low, high) == pytest.approx((0.5 - 1.959964 * 0.05, 0.5 + 1.959964 * 0.05))
    hits = [1] * 30 + [0] * 70
    saved = bucket(hits, "HR@20")
    old = {"n_sessions": 100, "HR@20": 0.3, "NDCG@20": 0.3}  # saved before the per-bucket std
    merged = report.merged_buckets({"all": old}, 1)["all"]
    assert merged[sd_key("HR@20")] == pytest.approx(saved[sd_key("HR@20")])  # a 0/1 metric: exact from its mean
    assert merged[sd_key("NDCG@20")] == pytest.approx(saved[sd_key("HR@20")])  # NDCG: the bound p(1-p)...
    assert merged["bounded"] == ["NDCG@20"]  # ... flagged as such


def test_breakdown_frame_has_counts_intervals_and_merged_parts():
    one = result(0.05, 0.1, 0.5)
    one.n_test_sessions = 300
    one.by_prompt_length = {"1": bucket([0.0] * 40 + [1.0] * 10), "2": bucket([0.0] * 60 + [0.5] * 40),
                            "3": bucket([0.0] * 150 + [1.0] * 50)}
    frame = report.breakdown_frame({"x": one}).set_index("bucket")
    assert list(frame.index) == ["1-2", "3"] and frame.loc["1-2", "sessions"] == 150  # 50 < 100: merged
    merged = np.array([0.0] * 40 + [1.0] * 10 + [0.0] * 60 + [0.5] * 40)
    half = 1.959964 * merged.std(ddof=1) / np.sqrt(150)
    assert frame.loc["1-2", "value"] == pytest.approx(merged.mean())
    assert (frame.loc["1-2", "low"], frame.loc["1-2", "high"]) == pytest.approx((merged.mean() - half,
                                                                                merged.mean() + half))
    figure = report.breakdown_figure({"x": one})
    assert list(figure.data[0].x) == ["1-2<br>n=150", "3<br>n=200"]
    assert "merged: 1, 2 → 1-2" in figure.layout.title.subtitle.text
