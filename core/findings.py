"""The Findings: one section per open question, each with its chart, table, the command that regenerates it and a
two-sentence answer **written from the saved numbers** (``core.study`` results), never hard-coded.

The Findings page of the app and the self-contained HTML export (:func:`html_report`) share these builders. A
section reads ``core.study.load``: this machine's run of the study, else the result the project measured and
keeps in ``bench/results/studies/`` (labelled as such).
"""

from __future__ import annotations

import html
from datetime import datetime, timezone

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from core.report import escaped_models, plotly_text
from core.study import StudyResult, parameters_text, summary

QUESTIONS = {
    "embedding-size": "Would a bigger embedding model help?",
    "cold-items": "What about new products (cold start)?",
    "data-size": "How much interaction data do the models need?",
    "item-text": "What text should be embedded: the title only, or more?",
}
DATASETS = ("beauty", "steam", "ml-100k")  # the bundled ones, Beauty (the paper's) first


def _test(result: StudyResult) -> pd.DataFrame:
    frame = pd.DataFrame(result.rows)
    if frame.empty or "split" not in frame:
        return pd.DataFrame()
    return frame[frame["split"] == "test"]


def _post(test: pd.DataFrame) -> pd.Series:
    """Each row's post-processing of the vectors ("" for a model without one, e.g. LLM2SASRec)."""
    return test["postprocessing"].fillna("") if "postprocessing" in test else pd.Series("", index=test.index)


def _pct(new: float, old: float) -> str:
    return f"{(new / old - 1) * 100:+.0f}%" if old else "n/a"


def duration(seconds: float) -> str:
    """``"42 s"`` under a minute, else ``"27 min"``."""
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.0f} min"


def _layout(figure: go.Figure, title: str) -> go.Figure:
    figure.update_layout(title=title, height=380, margin=dict(t=50, b=10, l=10, r=10), legend_title_text="")
    return figure


# ------------------------------------------------------------------------------------------------ figures
def figure(result: StudyResult) -> go.Figure:
    """The study's chart: embedding-size: test NDCG@20 against the model's parameter count (one line per model
    and post-processing); cold-items: NDCG@20 per model on the usual test sessions and on new-item targets;
    data-size: NDCG@20 against the share of train sessions; item-text: NDCG@20 per model and embedded text."""
    test = _test(result)
    if result.study == "cold-items":
        frame = pd.DataFrame(result.rows).groupby(["model", "split"], sort=False, as_index=False)["NDCG@20"].mean()
        chart = px.bar(escaped_models(frame), x="model", y="NDCG@20", color="split",
                       barmode="group")
        return _layout(chart, "NDCG@20: the usual test sessions vs sessions whose target is a new item")
    if test.empty:
        return _layout(go.Figure(), "no measurements")
    if result.study == "embedding-size":
        frame = test.assign(variant=[m + (f" · {p}" if p else "") for m, p in zip(test["model"], _post(test))])
        frame = frame.groupby(["variant", "embedding", "dimension"], as_index=False, sort=False)["NDCG@20"].mean()
        frame["parameters"] = frame["embedding"].map(_parameters(test))
        chart = px.line(frame.sort_values("dimension").assign(variant=frame["variant"].map(plotly_text)),
                        x="dimension", y="NDCG@20", color="variant", markers=True, text="embedding",
                        hover_data=["parameters"], log_x=True)
        chart.update_traces(textposition="top center", cliponaxis=False)
        return _layout(chart, "test NDCG@20 against the embedding model's dimension (hover: its parameters)")
    if result.study == "data-size":
        frame = test.groupby(["model", "fraction"], as_index=False, sort=False)["NDCG@20"].mean()
        frame["share of train sessions (%)"] = frame["fraction"] * 100
        chart = px.line(escaped_models(frame), x="share of train sessions (%)",
                        y="NDCG@20", color="model", markers=True)
        return _layout(chart, "test NDCG@20 against the amount of training data")
    frame = test.groupby(["model", "text"], as_index=False, sort=False)["NDCG@20"].mean()
    chart = px.bar(escaped_models(frame), x="model", y="NDCG@20", color="text",
                   barmode="group")
    return _layout(chart, "test NDCG@20 by the text embedded per item")


