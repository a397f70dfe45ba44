"""Tables, plotly figures and a self-contained HTML report over saved evaluation results.

The metrics page and the HTML export share these builders, so what a stakeholder opens offline is what the
app shows. Inputs are the :class:`~core.results.EvaluationResult` of ``core.evaluate.load_results``, by model
label; the metrics and their order come from the registry ``core.metrics.METRICS``.

Rows: with ``group_seeds=True`` the builders first group the runs of one setting (same model and options, only
``seed`` differs; :func:`seed_groups`): such a row of n >= 2 runs shows the mean over the runs and the sample
standard deviation (ddof=1) over the seeds, in place of the 95% bootstrap interval over test sessions that a
single run shows. Without it every run is a row, as the store keeps them.

The paper's published Beauty figures are included for comparison and always labelled as the paper's
(Boz et al. 2024, OpenAI ada-002 embeddings, their runs); they are not reproduced by this code.
"""

from __future__ import annotations

import html
import json
import statistics
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from core import metrics, store
from core.paper import PAPER_BEAUTY, PAPER_LABEL
from core.results import EvaluationResult

ACCURACY = metrics.ACCURACY  # the metrics with intervals and breakdowns (prompt length, target popularity)
KS = (10, 20)


def plotly_text(text: object) -> str:
    """``text`` for a plotly label, legend or hover: ``&``, ``<`` and ``>`` escaped (plotly shows the entities
    as the characters), so a tag in a title or an option value is never rendered."""
    return html.escape(str(text), quote=False)


