"""Tables, figures and the HTML report over saved results (core.report), on hand-made results."""

import pandas as pd

from core import report
from core.results import EvaluationResult


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


def test_figures_have_one_trace_per_source_or_model():
    frame = report.long_frame(RESULTS, "beauty", with_paper=True)
    assert {t.name for t in report.bar_figure(frame, "NDCG@20").data} == {"ours", report.PAPER_LABEL}
    assert len(report.tradeoff_figure(RESULTS).data[0].x) == 2
    length = report.length_figure(RESULTS)
    assert list(length.data[0].x) == ["1", "2", "10+"]  # the bins in order, as categories


def test_csv_and_html_exports():
    csv = report.csv_export(RESULTS)
    assert csv.splitlines()[0] == "model,metric,value,low,high,source"
    page = report.html_report("beauty", RESULTS)
    assert page.startswith("<!DOCTYPE html>") and page.count("<script") >= 5
    assert "<script src=" not in page and "plotly.js v" in page  # plotly.js inlined: opens offline
    assert "Next to the paper" in page and "0.0467 [0.0100, 0.0300]" in page
    assert "Next to the paper" not in report.html_report("ml-100k", RESULTS)


def test_the_report_never_renders_a_label_as_html():
    label = "llmseqprompt (model_folder=<img src=x onerror=alert(1)>)"
    results = {label: result(0.01, 0.02, 0.3)}
    page = report.html_report("<b>shop</b>", results)
    assert "<img src=x" not in page and "<b>shop</b>" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    figure = report.bar_figure(report.long_frame(results), "NDCG@20")
    assert list(figure.data[0].x) == ["llmseqprompt (model_folder=&lt;img src=x onerror=alert(1)&gt;)"]
