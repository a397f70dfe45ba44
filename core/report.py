"""Tables, plotly figures and a self-contained HTML report over saved evaluation results.

The metrics page and the HTML export share these builders, so what a stakeholder opens offline is what the
app shows. Inputs are the :class:`~core.results.EvaluationResult` of ``core.evaluate.load_results``, by model
label; the metrics and their order come from the registry ``core.metrics.METRICS``.

The paper's published Beauty figures are included for comparison and always labelled as the paper's
(Boz et al. 2024, OpenAI ada-002 embeddings, their runs); they are not reproduced by this code.
"""

from __future__ import annotations

import html
from datetime import datetime, timezone

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from core import metrics
from core.results import EvaluationResult

ACCURACY = metrics.ACCURACY  # the metrics with intervals and a breakdown by prompt length
KS = (10, 20)

# Boz et al. 2024 (arXiv 2402.01339), Amazon Beauty, @20, as quoted in this project's issues. Only the
# figures we have are listed; a missing metric is missing, not zero.
PAPER_BEAUTY: dict[str, dict[str, float]] = {
    "popularity": {"NDCG@20": 0.0064},
    "vsknn": {"NDCG@20": 0.0475, "HR@20": 0.0947},
    "llmseqsim": {"NDCG@20": 0.0480, "HR@20": 0.0792},
    "llmseqprompt": {"NDCG@20": 0.0295, "HR@20": 0.0691, "Coverage@20": 0.66},
    "gru4rec": {"NDCG@20": 0.0338, "HR@20": 0.0812},
    "sasrec": {"NDCG@20": 0.0346, "HR@20": 0.0808},
    "bert4rec": {"NDCG@20": 0.0430, "HR@20": 0.1027},
    "llm2bert4rec": {"NDCG@20": 0.0512, "HR@20": 0.1177},
}
PAPER_LABEL = "paper (Boz et al. 2024)"


def plotly_text(text: object) -> str:
    """``text`` for a plotly label, legend or hover: ``&``, ``<`` and ``>`` escaped (plotly shows the entities
    as the characters), so a tag in a title or an option value is never rendered."""
    return html.escape(str(text), quote=False)


def _escaped_models(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(model=frame["model"].map(plotly_text))


def metric_names(ks: tuple[int, ...] = KS) -> list[str]:
    return metrics.metric_keys(ks)


def long_frame(results: dict[str, EvaluationResult], dataset: str | None = None,
               with_paper: bool = False) -> pd.DataFrame:
    """One row per (model, metric): value, 95% interval where known, and source ("ours" or the paper)."""
    rows = []
    for model, result in results.items():
        for name in metric_names():
            if name not in result.metrics:
                continue
            low, high = result.intervals.get(name, (None, None))
            base, k = name.split("@")
            rows.append({"model": model, "metric": name, "base": base, "k": int(k),
                         "value": float(result.metrics[name]), "low": low, "high": high, "source": "ours"})
    if with_paper and dataset == "beauty":
        for model, values in PAPER_BEAUTY.items():
            for name, value in values.items():
                base, k = name.split("@")
                rows.append({"model": model, "metric": name, "base": base, "k": int(k), "value": value,
                             "low": None, "high": None, "source": PAPER_LABEL})
    return pd.DataFrame(rows, columns=["model", "metric", "base", "k", "value", "low", "high", "source"])


def wide_table(results: dict[str, EvaluationResult]) -> pd.DataFrame:
    """Models x metrics (values only), in the registry's order, @10 then @20."""
    columns = [name for name in metric_names() if any(name in r.metrics for r in results.values())]
    table = pd.DataFrame({model: {name: result.metrics.get(name) for name in columns}
                          for model, result in results.items()}).T
    table.index.name = "model"
    return table[columns] if len(table) else table


def formatted_table(results: dict[str, EvaluationResult], ks: tuple[int, ...] = KS) -> pd.DataFrame:
    """Models x metrics as text, accuracy metrics with their 95% bootstrap interval: ``0.0467 [0.0415, 0.0514]``;
    "–" where a model has no value (Diversity without the catalog's embeddings)."""
    out = {}
    for model, result in results.items():
        row = {}
        for name in metric_names(ks):
            if name not in result.metrics:
                row[name] = "–"
                continue
            interval = result.intervals.get(name)
            value = result.metrics[name]
            row[name] = f"{value:.4f}" + (f" [{interval[0]:.4f}, {interval[1]:.4f}]" if interval else "")
        row["fit s"] = "–" if result.fit_seconds is None else f"{result.fit_seconds:.1f}"
        row["test sessions"] = f"{result.n_test_sessions:,}"
        out[model] = row
    table = pd.DataFrame(out).T
    table.index.name = "model"
    return table


def paper_comparison(results: dict[str, EvaluationResult]) -> pd.DataFrame:
    """Beauty only: ours (each model's default config) next to the paper's, for every model the paper reports."""
    rows = []
    for model, paper in PAPER_BEAUTY.items():
        for name, value in paper.items():
            ours = results[model].metrics.get(name) if model in results else None
            rows.append({"model": model, "metric": name, "ours": ours, PAPER_LABEL: value,
                         "ours / paper": (ours / value) if ours is not None else None})
    return pd.DataFrame(rows)


def by_length_frame(results: dict[str, EvaluationResult]) -> pd.DataFrame:
    rows = []
    for model, result in results.items():
        for bucket, values in result.by_prompt_length.items():
            for name, value in values.items():
                if name != "n_sessions":
                    rows.append({"model": model, "prompt length": bucket, "metric": name, "value": value,
                                 "sessions": values["n_sessions"]})
    return pd.DataFrame(rows, columns=["model", "prompt length", "metric", "value", "sessions"])


def csv_export(results: dict[str, EvaluationResult]) -> str:
    frame = long_frame(results)
    return frame.drop(columns=["base", "k"]).to_csv(index=False)


# ------------------------------------------------------------------------------------------------ figures
def bar_figure(frame: pd.DataFrame, metric: str) -> go.Figure:
    """One bar per model (and the paper's, hatched, where it reports the metric), error bars = 95% interval."""
    part = _escaped_models(frame[frame["metric"] == metric])
    part["plus"] = (part["high"] - part["value"]).where(part["high"].notna())
    part["minus"] = (part["value"] - part["low"]).where(part["low"].notna())
    figure = px.bar(part, x="model", y="value", color="source", barmode="group", error_y="plus",
                    error_y_minus="minus", pattern_shape="source", pattern_shape_map={PAPER_LABEL: "/", "ours": ""},
                    color_discrete_map={"ours": "#1f77b4", PAPER_LABEL: "#bbbbbb"},
                    labels={"value": metric, "model": ""}, title=f"{metric} (bars: 95% bootstrap interval)")
    figure.update_layout(legend_title_text="", height=380, margin=dict(t=50, b=10, l=10, r=10),
                         legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0))
    return figure