def escaped_models(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its ``model`` column escaped for plotly (:func:`plotly_text`)."""
    return frame.assign(model=frame["model"].map(plotly_text))


def metric_names(ks: tuple[int, ...] = KS) -> list[str]:
    return metrics.metric_keys(ks)


# ------------------------------------------------------------------------------------------------ seeds
SEED = "seed"  # the option that only changes the randomness: runs that differ in it alone are one setting


@dataclass(frozen=True)
class SeedGroup:
    """One row of the tables and charts: the runs of one setting (configs equal but for ``seed``), or one run.

    ``mean``, ``std`` and ``n`` map a metric key (``"NDCG@20"``) to its mean over the runs that have it, the
    sample standard deviation over those runs (ddof=1, so only where n >= 2) and their count n. Diversity can
    be missing from some runs (evaluated before the catalog was embedded), hence n per metric.
    """

    label: str  # "sasrec (3 seeds)", "sasrec (dropout=0.3, 3 seeds)"; a run alone keeps its own label
    runs: tuple[EvaluationResult, ...]  # by seed
    mean: dict[str, float]
    std: dict[str, float]
    n: dict[str, int]

    @property
    def grouped(self) -> bool:
        """Two runs or more: the spread shown is over seeds, not the bootstrap interval of one run."""
        return len(self.runs) > 1

    @property
    def seeds(self) -> list[Any]:
        return [run.config.get(SEED) for run in self.runs]

    def interval(self, metric: str) -> list[float] | None:
        """A single run's 95% bootstrap interval over test sessions; None for a group (its spread is ``std``)."""
        return None if self.grouped else self.runs[0].intervals.get(metric)

    @property
    def fit_seconds(self) -> float | None:
        """The run's fit time, or the mean over the runs that recorded one."""
        known = [run.fit_seconds for run in self.runs if run.fit_seconds is not None]
        return statistics.fmean(known) if known else None

    @property
    def runs_text(self) -> str:
        """``"3 (seeds 0, 1, 2)"``, or ``"1"``."""
        return f"{len(self.runs)} (seeds {', '.join(str(s) for s in self.seeds)})" if self.grouped else "1"


def _setting(result: EvaluationResult) -> tuple[str, str, str, str, str]:
    """What two runs must share to be one setting: the dataset, the model, the evaluation options, the
    popularity counts and every option of the config but the seed."""
    options = json.dumps({k: v for k, v in result.config.items() if k != SEED}, sort_keys=True, default=str)
    return result.dataset, result.model, result.evaluation, result.popularity_counts, options


def _group_label(runs: list[EvaluationResult]) -> str:
    first = runs[0]
    changed = [f"{k}={v}" for k, v in store.changed_options(first.model, first.config, first.dataset).items()
               if k != SEED]
    return f"{first.model} ({', '.join(changed + [f'{len(runs)} seeds'])})"


def _row(label: str, runs: list[EvaluationResult]) -> SeedGroup:
    mean, std, n = {}, {}, {}
    for name in dict.fromkeys(name for run in runs for name in run.metrics):
        values = [float(run.metrics[name]) for run in runs if name in run.metrics]
        mean[name], n[name] = statistics.fmean(values), len(values)
        if len(values) > 1:
            std[name] = statistics.stdev(values)  # sample standard deviation, ddof=1
    return SeedGroup(label=label, runs=tuple(runs), mean=mean, std=std, n=n)


def _seed_order(result: EvaluationResult) -> tuple[int, str]:
    seed = result.config.get(SEED)
    return (seed, "") if isinstance(seed, int) else (0, str(seed))


def seed_groups(results: dict[str, EvaluationResult], group: bool = True) -> dict[str, SeedGroup]:
    """The rows of the tables and charts, by row label, in the order of each row's first run.

    ``results`` maps a run's label to its result (``core.evaluate.load_results``). With ``group``, the runs
    whose dataset, model, evaluation options, popularity counts and config (``EvaluationResult.config``, every
    option) are equal except for ``seed`` are one row: n >= 2 such runs are labelled ``"sasrec (3 seeds)"`` (or
    ``"sasrec (dropout=0.3, 3 seeds)"`` for a variant), their runs ordered by seed, with per metric the mean,
    the sample std (ddof=1) and n. A run that has no such sibling is a row of one under its label in
    ``results``, with its bootstrap intervals. Without ``group`` every run is a row of one.
    """
    settings: dict[Any, list[tuple[str, EvaluationResult]]] = {}
    for label, result in results.items():
        settings.setdefault(_setting(result) if group else label, []).append((label, result))
    rows = {}
    for members in settings.values():
        if len(members) == 1:
            label, result = members[0]
            rows[label] = _row(label, [result])
        else:
            runs = sorted((result for _, result in members), key=_seed_order)
            label = _group_label(runs)
            rows[label] = _row(label, runs)
    return rows


def long_frame(results: dict[str, EvaluationResult], dataset: str | None = None,
               with_paper: bool = False, group_seeds: bool = False) -> pd.DataFrame:
    """One row per (row, metric): ``value`` (a run's value, or a seed group's mean), its 95% bootstrap interval
    ``low``/``high`` where known (single runs only), ``std`` (sample std over seeds, ddof=1; groups only), ``n``
    (runs behind the value; none for the paper) and ``source`` ("ours" or the paper)."""
    rows = []
    for model, row in seed_groups(results, group_seeds).items():
        for name in metric_names():
            if name not in row.mean:
                continue
            low, high = row.interval(name) or (None, None)
            base, k = name.split("@")
            rows.append({"model": model, "metric": name, "base": base, "k": int(k), "value": row.mean[name],
                         "low": low, "high": high, "std": row.std.get(name), "n": row.n[name], "source": "ours"})
    if with_paper and dataset == "beauty":
        for model, values in PAPER_BEAUTY.items():
            for name, value in values.items():
                base, k = name.split("@")
                rows.append({"model": model, "metric": name, "base": base, "k": int(k), "value": value,
                             "low": None, "high": None, "std": None, "n": None, "source": PAPER_LABEL})
    frame = pd.DataFrame(rows, columns=["model", "metric", "base", "k", "value", "low", "high", "std", "n", "source"])
    return frame.astype({"n": "Int64"})  # a count; missing for the paper's figures


def wide_table(results: dict[str, EvaluationResult], group_seeds: bool = False) -> pd.DataFrame:
    """Rows x metrics (values, a seed group's means), in the registry's order, @10 then @20."""
    rows = seed_groups(results, group_seeds)
    columns = [name for name in metric_names() if any(name in row.mean for row in rows.values())]
    table = pd.DataFrame({label: {name: row.mean.get(name) for name in columns} for label, row in rows.items()}).T
    table.index.name = "model"
    return table[columns] if len(table) else table


def _cell(row: SeedGroup, name: str) -> str:
    if name not in row.mean:
        return "–"
    value = row.mean[name]
    if row.grouped:  # mean ± sample std over the seeds; n where fewer runs than the row's have the metric
        text = f"{value:.4f} ± {row.std[name]:.4f}" if name in row.std else f"{value:.4f}"
        return text + (f" (n={row.n[name]})" if row.n[name] < len(row.runs) else "")
    interval = row.interval(name)
    return f"{value:.4f}" + (f" [{interval[0]:.4f}, {interval[1]:.4f}]" if interval else "")


def formatted_table(results: dict[str, EvaluationResult], ks: tuple[int, ...] = KS,
                    group_seeds: bool = False) -> pd.DataFrame:
    """Rows x metrics as text: a single run's accuracy metrics with their 95% bootstrap interval over test
    sessions, ``0.0467 [0.0415, 0.0514]``; a seed group's mean ± sample std (ddof=1) over its runs,
    ``0.0200 ± 0.0100``, and a "runs" column, ``3 (seeds 0, 1, 2)``, when some row is a group; "–" where a row
    has no value (Diversity without the catalog's embeddings)."""
    rows = seed_groups(results, group_seeds)
    any_group = any(row.grouped for row in rows.values())
    out = {}
    for label, row in rows.items():
        cells = {name: _cell(row, name) for name in metric_names(ks)}
        fit = row.fit_seconds
        cells["fit s"] = "–" if fit is None else f"{fit:.1f}"
        cells["test sessions"] = ", ".join(f"{n:,}" for n in sorted({r.n_test_sessions for r in row.runs}))
        if any_group:
            cells["runs"] = row.runs_text
        out[label] = cells
    table = pd.DataFrame(out).T
    table.index.name = "model"
    return table


def paper_comparison(results: dict[str, EvaluationResult], group_seeds: bool = False) -> pd.DataFrame:
    """Beauty only: ours (each model's default config; with ``group_seeds`` the mean over that setting's seeds,
    "runs" telling over how many) next to the paper's, for every model the paper reports."""
    row_of = {id(run): row for row in seed_groups(results, group_seeds).values() for run in row.runs}
    out = []
    for model, paper in PAPER_BEAUTY.items():
        row = row_of.get(id(results[model])) if model in results else None  # the row of the default config's run
        for name, value in paper.items():
            ours = row.mean.get(name) if row is not None else None
            out.append({"model": model, "metric": name, "ours": ours, PAPER_LABEL: value,
                        "ours / paper": (ours / value) if ours is not None else None,
                        "runs": row.n.get(name) if row is not None and ours is not None else None})
    frame = pd.DataFrame(out)
    return frame.astype({"runs": "Int64"}) if len(frame) else frame


BREAKDOWNS = {  # EvaluationResult field -> (axis title, chart title)
    "by_prompt_length": ("prompt length", "by prompt length (items in the session)"),
    "by_target_popularity": ("target's train interactions", "by the target item's train popularity"),
    "by_target_popularity_quantile": ("target's train interactions (quartile)",
                                      "by the target item's train popularity, 4 equal-size buckets"),
}


def breakdown_frame(results: dict[str, EvaluationResult], breakdown: str = "by_prompt_length",
                    group_seeds: bool = False) -> pd.DataFrame:
    """One row per (row, bucket of ``breakdown``, metric) — ``breakdown`` a key of :data:`BREAKDOWNS` — with the
    columns model, bucket, metric, value, sessions; a seed group's value is the mean over its runs. A result
    saved before the breakdown existed adds no row."""
    records = []
    for label, row in seed_groups(results, group_seeds).items():
        for result in row.runs:
            for bucket, values in getattr(result, breakdown).items():
                for name, value in values.items():
                    if name != "n_sessions":
                        records.append({"model": label, "bucket": bucket, "metric": name, "value": value,
                                        "sessions": values["n_sessions"]})
    frame = pd.DataFrame(records, columns=["model", "bucket", "metric", "value", "sessions"])
    # one test split per row, so the bins' session counts agree; sort=False keeps the bins' order
    return frame.groupby(["model", "bucket", "metric"], sort=False, as_index=False).agg(
        value=("value", "mean"), sessions=("sessions", "first"))


def csv_export(results: dict[str, EvaluationResult], group_seeds: bool = False) -> str:
    """Long format, one line per (row, metric): ``model,metric,value,low,high,source,std,n``. ``value`` is a
    run's value or a seed group's mean; ``low``/``high`` a single run's 95% bootstrap interval over test
    sessions; ``std`` a group's sample standard deviation over its seeds (ddof=1), empty for a single run; ``n``
    the number of runs behind ``value`` (1 for a single run)."""
    frame = long_frame(results, group_seeds=group_seeds)
    return frame[["model", "metric", "value", "low", "high", "source", "std", "n"]].to_csv(index=False)


# ------------------------------------------------------------------------------------------------ figures
def bar_figure(frame: pd.DataFrame, metric: str) -> go.Figure:
    """One bar per row (and the paper's, hatched, where it reports the metric). Error bars: a single run's 95%
    bootstrap interval over test sessions; a seed group's (n >= 2 in ``frame["n"]``) ± its std over seeds."""
    part = escaped_models(frame[frame["metric"] == metric])
    part["plus"] = (part["high"] - part["value"]).where(part["high"].notna())
    part["minus"] = (part["value"] - part["low"]).where(part["low"].notna())
    over_seeds = (part["n"].fillna(1) > 1) if "n" in part else pd.Series(False, index=part.index)
    if over_seeds.any():
        part.loc[over_seeds, "plus"] = part.loc[over_seeds, "std"]
        part.loc[over_seeds, "minus"] = part.loc[over_seeds, "std"]
    bars = ("bars: ± std over seeds for “n seeds” rows, 95% bootstrap interval otherwise" if over_seeds.any()
            else "bars: 95% bootstrap interval")
    figure = px.bar(part, x="model", y="value", color="source", barmode="group", error_y="plus",
                    error_y_minus="minus", pattern_shape="source", pattern_shape_map={PAPER_LABEL: "/", "ours": ""},
                    color_discrete_map={"ours": "#1f77b4", PAPER_LABEL: "#bbbbbb"},
                    hover_data=["n"] if "n" in part else None,
                    labels={"value": metric, "model": "", "n": "runs"}, title=f"{metric} ({bars})")
    figure.update_layout(legend_title_text="", height=380, margin=dict(t=50, b=10, l=10, r=10),
                         legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0))
    return figure


