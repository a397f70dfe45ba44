"""LLMSeqSim: recommend the catalog items whose LLM embedding is closest to the session's (Boz et al. 2024).

Every item title is embedded once (``core.embeddings``), optionally reduced (``core.reduce``). A session's
embedding is

* ``last``: the embedding of its last item, or
* ``mean``: the weighted mean ``sum_p w_p e_p / sum_p w_p`` of its items' embeddings, with position weights
  ``w`` from ``core.decay`` (``none``, ``constant_linear``, ``scaling_linear``, ``scaling_quadratic``,
  ``scaling_cubic``, ``log``, ``harmonic``, ``harmonic_squared``; formulas there).

Items are ranked by ``cosine`` similarity, ``dot`` product, or ``euclidean`` distance (negated) to it.

Defaults, chosen on Beauty's validation folds with the offline MiniLM vectors (``bench/llmseqsim_sweep.py``;
never the test set): the ``last`` item (mean NDCG@20 0.0288 over the 3 folds), just ahead of the mean with
``harmonic_squared`` decay (0.0283); the paper's tuned setting, mean with ``harmonic`` decay, gives 0.0240
and the plain mean 0.0168. The decay matters; with MiniLM the steeper the better. With unit-length item
vectors (no reduction) cosine, dot and euclidean rank identically (``-|e - v|^2 = 2 e.v - |e|^2 - 1``); they
differ only after a reduction.

Post-processing of the vectors (``center``; ``whiten``, with or without ``reduction="pca"``): text embeddings
share a common direction and a few dominant ones (anisotropy), which crowd every similarity; centring removes
the first, PCA whitening evens out the others. ``python -m core study embedding-size`` measures both per model.

The paper reduced 1,536-d ada vectors to 512 with PCA; MiniLM vectors have only 384 dimensions, so
"PCA to 512" would be a mere rotation that changes no similarity: reduction is off by default and remains
an option (``reduction=pca``, ``reduced_dim=...``) for wider models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, Sequence, get_args

import numpy as np
from scipy import sparse

from core.common import ConfigError, Progress
from core.config import Options, Space, between, one_of, option
from core.data import Split
from core.decay import Decay, position_weights
from core.embeddings import EmbeddingSpec, item_embeddings
from core.models.base import Card, Recommender
from core.reduce import reduce_dimensions
from core.vectors import unit


@dataclass(frozen=True)
class LLMSeqSimConfig(Options):
    embedding_provider: Literal["local", "openai"] = option("local", help="offline MiniLM by default")
    embedding_model: str | None = option(None, help="None = the provider's default model")
    long_titles: Literal["cut", "head_tail"] = option("cut",
                                                      help="past the model's window: cut the end, or keep head+tail")
    embedding_fields: str = option("", help="other item text fields embedded after the title, comma-separated "
                                            "(e.g. \"category,tags\"); the title stays what is shown", keyed=False)
    combination: Literal["mean", "last"] = option("last",
                                                  help="best on Beauty's validation folds with MiniLM (see above)")
    decay: Decay = option("harmonic_squared", help="for combination=\"mean\": the best decay on the same folds")
    similarity: Literal["cosine", "dot", "euclidean"] = option("cosine", help="session vector to item vector")
    reduction: Literal["none", "pca", "lda", "random"] = option("none", help="MiniLM is 384-d: below the paper's 512")
    reduced_dim: int = option(512, low=1, help="the paper's PCA width (used only when reduction is not \"none\")")
    normalize_reduced: bool = option(False, help="scale the reduced vectors to unit length")
    center: bool = option(False, help="subtract the catalog's mean vector first (removes the direction all "
                                      "titles share)", keyed=False)
    whiten: bool = option(False, help="PCA-whiten: every principal component scaled to unit variance (to "
                                      "reduced_dim with reduction=\"pca\", else all of them)", keyed=False)
    seed: int = option(0, low=0, help="for reduction=\"random\" (the projection)")
    search_space: ClassVar[dict[str, Space]] = {
        "combination": one_of("mean", "last"), "decay": one_of(*get_args(Decay)),
        "similarity": one_of("cosine", "dot", "euclidean"), "center": one_of(False, True),
        "reduction": one_of("none", "pca"), "reduced_dim": between(32, 768, log=True), "whiten": one_of(False, True)}


class LLMSeqSim(Recommender):
    name = "llmseqsim"
    card = Card("titles", "Items whose title embedding is closest to the session's (a mean of its titles').",
                "cosine similarity", "its title reads like this session's")
    Config = LLMSeqSimConfig

    def fit(self, split: Split, progress: Progress | None = None, confirm_spending: bool = False) -> "LLMSeqSim":
        cfg = self.config
        vectors = item_embeddings(split.catalog, self.text_embedding(cfg), progress=progress)
        if cfg.whiten and cfg.reduction not in ("pca", "none"):
            raise ConfigError(f"{self.name}: option whiten=true is PCA whitening: use reduction=\"pca\" or "
                              f"\"none\" (got \"{cfg.reduction}\")")
        if cfg.center:
            vectors = vectors - vectors.mean(axis=0)
        if cfg.reduction != "none" or cfg.whiten:
            method, dim = (cfg.reduction, cfg.reduced_dim) if cfg.reduction != "none" else ("pca", vectors.shape[1])
            try:
                vectors = reduce_dimensions(vectors, method, dim, classes=split.catalog.categories,
                                            normalize=cfg.normalize_reduced, seed=cfg.seed, whiten=cfg.whiten)
            except ValueError as err:
                raise ConfigError(f"{self.name}: options reduction={cfg.reduction}, reduced_dim={cfg.reduced_dim}: "
                                  f"{err}") from None
        self.n_items = split.catalog.n_items
        self.set_state({"item_vectors": vectors})
        return self

    @classmethod
    def text_embedding(cls, config: LLMSeqSimConfig) -> EmbeddingSpec:
        return EmbeddingSpec(config.embedding_provider, config.embedding_model, config.long_titles,
                             config.embedding_fields)

    def prepare_new_items(self, split: Split) -> tuple[bool, str]:
        return False, "content-based: a new item is ranked by its title's vector, like any other item"

    def set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.item_vectors = np.ascontiguousarray(arrays["item_vectors"], dtype=np.float32)
        self.unit_vectors = unit(self.item_vectors)
        self.squared_norms = (self.item_vectors**2).sum(axis=1)

    def state(self) -> dict[str, np.ndarray]:
        return {"item_vectors": self.item_vectors}

    def session_weights(self, sessions: Sequence[np.ndarray]) -> sparse.csr_matrix:
        """(n_sessions, n_items) weights whose rows sum to 1: the session embedding is ``W @ vectors``."""
        rows, cols, values = [], [], []
        for row, session in enumerate(sessions):
            if len(session) == 0:
                continue
            if self.config.combination == "last":
                weights, items = np.ones(1), session[-1:]
            else:
                weights, items = position_weights(self.config.decay, len(session)), session
            rows.append(np.full(len(items), row))
            cols.append(items)
            values.append(weights / weights.sum())
        if not rows:
            return sparse.csr_matrix((len(sessions), self.n_items), dtype=np.float32)
        return sparse.csr_matrix((np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))),
                                 shape=(len(sessions), self.n_items), dtype=np.float32)

    def session_embedding(self, sessions: Sequence[np.ndarray]) -> np.ndarray:
        return np.asarray(self.session_weights(sessions) @ self.item_vectors, dtype=np.float32)

    def score(self, sessions: Sequence[np.ndarray]) -> np.ndarray:
        embedding = self.session_embedding(sessions)
        if self.config.similarity == "cosine":
            embedding = unit(embedding)
            return embedding @ self.unit_vectors.T
        if self.config.similarity == "dot":
            return embedding @ self.item_vectors.T
        # Negated squared euclidean distance: ||e||^2 is constant per row, so rank by 2 e.v - ||v||^2.
        return 2.0 * (embedding @ self.item_vectors.T) - self.squared_norms