def tradeoff_figure(results: dict[str, EvaluationResult], accuracy: str = "NDCG@20",
                    beyond: str = "Coverage@20") -> go.Figure:
    table = _escaped_models(wide_table(results).reset_index())
    for column in (accuracy, beyond):
        if column not in table:  # no shown result has it: an empty axis, not an error
            table[column] = float("nan")
    figure = px.scatter(table, x=beyond, y=accuracy, text="model", title=f"{accuracy} vs {beyond}")
    figure.update_traces(textposition="top center", marker=dict(size=12))
    figure.update_layout(height=380, margin=dict(t=50, b=10, l=10, r=10))
    return figure


def length_figure(results: dict[str, EvaluationResult], metric: str = "NDCG@20") -> go.Figure:
    frame = by_length_frame(results)
    part = _escaped_models(frame[frame["metric"] == metric])
    order = list(dict.fromkeys(part["prompt length"]))  # the evaluation's bins, shortest first
    figure = px.line(part, x="prompt length", y="value", color="model", markers=True, hover_data=["sessions"],
                     category_orders={"prompt length": order}, labels={"value": metric},
                     title=f"{metric} by prompt length (items in the session)")
    figure.update_xaxes(type="category")
    figure.update_layout(height=380, margin=dict(t=50, b=10, l=10, r=10))
    return figure


# ------------------------------------------------------------------------------------------------ HTML
def html_report(dataset: str, results: dict[str, EvaluationResult], title: str | None = None) -> str:
    """A single HTML file (plotly.js inlined once) that opens offline: tables, charts, the paper's figures."""
    title = title or f"Sequential recommendation results: {dataset}"
    frame = long_frame(results, dataset, with_paper=True)
    n_test = {r.n_test_sessions for r in results.values()}
    created = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:4px 8px;text-align:right}"
        "th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}.note{color:#666;font-size:13px}</style>",
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='note'>Created {created}. Test sessions: {', '.join(str(n) for n in sorted(n_test, key=str))}. "
        "Every model ranks the full catalog; intervals are 95% bootstrap intervals over test sessions.</p>",
        "<h2>Metrics</h2>",
        formatted_table(results).to_html(escape=True),
    ]
    if dataset == "beauty":
        parts += ["<h2>Next to the paper</h2>",
                  "<p class='note'>The paper's figures are its own runs (OpenAI ada-002 embeddings), quoted, "
                  "not reproduced here.</p>",
                  paper_comparison(results).to_html(index=False, float_format=lambda v: f"{v:.4f}", na_rep="–")]
    figures = [bar_figure(frame, "NDCG@20"), bar_figure(frame, "HR@20"), tradeoff_figure(results),
               tradeoff_figure(results, beyond="Novelty@20"), length_figure(results)]
    parts.append("<h2>Charts</h2>")
    for i, figure in enumerate(figures):
        parts.append(figure.to_html(full_html=False, include_plotlyjs=(i == 0)))
    parts.append("</body></html>")
    return "\n".join(parts)
