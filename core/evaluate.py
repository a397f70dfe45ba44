"""Run recommenders over evaluation prompts, compute every registered metric, save the results.

Each model's :class:`~core.results.EvaluationResult` holds the metrics of the registry (``core.metrics.METRICS``)
@10 and @20, a 95% bootstrap interval for every accuracy metric, breakdowns by prompt length and by the target
item's train popularity (:func:`popularity_groups`: fixed buckets of train interactions, and equal-size
quartiles of the test sessions), the timing, the
model's config, and whether the model was fitted for it or loaded from the store. Results are kept by
``core.store`` under the model's key and the evaluation options, so a variant or a sample never overwrites
another model's figures.

Diversity@K needs item vectors: the catalog's text embeddings (offline MiniLM), taken from the cache
(``python -m core embed``, or the app's "Prepare the defaults") or computed first when a model of the run
reads them anyway; without them the metric is left out, for every model of the run alike.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Sequence

import numpy as np

from core import metrics, store
from core.common import Progress
from core.config import config_dict, keyed_dict, option
from core.data import Dataset, Split, cold_item_split
from core.models.base import Recommender
from core.results import EvaluationResult, Report, sd_key

KS = (10, 20)
LENGTH_BINS = ((1, 1), (2, 2), (3, 3), (4, 5), (6, 9), (10, 10**9))  # prompt lengths, inclusive
POPULARITY_BINS = ((0, 0), (1, 4), (5, 19), (20, 10**12))  # the target's train interactions, inclusive
GENERATION_KINDS = ("exact", "duplicated", "hallucinated")
PARSE_KINDS = ("answers", "parse_fallback", "parse_failed")  # a generative model's answers and how they parsed


@dataclass(frozen=True)
class EvaluationOptions:
    ks: tuple[int, ...] = KS
    paper_popularity: bool = False  # whole-dataset counts for serendipity/novelty, as the authors (leaks test)
    bootstrap_resamples: int = 1000
    seed: int = 0
    # score the test sessions whose target is a new item (core.data.cold_item_split), each model first making
    # new items scorable where it can (Recommender.prepare_new_items); the paper's protocol leaves them out
    cold_items: bool = option(False, keyed=False)  # added later: at its default, saved results keep their tag


def options_tag(options: EvaluationOptions) -> str:
    """A short hash of the evaluation options (part of a result's key); an option added later (``keyed=False``,
    ``core.config.keyed_dict``) counts only away from its default, so results saved before it keep their tag."""
    return hashlib.sha256(json.dumps(keyed_dict(options), sort_keys=True).encode()).hexdigest()[:6]


def _length_label(low: int, high: int) -> str:
    return str(low) if low == high else (f"{low}+" if high >= 10**9 else f"{low}-{high}")


Groups = list[tuple[str, np.ndarray]]


def _binned(values: np.ndarray, bins: Sequence[tuple[int, int]]) -> Groups:
    groups = [(_length_label(low, high), (values >= low) & (values <= high)) for low, high in bins]
    return [(label, mask) for label, mask in groups if mask.any()]


def popularity_groups(counts: np.ndarray, quantiles: int | None = None) -> Groups:
    """Sessions grouped by their target's train interactions ``counts`` (one per session): the fixed buckets
    of :data:`POPULARITY_BINS` ("0", "1-4", "5-19", "20+"), or with ``quantiles=q`` q buckets of about equal
    size cut at the q-quantiles of ``counts`` (fewer when counts tie across a cut), labelled by the range of
    counts they hold ("3-7"). Empty groups are left out. Returns (label, boolean mask) pairs."""
    counts = np.asarray(counts, dtype=np.int64)
    if quantiles is None:
        return _binned(counts, POPULARITY_BINS)
    else:
        if quantiles < 1:
            raise ValueError(f"quantiles must be positive, got {quantiles}")
        if len(counts) == 0:
            return []
        edges = np.unique(np.quantile(counts, np.linspace(0, 1, quantiles + 1)))
        groups = []
        for i, high in enumerate(edges[1:] if len(edges) > 1 else edges):
            low_exclusive = edges[i] if i > 0 else counts.min() - 1
            mask = (counts > low_exclusive) & (counts <= high)
            present = counts[mask]
            if len(present):
                groups.append((_length_label(int(present.min()), int(present.max())), mask))
    return [(label, mask) for label, mask in groups if mask.any()]


def _breakdown(per_session: np.ndarray, key: str, groups: Groups, into: dict[str, dict[str, float]]) -> None:
    """Per group: ``n_sessions``, the mean of ``key`` and its sample standard deviation over the group's sessions
    (ddof=1; 0 for one session) under :func:`core.results.sd_key`, so a report can draw an interval per bucket and
    merge small buckets exactly (``core.report.merged_buckets``)."""
    for label, mask in groups:
        bucket = into.setdefault(label, {"n_sessions": int(mask.sum())})
        values = per_session[mask]
        bucket[key] = float(values.mean())
        bucket[sd_key(key)] = float(values.std(ddof=1)) if len(values) > 1 else 0.0


def catalog_vectors(dataset: Dataset, models: Sequence[Recommender] = (),
                    progress: Progress | None = None) -> np.ndarray | None:
    """The item vectors Diversity@K is measured in: the catalog's default text embeddings — from the cache, or
    computed when one of ``models`` is built on them anyway — else None."""
    from core.embeddings import EmbeddingSpec, cached_vectors, item_embeddings

    default = EmbeddingSpec()
    if any(type(model).text_embedding(model.config) == default for model in models):
        return item_embeddings(dataset.catalog, default, progress)
    return cached_vectors(dataset.catalog, default)


def score_lists(recommendations: np.ndarray, split: Split, popularity: np.ndarray,
                options: EvaluationOptions = EvaluationOptions(),
                item_vectors: np.ndarray | None = None) -> dict[str, Any]:
    """Every registered metric for given top-K lists (rows aligned with ``split.prompts``): ``metrics``
    ("NDCG@20" -> mean), ``intervals``, and for the accuracy metrics the breakdowns ``by_prompt_length``,
    ``by_target_popularity`` (fixed buckets of the target's train interactions) and
    ``by_target_popularity_quantile`` (4 equal-size buckets): label -> {"n_sessions", "NDCG@20", ...}."""
    inputs = {"targets": split.targets, "popularity": popularity, "n_items": split.catalog.n_items,
              "item_vectors": item_vectors}
    lengths = np.array([len(p) for p in split.prompts])
    target_counts = split.train_popularity[split.targets] if len(split.targets) else np.zeros(0, dtype=np.int64)
    breakdowns: dict[str, tuple[Groups, dict[str, dict[str, float]]]] = {
        "by_prompt_length": (_binned(lengths, LENGTH_BINS), {}),
        "by_target_popularity": (popularity_groups(target_counts), {}),
        "by_target_popularity_quantile": (popularity_groups(target_counts, quantiles=4), {})}
    values: dict[str, float] = {}
    intervals: dict[str, list[float]] = {}
    for k in options.ks:
        for metric in metrics.METRICS:
            if any(inputs[need] is None for need in metric.needs):
                continue  # e.g. Diversity without item vectors
            value = metric.compute(recommendations, k, **{need: inputs[need] for need in metric.needs})
            key = f"{metric.name}@{k}"
            if np.ndim(value) == 0:
                values[key] = float(value)
                continue
            per_session = np.asarray(value, dtype=np.float64)
            values[key] = float(per_session.mean()) if len(per_session) else 0.0
            if not metric.accuracy:
                continue
            intervals[key] = list(metrics.bootstrap_interval(per_session, options.bootstrap_resamples,
                                                             seed=options.seed))
            for groups, into in breakdowns.values():
                _breakdown(per_session, key, groups, into)
    return {"metrics": values, "intervals": intervals, **{name: into for name, (_, into) in breakdowns.items()}}


def generation_rates(counts: list[dict[str, int]]) -> dict[str, float]:
    """The share of all generated names that were exact catalog titles, duplicates and hallucinations, over the
    sessions of ``counts`` (``Recommender.generation_counts``); where the counts hold answers, the share of
    answers parsed only with a fallback (``parse_fallback_rate``) or not at all (``parse_failure_rate``)."""
    total = sum(sum(c[kind] for kind in GENERATION_KINDS) for c in counts)
    share = {kind: sum(c[kind] for c in counts) / total if total else 0.0 for kind in GENERATION_KINDS}
    rates = {"exact_rate": share["exact"], "duplicate_rate": share["duplicated"],
             "hallucination_rate": share["hallucinated"]}
    answers = sum(c.get("answers", 0) for c in counts)
    if answers:
        rates["parse_fallback_rate"] = sum(c.get("parse_fallback", 0) for c in counts) / answers
        rates["parse_failure_rate"] = sum(c.get("parse_failed", 0) for c in counts) / answers
    return rates


def evaluate_model(model: Recommender, split: Split, options: EvaluationOptions = EvaluationOptions(),
                   progress: Progress | None = None, batch_size: int = 256,
                   item_vectors: np.ndarray | None = None, workers: int = 1, engine: str = "process",
                   address: str | None = None) -> dict[str, Any]:
    """Rank the full catalog for every prompt of ``split`` and score the lists (see :func:`score_lists`); a
    generative model's name counts per session and their rates are added.

    ``workers`` > 1 ranks the prompts in parallel shards (``core.distributed.rank_prompts``): in a process pool
    (``engine="process"``) or on Ray actors (``engine="ray"``, at ``address`` or a local Ray), with the same
    lists as one process; a generative model's counts come back from the workers in prompt order. Raises
    ``ConfigError`` for bad ``workers``/``engine``, ``core.distributed.RayMissing`` without Ray."""
    from core.distributed import rank_prompts

    k = max(options.ks)
    exclude = model.exclude_seen_in_evaluation
    start = time.perf_counter()
    # one path for any number of workers: workers=1 ranks the same batches in this process
    recommendations, counts = rank_prompts(model, split.prompts, k, exclude, workers=workers, engine=engine,
                                           batch_size=batch_size, address=address, progress=progress,
                                           message=f"{model.name}: predicting")
    predict_seconds = time.perf_counter() - start
    popularity = split.catalog.popularity if options.paper_popularity else split.train_popularity
    result = score_lists(recommendations, split, popularity, options, item_vectors)
    if counts:
        result["metrics"].update(generation_rates(counts))  # e.g. hallucination_rate
        result["generation_per_session"] = {kind: [c.get(kind, 0) for c in counts]
                                            for kind in GENERATION_KINDS + PARSE_KINDS}
    result["predict_seconds"] = predict_seconds
    result["recommendations"] = recommendations
    return result


def run(dataset: Dataset, models: list[Recommender], options: EvaluationOptions = EvaluationOptions(),
        progress: Progress | None = None, retrain: bool = False, save: bool = True,
        confirm_spending: bool = False, workers: int = 1, engine: str = "process",
        address: str | None = None) -> Report:
    """Fit (or load) and evaluate each model on the dataset's test split (``options.cold_items``: on its
    sessions whose target is a new item, :func:`core.data.cold_item_split`); keep each result in the store.

    ``report.results`` is keyed by each model's label (its name, plus its changed options); each result says
    whether the model was ``"fitted"`` now or ``"loaded"`` from the store, and ``notes`` what the store had to
    repair. ``workers``/``engine``/``address``: how the prompts are ranked (:func:`evaluate_model`); with Ray,
    one Ray connection serves every model of the run.
    """
    import contextlib

    from core.distributed import check_engine, ray_session

    check_engine(workers, engine)
    with ray_session(address, min_cpus=workers) if workers > 1 and engine == "ray" else contextlib.nullcontext():
        return _run(dataset, models, options, progress, retrain, save, confirm_spending, workers, engine, address)


def _run(dataset: Dataset, models: list[Recommender], options: EvaluationOptions, progress: Progress | None,
         retrain: bool, save: bool, confirm_spending: bool, workers: int, engine: str,
         address: str | None) -> Report:
    counts = "whole dataset (paper)" if options.paper_popularity else "train only"
    split = cold_item_split(dataset.split) if options.cold_items else dataset.split
    report = Report(dataset.name, split.n_test, len(dataset.split.train), counts)
    vectors = catalog_vectors(dataset, models, progress)  # the same for every model of the run
    for model in models:
        fitted = store.fit_or_load(model, dataset, progress=progress, retrain=retrain,
                                   confirm_spending=confirm_spending)
        notes = list(fitted.notes)
        if options.cold_items:
            notes.append(f"{model.name}: new items: {fitted.model.prepare_new_items(dataset.split)[1]}")
        scored = evaluate_model(fitted.model, split, options, progress=progress, item_vectors=vectors,
                                workers=workers, engine=engine, address=address)
        config = config_dict(model.config)
        result = EvaluationResult(
            dataset=dataset.name, model=model.name, label=store.label(model.name, config, dataset.name), config=config,
            n_test_sessions=split.n_test, metrics=scored["metrics"], intervals=scored["intervals"],
            by_prompt_length=scored["by_prompt_length"], by_target_popularity=scored["by_target_popularity"],
            by_target_popularity_quantile=scored["by_target_popularity_quantile"],
            generation_per_session=scored.get("generation_per_session"), popularity_counts=counts,
            fit_seconds=fitted.fit_seconds, predict_seconds=scored["predict_seconds"], status=fitted.status,
            notes=notes, key=store.model_key(dataset, model.name, model.config),
            evaluation=options_tag(options), created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        report.results[result.label] = result
        if save:
            store.save_result(result)
    return report


def load_results(dataset: Dataset, options: EvaluationOptions = EvaluationOptions()) -> dict[str, EvaluationResult]:
    """The saved results of this dataset's current data with these evaluation options, by model label
    (``core.store.load_results``: which files count and how they are labelled)."""
    return store.load_results(dataset, options_tag(options))


def format_breakdown(report: Report, breakdown: str = "by_target_popularity", metric: str = "NDCG@20") -> str:
    """The CLI's table of one breakdown (an :class:`EvaluationResult` field such as ``by_target_popularity``):
    a row per model, ``metric`` per bucket, and the bucket's session count in the header."""
    buckets: dict[str, int] = {}
    for result in report.results.values():
        for bucket, values in getattr(result, breakdown).items():
            buckets.setdefault(bucket, int(values["n_sessions"]))
    width = max([14] + [len(name) + 2 for name in report.results])
    heads = [f"{bucket} ({n:,})" for bucket, n in buckets.items()]
    cell = max([10] + [len(h) + 2 for h in heads])
    lines = [f"{metric} by {breakdown[3:].replace('_', ' ')} (sessions)",
             f"{'model':<{width}}" + "".join(f"{h:>{cell}}" for h in heads)]
    for name, result in report.results.items():
        values = getattr(result, breakdown)
        lines.append(f"{name:<{width}}" + "".join(
            f"{values[b][metric]:>{cell}.4f}" if metric in values.get(b, {}) else f"{'-':>{cell}}" for b in buckets))
    return "\n".join(lines)


def format_table(report: Report, ks: tuple[int, ...] = KS) -> str:
    """The CLI's table: a row per model, every registered metric, the fit time and whether it was fitted or
    loaded (a metric a model has no value for, e.g. Diversity without embeddings, shows "-")."""
    columns = metrics.metric_keys(ks)
    width = max([14] + [len(name) + 2 for name in report.results])
    header = f"{'model':<{width}}" + "".join(f"{c:>15}" for c in columns) + f"{'fit s':>9}{'predict s':>11}  status"
    lines = [header, "-" * len(header)]
    for name, result in report.results.items():
        cells = "".join(f"{result.metrics[c]:>15.4f}" if c in result.metrics else f"{'-':>15}" for c in columns)
        fit = "-" if result.fit_seconds is None else f"{result.fit_seconds:.1f}"
        lines.append(f"{name:<{width}}{cells}{fit:>9}{result.predict_seconds:>11.1f}  {result.status}")
    return "\n".join(lines)
