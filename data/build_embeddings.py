"""Write the bundled datasets' title embeddings with the default local model (all-MiniLM-L6-v2) to
data/embeddings/, as float16, so that a fresh clone has them without minutes of embedding
(``core.embeddings.shipped_vectors``). Each file is named by ``core.embeddings.cache_key``: the model and every
title, so a changed items file simply finds no shipped vectors and embeds as before.

Run from the repository root after data/build_bundled.py:  python data/build_embeddings.py
(embeds what the cache does not hold yet: Beauty's 12,101 titles take ~2 min on 2 cores.)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core import data  # noqa: E402
from core.cli import tqdm_progress  # noqa: E402
from core.embeddings import (  # noqa: E402
    SHIPPED_DIR,
    EmbeddingSpec,
    cached_path,
    item_embeddings,
    shipped_path,
)
from core.storage import atomic_save_npy, atomic_write_text  # noqa: E402


def main() -> None:
    spec = EmbeddingSpec()
    SHIPPED_DIR.mkdir(exist_ok=True)
    for name in data.BUNDLED:
        catalog = data.load(name).catalog
        progress, close = tqdm_progress(f"{name}: embedding {catalog.n_items:,} titles")
        try:
            vectors = item_embeddings(catalog, spec, progress=progress)
        finally:
            close()
        target = shipped_path(catalog, spec)
        atomic_save_npy(target, vectors.astype(np.float16))
        record = cached_path(catalog, spec).with_suffix(".json")
        if record.exists():
            atomic_write_text(target.with_suffix(".json"), record.read_text())
        print(f"{name}: {vectors.shape[0]:,} x {vectors.shape[1]} -> {target} ({target.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
