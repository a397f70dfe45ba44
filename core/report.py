"""Tables, plotly figures and a self-contained HTML report over saved evaluation results.

The metrics page and the HTML export share these builders, so what a stakeholder opens offline is what the
app shows. Inputs are the :class:`~core.results.EvaluationResult` of ``core.evaluate.load_results``, by model
label; the metrics and their order come from the registry ``core.metrics.METRICS``.

Rows: with ``group_seeds=True`` the builders first group the runs of one setting (same model and options, only
``seed`` differs; :func:`seed_groups`): such a row of n >= 2 runs shows the mean over the runs and the sample
standard deviation (ddof=1) over the seeds, in place of the 95% bootstrap interval over test sessions that a
single run shows. Without it every run is a row, as the store keeps them.

Breakdowns (by prompt length, by the target's train popularity) show per bucket its n sessions and a 95%
interval for the bucket's mean: the normal approximation mean ± 1.96 · sd / sqrt(n) over the bucket's
per-session values (the central limit theorem's interval for a mean, as used for IR evaluation by Sakai 2014,
"Statistical reform in information retrieval?", SIGIR Forum 48(1)), sd being the sample standard deviation the
evaluation saves per bucket. A bucket smaller than :func:`min_bucket_sessions` (100 sessions or 2% of the test
sessions, whichever is larger) is merged into its neighbour (:func:`merged_buckets`) and the chart says so.

Every chart gives each row one colour (:func:`model_colours`), the same in every chart of a page or report, and
names it in a legend, so a long variant label is never cut to fit an axis.

The paper's published Beauty figures are included for comparison and always labelled as the paper's
(Boz et al. 2024, OpenAI ada-002 embeddings, their runs); they are not reproduced by this code.
"""

from __future__ import annotations

import html
import json
import math
import statistics
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from core import metrics, store
from core.paper import PAPER_BEAUTY, PAPER_LABEL
from core.results import EvaluationResult, sd_key

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


def training_text(result: EvaluationResult) -> str:
    """How the run's model was trained, for the tables: ``"seed 0 · ep 27/100 (best 22)"`` (27 epochs run of at
    most 100, the 22nd kept by early stopping) for a model
    trained in epochs whose save is in the store (its saved training history), ``"seed 0 · max 100 epochs"``
    without the save, ``"seed 0"`` for a model without epochs, ``"–"`` for one without a seed either."""
    seed, max_epochs = result.config.get(SEED), result.config.get("max_epochs")
    parts = [] if seed is None else [f"seed {seed}"]
    if max_epochs is not None:
        run = _trained_epochs(result)
        parts.append(f"ep {run[0]}/{max_epochs} (best {run[1] + 1})" if run and run[1] >= 0
                     else f"ep {run[0]}/{max_epochs}" if run else f"max {max_epochs} epochs")
    return " · ".join(parts) or "–"


def _trained_epochs(result: EvaluationResult) -> tuple[int, int] | None:
    """(epochs run, best epoch 0-based, -1 when nothing was held out) from the saved model's training history
    (``core.train.History``, kept in its weights file); None when the store has no such save or no history."""
    from safetensors import safe_open

    weights = store.models_root(result.dataset) / result.key / "state.safetensors"
    if not result.key or not weights.is_file():
        return None
    try:
        with safe_open(str(weights), framework="np") as saved:
            if "history.loss" not in saved.keys():
                return None
            return len(saved.get_tensor("history.loss")), int(saved.get_tensor("history.best_epoch")[0])
    except Exception:  # noqa: BLE001 (a damaged or foreign file: the table says less, it does not fail)
        return None


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
                    group_seeds: bool = False, with_sessions: bool = True) -> pd.DataFrame:
    """Rows x metrics as text: a single run's accuracy metrics with their 95% bootstrap interval over test
    sessions, ``0.0467 [0.0415, 0.0514]``; a seed group's mean ± sample std (ddof=1) over its runs,
    ``0.0200 ± 0.0100``; "–" where a row has no value (Diversity without the catalog's embeddings). Then "fit s",
    "test sessions" (unless ``with_sessions`` is False: a page that states the count once) and "trained": a
    group's runs, ``3 (seeds 0, 1, 2)``, or a run's seed and epochs (:func:`training_text`)."""
    rows = seed_groups(results, group_seeds)
    out = {}
    for label, row in rows.items():
        cells = {name: _cell(row, name) for name in metric_names(ks)}
        fit = row.fit_seconds
        cells["fit s"] = "–" if fit is None else f"{fit:.1f}"
        if with_sessions:
            cells["test sessions"] = ", ".join(f"{n:,}" for n in sorted({r.n_test_sessions for r in row.runs}))
        cells["trained"] = row.runs_text if row.grouped else training_text(row.runs[0])
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


