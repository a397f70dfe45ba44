"""Why is a bigger embedding model not better for LLMSeqSim? Per embedding model, on a dataset's test split:
LLMSeqSim with the last prompt item (raw vectors and mean-centred), HR@20 and NDCG@20 overall and by how many
title words the target shares with the last prompt item (word overlap, Jaccard of lower-cased word sets), and
how anisotropic the vectors are (mean cosine between two catalog items).

    .venv/bin/python bench/embedding_diagnostics.py --dataset beauty [--models all-MiniLM-L6-v2,all-mpnet-base-v2]

Prints one table; reads the cached item vectors (``python -m core embed --model NAME`` first, or it embeds).
"""

from __future__ import annotations

import argparse
import re

import numpy as np

from core import data
from core.embeddings import DEFAULT_LOCAL_MODEL, EmbeddingSpec, item_embeddings
from core.study import mean_pairwise_cosine
from core.vectors import unit

OVERLAP_BINS = ((0.0, 0.0, "no shared word"), (1e-9, 0.25, "≤ 25%"), (0.25 + 1e-9, 0.5, "25–50%"),
                (0.5 + 1e-9, 1.0, "> 50%"))


def words(title: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", title.lower()))


def ranks(vectors: np.ndarray, last: np.ndarray, prompts: list[np.ndarray], targets: np.ndarray) -> np.ndarray:
    """The 1-based rank of each target among all items by cosine to the last prompt item (prompt items excluded)."""
    units = unit(vectors)
    out = np.empty(len(targets), dtype=np.int64)
    for start in range(0, len(targets), 512):
        scores = units[last[start:start + 512]] @ units.T
        for row, prompt in enumerate(prompts[start:start + 512]):
            scores[row, prompt] = -np.inf
        target_scores = scores[np.arange(len(scores)), targets[start:start + 512]]
        out[start:start + 512] = 1 + (scores > target_scores[:, None]).sum(axis=1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--models", default="all-MiniLM-L6-v2,all-mpnet-base-v2")
    args = parser.parse_args()
    dataset = data.load(args.dataset)
    split, catalog = dataset.split, dataset.catalog
    last = np.array([p[-1] for p in split.prompts])
    overlap = np.array([len(words(catalog.titles[a]) & words(catalog.titles[b]))
                        / max(1, len(words(catalog.titles[a]) | words(catalog.titles[b])))
                        for a, b in zip(last, split.targets)])
    groups = [(label, (overlap >= low) & (overlap <= high)) for low, high, label in OVERLAP_BINS]
    header = f"{'model':<20}{'vectors':<14}{'mean cos':>9}{'HR@20':>8}{'NDCG@20':>9}  " + "".join(
        f"{f'HR@20 {label} ({int(mask.sum())})':>26}" for label, mask in groups)
    print(f"{dataset.name}: {split.n_test:,} test sessions; LLMSeqSim with the last prompt item")
    print(header)
    for name in args.models.split(","):
        raw = item_embeddings(catalog, EmbeddingSpec(model=None if name == DEFAULT_LOCAL_MODEL else name))
        for label, vectors in (("raw", raw), ("mean-centred", raw - raw.mean(axis=0))):
            rank = ranks(vectors, last, split.prompts, split.targets)
            hit = rank <= 20
            ndcg = np.where(hit, 1 / np.log2(rank + 1), 0.0)
            cells = "".join(f"{hit[mask].mean():>26.4f}" if mask.any() else f"{'–':>26}" for _, mask in groups)
            print(f"{name:<20}{label:<14}{mean_pairwise_cosine(vectors):>9.3f}{hit.mean():>8.4f}{ndcg.mean():>9.4f}  "
                  + cells)


if __name__ == "__main__":
    main()