def tradeoff_figure(results: dict[str, EvaluationResult], accuracy: str = "NDCG@20",
                    beyond: str = "Coverage@20", group_seeds: bool = False) -> go.Figure:
    table = escaped_models(wide_table(results, group_seeds).reset_index())
    for column in (accuracy, beyond):
        if column not in table:  # no shown result has it: an empty axis, not an error
            table[column] = float("nan")
    figure = px.scatter(table, x=beyond, y=accuracy, text="model", title=f"{accuracy} vs {beyond}")
    figure.update_traces(textposition="top center", marker=dict(size=12))
    figure.update_layout(height=380, margin=dict(t=50, b=10, l=10, r=10))
    return figure


def breakdown_figure(results: dict[str, EvaluationResult], metric: str = "NDCG@20",
                     breakdown: str = "by_prompt_length", group_seeds: bool = False) -> go.Figure:
    """``metric`` per bucket of ``breakdown`` (a key of :data:`BREAKDOWNS`), one line per row."""
    axis, title = BREAKDOWNS[breakdown]
    frame = breakdown_frame(results, breakdown, group_seeds)
    part = escaped_models(frame[frame["metric"] == metric])
    order = list(dict.fromkeys(part["bucket"]))  # the evaluation's bins, smallest first
    figure = px.line(part, x="bucket", y="value", color="model", markers=True, hover_data=["sessions"],
                     category_orders={"bucket": order}, labels={"value": metric, "bucket": axis},
                     title=f"{metric} {title}")
    figure.update_xaxes(type="category")
    figure.update_layout(height=380, margin=dict(t=50, b=10, l=10, r=10))
    return figure


