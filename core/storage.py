"""Where artifacts live and how they are written: one cache folder, atomic writes only.

``cache/`` (or ``$LLMSEQ_CACHE``) holds embeddings, model weights, projections, results; every file is
written to a temporary name in the same folder and renamed into place, so a crash or a cancel never
leaves a half-written artifact.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

CACHE_DIR = Path(os.environ.get("LLMSEQ_CACHE", Path(__file__).resolve().parent.parent / "cache"))


def _atomic_write(path: Path, write, mode: str, suffix: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    try:
        with os.fdopen(handle, mode) as out:
            write(out)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    _atomic_write(Path(path), lambda out: out.write(text), "w")


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    _atomic_write(Path(path), lambda out: np.save(out, array), "wb", suffix=".npy")