MIN_BUCKET_SESSIONS = 100  # a bucket smaller than this (or than MIN_BUCKET_SHARE of the test) is merged
MIN_BUCKET_SHARE = 0.02
Z95 = 1.959964  # the standard normal's 97.5% quantile


GENERATION_COLUMNS = {"exact_rate": "names exact", "duplicate_rate": "duplicated", "hallucination_rate": "hallucinated",
                      "parse_fallback_rate": "answers read with a fallback", "parse_failure_rate": "answers not read"}


def generation_table(results: dict[str, EvaluationResult]) -> pd.DataFrame:
    """A row per generative model's run (LLMSeqPrompt, each task): the shares of its generated names that were
    exact catalog titles, duplicates and hallucinations, and of its answers that parsed only with a fallback or
    not at all (``core.evaluate.generation_rates``); "–" where a result predates a rate. Empty without one."""
    rows = {label: {title: (f"{r.metrics[key]:.3f}" if key in r.metrics else "\u2013")
                    for key, title in GENERATION_COLUMNS.items()}
            for label, r in results.items() if "hallucination_rate" in r.metrics}
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(GENERATION_COLUMNS.values())).rename_axis("model")


def min_bucket_sessions(n_test: int) -> int:
    """The least sessions a breakdown bucket may hold: 100 or 2% of ``n_test``, whichever is larger."""
    return max(MIN_BUCKET_SESSIONS, math.ceil(MIN_BUCKET_SHARE * n_test))


def _bounds(label: str) -> tuple[str, str]:
    """``"4-5"`` -> ("4", "5"), ``"10+"`` -> ("10", "+"), ``"3"`` -> ("3", "3")."""
    if label.endswith("+"):
        return label[:-1], "+"
    low, _, high = label.partition("-")
    return low, high or low


def _merged_label(labels: list[str]) -> str:
    low, high = _bounds(labels[0])[0], _bounds(labels[-1])[1]
    return f"{low}+" if high == "+" else (low if low == high else f"{low}-{high}")


def _sd(bucket: dict[str, float], metric: str) -> tuple[float | None, bool]:
    """A bucket's sample std of ``metric`` and whether it is only an upper bound. The saved one when the result
    has it; else, the accuracy metrics lying in [0, 1], the Bhatia–Davis bound var <= mean · (1 - mean) (times
    n/(n-1) for the sample std): exact for HR (a 0/1 hit per session), an upper bound for NDCG and MRR, so
    their intervals are wider than the data's, never narrower. (None, False) for a single session."""
    if sd_key(metric) in bucket:
        return bucket[sd_key(metric)], False
    n, p = bucket["n_sessions"], min(max(bucket[metric], 0.0), 1.0)
    if n <= 1:
        return None, False
    return math.sqrt(n / (n - 1) * p * (1 - p)), metric.split("@")[0] != "HR"


def merged_buckets(buckets: dict[str, dict[str, float]], minimum: int) -> dict[str, dict[str, Any]]:
    """``buckets`` (a result's breakdown: label -> {"n_sessions", metric means, their sds}) with every bucket of
    fewer than ``minimum`` sessions merged into its neighbours, in their order: buckets are gathered from the
    first until the gathered hold ``minimum`` sessions; a small remainder at the end joins the last gathered one.

    Returns label -> {"n_sessions", "parts": the merged labels, "bounded": the metrics whose std is only an
    upper bound (a result saved before the per-bucket std: :func:`_sd`), and per metric its mean (the
    session-weighted mean) and ``sd_key(metric)``: the pooled sample std over the merged sessions (sum of squares
    recovered from each part's n, mean and sd; exact given the parts' stds), absent for a single session}.
    Labels of merged buckets span their parts: "1", "2", "3" -> "1-3"; "10+" keeps its open end.
    """
    groups: list[list[str]] = []
    current: list[str] = []
    for label in buckets:
        current.append(label)
        if sum(buckets[name]["n_sessions"] for name in current) >= minimum:
            groups.append(current)
            current = []
    if current:
        if groups:
            groups[-1] += current
        else:
            groups.append(current)
    merged: dict[str, dict[str, Any]] = {}
    for parts in groups:
        n = sum(int(buckets[name]["n_sessions"]) for name in parts)
        out: dict[str, Any] = {"n_sessions": n, "parts": parts, "bounded": []}
        names = [m for m in buckets[parts[0]] if m != "n_sessions" and not m.endswith(sd_key(""))]
        for metric in names:
            if any(metric not in buckets[name] for name in parts):
                continue
            total = sum(buckets[name]["n_sessions"] * buckets[name][metric] for name in parts)
            out[metric] = mean = total / n if n else 0.0
            known = [_sd(buckets[name], metric) for name in parts]
            sds = [sd for sd, _ in known]
            if any(bound for _, bound in known):
                out.setdefault("bounded", []).append(metric)
            if n > 1 and all(sd is not None for sd in sds):
                squares = sum((b["n_sessions"] - 1) * sd ** 2 + b["n_sessions"] * b[metric] ** 2
                              for b, sd in zip((buckets[name] for name in parts), sds) if sd is not None)
                out[sd_key(metric)] = math.sqrt(max(squares - n * mean ** 2, 0.0) / (n - 1))
        merged[_merged_label(parts)] = out
    return merged