# ------------------------------------------------------------------------------------------------ HTML
def html_report(dataset: str, results: dict[str, EvaluationResult], title: str | None = None,
                group_seeds: bool = False) -> str:
    """A single HTML file (plotly.js inlined once) that opens offline: tables, charts, the paper's figures.
    With ``group_seeds`` the runs of one setting are one row, mean ± sample std over the seeds (see
    :func:`seed_groups`)."""
    title = title or f"Sequential recommendation results: {dataset}"
    frame = long_frame(results, dataset, with_paper=True, group_seeds=group_seeds)
    n_test = {r.n_test_sessions for r in results.values()}
    created = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    spread = ("Every model ranks the full catalog; brackets are 95% bootstrap intervals over test sessions."
              + (" A row of n seeds (runs whose options differ only in the seed) shows mean ± the sample standard "
                 "deviation over the seeds (ddof=1); its chart bars show ± that standard deviation."
                 if any(row.grouped for row in seed_groups(results, group_seeds).values()) else ""))
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:4px 8px;text-align:right}"
        "th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}.note{color:#666;font-size:13px}</style>",
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='note'>Created {created}. Test sessions: {', '.join(str(n) for n in sorted(n_test, key=str))}. "
        f"{spread}</p>",
        "<h2>Metrics</h2>",
        formatted_table(results, group_seeds=group_seeds).to_html(escape=True),
    ]
    if dataset == "beauty":
        parts += ["<h2>Next to the paper</h2>",
                  "<p class='note'>The paper's figures are its own runs (OpenAI ada-002 embeddings), quoted, "
                  "not reproduced here.</p>",
                  paper_comparison(results, group_seeds).to_html(index=False, float_format=lambda v: f"{v:.4f}",
                                                                 na_rep="–")]
    figures = [bar_figure(frame, "NDCG@20"), bar_figure(frame, "HR@20"),
               tradeoff_figure(results, group_seeds=group_seeds),
               tradeoff_figure(results, beyond="Novelty@20", group_seeds=group_seeds),
               *(breakdown_figure(results, breakdown=name, group_seeds=group_seeds)
                 for name in ("by_prompt_length", "by_target_popularity"))]
    parts.append("<h2>Charts</h2>")
    for i, figure in enumerate(figures):
        parts.append(figure.to_html(full_html=False, include_plotlyjs=(i == 0)))
    parts.append("</body></html>")
    return "\n".join(parts)
