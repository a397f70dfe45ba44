"""The model registry: one name per recommender, used by the CLI, the evaluation and the app.

Modules are imported on first use so that, e.g., the CLI's popularity run never imports torch.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from safetensors.numpy import load_file

from core.common import ConfigError, UserError
from core.models.base import ArtifactError, Recommender


class UnknownModel(UserError, KeyError):
    """A name that is not in the registry."""

# name -> (module, class, one-line description)
REGISTRY: dict[str, tuple[str, str, str]] = {
    "popularity": ("core.models.popularity", "Popularity", "most popular train items (MostPopular)"),
    "sknn": ("core.models.sknn", "SKNN", "session-based kNN"),
    "vsknn": ("core.models.sknn", "VSKNN", "session-based kNN with position decay (V-SKNN)"),
    "gru4rec": ("core.models.gru4rec", "GRU4Rec", "GRU over the session (GRU4Rec)"),
    "sasrec": ("core.models.sasrec", "SASRec", "causal self-attention over the session (SASRec)"),
    "bert4rec": ("core.models.bert4rec", "BERT4Rec", "bidirectional transformer, masked-item training (BERT4Rec)"),
    "llm2gru4rec": ("core.models.gru4rec", "LLM2GRU4Rec", "GRU4Rec with LLM-initialised item embeddings"),
    "llm2sasrec": ("core.models.sasrec", "LLM2SASRec", "SASRec with LLM-initialised item embeddings"),
    "llm2bert4rec": ("core.models.bert4rec", "LLM2BERT4Rec", "BERT4Rec with LLM-initialised item embeddings"),
    "llmseqsim": ("core.models.llmseqsim", "LLMSeqSim", "LLM embedding similarity to the session (LLMSeqSim)"),
    "llmseqprompt": ("core.models.llmseqprompt", "LLMSeqPrompt",
                     "a fine-tuned LM names the next item (local default: small GPT-2 trained from scratch, "
                     "not a pretrained LLM)"),
    "embedding_ensemble": ("core.models.hybrid", "EmbeddingEnsemble",
                           "hybrid: one model's top picks, then another's (EmbeddingEnsemble)"),
    "llmseqsim_sequential": ("core.models.hybrid", "LLMSeqSimSequential",
                             "hybrid: a sequential model after a popular last item, else LLMSeqSim"),
    "llmseqsim_popularity": ("core.models.hybrid", "LLMSeqSimPopularity",
                             "hybrid: LLMSeqSim's candidates with unpopular items filtered out"),
}


def model_names() -> list[str]:
    return list(REGISTRY)


def model_class(name: str) -> type[Recommender]:
    if name not in REGISTRY:
        raise UnknownModel(f"unknown model '{name}'; available: {', '.join(REGISTRY)}")
    module, cls, _ = REGISTRY[name]
    return getattr(importlib.import_module(module), cls)


def create(name: str, **overrides: Any) -> Recommender:
    return model_class(name)(**overrides)


def load(folder: Path | str) -> Recommender:
    """The model saved in ``folder`` (by ``Recommender.save``); raises :class:`ArtifactError` (one sentence) when
    the save is damaged or was written by a version with other options, never a library traceback."""
    folder = Path(folder)
    meta = Recommender.read_meta(folder)
    try:
        cls = model_class(meta["model"])
        model = cls(cls.Config(**meta["config"]))
    except (KeyError, TypeError, ConfigError, ImportError) as err:
        raise ArtifactError(f"{folder}: saved by a version with other options ({str(err).splitlines()[0]})") \
            from None
    model.n_items = int(meta["n_items"])
    try:
        model.set_state(load_file(str(folder / "state.safetensors")))
    except Exception as err:  # noqa: BLE001 (any failure to read or restore the weights means a damaged save)
        raise ArtifactError(f"{folder}: the saved weights cannot be read ({type(err).__name__}: "
                            f"{str(err).splitlines()[0] if str(err) else ''})") from None
    return model