def normal_interval(mean: float, sd: float, n: int) -> tuple[float, float]:
    """The 95% normal-approximation interval of a mean over ``n`` sessions: mean ± 1.96 · sd / sqrt(n)."""
    half = Z95 * sd / math.sqrt(n)
    return mean - half, mean + half


def breakdown_frame(results: dict[str, EvaluationResult], breakdown: str = "by_prompt_length",
                    group_seeds: bool = False, minimum: int | None = None) -> pd.DataFrame:
    """One row per (row, bucket of ``breakdown``, metric) — ``breakdown`` a key of :data:`BREAKDOWNS` — with the
    columns model, bucket, metric, value, low, high, sessions, parts, spread, bounded. Buckets under ``minimum``
    sessions (default :func:`min_bucket_sessions` of the test split) are merged first (:func:`merged_buckets`;
    ``parts`` lists what a row merged). A single run's ``low``/``high`` is the 95% normal-approximation interval
    over the bucket's sessions (spread "95% interval"; ``bounded`` when its std is the upper bound of a result
    saved before the per-bucket std was kept, so the interval is wider than the data's); a seed group's value is
    the mean over its runs, ``low``/``high`` ± the sample std (ddof=1) of the bucket's value over the runs
    (spread "± std over seeds"). A result saved before the breakdown adds no row."""
    records = []
    for label, row in seed_groups(results, group_seeds).items():
        values_of: dict[tuple[str, str], list[float]] = {}
        meta: dict[tuple[str, str], tuple[int, list[str], tuple[float, float] | None]] = {}
        bounded: set[tuple[str, str]] = set()
        for result in row.runs:
            size = minimum if minimum is not None else min_bucket_sessions(result.n_test_sessions)
            for bucket, values in merged_buckets(getattr(result, breakdown), size).items():
                for name, value in values.items():
                    if name in ("n_sessions", "parts", "bounded") or name.endswith(sd_key("")):
                        continue
                    values_of.setdefault((bucket, name), []).append(value)
                    sd = values.get(sd_key(name))
                    interval = normal_interval(value, sd, values["n_sessions"]) if sd is not None else None
                    meta[(bucket, name)] = (values["n_sessions"], values["parts"], interval)
                    if name in values["bounded"]:
                        bounded.add((bucket, name))
        for (bucket, name), over_runs in values_of.items():
            sessions, parts, interval = meta[(bucket, name)]
            value = statistics.fmean(over_runs)
            if row.grouped:
                spread = statistics.stdev(over_runs) if len(over_runs) > 1 else None
                low, high = (value - spread, value + spread) if spread is not None else (None, None)
            else:
                low, high = interval or (None, None)
            records.append({"model": label, "bucket": bucket, "metric": name, "value": value, "low": low,
                            "high": high, "sessions": sessions, "parts": parts,
                            "spread": "± std over seeds" if row.grouped else "95% interval",
                            "bounded": not row.grouped and (bucket, name) in bounded})
    return pd.DataFrame(records, columns=["model", "bucket", "metric", "value", "low", "high", "sessions", "parts",
                                          "spread", "bounded"])


