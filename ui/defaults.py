"""The home page's "Prepare the defaults": which models a new user gets in one click (app policy, not core)."""

from __future__ import annotations

from typing import Any

from core.jobs import JobRequest, ModelStep

DEFAULT_MODELS = ("popularity", "sknn", "vsknn")  # each fits in seconds on Beauty
# Needs only the catalog's embeddings, which "prepare the defaults" computes first; no training.
EMBEDDING_ONLY_MODELS = ("llmseqsim",)


def defaults_request(dataset: str, embed: dict[str, Any] | None, evaluate: bool = True) -> JobRequest:
    """The fast baselines, plus the catalog's embeddings and the models that need nothing more than them when
    ``embed`` (an ``EmbeddingSpec``'s provider and model) is given."""
    steps = [ModelStep(name) for name in DEFAULT_MODELS]
    if embed is not None:  # the same embeddings the job computes first
        same = {"embedding_provider": embed.get("provider", "local"), "embedding_model": embed.get("model")}
        steps += [ModelStep(name, same) for name in EMBEDDING_ONLY_MODELS]
    return JobRequest(dataset=dataset, models=tuple(steps), evaluate=evaluate, embed=embed)
