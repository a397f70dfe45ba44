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
if not results:
    st.info("No evaluation results for this dataset yet: “Prepare the defaults” on the home page, the Train "
            f"page, or `.venv/bin/python -m core evaluate --dataset {state.dataset_key()} --models popularity,vsknn`.")
    st.stop()

order = list(results)  # registry order, each model's default config first, then its variants
models = st.multiselect("Models", order, default=order)
results = {name: results[name] for name in models}
if not results:
    st.stop()
n_test = sorted({r.n_test_sessions for r in results.values()})
st.caption(f"{', '.join(f'{n:,}' for n in n_test)} test sessions; every model ranks the full catalog. Brackets: "
           "95% bootstrap intervals over test sessions. Serendipity and novelty use "
           f"{next(iter(results.values())).popularity_counts} popularity counts. Variants of a model (other "
           "options) have their own rows. Diversity: mean cosine distance between the items of a list, in the "
           "catalog's text-embedding space (\u2013 when the catalog was not embedded when the model was evaluated, "
           "or the result predates the metric: evaluate the model again to measure it).")

k = st.radio("Cut-off", [20, 10], horizontal=True, format_func=lambda v: f"@{v}")
st.dataframe(report.formatted_table(results, ks=(k,)), width="stretch")

frame = report.long_frame(results, dataset.name, with_paper=True)
is_beauty = dataset.name == "beauty"
left, right = st.columns(2)
measured = [name for name in report.metric_names((k,)) if any(name in r.metrics for r in results.values())]
with left:
    metric = st.selectbox("Bar chart", measured, index=0)
    st.plotly_chart(report.bar_figure(frame, metric), width="stretch")
    if is_beauty:
        st.caption("Grey, hatched: the paper's published Beauty figures (their runs, OpenAI ada-002 embeddings), "
                   "quoted for comparison, not reproduced here.")
with right:
    # Only what some shown result has: a metric added since, or Diversity without embeddings, has no axis yet.
    beyond = st.selectbox("Accuracy against", [f"{m.name}@{k}" for m in metrics.METRICS
                                                if not m.accuracy and f"{m.name}@{k}" in measured])
    st.plotly_chart(report.tradeoff_figure(results, f"NDCG@{k}", beyond), width="stretch")

length_metric = st.selectbox("By prompt length", [f"{m}@{k}" for m in report.ACCURACY])
st.plotly_chart(report.length_figure(results, length_metric), width="stretch")

if is_beauty:
    st.subheader("Next to the paper (Beauty)")
    st.dataframe(report.paper_comparison(results), hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(format="%.4f")
                                for c in ("ours", report.PAPER_LABEL, "ours / paper")})

st.subheader("Export")
exports = st.columns(2)
exports[0].download_button("Download CSV", report.csv_export(results), file_name=f"results-{dataset.name}.csv",
                           mime="text/csv")
if exports[1].button("Build the HTML report"):
    st.session_state["html_report"] = (dataset.name, report.html_report(dataset.name, results))
built = st.session_state.get("html_report")
if built and built[0] == dataset.name:
    exports[1].download_button("Download the HTML report (opens offline)", built[1],
                               file_name=f"report-{dataset.name}.html", mime="text/html")