def csv_export(results: dict[str, EvaluationResult], group_seeds: bool = False) -> str:
    """Long format, one line per (row, metric): ``model,metric,value,low,high,source,std,n``. ``value`` is a
    run's value or a seed group's mean; ``low``/``high`` a single run's 95% bootstrap interval over test
    sessions; ``std`` a group's sample standard deviation over its seeds (ddof=1), empty for a single run; ``n``
    the number of runs behind ``value`` (1 for a single run)."""
    frame = long_frame(results, group_seeds=group_seeds)
    return frame[["model", "metric", "value", "low", "high", "source", "std", "n"]].to_csv(index=False)


# ------------------------------------------------------------------------------------------------ figures
# Plotly's 10 default colours, then Dark24's and Light24's: 48 distinct colours before one repeats
PALETTE: tuple[str, ...] = tuple(dict.fromkeys(px.colors.qualitative.Plotly + px.colors.qualitative.Dark24
                                               + px.colors.qualitative.Light24))
PAPER_COLOUR = "#bbbbbb"
WRAP = 42  # characters of a model label per line on an axis or in a legend


def model_colours(labels: list[str]) -> dict[str, str]:
    """One colour per row label, in order (:data:`PALETTE`, repeating only after 48 rows): pass the same map to
    every chart so a model keeps its colour across them."""
    return {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(labels)}


def wrapped(label: str, width: int = WRAP) -> str:
    """``label`` escaped for plotly (:func:`plotly_text`) and broken at spaces into lines of about ``width``
    characters (``<br>``), so a long variant label is shown whole, never cut."""
    import textwrap

    lines = textwrap.wrap(plotly_text(label), width, break_long_words=False, break_on_hyphens=False)
    return "<br>".join(lines) or plotly_text(label)


def _legend_height(labels: list[str], extra: int = 110) -> int:
    """A figure height at which a vertical legend of ``labels`` (wrapped, :func:`wrapped`) fits without
    scrolling: about 19 px a line, at least 420."""
    return max(420, extra + 19 * sum(wrapped(label).count("<br>") + 1 for label in labels) + 8 * len(labels))


def _frame(figure: go.Figure, title: str, note: str = "", height: int = 420) -> go.Figure:
    """Shared layout: the title and its note (a subtitle) on top, a vertical legend right of the plot, margins
    that grow to fit tick labels and the legend (automargin), so no label is clipped or collides."""
    figure.update_layout(
        title=dict(text=title, subtitle=dict(text=note) if note else None, x=0, xanchor="left", xref="paper"),
        height=height, margin=dict(t=64 + 17 * (note.count("<br>") + 1) if note else 60, b=10, l=10, r=10),
        legend_title_text="",
        legend=dict(orientation="v", yanchor="top", y=1.0, xanchor="left", x=1.02), template="plotly_white")
    figure.update_xaxes(automargin=True)
    figure.update_yaxes(automargin=True)
    return figure


def bar_figure(frame: pd.DataFrame, metric: str, colours: dict[str, str] | None = None) -> go.Figure:
    """One horizontal bar per row, in the row's colour (``colours``, by row label; :func:`model_colours` of the
    frame's rows by default), its label whole on the axis; the paper's value as a grey hatched bar beside it
    where it reports the metric. Error bars: a single run's 95% bootstrap interval over test sessions; a seed
    group's (n >= 2 in ``frame["n"]``) ± its std over seeds."""
    part = frame[frame["metric"] == metric].copy()
    part["plus"] = (part["high"] - part["value"]).where(part["high"].notna())
    part["minus"] = (part["value"] - part["low"]).where(part["low"].notna())
    over_seeds = (part["n"].fillna(1) > 1) if "n" in part else pd.Series(False, index=part.index)
    if over_seeds.any():
        part.loc[over_seeds, "plus"] = part.loc[over_seeds, "std"]
        part.loc[over_seeds, "minus"] = part.loc[over_seeds, "std"]
    ours = part[part["source"] == "ours"]
    colours = colours or model_colours(list(dict.fromkeys(ours["model"])))
    order = list(dict.fromkeys(list(ours["model"]) + list(part["model"])))
    figure = go.Figure()
    for _, row in ours.iterrows():
        figure.add_bar(y=[wrapped(row["model"])], x=[row["value"]], orientation="h", name=wrapped(row["model"]),
                       marker_color=colours.get(row["model"], PALETTE[0]), offsetgroup="ours", showlegend=False,
                       error_x=dict(type="data", array=[row["plus"]], arrayminus=[row["minus"]], visible=True),
                       hovertemplate=f"%{{y}}<br>{metric} %{{x:.4f}}<extra></extra>")
    paper = part[part["source"] == PAPER_LABEL]
    if len(paper):
        figure.add_bar(y=[wrapped(m) for m in paper["model"]], x=paper["value"], orientation="h", name=PAPER_LABEL,
                       marker=dict(color=PAPER_COLOUR, pattern_shape="/"), offsetgroup="paper",
                       hovertemplate=f"%{{y}}<br>{PAPER_LABEL}: {metric} %{{x:.4f}}<extra></extra>")
    bars = ("bars: ± std over seeds for “n seeds” rows, 95% bootstrap interval otherwise" if over_seeds.any()
            else "bars: 95% bootstrap interval over test sessions")
    if len(paper):
        bars += "; grey, hatched: the paper's figure (their runs)"
    figure.update_layout(barmode="group", xaxis_title=metric)
    figure.update_yaxes(categoryorder="array", categoryarray=[wrapped(m) for m in order], autorange="reversed")
    return _frame(figure, metric, bars, height=max(320, 130 + 26 * len(order) * (2 if len(paper) else 1)))


