"""Dashboards over saved evaluation results: every metric with its confidence interval, charts, the paper's
Beauty figures beside ours, and exports (CSV, a self-contained HTML report)."""

import streamlit as st

from core import metrics, report
from core.evaluate import EvaluationOptions, load_results
from ui import state
from ui.components import page

page("Metrics")
st.title("Metrics")
dataset = state.current_dataset()
results = load_results(dataset)
paper_counts = load_results(dataset, EvaluationOptions(paper_popularity=True))
if paper_counts and st.toggle("Serendipity and novelty from whole-dataset popularity (the paper's; leaks test)",
                              value=not results):
    results = paper_counts
cold = load_results(dataset, EvaluationOptions(cold_items=True))
if cold and st.toggle("New-item targets (cold start: test sessions whose target never occurs in train)",
                      value=False, help="Results of `python -m core evaluate --cold-items`; the paper's protocol "
                                        "leaves these sessions out."):
    results = cold
if not results:
    st.info("No evaluation results for this dataset yet: “Prepare the defaults” on the home page, the Train "
            f"page, or `.venv/bin/python -m core evaluate --dataset {state.dataset_key()} --models popularity,vsknn`.")
    st.stop()

group = st.toggle("Group seeds", value=True,
                  help="Runs of one model whose options differ only in the seed are one row: the mean over the runs "
                       "± their sample standard deviation (ddof=1). Off: every run has its own row.")
rows = report.seed_groups(results, group)  # registry order, each model's default config first, then its variants
shown = st.multiselect("Models", list(rows), default=list(rows))
picked = {id(run) for name in shown for run in rows[name].runs}
results = {label: result for label, result in results.items() if id(result) in picked}
if not results:
    st.stop()
n_test = sorted({r.n_test_sessions for r in results.values()})
grouped = any(rows[name].grouped for name in shown)
st.caption(f"{', '.join(f'{n:,}' for n in n_test)} test sessions; every model ranks the full catalog. Brackets: "
           "95% bootstrap intervals over test sessions (a single run). "
           + ("“n seeds” rows: mean ± sample standard deviation (ddof=1) over the n runs that differ only in the "
              "seed; “(n=…)” where fewer runs have the metric. " if grouped else "")
           + "Serendipity and novelty use "
           f"{next(iter(results.values())).popularity_counts} popularity counts. Variants of a model (other "
           "options) have their own rows. Diversity: mean cosine distance between the items of a list, in the "
           "catalog's text-embedding space (\u2013 when the catalog was not embedded when the model was evaluated, "
           "or the result predates the metric: evaluate the model again to measure it).")

k = st.radio("Cut-off", [20, 10], horizontal=True, format_func=lambda v: f"@{v}")
# Two tables that fit the page at 1280 px without a column scrolled away: the values (a seed group's means),
# then the accuracy metrics' spread and how each row was trained.
text = report.formatted_table(results, ks=(k,), group_seeds=group, with_sessions=False)
values = report.wide_table(results, group_seeds=group)
values = values[[c for c in report.metric_names((k,)) if c in values]].assign(**{"fit s": [
    row.fit_seconds for row in report.seed_groups(results, group).values()]})
st.dataframe(values, width="stretch", height=38 + 35 * len(values),
             column_config={"model": st.column_config.TextColumn(width=230),
                            **{c: st.column_config.NumberColumn(format="%.4f", width=72) for c in values.columns},
                            "fit s": st.column_config.NumberColumn(format="%.1f", width=60)})
spread = text[[c for c in (f"{m}@{k}" for m in report.ACCURACY) if c in text] + ["trained"]]
st.dataframe(spread, width="stretch", height=38 + 35 * len(spread),
             column_config={"model": st.column_config.TextColumn(width=230),
                            **{c: st.column_config.TextColumn(width=140) for c in spread.columns},
                            "trained": st.column_config.TextColumn(width=200)})
st.caption("Second table: a single run's 95% bootstrap interval, a seed group's mean ± std over its seeds; "
           "“trained”: the seed, and for models trained in epochs how many ran of the maximum and the one kept by "
           "early stopping. A model's plain name is its default configuration on this dataset; every other run is "
           "labelled by the options that differ from it.")
