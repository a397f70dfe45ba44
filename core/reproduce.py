"""``python -m core reproduce``: the paper's Beauty table (Boz et al. 2024, table 2), every model over seeds.

Each row of ``ROWS`` is a model with the dataset's defaults (``core.models.defaults``, preset ``tuned`` unless
asked otherwise) plus the row's own options — the LLM2 twins' shuffled-vector ablation is a row of its own.
A model whose fit draws random numbers (``Recommender.stochastic_fit``: the sequential models, LLMSeqPrompt)
runs once per seed; the others once. Every run is fitted or loaded through the store and evaluated on the test
split, its result kept in the store like any evaluation (the Metrics page shows it); a run whose result is
already stored is not fitted or evaluated again, so a killed reproduction continues where it stopped. After
each run the JSON summary is rewritten (atomically) with what is done so far.

Summary JSON: ``{"models": {ROW: {"NDCG@20": {"mean": x, "std": s, "runs": [...], "paper": p}, ...}}}``;
``std`` is the sample standard deviation over the runs (ddof=1; null for one run), ``paper`` the paper's
figure where it has one (``core.paper.PAPER_BEAUTY``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from core.common import ConfigError, Progress, UserError, prefixed
from core.config import apply_overrides
from core.data import Dataset
from core.models import model_class
from core.models.defaults import default_config
from core.results import EvaluationResult
from core.storage import atomic_write_text

SUMMARY_METRICS = ("NDCG@20", "HR@20", "MRR@20", "Coverage@20", "NDCG@10", "HR@10")


@dataclass(frozen=True)
class Row:
    """One row of the table: ``model`` with ``options`` on top of the dataset's defaults; ``baseline`` is the
    row an LLM2 twin or an ablation is compared with."""

    name: str
    model: str
    options: dict[str, Any] = field(default_factory=dict)
    baseline: str | None = None


ROWS: dict[str, Row] = {row.name: row for row in (
    Row("popularity", "popularity"),
    Row("sknn", "sknn"),
    Row("vsknn", "vsknn"),
    Row("llmseqsim", "llmseqsim"),
    Row("gru4rec", "gru4rec"),
    Row("llm2gru4rec", "llm2gru4rec", baseline="gru4rec"),
    Row("llm2gru4rec-shuffled", "llm2gru4rec", {"shuffle_llm_vectors": True}, baseline="gru4rec"),
    Row("sasrec", "sasrec"),
    Row("llm2sasrec", "llm2sasrec", baseline="sasrec"),
    Row("llm2sasrec-shuffled", "llm2sasrec", {"shuffle_llm_vectors": True}, baseline="sasrec"),
    Row("bert4rec", "bert4rec"),
    Row("llm2bert4rec", "llm2bert4rec", baseline="bert4rec"),
    Row("llm2bert4rec-shuffled", "llm2bert4rec", {"shuffle_llm_vectors": True}, baseline="bert4rec"),
    Row("embedding_ensemble", "embedding_ensemble"),
    Row("llmseqsim_sequential", "llmseqsim_sequential"),
    Row("llmseqsim_popularity", "llmseqsim_popularity"),
    Row("llmseqprompt", "llmseqprompt"),
)}
# LLMSeqPrompt's local fine-tuning takes hours on a CPU (bench/llmseqprompt_beauty.py): named on request only.
DEFAULT_ROWS = tuple(name for name in ROWS if name != "llmseqprompt")


class ReproduceError(UserError, ValueError):
    """Bad arguments to ``reproduce`` (an unknown row, no seeds)."""


def parse_rows(text: str | None) -> list[Row]:
    """``"sasrec,llm2sasrec"`` -> rows (all of ``DEFAULT_ROWS`` for None/empty); raises ReproduceError."""
    names = [n.strip() for n in (text or "").split(",") if n.strip()] or list(DEFAULT_ROWS)
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        raise ReproduceError(f"unknown row(s) {unknown}; rows: {', '.join(ROWS)}")
    return [ROWS[n] for n in dict.fromkeys(names)]


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ReproduceError(f"--seeds expects comma-separated integers such as 0,1,2, got '{text}'") from None
    if not seeds or min(seeds) < 0:
        raise ReproduceError(f"--seeds expects one or more non-negative integers, got '{text}'")
    return list(dict.fromkeys(seeds))


def row_seeds(row: Row, seeds: list[int]) -> list[int]:
    """The seeds a row runs: all of them when its fit is random, else just the first."""
    return seeds if model_class(row.model).stochastic_fit else seeds[:1]


def summarise(runs: list[float]) -> dict[str, Any]:
    """``{"mean", "std", "runs"}`` of one metric over runs (std: sample, ddof=1; None for fewer than 2)."""
    n = len(runs)
    mean = sum(runs) / n if n else math.nan
    std = math.sqrt(sum((x - mean) ** 2 for x in runs) / (n - 1)) if n >= 2 else None
    return {"mean": mean, "std": std, "runs": list(runs)}


def reproduce(dataset: Dataset, rows: list[Row], seeds: list[int], preset: str = "tuned",
              output: Path | None = None, progress_for: Callable[[str, int], tuple[Progress, Callable]] | None = None,
              command: str = "", paper: dict[str, dict[str, float]] | None = None,
              overrides: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Run every row over ``seeds`` (module docstring) and return the summary; ``output`` is rewritten after
    every run. ``progress_for(row, n_runs)`` gives a per-row progress callback and its closer (the CLI: a tqdm
    bar per row); ``overrides`` ``{model: {option: value}}`` apply to every row of that model (the CLI's
    ``--set``); ``paper`` ``{model: {metric: value}}`` is shown beside. Raises ``ConfigError`` for a bad
    option, and what fitting raises."""
    from core import evaluate, store

    runs = plan(rows, seeds, dataset.name, preset, overrides)  # a bad option fails before anything is trained
    tag = evaluate.options_tag(evaluate.EvaluationOptions())
    stored = {r.key: r for r in store.load_results(dataset, tag).values()}
    summary: dict[str, Any] = {"dataset": dataset.name, "test_sessions": dataset.split.n_test, "seeds": seeds,
                               "preset": preset, "command": command, "models": {}}
    for row, configs in runs:
        results: list[EvaluationResult] = []
        progress, close = progress_for(row.name, len(configs)) if progress_for else (None, lambda: None)
        try:
            for i, config in enumerate(configs, start=1):
                step = prefixed(progress, f"run {i}/{len(configs)} (seed {getattr(config, 'seed', '-')})")
                result = stored.get(store.model_key(dataset, row.model, config))
                if result is None:
                    report = evaluate.run(dataset, [model_class(row.model)(config)], progress=step)
                    result = next(iter(report.results.values()))
                results.append(result)
                summary["models"][row.name] = _row_summary(row, results, (paper or {}).get(row.model, {}),
                                                           summary["models"])
                if output is not None:
                    atomic_write_text(output, json.dumps(summary, indent=2))
        finally:
            close()
    return summary


