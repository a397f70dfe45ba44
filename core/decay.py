"""Position weights for the items of a session (shared by V-SKNN and LLMSeqSim).

With ``n`` items, position ``p = 1..n`` (1 = oldest) and distance from the end ``d = n - p + 1``
(the most recent item has ``d = 1``):

==================  =====================================
``none``            1
``constant_linear`` max(1e-4, 1 - 0.1 (d - 1))   (the last 10 items, 0.1 apart)
``scaling_linear``  p / n
``scaling_quadratic`` (p / n)^2
``scaling_cubic``   (p / n)^3
``log``             1 / (ln d + 1)
``harmonic``        1 / d
``harmonic_squared`` 1 / d^2
==================  =====================================

``constant_linear``, ``log``, ``harmonic`` and ``harmonic_squared`` are the authors' V-SKNN decays
(``linear``, ``log``, ``harmonic``, ``quadratic`` in their code); the ``scaling_*`` ones grow with the
position relative to the session length.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import numpy as np

from core.common import ConfigError

Decay = Literal["none", "constant_linear", "scaling_linear", "scaling_quadratic", "scaling_cubic", "log",
                "harmonic", "harmonic_squared"]
DECAYS: tuple[str, ...] = Decay.__args__  # type: ignore[attr-defined]


@lru_cache(maxsize=4096)
def _weights(decay: str, n: int) -> np.ndarray:
    p = np.arange(1, n + 1, dtype=np.float64)
    d = n - p + 1
    if decay == "none":
        w = np.ones(n)
    elif decay == "constant_linear":
        w = np.maximum(1e-4, 1.0 - 0.1 * (d - 1))
    elif decay == "scaling_linear":
        w = p / n
    elif decay == "scaling_quadratic":
        w = (p / n) ** 2
    elif decay == "scaling_cubic":
        w = (p / n) ** 3
    elif decay == "log":
        w = 1.0 / (np.log(d) + 1.0)
    elif decay == "harmonic":
        w = 1.0 / d
    elif decay == "harmonic_squared":
        w = 1.0 / d**2
    else:
        raise ConfigError(f"unknown decay '{decay}'; choose one of {list(DECAYS)}")
    w.setflags(write=False)
    return w


def position_weights(decay: str, n: int) -> np.ndarray:
    """Weights for a session of ``n`` items, oldest first (read-only array)."""
    return _weights(decay, n)
