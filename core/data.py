"""Datasets: loading and validating session data, and the paper's evaluation protocol.

A dataset is two CSV files (gzip allowed):

* interactions: ``session_id`` (or ``user_id``), ``item_id``, and ``timestamp`` and/or ``order``
  (numeric; ``order`` breaks ties between equal timestamps);
* items: ``item_id``, ``title``, optional ``category``.

The bundled datasets in ``data/`` use exactly this format, so they pass the same validation as a user's
own files. Every problem found at the boundary raises :class:`DataError` with one sentence naming the file,
the column and an example row; nothing is returned half-loaded.

The split follows the paper (Boz et al. 2024, authors' ``TemporalSplit(test_frac=0.2, num_folds=3,
filter_non_trained_test_items=True)``): a session's time is its last timestamp; sessions are sorted by it
(stable: ties keep the order of first appearance in the file); the last ``ceil(20%)`` are test sessions.
Test sessions lose the items never seen in train and are dropped when fewer than 2 items remain;
prompt = all but the last item, target = the last item. Three forward-chaining validation folds are
cut from the train sessions the same way (4 temporal bins: b1→b2, b1-2→b3, b1-3→b4).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
BUNDLED = {
    "beauty": "Amazon Beauty 5-core (the paper's main dataset)",
    "ml-100k": "MovieLens 100K",
    "steam": "Steam v1 Australian reviews (substitute: the paper's Steam v2 sessions are not public)",
}


class DataError(ValueError):
    """A dataset file is unusable; the message names the file, the column and an example row."""


@dataclass(frozen=True)
class Catalog:
    """Every item of a dataset, indexed 0..n_items-1 in a fixed order.

    ``popularity`` counts interactions over the whole dataset (train and test); a split's train-only counts
    live on :class:`Split` (``Split.train_popularity``).
    """

    item_ids: np.ndarray  # external ids (str), position = item index
    titles: list[str]  # "" where the item has no title
    categories: list[str]  # "" where unknown
    popularity: np.ndarray  # int64 interaction counts over the whole dataset

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @cached_property
    def index_of(self) -> dict[str, int]:
        return {item_id: i for i, item_id in enumerate(self.item_ids)}

    @property
    def has_categories(self) -> bool:
        return any(self.categories)

    def title(self, item: int) -> str:
        return self.titles[item] or f"(untitled item {self.item_ids[item]})"


@dataclass(frozen=True)
class Split:
    """Train sessions plus evaluation prompts and targets (the test split or one validation fold)."""

    catalog: Catalog
    train: list[np.ndarray]  # item-index arrays, chronological
    train_times: np.ndarray  # each train session's last timestamp (for recency sampling)
    prompts: list[np.ndarray]
    targets: np.ndarray  # int64, one per prompt

    @cached_property
    def train_popularity(self) -> np.ndarray:
        counts = np.zeros(self.catalog.n_items, dtype=np.int64)
        if self.train:
            np.add.at(counts, np.concatenate(self.train), 1)
        return counts

    @property
    def n_test(self) -> int:
        return len(self.prompts)


@dataclass(frozen=True)
class Dataset:
    name: str
    catalog: Catalog
    split: Split  # the paper's train/test split
    folds: list[Split] = field(default_factory=list)  # forward-chaining validation folds on train only
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------- loading


def _read_csv(path: Path, what: str) -> pd.DataFrame:
    if not path.exists():
        raise DataError(f"{path}: {what} file not found.")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the {what} file is empty.") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as err:
        raise DataError(f"{path}: cannot be read as CSV ({str(err).splitlines()[0]}).") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.empty:
        raise DataError(f"{path}: the {what} file has a header but no rows.")
    return frame


def _example(frame: pd.DataFrame, mask: pd.Series) -> str:
    first = mask.to_numpy().nonzero()[0][0]
    # +2: one for the header line, one because people count rows from 1
    return f"row {first + 2}: {frame.iloc[first].to_dict()}"


def _numeric(frame: pd.DataFrame, column: str, path: Path) -> pd.Series:
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna()
    if bad.any():
        raise DataError(
            f"{path}: column '{column}' must be numeric, {int(bad.sum())} value(s) are not "
            f"(first at {_example(frame, bad)})."
        )
    return values.astype("float64")


def read_interactions(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """Read and validate an interactions file into columns session_id, item_id, time, order."""
    path = Path(path)
    frame = _read_csv(path, "interactions")
    notes: list[str] = []
    if "session_id" not in frame.columns and "user_id" in frame.columns:
        frame = frame.rename(columns={"user_id": "session_id"})
    for column in ("session_id", "item_id"):
        if column not in frame.columns:
            raise DataError(
                f"{path}: missing column '{column}'"
                f"{' (or user_id)' if column == 'session_id' else ''}; found {list(frame.columns)}."
            )
    if "timestamp" not in frame.columns and "order" not in frame.columns:
        raise DataError(f"{path}: needs a 'timestamp' or an 'order' column; found {list(frame.columns)}.")
    for column in ("session_id", "item_id"):
        empty = frame[column].isna()
        if empty.any():
            raise DataError(f"{path}: column '{column}' is empty at {_example(frame, empty)}.")
    given = [c for c in ("session_id", "item_id", "timestamp", "order") if c in frame.columns]
    duplicated = frame.duplicated(given)
    if duplicated.any():
        notes.append(
            f"{path}: dropped {int(duplicated.sum())} duplicate row(s) (first at {_example(frame, duplicated)})."
        )
        frame = frame[~duplicated].reset_index(drop=True)
    frame["order"] = _numeric(frame, "order", path) if "order" in frame.columns else np.arange(len(frame), dtype=float)
    frame["time"] = _numeric(frame, "timestamp", path) if "timestamp" in frame.columns else frame["order"]
    frame = frame[["session_id", "item_id", "time", "order"]]
    frame = frame.sort_values(["session_id", "time", "order"], kind="stable").reset_index(drop=True)
    return frame, notes


def read_items(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """Read and validate an items file into columns item_id, title, category."""
    path = Path(path)
    frame = _read_csv(path, "items")
    notes: list[str] = []
    for column in ("item_id", "title"):
        if column not in frame.columns:
            raise DataError(f"{path}: missing column '{column}'; found {list(frame.columns)}.")
    missing_id = frame["item_id"].isna()
    if missing_id.any():
        raise DataError(f"{path}: column 'item_id' is empty at {_example(frame, missing_id)}.")
    duplicated = frame["item_id"].duplicated()
    if duplicated.any():
        raise DataError(
            f"{path}: column 'item_id' repeats {int(duplicated.sum())} id(s) (first at {_example(frame, duplicated)})."
        )
    if "category" not in frame.columns:
        frame["category"] = ""
    frame["title"] = frame["title"].fillna("").str.strip()
    frame["category"] = frame["category"].fillna("").str.strip()
    untitled = frame["title"] == ""
    if untitled.all():
        raise DataError(f"{path}: column 'title' is empty for every item.")
    if untitled.any():
        notes.append(
            f"{path}: {int(untitled.sum())} item(s) have no title (first at {_example(frame, untitled)}); "
            "they are kept and embedded with a fallback text."
        )
    return frame[["item_id", "title", "category"]], notes


def load_files(interactions_path: Path, items_path: Path, name: str = "custom", n_folds: int = 3) -> Dataset:
    """Load, validate and split a dataset given as two CSV files."""
    interactions, notes = read_interactions(Path(interactions_path))
    items, item_notes = read_items(Path(items_path))
    notes += item_notes

    unknown = ~interactions["item_id"].isin(items["item_id"])
    if unknown.all():
        raise DataError(
            f"{items_path}: none of the interactions' item ids appear in column 'item_id' "
            f"(e.g. '{interactions['item_id'].iloc[0]}'); are these the matching files?"
        )
    if unknown.any():
        notes.append(
            f"{interactions_path}: dropped {int(unknown.sum())} interaction(s) whose item is not in {items_path} "
            f"(first: item '{interactions.loc[unknown, 'item_id'].iloc[0]}')."
        )
        interactions = interactions[~unknown]
    sizes = interactions.groupby("session_id")["item_id"].transform("size")
    short = sizes < 2
    if short.all():
        raise DataError(f"{interactions_path}: every session has fewer than 2 items; nothing to predict.")
    if short.any():
        notes.append(
            f"{interactions_path}: dropped {int(interactions.loc[short, 'session_id'].nunique())} session(s) "
            f"of length 1 (first: session '{interactions.loc[short, 'session_id'].iloc[0]}')."
        )
        interactions = interactions[~short]

    catalog = _catalog(items, interactions)
    split, folds = paper_split(interactions, catalog, n_folds=n_folds)
    for note in notes:
        warnings.warn(note, stacklevel=2)
    return Dataset(name=name, catalog=catalog, split=split, folds=folds, warnings=notes)


def load(name: str, n_folds: int = 3) -> Dataset:
    """Load a bundled dataset by name (see ``BUNDLED``) or a folder holding interactions.csv[.gz] + items.csv[.gz]."""
    folder = DATA_DIR / name if name in BUNDLED else Path(name)
    if not folder.is_dir():
        raise DataError(f"unknown dataset '{name}': use one of {sorted(BUNDLED)} or a folder with the two CSV files.")
    found = {}
    for stem in ("interactions", "items"):
        candidates = [folder / f"{stem}.csv.gz", folder / f"{stem}.csv"]
        found[stem] = next((c for c in candidates if c.exists()), candidates[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_files(found["interactions"], found["items"], name=folder.name if name not in BUNDLED else name,
                          n_folds=n_folds)


def _catalog(items: pd.DataFrame, interactions: pd.DataFrame) -> Catalog:
    # Catalog = items that occur in the interactions, in the items file's order.
    used = items[items["item_id"].isin(interactions["item_id"])].reset_index(drop=True)
    counts = interactions["item_id"].value_counts()
    return Catalog(
        item_ids=used["item_id"].to_numpy(dtype=object),
        titles=used["title"].tolist(),
        categories=used["category"].tolist(),
        popularity=used["item_id"].map(counts).fillna(0).to_numpy(dtype=np.int64),
    )


# --------------------------------------------------------------------------------------------- the split


def _sessions_by_time(interactions: pd.DataFrame, catalog: Catalog) -> tuple[list[np.ndarray], np.ndarray]:
    """Sessions as item-index arrays, sorted by their last timestamp (stable)."""
    frame = interactions.assign(item=interactions["item_id"].map(catalog.index_of).astype(np.int64))
    # Sessions in order of first appearance in the file, so ties in time keep the file's order.
    session_order = pd.unique(frame["session_id"])
    grouped = frame.groupby("session_id", sort=False)
    last_time = grouped["time"].max().reindex(session_order)
    items = grouped["item"].apply(lambda s: s.to_numpy()).reindex(session_order)
    order = np.argsort(last_time.to_numpy(), kind="stable")
    return [items.iloc[i] for i in order], last_time.to_numpy()[order]


def _evaluation_split(catalog: Catalog, train: list[np.ndarray], train_times: np.ndarray,
                      held_out: list[np.ndarray]) -> Split:
    seen = np.zeros(catalog.n_items, dtype=bool)
    for session in train:
        seen[session] = True
    prompts, targets = [], []
    for session in held_out:
        kept = session[seen[session]]
        if len(kept) >= 2:
            prompts.append(kept[:-1])
            targets.append(kept[-1])
    return Split(catalog=catalog, train=train, train_times=train_times, prompts=prompts,
                 targets=np.asarray(targets, dtype=np.int64))


def paper_split(interactions: pd.DataFrame, catalog: Catalog, test_fraction: float = 0.2,
                n_folds: int = 3) -> tuple[Split, list[Split]]:
    sessions, times = _sessions_by_time(interactions, catalog)
    n_test = math.ceil(test_fraction * len(sessions))
    n_train = len(sessions) - n_test
    if n_train < 1 or n_test < 1:
        raise DataError(f"only {len(sessions)} session(s) of 2+ items: too few to split into train and test.")
    train, train_times = sessions[:n_train], times[:n_train]
    split = _evaluation_split(catalog, train, train_times, sessions[n_train:])
    if split.n_test == 0:
        raise DataError("no test session keeps 2 items seen in train; the data is too small or too sparse to evaluate.")
    folds = []
    if n_folds and n_train >= n_folds + 1:
        bins = np.array_split(np.arange(n_train), n_folds + 1)
        for i in range(1, n_folds + 1):
            fold_train = list(range(bins[i][0]))
            folds.append(_evaluation_split(catalog, [train[j] for j in fold_train], train_times[fold_train],
                                           [train[j] for j in bins[i]]))
    return split, folds


def synthetic(n_items: int = 30, n_sessions: int = 400, seed: int = 0) -> Dataset:
    """A tiny dataset whose next item is known: every session walks i, i+1, i+2, ... (mod n_items).

    Item i is always followed by item i+1, so a model that learns sequences must rank i+1 first after i.
    Titles name the pattern ("item 7") so text models see the same structure.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_sessions):
        start, length = rng.integers(n_items), rng.integers(3, 7)
        for pos in range(length):
            rows.append((f"s{s}", f"i{(start + pos) % n_items}", s * 10 + pos, pos))
    interactions = pd.DataFrame(rows, columns=["session_id", "item_id", "time", "order"]).astype(
        {"time": "float64", "order": "float64"})
    items = pd.DataFrame({"item_id": [f"i{i}" for i in range(n_items)],
                          "title": [f"item {i}" for i in range(n_items)],
                          "category": [f"group {i % 3}" for i in range(n_items)]})
    catalog = _catalog(items, interactions)
    split, folds = paper_split(interactions, catalog)
    return Dataset(name="synthetic", catalog=catalog, split=split, folds=folds)