def plan(rows: list[Row], seeds: list[int], dataset: str, preset: str = "tuned",
         overrides: dict[str, dict[str, Any]] | None = None) -> list[tuple[Row, list[Any]]]:
    """Each row with the config of each of its runs (``row_seeds``); raises ConfigError for a bad option."""
    return [(row, [_config(row, seed, dataset, preset, overrides) for seed in row_seeds(row, seeds)])
            for row in rows]


def _config(row: Row, seed: int, dataset: str, preset: str, overrides: dict[str, dict[str, Any]] | None) -> Any:
    config = default_config(row.model, dataset, preset)
    seeded = "seed" in {f.name for f in dataclasses.fields(config)}
    try:
        return apply_overrides(config, {**row.options, **(overrides or {}).get(row.model, {}),
                                        **({"seed": seed} if seeded else {})})
    except ConfigError as err:
        raise ConfigError(f"{row.name}: {err}") from None


def _row_summary(row: Row, results: list[EvaluationResult], paper: dict[str, float],
                 done: dict[str, Any]) -> dict[str, Any]:
    metrics = [m for m in SUMMARY_METRICS if all(m in r.metrics for r in results)]
    out: dict[str, Any] = {"model": row.model, "options": store_options(row, results[0]),
                           "seeds": [r.config.get("seed") for r in results]}
    for name in metrics:
        out[name] = {**summarise([r.metrics[name] for r in results]), "paper": paper.get(name)}
    fits = [r.fit_seconds for r in results if r.fit_seconds is not None]
    out["fit_seconds"] = summarise(fits) if fits else None
    if row.baseline and row.baseline in done and "NDCG@20" in out:
        base = done[row.baseline]["NDCG@20"]["mean"]
        out["vs_baseline"] = {"row": row.baseline, "NDCG@20_gain": out["NDCG@20"]["mean"] / base - 1 if base else None}
    return out


def store_options(row: Row, result: EvaluationResult) -> dict[str, Any]:
    """The options of the row's first run that differ from the model's class defaults (the paper's values)."""
    from core import store

    return {k: v for k, v in store.changed_options(row.model, result.config).items() if k != "seed"}


def markdown(summary: dict[str, Any]) -> str:
    """The summary as a markdown table: mean ± std (n runs) per metric, the paper's NDCG@20 / HR@20 beside."""
    header = ["model", "runs", *SUMMARY_METRICS, "paper NDCG@20", "paper HR@20", "NDCG@20 vs vanilla"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in summary["models"].items():
        cells = [name, str(len(row.get("seeds", [])))]
        for metric in SUMMARY_METRICS:
            value = row.get(metric)
            if value is None:
                cells.append("–")
            else:
                std = value["std"]
                cells.append(f"{value['mean']:.4f}" + (f" ± {std:.4f}" if std is not None else ""))
        for metric in ("NDCG@20", "HR@20"):
            paper = (row.get(metric) or {}).get("paper")
            cells.append("–" if paper is None else f"{paper:.4f}")
        gain = (row.get("vs_baseline") or {}).get("NDCG@20_gain")
        cells.append("–" if gain is None else f"{gain:+.0%} vs {row['vs_baseline']['row']}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
