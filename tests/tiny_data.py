"""A tiny dataset as the two CSV files a user would upload, for the app's tests.

Forty made-up beauty products; every session walks i, i+1, i+2, ... (mod 40), so a sequence-aware model
must put item i+1 first after item i, and the test split's true next item is known. Ids are zero-padded
(p00..p39), so item index i (items are indexed in id order) is product no. i.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

BRANDS = ["Acme", "Bloom", "Coral", "Dune", "Ember", "Fable", "Glow", "Haze"]
PRODUCTS = ["Lip Gloss", "Mascara", "Shampoo", "Nail Polish", "Face Cream"]
CATEGORIES = {"Lip Gloss": "Makeup", "Mascara": "Makeup", "Shampoo": "Hair", "Nail Polish": "Nails",
              "Face Cream": "Skin"}
N_ITEMS = len(BRANDS) * len(PRODUCTS)


def titles() -> list[str]:
    return [f"{BRANDS[i % len(BRANDS)]} {PRODUCTS[i // len(BRANDS)]} no. {i}" for i in range(N_ITEMS)]


def write_tiny_dataset(folder: Path, n_sessions: int = 300, seed: int = 0, title_suffix: str = "") -> Path:
    """The tiny shop's two CSV files in ``folder``; ``title_suffix`` gives another catalog (its own
    embeddings: none cached yet)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lines = ["session_id,item_id,timestamp"]
    # The folder's name in the session ids: a data set is named by its files' content (core.data), so each test's
    # folder is its own data set with its own saved models, as a test's own folder name used to give it.
    for s in range(n_sessions):
        start, length = rng.integers(N_ITEMS), rng.integers(3, 7)
        for pos in range(length):
            lines.append(f"{folder.name}-s{s},p{(start + pos) % N_ITEMS:02d},{s * 10 + pos}")
    (folder / "interactions.csv").write_text("\n".join(lines) + "\n")
    items = ["item_id,title,category"]
    for i, title in enumerate(titles()):
        items.append(f"p{i:02d},{title}{title_suffix},{CATEGORIES[PRODUCTS[i // len(BRANDS)]]}")
    (folder / "items.csv").write_text("\n".join(items) + "\n")
    return folder
