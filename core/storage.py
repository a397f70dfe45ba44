"""Where artifacts live and how they are written: one cache folder, atomic writes only.

``cache/`` (or ``$LLMSEQ_CACHE``) holds embeddings, model weights, projections, results; every file is
written to a temporary name in the same folder and renamed into place, so a crash or a cancel never
leaves a half-written artifact. Reading is defensive: a file that is missing or damaged (a full disk, an
older version, a hand edit) reads as None and is rebuilt or skipped, never fatal.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

CACHE_DIR = Path(os.environ.get("LLMSEQ_CACHE", Path(__file__).resolve().parent.parent / "cache"))


class _Saving:
    depth = 0  # saves in progress (they may nest)
    pending: Callable[[], None] | None = None  # what a signal asked for meanwhile


@contextlib.contextmanager
def deferred_termination() -> Iterator[None]:
    """A stop asked for during the block (a cancelled job's SIGTERM, see :func:`defer_while_saving`) takes
    effect when the block is done: a save in progress is finished, never abandoned half-way."""
    _Saving.depth += 1
    try:
        yield
    finally:
        _Saving.depth -= 1
        if _Saving.depth == 0 and _Saving.pending is not None:
            action, _Saving.pending = _Saving.pending, None
            action()


def defer_while_saving(action: Callable[[], None]) -> None:
    """For a signal handler: run ``action`` now, or when the save in progress is complete."""
    if _Saving.depth:
        _Saving.pending = action
        return
    action()


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


def load_npy(path: Path) -> np.ndarray | None:
    """An array saved with :func:`atomic_save_npy`, or None when the file is missing or cannot be read
    (truncated, damaged, not an array): callers compute it again. Never loads pickled objects."""
    try:
        return np.load(Path(path), allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None


def read_json(path: Path) -> Any:
    """A JSON artifact, or None when the file is missing or damaged (callers rebuild or skip it)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