def tradeoff_figure(results: dict[str, EvaluationResult], accuracy: str = "NDCG@20",
                    beyond: str = "Coverage@20", group_seeds: bool = False,
                    colours: dict[str, str] | None = None) -> go.Figure:
    """``accuracy`` against ``beyond``, one marker per row in its colour, named in the legend."""
    table = wide_table(results, group_seeds)
    colours = colours or model_colours(list(table.index))
    figure = go.Figure()
    for label, row in table.iterrows():
        x, y = row.get(beyond, float("nan")), row.get(accuracy, float("nan"))  # a missing metric: no point
        figure.add_scatter(x=[x], y=[y], mode="markers", name=wrapped(str(label)),
                           marker=dict(size=12, color=colours.get(str(label), PALETTE[0])),
                           hovertemplate=f"%{{fullData.name}}<br>{beyond} %{{x:.4f}}<br>{accuracy} %{{y:.4f}}"
                                         "<extra></extra>")
    figure.update_layout(xaxis_title=beyond, yaxis_title=accuracy)
    return _frame(figure, f"{accuracy} vs {beyond}", "one marker per row; the legend names them",
                  height=_legend_height([str(label) for label in table.index]))


def breakdown_figure(results: dict[str, EvaluationResult], metric: str = "NDCG@20",
                     breakdown: str = "by_prompt_length", group_seeds: bool = False,
                     colours: dict[str, str] | None = None, minimum: int | None = None) -> go.Figure:
    """``metric`` per bucket of ``breakdown`` (a key of :data:`BREAKDOWNS`), one line per row in its colour,
    each bucket's session count on the axis, error bars from :func:`breakdown_frame` (a run's 95% interval
    over the bucket's sessions, a seed group's ± std over seeds); small buckets merged, the note says which."""
    axis, title = BREAKDOWNS[breakdown]
    frame = breakdown_frame(results, breakdown, group_seeds, minimum)
    part = frame[frame["metric"] == metric]
    colours = colours or model_colours(list(seed_groups(results, group_seeds)))
    ticks = {bucket: f"{plotly_text(bucket)}<br>n={n:,}" for bucket, n in zip(part["bucket"], part["sessions"])}
    figure = go.Figure()
    for label, line in part.groupby("model", sort=False):
        figure.add_scatter(x=[ticks[b] for b in line["bucket"]], y=line["value"], mode="lines+markers",
                           name=wrapped(str(label)), line=dict(color=colours.get(str(label), PALETTE[0])),
                           error_y=dict(type="data", array=(line["high"] - line["value"]).tolist(),
                                        arrayminus=(line["value"] - line["low"]).tolist(), visible=True,
                                        thickness=1, width=3),
                           hovertemplate=f"%{{fullData.name}}<br>%{{x}}<br>{metric} %{{y:.4f}}<extra></extra>")
    merged = sorted({(tuple(parts), bucket) for bucket, parts in zip(part["bucket"], part["parts"])
                     if len(parts) > 1})
    n_test = max((r.n_test_sessions for r in results.values()), default=0)
    smallest = minimum if minimum is not None else min_bucket_sessions(n_test)
    spreads = set(part["spread"])
    note = ("error bars: " + " / ".join(sorted(spreads)) if spreads else "") + "; n = sessions in the bucket"
    if part["bounded"].any():
        note += ("<br>wider bars: results saved before the per-bucket spread use its upper bound "
                 "(sd² ≤ mean·(1−mean) for values in [0, 1]); evaluate again for the exact one")
    if merged:
        joined = "; ".join(f"{', '.join(map(plotly_text, parts))} → {plotly_text(bucket)}" for parts, bucket in merged)
        note += f"<br>buckets under {smallest:,} sessions merged: {joined}"
    figure.update_layout(xaxis_title=axis, yaxis_title=metric)
    figure.update_xaxes(type="category")
    return _frame(figure, f"{metric} {title}", note, height=_legend_height(list(dict.fromkeys(part["model"])), 140))


