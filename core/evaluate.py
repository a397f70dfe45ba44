"""Run recommenders over evaluation prompts, compute the metrics, save the results.

Results are plain JSON, one file per (dataset, model) under ``cache/results/<dataset>/``, which the app's
dashboards read. A result holds the metric means @10 and @20, a 95% bootstrap interval for every accuracy
metric, a breakdown by prompt length, the timing, and the model's config.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from core import metrics
from core.data import Dataset, Split
from core.models.base import Progress, Recommender, config_dict
from core.storage import CACHE_DIR, atomic_write_text

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


def evaluate_model(model: Recommender, split: Split, options: EvaluationOptions = EvaluationOptions(),
                   progress: Progress | None = None, batch_size: int = 256) -> dict[str, Any]:
    """Rank the full catalog for every prompt of ``split`` and score the lists."""
    k = max(options.ks)
    exclude = model.exclude_seen_in_evaluation
    # Generative models (LLMSeqPrompt) log how their sampled names mapped to the catalog, per session.
    log_start = len(getattr(model, "generation_log", []))
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
    if hasattr(model, "generation_report"):
        generation = model.generation_report(log_start)
        result["metrics"].update(generation["rates"])  # e.g. hallucination_rate
        result["generation_per_session"] = generation["per_session"]
    result["predict_seconds"] = predict_seconds
    result["recommendations"] = recommendations
    return result


def fingerprint(dataset: Dataset) -> str:
    """A short hash of what a fitted model depends on: the catalog and the train sessions."""
    digest = hashlib.sha256()
    digest.update("\n".join(map(str, dataset.catalog.item_ids)).encode())
    for session in dataset.split.train:
        digest.update(session.tobytes())
    return digest.hexdigest()[:12]


def model_dir(dataset: Dataset, model: Recommender) -> Path:
    config_hash = hashlib.sha256(json.dumps(config_dict(model.config), sort_keys=True).encode()).hexdigest()[:10]
    return models_folder(dataset.name) / f"{model.name}-{fingerprint(dataset)}-{config_hash}"


def models_folder(dataset_name: str) -> Path:
    """Where a dataset's fitted models are saved, one folder each (see ``model_dir``)."""
    return CACHE_DIR / "models" / dataset_name


def fit_or_load(model: Recommender, dataset: Dataset, progress: Progress | None = None,
                retrain: bool = False) -> tuple[Recommender, float, bool]:
    """The fitted model from cache/models when its config and data match, else fit and save it.

    Returns (model, fit_seconds, loaded_from_cache).
    """
    folder = model_dir(dataset, model)
    if not retrain and (folder / "state.safetensors").exists():
        return Recommender.load(folder), 0.0, True
    start = time.perf_counter()
    model.fit(dataset.split, progress=progress)
    seconds = time.perf_counter() - start
    model.save(folder)
    (folder / "fit_seconds.txt").write_text(f"{seconds:.3f}\n")
    return model, seconds, False


def result_path(dataset_name: str, model_name: str) -> Path:
    return CACHE_DIR / "results" / dataset_name / f"{model_name}.json"


def run(dataset: Dataset, models: list[Recommender], options: EvaluationOptions = EvaluationOptions(),
        progress: Progress | None = None, retrain: bool = False, save: bool = True) -> dict[str, Any]:
    """Fit (or load) and evaluate each model on the dataset's test split; save one JSON per model."""
    report: dict[str, Any] = {"dataset": dataset.name, "n_test_sessions": dataset.split.n_test,
                              "n_train_sessions": len(dataset.split.train),
                              "popularity_counts": "whole dataset (paper)" if options.paper_popularity else "train only",
                              "models": {}}
    for model in models:
        fitted, fit_seconds, cached = fit_or_load(model, dataset, progress=progress, retrain=retrain)
        result = evaluate_model(fitted, dataset.split, options, progress=progress)
        result.pop("recommendations")
        if cached:
            stored = model_dir(dataset, model) / "fit_seconds.txt"
            fit_seconds = float(stored.read_text()) if stored.exists() else 0.0
        entry = {**result["metrics"], "fit_seconds": fit_seconds, "predict_seconds": result["predict_seconds"],
                 "loaded_from_cache": cached}
        report["models"][model.name] = entry
        if save:
            saved = {"dataset": dataset.name, "model": model.name, "n_test_sessions": dataset.split.n_test,
                     "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     "config": config_dict(model.config), "popularity_counts": report["popularity_counts"],
                     **{key: value for key, value in result.items() if key != "predict_seconds"}, **entry}
            atomic_write_text(result_path(dataset.name, model.name), json.dumps(saved, indent=2))
    return report


def load_results(dataset_name: str) -> dict[str, dict[str, Any]]:
    """Every saved result for a dataset, by model name (unreadable files are skipped, not fatal)."""
    folder = CACHE_DIR / "results" / dataset_name
    out = {}
    for path in sorted(folder.glob("*.json")):
        try:
            out[path.stem] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
    return out


def format_table(report: dict[str, Any], ks: tuple[int, ...] = KS) -> str:
    columns = [f"{m}@{k}" for k in ks for m in ("NDCG", "HR", "MRR", "Coverage", "Serendipity", "Novelty")]
    header = f"{'model':<14}" + "".join(f"{c:>15}" for c in columns) + f"{'fit s':>9}{'predict s':>11}"
    lines = [header, "-" * len(header)]
    for name, entry in report["models"].items():
        cells = "".join(f"{entry[c]:>15.4f}" for c in columns)
        lines.append(f"{name:<14}{cells}{entry['fit_seconds']:>9.1f}{entry['predict_seconds']:>11.1f}")
    return "\n".join(lines)