generated = report.generation_table(results)
if len(generated):
    st.dataframe(generated, width="stretch", height=38 + 35 * len(generated))
    st.caption("Generative models (LLMSeqPrompt, per task): the share of the names they wrote that were catalog "
               "titles, repeats and hallucinations (mapped to the nearest titles), and of their answers that could "
               "be read only with a fallback (BEGIN/END or numbers missing) or not at all.")
colours = report.model_colours(list(report.seed_groups(results, group)))

frame = report.long_frame(results, dataset.name, with_paper=True, group_seeds=group)
is_beauty = dataset.name == "beauty"
left, right = st.columns(2)
measured = [name for name in report.metric_names((k,)) if any(name in r.metrics for r in results.values())]
with left:
    metric = st.selectbox("Bar chart", measured, index=0)
with right:
    # Only what some shown result has: a metric added since, or Diversity without embeddings, has no axis yet.
    beyond = st.selectbox("Accuracy against", [f"{m.name}@{k}" for m in metrics.METRICS
                                                if not m.accuracy and f"{m.name}@{k}" in measured])
# Full width, one chart a row: every label and the legend's names fit whole (a half column cut them).
st.plotly_chart(report.bar_figure(frame, metric, colours), width="stretch")
if grouped:
    st.caption("Error bars: ± the standard deviation over seeds on “n seeds” bars, the 95% bootstrap "
               "interval over test sessions on a single run's.")
if is_beauty:
    st.caption("Grey, hatched: the paper's published Beauty figures (their runs, OpenAI ada-002 embeddings), "
               "quoted for comparison, not reproduced here.")
st.plotly_chart(report.tradeoff_figure(results, f"NDCG@{k}", beyond, group_seeds=group, colours=colours),
                width="stretch")

st.subheader("Breakdowns")
breakdown_metric = st.selectbox("Metric by prompt length and by target popularity",
                                [f"{m}@{k}" for m in report.ACCURACY])
st.caption(f"Each bucket shows its n sessions and a 95% interval for its mean (normal approximation over the "
           f"bucket's sessions, mean ± 1.96·sd/√n); buckets under {report.min_bucket_sessions(max(n_test)):,} "
           "sessions (100, or 2% of the test sessions) are merged into a neighbour, as each chart notes.")
st.plotly_chart(report.breakdown_figure(results, breakdown_metric, "by_prompt_length", group_seeds=group,
                                        colours=colours), width="stretch")
quartiles = st.toggle("Equal-size buckets (quartiles of the test sessions)", value=False,
                      help="Off: fixed buckets of the target item's train interactions (0, 1-4, 5-19, 20+).")
breakdown = "by_target_popularity_quantile" if quartiles else "by_target_popularity"
st.plotly_chart(report.breakdown_figure(results, breakdown_metric, breakdown, group_seeds=group, colours=colours),
                width="stretch")
if any(not r.by_target_popularity for r in results.values()):
    st.caption("Some results predate the breakdown by target popularity: evaluate those models again to add it.")

if is_beauty:
    st.subheader("Next to the paper (Beauty)")
    paper = report.paper_comparison(results, group_seeds=group)
    # tall enough for every row: the table never scrolls inside itself
    st.dataframe(paper, hide_index=True, width="stretch", height=38 + 35 * len(paper),
                 column_config={c: st.column_config.NumberColumn(format="%.4f")
                                for c in ("ours", report.PAPER_LABEL, "ours / paper")})

st.subheader("Export")
exports = st.columns(2)
exports[0].download_button("Download CSV", report.csv_export(results, group_seeds=group),
                           file_name=f"results-{dataset.name}.csv", mime="text/csv",
                           help="One line per row and metric: model, metric, value (a seed group's mean), low, high "
                                "(a single run's 95% bootstrap interval), source, std (over seeds, ddof=1), n (runs).")
if exports[1].button("Build the HTML report"):
    st.session_state["html_report"] = (dataset.name, report.html_report(dataset.name, results, group_seeds=group))
built = st.session_state.get("html_report")
if built and built[0] == dataset.name:
    exports[1].download_button("Download the HTML report (opens offline)", built[1],
                               file_name=f"report-{dataset.name}.html", mime="text/html")
