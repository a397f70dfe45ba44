"""Evaluation results as typed objects (what ``core.evaluate`` produces, ``core.store`` keeps and the reports
and dashboards read), and their JSON form. Each metric is held once, in ``metrics`` (``"NDCG@20"`` -> value).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

SD_SUFFIX = " sd"


def sd_key(metric: str) -> str:
    """Where a breakdown bucket keeps the sample standard deviation (ddof=1) of ``metric`` over its sessions:
    ``"NDCG@20 sd"``."""
    return metric + SD_SUFFIX


@dataclass
class EvaluationResult:
    """One model evaluated on one split with one set of evaluation options."""

    dataset: str
    model: str  # registry name
    label: str  # the name, plus the options that differ from the defaults: "vsknn (k=100)"
    config: dict[str, Any]
    n_test_sessions: int
    metrics: dict[str, float]  # "NDCG@20" -> mean over the test sessions; also rates such as hallucination_rate
    intervals: dict[str, list[float]] = field(default_factory=dict)  # accuracy metrics: 95% bootstrap interval
    # bin -> {"n_sessions", "NDCG@20": mean, sd_key("NDCG@20"): sample std over the bin's sessions}; results
    # saved before the std was kept have the means only (core.report.merged_buckets copes)
    by_prompt_length: dict[str, dict[str, float]] = field(default_factory=dict)
    # the target's train interactions: fixed buckets ("0", "1-4", "5-19", "20+") and 4 equal-size quartiles
    by_target_popularity: dict[str, dict[str, float]] = field(default_factory=dict)
    by_target_popularity_quantile: dict[str, dict[str, float]] = field(default_factory=dict)
    generation_per_session: dict[str, list[int]] | None = None  # a generative model's name counts per session
    popularity_counts: str = "train only"  # what serendipity and novelty counted: "train only" or the paper's
    fit_seconds: float | None = None  # of this fit, or recorded when the loaded model was fitted
    predict_seconds: float = 0.0
    status: Literal["fitted", "loaded"] = "fitted"
    notes: list[str] = field(default_factory=list)  # what the store repaired
    key: str = ""  # the model's key in the store (data, titles and embeddings, config)
    evaluation: str = ""  # a hash of the evaluation options
    created: str = ""  # ISO time, UTC

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, payload: Any) -> "EvaluationResult | None":
        """The result saved as ``payload``, or None when it is not one (damaged, or an older version's)."""
        if not isinstance(payload, dict) or not isinstance(payload.get("metrics"), dict):
            return None
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{key: value for key, value in payload.items() if key in names})
        except TypeError:
            return None


@dataclass
class Report:
    """What one ``evaluate`` run did: a result per model, by label."""

    dataset: str
    n_test_sessions: int
    n_train_sessions: int
    popularity_counts: str
    results: dict[str, EvaluationResult] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The CLI's ``--output`` JSON: per model its metrics, timings and whether it was fitted or loaded."""
        return {"dataset": self.dataset, "n_test_sessions": self.n_test_sessions,
                "n_train_sessions": self.n_train_sessions, "popularity_counts": self.popularity_counts,
                "models": {label: {**r.metrics, "fit_seconds": r.fit_seconds, "predict_seconds": r.predict_seconds,
                                   "status": r.status, "notes": r.notes} for label, r in self.results.items()}}
