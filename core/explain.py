""""Why this pick?": the session items closest to a recommended item in embedding space.

For a model built on the titles' text embeddings (``Recommender.text_embedding``: LLMSeqSim, LLMSeqPrompt,
the LLM2X models), a pick is
usually there because it resembles some of the session's items; naming the most similar ones (cosine
similarity of the title embeddings) is a short, honest explanation. It describes the embedding space, not
the model's internals: for LLM2X models, training has moved the vectors since.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from core.vectors import unit


def nearest_session_items(vectors: np.ndarray, session: Sequence[int], picks: Sequence[int],
                          n: int = 2) -> list[list[tuple[int, float]]]:
    """For each pick, the ``n`` distinct session items most similar to it: ``[(item, cosine), ...]``, best first."""
    session_items = list(dict.fromkeys(int(i) for i in session))  # unique, first occurrence order
    if not session_items or len(picks) == 0:
        return [[] for _ in picks]
    # only the rows involved are normalised (the whole catalog's 12k x 384 took ~20 ms per model and redraw)
    similarity = unit(vectors[np.asarray(picks, dtype=np.int64)]) @ unit(vectors[session_items]).T  # (picks, session)
    out = []
    for row in similarity:
        order = np.argsort(-row, kind="stable")[:n]
        out.append([(session_items[j], float(row[j])) for j in order])
    return out
