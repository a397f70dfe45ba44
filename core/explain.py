""""Why this pick?": the session items closest to a recommended item in embedding space.

For a model built on the titles' text embeddings (``Recommender.text_embedding``: LLMSeqSim, LLMSeqPrompt,
the LLM2X models), a pick is
usually there because it resembles some of the session's items; naming the most similar ones (cosine
similarity of the title embeddings) is a short, honest explanation. It describes the embedding space, not
the model's internals: for LLM2X models, training has moved the vectors since.

:data:`CARDS` says, for each registered model, what it reads (item IDs, titles or both), how it picks in one
plain sentence, and what its score column means (the scales differ: a count, a cosine, a logit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from core.vectors import unit


def nearest_session_items(vectors: np.ndarray, session: Sequence[int], picks: Sequence[int],
                          n: int = 2) -> list[list[tuple[int, float]]]:
    """For each pick, the ``n`` distinct session items most similar to it: ``[(item, cosine), ...]``, best first."""
    session_items = list(dict.fromkeys(int(i) for i in session))  # unique, first occurrence order
    if not session_items or len(picks) == 0:
        return [[] for _ in picks]
    vectors = unit(vectors)
    similarity = vectors[np.asarray(picks, dtype=np.int64)] @ vectors[session_items].T  # (n_picks, n_session)
    out = []
    for row in similarity:
        order = np.argsort(-row, kind="stable")[:n]
        out.append([(session_items[j], float(row[j])) for j in order])
    return out


# ------------------------------------------------------------------------------------------------ model cards
@dataclass(frozen=True)
class Card:
    """What a model reads and what its score means, for people comparing picks (the app's hover text)."""

    reads: Literal["item IDs", "titles", "titles and item IDs"]
    how: str  # one sentence, plain language
    score: str  # the unit of the score column, short


CARDS: dict[str, Card] = {
    "popularity": Card("item IDs", "The items bought most often in the training sessions, the same for everyone.",
                       "interactions in train"),
    "sknn": Card("item IDs", "Items from past sessions that share items with this one (session-based kNN).",
                 "summed neighbour similarity"),
    "vsknn": Card("item IDs", "Like SKNN, but the session's recent items weigh more (V-SKNN).",
                  "summed neighbour similarity"),
    "gru4rec": Card("item IDs", "A recurrent network trained to predict the next item ID from the previous ones.",
                    "logit (not a probability)"),
    "sasrec": Card("item IDs", "A self-attention network trained to predict the next item ID from the previous ones.",
                   "logit (not a probability)"),
    "bert4rec": Card("item IDs", "A bidirectional transformer trained to fill in masked item IDs.",
                     "logit (not a probability)"),
    "llm2gru4rec": Card("titles and item IDs", "GRU4Rec whose item vectors start from the titles' LLM embeddings.",
                        "logit (not a probability)"),
    "llm2sasrec": Card("titles and item IDs", "SASRec whose item vectors start from the titles' LLM embeddings.",
                       "logit (not a probability)"),
    "llm2bert4rec": Card("titles and item IDs", "BERT4Rec whose item vectors start from the titles' LLM embeddings.",
                         "logit (not a probability)"),
    "llmseqsim": Card("titles", "Items whose title embedding is closest to the session's (mean of its titles').",
                      "cosine similarity"),
    "llmseqprompt": Card("titles", "A language model fine-tuned on sessions writes the next item's name; each "
                                   "name is mapped to a catalog item.", "K − rank of its sampled name"),
    "embedding_ensemble": Card("titles and item IDs", "A hybrid: one model's top picks, then another's.",
                               "1 − rank/K"),
    "llmseqsim_sequential": Card("titles and item IDs", "A hybrid: a sequential model after a popular last item, "
                                                        "else LLMSeqSim.", "1 − rank/K"),
    "llmseqsim_popularity": Card("titles and item IDs", "A hybrid: LLMSeqSim's candidates, unpopular ones dropped.",
                                 "1 − rank/K"),
}


def card(name: str) -> Card:
    """The card of a registered model (a generic one for a model added without one)."""
    return CARDS.get(name, Card("item IDs", "A registered recommender.", "score"))