# ------------------------------------------------------------------------------------------------ HTML
def _unbroken(table: pd.DataFrame) -> pd.DataFrame:
    """Cells whose interval ``[0.0047, 0.0080]`` or spread ``± 0.0100`` keeps together on one line (no-break
    spaces), so a narrow column breaks only between the value and its interval."""
    return table.map(lambda cell: cell.replace(", ", ",\u00a0").replace("± ", "±\u00a0")
                     if isinstance(cell, str) and ("[" in cell or "±" in cell) else cell)


def html_report(dataset: str, results: dict[str, EvaluationResult], title: str | None = None,
                group_seeds: bool = False) -> str:
    """A single HTML file (plotly.js inlined once) that opens offline: tables, charts, the paper's figures.
    With ``group_seeds`` the runs of one setting are one row, mean ± sample std over the seeds (see
    :func:`seed_groups`). Every chart gives a row the same colour (:func:`model_colours`)."""
    title = title or f"Sequential recommendation results: {dataset}"
    frame = long_frame(results, dataset, with_paper=True, group_seeds=group_seeds)
    rows = seed_groups(results, group_seeds)
    colours = model_colours(list(rows))
    n_test = {r.n_test_sessions for r in results.values()}
    created = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    spread = ("Every model ranks the full catalog; brackets are 95% bootstrap intervals over test sessions."
              + (" A row of n seeds (runs whose options differ only in the seed) shows mean ± the sample standard "
                 "deviation over the seeds (ddof=1); its chart bars show ± that standard deviation."
                 if any(row.grouped for row in rows.values()) else "")
              + " A model's plain name is its default configuration on this dataset; a label in brackets names "
                "the options that differ from it. “trained”: the seed and, for models trained in epochs, how "
                "many ran (early stopping) and the best one.")
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
        ".scroll{overflow-x:auto;max-width:100%}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:4px 8px;"
        "text-align:right}th{background:#f4f4f4}"
        "td:first-child,th:first-child{text-align:left;min-width:10em;max-width:22em}"
        ".note{color:#666;font-size:13px}"
        ".chart{margin:1.5em 0}</style>",
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='note'>Created {created}. Test sessions: {', '.join(f'{n:,}' for n in sorted(n_test))}. "
        f"{html.escape(spread)}</p>",
    ]
    for k in sorted(KS, reverse=True):
        parts += [f"<h2>Metrics @{k}</h2>", "<div class='scroll'>",
                  _unbroken(formatted_table(results, ks=(k,), group_seeds=group_seeds, with_sessions=len(n_test) > 1)
                            .rename_axis(None)).to_html(escape=True), "</div>"]
    if dataset == "beauty":
        parts += ["<h2>Next to the paper</h2>",
                  "<p class='note'>The paper's figures are its own runs (OpenAI ada-002 embeddings), quoted, "
                  "not reproduced here.</p>", "<div class='scroll'>",
                  paper_comparison(results, group_seeds).to_html(index=False, float_format=lambda v: f"{v:.4f}",
                                                                 na_rep="–"), "</div>"]
    figures = [bar_figure(frame, "NDCG@20", colours), bar_figure(frame, "HR@20", colours),
               tradeoff_figure(results, group_seeds=group_seeds, colours=colours),
               tradeoff_figure(results, beyond="Novelty@20", group_seeds=group_seeds, colours=colours),
               *(breakdown_figure(results, breakdown=name, group_seeds=group_seeds, colours=colours)
                 for name in ("by_prompt_length", "by_target_popularity"))]
    parts.append("<h2>Charts</h2>")
    for i, figure in enumerate(figures):
        parts.append("<div class='chart'>" + figure.to_html(full_html=False, include_plotlyjs=(i == 0),
                                                            config={"responsive": True}) + "</div>")
    parts.append("</body></html>")
    return "\n".join(parts)
