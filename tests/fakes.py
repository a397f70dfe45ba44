"""Stand-ins shared by several tests."""

from __future__ import annotations

import numpy as np


class CountingProvider:
    """An embedding provider that records every batch it is asked to embed (``calls``) and returns fixed
    8-d vectors, so a test can tell whether vectors came from the cache or were computed."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def encode(self, texts, progress=None) -> np.ndarray:
        self.calls.append(list(texts))
        return np.eye(len(texts), 8, dtype=np.float32) + 0.1

    def too_long(self, texts) -> tuple[int, int]:
        return 0, 256

    def fit_window(self, texts) -> list[str]:
        return list(texts)