# ------------------------------------------------------------------------------------------------ answers
def answer(result: StudyResult) -> str:
    """Two plain-language sentences from the study's numbers (test split): who won and by how much."""
    test = _test(result)
    if test.empty:
        return "No measurement yet."
    writer = {"embedding-size": _embedding_answer, "cold-items": _cold_answer, "data-size": _data_answer,
              "item-text": _text_answer}[result.study]
    return writer(result, test)


def _parameters(test: pd.DataFrame) -> dict[str, str]:
    """embedding -> its parameter count as text ("22.7M", or "unpublished")."""
    first = test.groupby("embedding", sort=False)["parameters"].first()
    return {name: parameters_text(p, "unpublished") for name, p in first.items()}


def _embedding_answer(result: StudyResult, test: pd.DataFrame) -> str:
    sentences = []
    sizes = _parameters(test)
    raw = test[_post(test).isin(["", "none"])]
    order = "parameters" if raw["parameters"].notna().all() else "dimension"  # else by dimension
    sized = raw.groupby("embedding", sort=False).agg(parameters=("parameters", "first"),
                                                     dimension=("dimension", "first")).sort_values(order)
    if len(sized) >= 2:
        small, big = sized.index[0], sized.index[-1]
        scores = raw.groupby(["model", "embedding"], sort=False)["NDCG@20"].mean()
        parts = [f"{model} {scores[(model, big)]:.4f} vs {scores[(model, small)]:.4f} "
                 f"({_pct(scores[(model, big)], scores[(model, small)])})"
                 for model in dict.fromkeys(raw["model"]) if (model, big) in scores and (model, small) in scores]
        better = sum(scores[(m, big)] > scores[(m, small)] for m in dict.fromkeys(raw["model"])
                     if (m, big) in scores and (m, small) in scores)
        verdict = ("helps every model" if better == len(parts) else "helps no model" if better == 0
                   else "helps some models only")
        sentences.append(f"The bigger {big} ({sizes[big]} parameters, {sized.loc[big, 'dimension']}-d) against "
                         f"{small} ({sizes[small]}, {sized.loc[small, 'dimension']}-d) {verdict}: test NDCG@20 "
                         + ", ".join(parts) + ".")
    sim = test[test["model"] == "llmseqsim"] if "postprocessing" in test else pd.DataFrame()
    if not sim.empty:
        best = sim.loc[sim["NDCG@20"].idxmax()]
        base = sim[(sim["embedding"] == best["embedding"]) & (sim["postprocessing"] == "none")]["NDCG@20"]
        if len(base) and best["postprocessing"] != "none":
            sentences.append(f"What helps most is post-processing the vectors: {best['postprocessing']} gives "
                             f"LLMSeqSim with {best['embedding']} {best['NDCG@20']:.4f} "
                             f"({_pct(best['NDCG@20'], base.iloc[0])} over the raw vectors).")
        else:
            sentences.append(f"No post-processing of the vectors beats the raw ones; the best LLMSeqSim is "
                             f"{best['embedding']} with {best['NDCG@20']:.4f}.")
    return " ".join(sentences) if sentences else "Only one embedding model was measured."


