"""Run recommenders over evaluation prompts, compute the metrics, save the results.

Results are plain JSON under ``cache/results/<dataset>/``, one file per model key (``core.store``: data,
titles and embeddings, config) and evaluation options, which the app's dashboards read. A result holds the
metric means @10 and @20, a 95% bootstrap interval for every accuracy metric, a breakdown by prompt length,
the timing, the model's config, and whether the model was fitted for it or loaded from the store.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from core import metrics, store
from core.config import config_dict
from core.data import Dataset, Split
from core.common import Progress
from core.models.base import Recommender
from core.storage import CACHE_DIR, atomic_write_text, read_json

KS = (10, 20)
LENGTH_BINS = ((1, 1), (2, 2), (3, 3), (4, 5), (6, 9), (10, 10**9))  # prompt lengths, inclusive


@dataclass(frozen=True)
class EvaluationOptions:
    ks: tuple[int, ...] = KS
    paper_popularity: bool = False  # whole-dataset counts for serendipity/novelty, as the authors (leaks test)
    bootstrap_resamples: int = 1000
    seed: int = 0


def _length_label(low: int, high: int) -> str:
    return str(low) if low == high else (f"{low}+" if high >= 10**9 else f"{low}-{high}")


def score_lists(recommendations: np.ndarray, split: Split, popularity: np.ndarray,
                options: EvaluationOptions = EvaluationOptions()) -> dict[str, Any]:
    """All metrics for given top-K lists (rows aligned with ``split.prompts``)."""
    targets = split.targets
    lengths = np.array([len(p) for p in split.prompts])
    values: dict[str, float] = {}
    intervals: dict[str, list[float]] = {}
    by_length: dict[str, dict[str, float]] = {}
    for k in options.ks:
        for name, fn in metrics.ACCURACY.items():
            per_session = fn(recommendations, targets, k)
            key = f"{name}@{k}"
            values[key] = float(per_session.mean())
            intervals[key] = list(metrics.bootstrap_interval(per_session, options.bootstrap_resamples,
                                                             seed=options.seed))
            for low, high in LENGTH_BINS:
                mask = (lengths >= low) & (lengths <= high)
                if mask.any():
                    bucket = by_length.setdefault(_length_label(low, high), {"n_sessions": int(mask.sum())})
                    bucket[key] = float(per_session[mask].mean())
        values[f"Coverage@{k}"] = metrics.catalog_coverage(recommendations, k, split.catalog.n_items)
        values[f"Serendipity@{k}"] = float(metrics.serendipity(recommendations, targets, k, popularity).mean())
        values[f"Novelty@{k}"] = float(metrics.novelty(recommendations, k, popularity).mean())
    return {"metrics": values, "intervals": intervals, "by_prompt_length": by_length}


GENERATION_KINDS = ("exact", "duplicated", "hallucinated")


def generation_rates(counts: list[dict[str, int]]) -> dict[str, float]:
    """The share of all sampled names that were exact catalog titles, duplicates and hallucinations, over the
    sessions of ``counts`` (``Recommender.generation_counts``)."""
    total = sum(sum(c[kind] for kind in GENERATION_KINDS) for c in counts)
    share = {kind: sum(c[kind] for c in counts) / total if total else 0.0 for kind in GENERATION_KINDS}
    return {"exact_rate": share["exact"], "duplicate_rate": share["duplicated"],
            "hallucination_rate": share["hallucinated"]}


def evaluate_model(model: Recommender, split: Split, options: EvaluationOptions = EvaluationOptions(),
                   progress: Progress | None = None, batch_size: int = 256) -> dict[str, Any]:
    """Rank the full catalog for every prompt of ``split`` and score the lists."""
    k = max(options.ks)
    exclude = model.exclude_seen_in_evaluation
    before = len(model.generation_counts())  # a generative model counts how its sampled names mapped
    start = time.perf_counter()
    chunks = []
    for begin in range(0, split.n_test, batch_size):
        items, _ = model.recommend(split.prompts[begin:begin + batch_size], k, exclude_seen=exclude)
        chunks.append(items)
        if progress:
            progress(min(begin + batch_size, split.n_test), split.n_test, f"{model.name}: predicting")
    recommendations = np.concatenate(chunks) if chunks else np.zeros((0, k), dtype=np.int64)
    predict_seconds = time.perf_counter() - start
    popularity = split.catalog.popularity if options.paper_popularity else split.train_popularity
    result = score_lists(recommendations, split, popularity, options)
    counts = model.generation_counts()[before:]
    if counts:
        result["metrics"].update(generation_rates(counts))  # e.g. hallucination_rate
        result["generation_per_session"] = {kind: [c[kind] for c in counts] for kind in GENERATION_KINDS}
    result["predict_seconds"] = predict_seconds
    result["recommendations"] = recommendations
    return result


def options_tag(options: EvaluationOptions) -> str:
    """A short hash of the evaluation options (part of a result's key)."""
    return hashlib.sha256(json.dumps(asdict(options), sort_keys=True).encode()).hexdigest()[:6]


def results_folder(dataset_name: str) -> Path:
    return CACHE_DIR / "results" / dataset_name


def result_path(dataset: Dataset, model: Recommender, options: EvaluationOptions = EvaluationOptions()) -> Path:
    """``cache/results/<dataset>/<model key>-<options tag>.json``: the model key (``core.store.model_key``) holds
    the data, titles, embeddings and config, so a variant or a model built on other data never shares a file."""
    return results_folder(dataset.name) / f"{store.model_key(dataset, model.name, model.config)}-{options_tag(options)}.json"


def run(dataset: Dataset, models: list[Recommender], options: EvaluationOptions = EvaluationOptions(),
        progress: Progress | None = None, retrain: bool = False, save: bool = True,
        confirm_spending: bool = False) -> dict[str, Any]:
    """Fit (or load) and evaluate each model on the dataset's test split; save one JSON per model.

    Each entry of ``report["models"]`` (keyed by the model's label: its name, plus its changed options) says
    whether the model was ``"fitted"`` now or ``"loaded"`` from the store (``status``), and ``notes`` what the
    store had to repair.
    """
    report: dict[str, Any] = {"dataset": dataset.name, "n_test_sessions": dataset.split.n_test,
                              "n_train_sessions": len(dataset.split.train),
                              "popularity_counts": "whole dataset (paper)" if options.paper_popularity else "train only",
                              "models": {}}
    for model in models:
        fitted = store.fit_or_load(model, dataset, progress=progress, retrain=retrain,
                                   confirm_spending=confirm_spending)
        result = evaluate_model(fitted.model, dataset.split, options, progress=progress)
        result.pop("recommendations")
        config = config_dict(model.config)
        entry = {**result["metrics"], "fit_seconds": fitted.fit_seconds, "predict_seconds": result["predict_seconds"],
                 "status": fitted.status, "loaded_from_cache": fitted.status == "loaded", "notes": fitted.notes}
        label = store.label(model.name, config)
        report["models"][label] = entry
        if save:
            saved = {"dataset": dataset.name, "model": model.name, "label": label,
                     "key": store.model_key(dataset, model.name, model.config), "evaluation": options_tag(options),
                     "n_test_sessions": dataset.split.n_test,
                     "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     "config": config, "popularity_counts": report["popularity_counts"],
                     **{key: value for key, value in result.items() if key != "predict_seconds"}, **entry}
            atomic_write_text(result_path(dataset, model, options), json.dumps(saved, indent=2))
    return report


def load_results(dataset: Dataset, options: EvaluationOptions = EvaluationOptions()) -> dict[str, dict[str, Any]]:
    """The saved results of this dataset's current data, by model label (registry order, default config first).

    A result counts only when its key is what its model and config give on the data as it is now (same
    sessions, same titles and embeddings) and it was computed with ``options``; damaged files and results of
    other data or an older version are skipped, never fatal.
    """
    from core.models import REGISTRY, model_class

    tag = options_tag(options)
    found = []
    for path in sorted(results_folder(dataset.name).glob("*.json")):
        result = read_json(path)
        if not isinstance(result, dict) or result.get("evaluation") != tag or result.get("model") not in REGISTRY:
            continue
        try:
            config = model_class(result["model"]).Config(**result["config"])
            current = store.model_key(dataset, result["model"], config)
        except (KeyError, TypeError, ValueError):
            continue
        if current == result.get("key"):
            found.append(result)
    order = {name: i for i, name in enumerate(REGISTRY)}
    found.sort(key=lambda r: (order[r["model"]], r["label"] != r["model"], r["label"]))
    return {result["label"]: result for result in found}


def format_table(report: dict[str, Any], ks: tuple[int, ...] = KS) -> str:
    """The CLI's table: one row per model with every metric, the fit time and whether it was fitted or loaded."""
    columns = [f"{m}@{k}" for k in ks for m in ("NDCG", "HR", "MRR", "Coverage", "Serendipity", "Novelty")]
    width = max([14] + [len(name) + 2 for name in report["models"]])
    header = f"{'model':<{width}}" + "".join(f"{c:>15}" for c in columns) + f"{'fit s':>9}{'predict s':>11}  model"
    lines = [header, "-" * len(header)]
    for name, entry in report["models"].items():
        cells = "".join(f"{entry[c]:>15.4f}" for c in columns)
        fit = "-" if entry["fit_seconds"] is None else f"{entry['fit_seconds']:.1f}"
        lines.append(f"{name:<{width}}{cells}{fit:>9}{entry['predict_seconds']:>11.1f}  {entry['status']}")
    return "\n".join(lines)
