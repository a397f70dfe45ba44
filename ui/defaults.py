"""The fast defaults a new user gets without choosing anything (app policy, not core): popularity, SKNN and
V-SKNN (seconds each on Beauty) and LLMSeqSim (needs only the catalog's embeddings; the bundled datasets ship
them, see ``core.embeddings.shipped_vectors``).

They are prepared as three jobs, in the order a user needs them: the baselines are fitted first (their picks
show as soon as they are saved), then the catalog is embedded and LLMSeqSim fitted, and only then is every one
of them evaluated for the dashboards (the evaluation takes longer than all the fits together).
"""

from __future__ import annotations

from typing import Any

from core.jobs import JobRequest, ModelStep

DEFAULT_MODELS = ("popularity", "sknn", "vsknn")  # each fits in seconds on Beauty
# Needs only the catalog's embeddings, which the second job computes (or reads) first; no training.
EMBEDDING_ONLY_MODELS = ("llmseqsim",)


def defaults_requests(dataset: str, embed: dict[str, Any] | None) -> list[tuple[str, JobRequest]]:
    """(title, request) of each job, in submission order. ``embed`` (an ``EmbeddingSpec``'s provider and model)
    adds the embedding and the models that need nothing more; None keeps to the baselines."""
    baselines = tuple(ModelStep(name) for name in DEFAULT_MODELS)
    jobs = [("fit the baselines", JobRequest(dataset=dataset, models=baselines, evaluate=False))]
    models = baselines
    if embed is not None:  # the same embeddings the job computes first
        same = {"embedding_provider": embed.get("provider", "local"), "embedding_model": embed.get("model")}
        text = tuple(ModelStep(name, same) for name in EMBEDDING_ONLY_MODELS)
        jobs.append(("embed the titles and fit LLMSeqSim",
                     JobRequest(dataset=dataset, models=text, evaluate=False, embed=embed)))
        models += text
    jobs.append(("evaluate the defaults", JobRequest(dataset=dataset, models=models, evaluate=True)))
    return jobs