def _cold_answer(result: StudyResult, test: pd.DataFrame) -> str:
    frame = pd.DataFrame(result.rows)
    cold = frame[frame["split"].str.startswith("new items")].groupby(["model", "split"], sort=False)[
        "NDCG@20"].mean()
    if cold.empty:
        return "No new-item sessions were measured."
    n = int(frame.loc[frame["split"] == "new items", "n_sessions"].max())
    if cold.max() == 0:
        return (f"On the {n:,} test sessions whose target is a new item, no model ranks that item in its top 20 "
                "(NDCG@20 0 for every model).")
    best_model, best_split = cold.idxmax()
    zero = [m for (m, s), v in cold.items() if s == "new items" and v == 0
            and not ((m, "new items, mapped") in cold.index and cold[(m, "new items, mapped")] > 0)]
    first = (f"On the {n:,} test sessions whose target is a new item, {best_model} is best with NDCG@20 "
             f"{cold.max():.4f}" + (" (new-item rows mapped from titles)" if best_split != "new items" else "")
             + (f", while {', '.join(zero)} never rank{'s' if len(zero) == 1 else ''} the new target in the top 20 "
                "(0.0000)." if zero else "."))
    mapped = cold.xs("new items, mapped", level="split") if "new items, mapped" in cold.index.get_level_values(1) \
        else pd.Series(dtype=float)
    if len(mapped):
        model = mapped.idxmax()
        return first + (f" Mapping new items' rows from their title embeddings takes {model} from "
                        f"{cold[(model, 'new items')]:.4f} to {mapped[model]:.4f}.")
    return first


def _data_answer(result: StudyResult, test: pd.DataFrame) -> str:
    table = test.groupby(["model", "fraction"])["NDCG@20"].mean().unstack("fraction")
    if table.shape[1] < 2:
        return "Only one amount of training data was measured."
    low, full = table.columns.min(), table.columns.max()
    kept = (table[low] / table[full]).replace([float("inf")], float("nan")).dropna()
    best_low, best_full = table[low].idxmax(), table[full].idxmax()
    first = (f"With {low:.0%} of the train sessions the best model is {best_low} (NDCG@20 {table[low].max():.4f}); "
             f"with all of them, {best_full} ({table[full].max():.4f}).")
    if kept.empty:
        return first
    return first + (f" At {low:.0%}, {kept.idxmax()} reaches {kept.max():.0%} of its full-data NDCG@20 and "
                    f"{kept.idxmin()} {kept.min():.0%}.")


def _text_answer(result: StudyResult, test: pd.DataFrame) -> str:
    sentences = []
    for model, part in test.groupby("model", sort=False):
        scores = part.groupby("text", sort=False)["NDCG@20"].mean()
        if "title" not in scores or len(scores) < 2:
            continue
        best = scores.drop("title").idxmax()
        sentences.append(f"{model}: embedding {best} gives NDCG@20 {scores[best]:.4f} against {scores['title']:.4f} "
                         f"for the title alone ({_pct(scores[best], scores['title'])}).")
    return " ".join(sentences[:2]) if sentences else "Only the title was measured."


# ------------------------------------------------------------------------------------------------ HTML
def html_report(results: dict[tuple[str, str], StudyResult]) -> str:
    """A single offline HTML file (plotly.js inlined once): per question and dataset, the answer, the chart, the
    table and the command. ``results``: (study, dataset) -> result."""
    created = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>Findings: the paper's open questions</title>",
             "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:4px 8px;"
             "text-align:right}th{background:#f4f4f4}.note{color:#666;font-size:13px}code{background:#f4f4f4}"
             "</style></head><body>",
             "<h1>Findings: the paper's open questions</h1>",
             f"<p class='note'>Created {created}. Every answer is written from the measured numbers below "
             "(test split; settings chosen on validation folds where the study says so).</p>"]
    first = True
    for study, question in QUESTIONS.items():
        found = {d: r for (s, d), r in results.items() if s == study}
        if not found:
            continue
        parts.append(f"<h2>{html.escape(question)}</h2>")
        for dataset, result in found.items():
            origin = "measured by the project" if result.source == "published" else "measured on this machine"
            parts += [f"<h3>{html.escape(dataset)}</h3>", f"<p><b>{html.escape(answer(result))}</b></p>",
                      figure(result).to_html(full_html=False, include_plotlyjs=first),
                      summary(result).to_html(index=False, float_format=lambda v: f"{v:.4f}", na_rep="–"),
                      f"<p class='note'>{origin} on {html.escape(result.created[:10])} in {duration(result.seconds)}; "
                      f"regenerate: <code>{html.escape(result.command)}</code></p>"]
            parts += [f"<p class='note'>{html.escape(note)}</p>" for note in result.notes]
            first = False
    parts.append("</body></html>")
    return "\n".join(parts)
