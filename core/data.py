"""Datasets: loading and validating session data, and the paper's evaluation protocol.

A dataset is two CSV files (gzip allowed, detected by content; comma-, tab-, semicolon- or pipe-separated):

* interactions: ``session_id`` (or ``user_id``), ``item_id``, and ``timestamp`` and/or ``order``
  (``timestamp``: numbers — Unix seconds or any one unit — or ISO dates; ``order``: numbers);
* items: ``item_id``, ``title``, optional ``category``, and optionally more text columns (e.g. ``brand``,
  ``tags``, ``description``): kept as the items' other text fields (``Catalog.attributes``), which text
  models may embed with the title (``embedding_fields``); the title stays what is shown and searched.

The bundled datasets in ``data/`` use exactly this format, so they pass the same validation as a user's
own files. Every problem found at the boundary raises :class:`DataError` with one sentence naming the file,
the column (as the file names it) and an example line (the file's own line number and columns); nothing is
returned half-loaded. What validation fixed or dropped is listed in ``Dataset.warnings``.

Reading is bounded (:class:`ReadLimits`): at most ``max_bytes`` of CSV text once decompressed and
``max_rows`` lines per file, so a small compressed file cannot take the memory of the process that reads it
(a "gzip bomb"). Text that is not UTF-8 is read as Windows-1252 (else Latin-1), with a note. Ids are
normalised to Unicode NFC and stripped of surrounding spaces in both files, so an id written in composed and
decomposed form is one id.

**Order of events and the split** (the one rule, also in the README). Within a session, events are ordered
by ``timestamp``, then ``order``, then their line in the file. A session's time is its last timestamp;
sessions are sorted by it, and sessions with the same last timestamp by session id (as the authors' code
does; it reproduces the paper's 17,890 / 4,469 Beauty split). **Without a ``timestamp`` column, sessions keep
the file's order** (the order of their first line: oldest first) — ``order`` then only orders the events
inside each session. The split follows the paper (Boz et al. 2024,
authors' ``TemporalSplit(test_frac=0.2, num_folds=3, filter_non_trained_test_items=True)``): the last
``ceil(20%)`` sessions in that order are test sessions; they lose the items never seen in train and are
dropped when fewer than 2 items remain; prompt = all but the last item, target = the last item. Three
forward-chaining validation folds are cut from the train sessions the same way (4 bins in the same order:
b1→b2, b1-2→b3, b1-3→b4).

Items are indexed in the order of their ids (sorted), not of the items file, so nothing — not even a tie
between two equal scores — depends on the order of the file's rows.
**One data set, one name** (``Dataset.name``, under which its models and results are stored). A bundled data
set is named by its name (``beauty``, ``steam``, ``ml-100k``). Any other is named by the content of its two
files: ``data-<12 hex>``, the start of the SHA-256 of the interactions file's bytes, a NUL byte and the items
file's bytes, as stored (a gzip file's compressed bytes) — :func:`content_identity`. So the same two files
uploaded in the app, given as a folder (``--dataset FOLDER``, ``LLMSEQ_DATASET``) or as ``--interactions F
--items F`` are one data set whatever the files or the folder are called, and a model trained one way is found
the others. Changing a byte of either file (a title, or compressing it again) makes another data set.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import math
import os
import re
import zlib
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from core.common import UserError

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
BUNDLED = {
    "beauty": "Amazon Beauty 5-core (the paper's main dataset)",
    "ml-100k": "MovieLens 100K",
    "steam": "Steam v1 Australian reviews (substitute: the paper's Steam v2 sessions are not public)",
}


class DataError(UserError, ValueError):
    """A dataset file is unusable; the message names the file, the column and an example line."""


def _megabytes_from_env(name: str, default: int) -> int:
    try:
        return max(1, int(os.environ.get(name, default))) * 1024**2
    except ValueError:
        return default * 1024**2


@dataclass(frozen=True)
class ReadLimits:
    """How much one CSV file may hold once decompressed: a file past either limit is refused in one line."""

    max_bytes: int = field(default_factory=lambda: _megabytes_from_env("LLMSEQ_MAX_FILE_MB", 1024))
    max_rows: int = 30_000_000
    hint: str = "set LLMSEQ_MAX_FILE_MB to read bigger files"


# What the app accepts from a browser upload (the server validates it in its own process): 2,000,000 lines take
# ~1 GB while they are validated (measured: 0.98 GB peak, 17 s, for a 51 MB file of 2M interactions).
UPLOAD_LIMITS = ReadLimits(max_bytes=100 * 1024**2, max_rows=2_000_000,
                           hint="load bigger files with the command line (python -m core prepare)")


@dataclass(frozen=True)
class Catalog:
    """Every item of a dataset, indexed 0..n_items-1 in the order of their ids.

    ``popularity`` counts interactions over the whole dataset (train and test); a split's train-only counts
    live on :class:`Split` (``Split.train_popularity``).
    """

    item_ids: np.ndarray  # external ids (str), position = item index
    titles: list[str]  # "" where the item has no title
    categories: list[str]  # "" where unknown
    popularity: np.ndarray  # int64 interaction counts over the whole dataset
    attributes: dict[str, list[str]] = field(default_factory=dict)  # other text columns, "" where unknown

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @cached_property
    def index_of(self) -> dict[str, int]:
        return {item_id: i for i, item_id in enumerate(self.item_ids)}

    @property
    def has_categories(self) -> bool:
        return any(self.categories)

    @cached_property
    def titles_fingerprint(self) -> str:
        """A hash of every title, in item order (what text embeddings are computed from)."""
        digest = hashlib.sha256()
        for text in self.titles:
            digest.update(text.encode("utf-8", "surrogatepass"))
            digest.update(b"\x00")
        return digest.hexdigest()

    @cached_property
    def text_fingerprint(self) -> str:
        """A hash of every title and category (what text models and LDA read)."""
        digest = hashlib.sha256()
        for text in (*self.titles, "\x01", *self.categories):
            digest.update(text.encode("utf-8", "surrogatepass"))
            digest.update(b"\x00")
        return digest.hexdigest()[:16]

    def title(self, item: int) -> str:
        return self.titles[item] or f"(untitled item {self.item_ids[item]})"

    @property
    def text_fields(self) -> list[str]:
        """The text fields besides the title that some item has: ``category``, then the extra columns."""
        return (["category"] if self.has_categories else []) + [name for name, values in self.attributes.items()
                                                                if any(values)]

    def item_texts(self, fields: Sequence[str] = ()) -> list[str]:
        """Per item, the title followed by each of ``fields`` that the item has, as ``"<title>. <field>:
        <value>."`` (e.g. "Half-Life. genres: Action. developer: Valve."). Raises :class:`DataError` for a field
        the catalog does not have."""
        unknown = [f for f in fields if f not in self.text_fields]
        if unknown:
            raise DataError(f"the items have no text field {unknown[0]!r}; available: "
                            f"{', '.join(self.text_fields) or 'none besides the title'}")
        columns = [(name, self.categories if name == "category" else self.attributes[name]) for name in fields]
        texts = []
        for i, title in enumerate(self.titles):
            extra = " ".join(f"{name}: {values[i]}." for name, values in columns if values[i])
            texts.append(f"{title}. {extra}" if title and extra else title or extra)
        return texts


@dataclass(frozen=True)
class Split:
    """Train sessions plus evaluation prompts and targets (the test split or one validation fold)."""

    catalog: Catalog
    train: list[np.ndarray]  # item-index arrays, in session order (see the module docstring)
    train_times: np.ndarray  # each train session's time: last timestamp, or its position without timestamps
    prompts: list[np.ndarray]
    targets: np.ndarray  # int64, one per prompt
    # the held-out sessions as they were, before items unseen in train were removed (see cold_item_split)
    held_out: list[np.ndarray] = field(default_factory=list)

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
    has_timestamps: bool = True

    @cached_property
    def fingerprint(self) -> str:
        """A hash of what every fitted model depends on: the catalog's item ids and the train sessions."""
        digest = hashlib.sha256()
        digest.update("\n".join(map(str, self.catalog.item_ids)).encode("utf-8", "surrogatepass"))
        for session in self.split.train:
            digest.update(np.asarray(session, dtype=np.int64).tobytes())
            digest.update(b"|")
        return digest.hexdigest()[:12]


# --------------------------------------------------------------------------------------------- reading

GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"
KNOWN_COLUMNS = {"session_id", "user_id", "item_id", "timestamp", "order", "title", "category"}
MAX_TEXT_COLUMNS = 16  # an items file's other text columns kept as attributes
DELIMITERS = {",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe"}
CHUNK = 1 << 20


def _read_bytes(path: Path, what: str, limits: ReadLimits) -> bytes:
    """The file's bytes, decompressed when it is gzip (by content, whatever its name), at most
    ``limits.max_bytes`` of them: memory never depends on the compression ratio."""
    if not path.exists():
        raise DataError(f"{path}: {what} file not found.")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not the {what} CSV file.")
    try:
        with open(path, "rb") as raw:
            magic = raw.read(4)
            raw.seek(0)
            if magic[:2] == GZIP_MAGIC:
                with gzip.GzipFile(fileobj=raw) as stream:
                    data = _read_capped(stream, path, what, limits, "once decompressed")
            elif magic == ZIP_MAGIC:
                raise DataError(f"{path}: looks like a zip or Excel (.xlsx) file, not a CSV; save or export it as "
                                "CSV (gzip is fine).")
            else:
                data = _read_capped(raw, path, what, limits, "")
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        reason = "it ends before the compressed data does" if isinstance(err, EOFError) else str(err) or "damaged"
        raise DataError(f"{path}: not a valid gzip file ({reason}); compress it again or give the plain CSV.") \
            from None
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror or type(err).__name__}).") from None
    if b"\x00" in data:
        raise DataError(f"{path}: holds NUL bytes, so it is not a text CSV file (a spreadsheet, or compressed "
                        "with something other than gzip?).")
    return data


def _read_capped(stream, path: Path, what: str, limits: ReadLimits, how: str) -> bytes:
    chunks: list[bytes] = []
    size, lines = 0, 0
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        lines += chunk.count(b"\n")
        if size > limits.max_bytes:
            size_limit = f"{limits.max_bytes / 1024**2:,.0f} MB" if limits.max_bytes >= 1024**2 else \
                f"{limits.max_bytes / 1024:,.0f} KB"
            raise DataError(f"{path}: the {what} file is larger than {size_limit}{' ' + how if how else ''} "
                            f"(the limit here; {limits.hint}).")
        if lines > limits.max_rows + 1:
            raise DataError(f"{path}: the {what} file has more than {limits.max_rows:,} lines (the limit here; "
                            f"{limits.hint}).")
        chunks.append(chunk)


def _decode(data: bytes, path: Path, notes: list[str]) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        for encoding, label in (("cp1252", "Windows-1252 (cp1252)"), ("latin-1", "Latin-1 (ISO-8859-1)")):
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError:
                continue
            notes.append(f"{path}: not UTF-8 (first non-UTF-8 byte on line {line}); read as {label}. "
                         "Save it as 'CSV UTF-8' to be sure every character is read as meant.")
            return text
    raise AssertionError("latin-1 decodes any bytes")


def _header_fields(text: str, sep: str) -> list[str]:
    first = next((line for line in io.StringIO(text) if line.strip()), "").rstrip("\r\n")
    try:
        return [name.strip() for name in next(csv.reader([first], delimiter=sep), [])]
    except csv.Error:
        return first.split(sep)


def _delimiter(text: str) -> str:
    """The separator under which the header names the most known columns (comma when none does better)."""
    best, best_known = ",", len(KNOWN_COLUMNS & set(_header_fields(text, ",")))
    for sep in ("\t", ";", "|"):
        known = len(KNOWN_COLUMNS & set(_header_fields(text, sep)))
        if known > best_known:
            best, best_known = sep, known
    return best


class CsvFile:
    """One validated-as-CSV file: its rows as strings under the file's own column names, and a way back from
    a row to the file's line number (quoted fields may span lines; blank lines are skipped)."""

    def __init__(self, path: Path, what: str, limits: ReadLimits, notes: list[str]) -> None:
        self.path = Path(path)
        text = _decode(_read_bytes(self.path, what, limits), self.path, notes)
        if not text.strip():
            raise DataError(f"{path}: the {what} file is empty.")
        self.text = text
        self.sep = _delimiter(text)
        if self.sep != ",":
            notes.append(f"{path}: {DELIMITERS[self.sep]}-separated; read as such.")
        header = _header_fields(text, self.sep)
        repeated = sorted({name for name in header if header.count(name) > 1 and name})
        if repeated:
            raise DataError(f"{path}: the header names column '{repeated[0]}' more than once; keep one.")
        try:
            frame = pd.read_csv(io.StringIO(text), sep=self.sep, dtype=str, keep_default_na=False, na_values=[""],
                                engine="c")
        except pd.errors.EmptyDataError:
            raise DataError(f"{path}: the {what} file is empty.") from None
        except Exception as err:  # noqa: BLE001 (any parser failure means: not a readable CSV)
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise DataError(f"{path}: cannot be read as CSV ({reason}).") from None
        frame.columns = [str(c).strip() for c in frame.columns]
        if frame.empty:
            raise DataError(f"{path}: the {what} file has a header but no rows.")
        self.frame = frame.reset_index(drop=True)

    @cached_property
    def _record_lines(self) -> list[int]:
        lines, start = [], 1
        try:
            reader = csv.reader(io.StringIO(self.text, newline=""), delimiter=self.sep)
            for row in reader:
                if any(cell.strip() for cell in row) or (row and len(row) > 1):
                    lines.append(start)
                start = reader.line_num + 1
        except csv.Error:
            pass
        return lines[1:]  # the header is not a row

    def line(self, row: int) -> int:
        """The 1-based line of the file where row ``row`` (0-based, as parsed) starts."""
        lines = self._record_lines
        return lines[row] if row < len(lines) else row + 2

    def example(self, row: int, columns: list[str] | None = None) -> str:
        """``line 152: {'user_id': 'u7', ...}`` with the file's own columns and values (long ones shortened)."""
        values = self.frame.iloc[row]
        shown = {c: _short(values[c]) for c in (columns or list(self.frame.columns)) if c in values.index}
        return f"line {self.line(row)}: {shown}"

    def first(self, mask: pd.Series | np.ndarray) -> int:
        return int(np.asarray(mask).nonzero()[0][0])


def _short(value: object, n: int = 60) -> object:
    if isinstance(value, str) and len(value) > n:
        return value[: n - 1] + "…"
    return "" if isinstance(value, float) and math.isnan(value) else value


def _quote(value: object) -> str:
    """A value inside a one-line message: quoted, shortened, newlines and other control characters escaped."""
    return repr(_short(value))


def _normalise_ids(values: pd.Series) -> tuple[pd.Series, int]:
    """NFC and surrounding spaces removed; returns the ids and how many changed."""
    normalised = values.str.strip().str.normalize("NFC").astype(object)
    return normalised, int((normalised != values.astype(object)).sum())


UNIT_RANGES = (("seconds", 1e8, 1e11), ("milliseconds", 1e11, 1e14), ("microseconds", 1e14, 1e17),
               ("nanoseconds", 1e17, 1e20))
SMALL = 1e8  # below Unix seconds of 1973: positions, relative times, or a 0 standing for "unknown"


def _timestamps(file: CsvFile, column: str, notes: list[str]) -> pd.Series:
    """Numbers in one unit, or ISO dates (ordered in UTC). Refuses, in one line naming the column and lines:
    a value that is neither, a column mixing numbers and dates, non-finite values, values no clock gives
    (|t| >= 1e20), and numbers of different scales (Unix seconds beside milliseconds, or beside small numbers)."""
    raw = file.frame[column]
    numbers = pd.to_numeric(raw, errors="coerce")
    dates = pd.to_datetime(raw, errors="coerce", utc=True, format="ISO8601") if numbers.isna().any() else None
    if dates is not None:
        neither = numbers.isna() & dates.isna()
        if neither.any():
            raise DataError(f"{file.path}: column '{column}' must be numbers or ISO dates (2024-01-31 or "
                            f"2024-01-31T10:00:00Z), {int(neither.sum())} value(s) are neither (first at "
                            f"{file.example(file.first(neither))}).")
        if numbers.notna().any():
            number, date = file.example(file.first(numbers.notna()), [column]), \
                file.example(file.first(dates.notna() & numbers.isna()), [column])
            raise DataError(f"{file.path}: column '{column}' mixes numbers ({number}) and dates ({date}); use one.")
        notes.append(f"{file.path}: column '{column}' holds dates; they are ordered as dates (in UTC).")
        return (dates - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds()
    values = numbers.astype("float64")
    magnitude = values.abs()
    implausible = ~np.isfinite(values) | (magnitude >= UNIT_RANGES[-1][2])
    if implausible.any():
        raise DataError(f"{file.path}: column '{column}' holds a value no clock gives (first at "
                        f"{file.example(file.first(implausible), [column])}).")
    found = [(f"Unix {unit}", (magnitude >= low) & (magnitude < high)) for unit, low, high in UNIT_RANGES]
    found = [("small numbers", magnitude < SMALL)] + found
    found = [(unit, mask) for unit, mask in found if mask.any()]
    if len(found) > 1:
        (unit_a, mask_a), (unit_b, mask_b) = found[0], found[1]
        first_a, first_b = file.example(file.first(mask_a), [column]), file.example(file.first(mask_b), [column])
        raise DataError(f"{file.path}: column '{column}' mixes {unit_a} ({first_a}) and {unit_b} ({first_b}); "
                        "convert it to one unit.")
    return values


def read_interactions(path: Path, limits: ReadLimits = ReadLimits()) -> tuple[pd.DataFrame, list[str], bool]:
    """Read and validate an interactions file.

    Returns (frame with columns session_id, item_id, time, order, row; notes; whether it has timestamps).
    ``time`` is the timestamp (NaN without one); ``order`` the order column (NaN without one); ``row`` the
    event's position in the file, which breaks the remaining ties. Raises :class:`DataError`.
    """
    path = Path(path)
    notes: list[str] = []
    file = CsvFile(path, "interactions", limits, notes)
    frame = file.frame
    columns = list(frame.columns)
    session = "session_id" if "session_id" in columns else ("user_id" if "user_id" in columns else None)
    if session is None:
        raise DataError(f"{path}: missing column 'session_id' (or 'user_id'); found {columns}.")
    if "item_id" not in columns:
        raise DataError(f"{path}: missing column 'item_id'; found {columns}.")
    if "timestamp" not in columns and "order" not in columns:
        raise DataError(f"{path}: needs a 'timestamp' or an 'order' column; found {columns}.")
    for column in (session, "item_id"):
        empty = frame[column].isna() | (frame[column].str.strip() == "")
        if empty.any():
            raise DataError(f"{path}: column '{column}' is empty at {file.example(file.first(empty))}.")
    sessions, changed_sessions = _normalise_ids(frame[session])
    items, changed_items = _normalise_ids(frame["item_id"])
    if changed_sessions or changed_items:
        notes.append(f"{path}: {changed_sessions + changed_items:,} id(s) had surrounding spaces or a non-NFC Unicode "
                     "form (e.g. an accent written as a separate mark); they were normalised to NFC.")
    has_time = "timestamp" in columns
    time = _timestamps(file, "timestamp", notes) if has_time else pd.Series(np.nan, index=frame.index)
    if "order" in columns:
        order = pd.to_numeric(frame["order"], errors="coerce")
        bad = order.isna() | ~np.isfinite(order.fillna(0))
        if bad.any():
            raise DataError(f"{path}: column 'order' must be finite numbers, {int(bad.sum())} value(s) are not "
                            f"(first at {file.example(file.first(bad))}).")
        order = order.astype("float64")
    else:
        order = pd.Series(np.nan, index=frame.index)
    table = pd.DataFrame({"session_id": sessions, "item_id": items, "time": time, "order": order,
                          "row": np.arange(len(frame))})
    duplicated = table.duplicated(["session_id", "item_id", "time", "order"])
    if duplicated.any():
        notes.append(f"{path}: dropped {int(duplicated.sum())} duplicate row(s) (first at "
                     f"{file.example(file.first(duplicated))}).")
        table = table[~duplicated]
    if not has_time:
        notes.append(f"{path}: no 'timestamp' column, so sessions are taken in the file's order (oldest first, by "
                     "their first line) and the last 20% are the test sessions"
                     + ("; 'order' orders the items inside each session." if "order" in columns else "."))
    table = table.sort_values(["session_id", "time", "order", "row"], kind="stable", na_position="last")
    return table.reset_index(drop=True), notes, has_time


def read_items(path: Path, limits: ReadLimits = ReadLimits()) -> tuple[pd.DataFrame, list[str]]:
    """Read and validate an items file into columns item_id, title, category, then its other text columns (at
    most :data:`MAX_TEXT_COLUMNS`, in the file's order). Raises :class:`DataError`."""
    path = Path(path)
    notes: list[str] = []
    file = CsvFile(path, "items", limits, notes)
    frame = file.frame
    for column in ("item_id", "title"):
        if column not in frame.columns:
            raise DataError(f"{path}: missing column '{column}'; found {list(frame.columns)}.")
    missing_id = frame["item_id"].isna() | (frame["item_id"].str.strip() == "")
    if missing_id.any():
        raise DataError(f"{path}: column 'item_id' is empty at {file.example(file.first(missing_id))}.")
    ids, changed = _normalise_ids(frame["item_id"])
    if changed:
        notes.append(f"{path}: {changed:,} item id(s) had surrounding spaces or a non-NFC Unicode form; they were "
                     "normalised to NFC.")
    duplicated = ids.duplicated()
    if duplicated.any():
        raise DataError(f"{path}: column 'item_id' repeats {int(duplicated.sum())} id(s) (first at "
                        f"{file.example(file.first(duplicated))}).")
    titles = frame["title"].fillna("").str.strip()
    categories = frame["category"].fillna("").str.strip() if "category" in frame.columns else \
        pd.Series("", index=frame.index)
    untitled = titles == ""
    if untitled.all():
        raise DataError(f"{path}: column 'title' is empty for every item.")
    if untitled.any():
        notes.append(f"{path}: {int(untitled.sum())} item(s) have no title (first at "
                     f"{file.example(file.first(untitled))}); they are kept, and text models give them the mean "
                     "vector of the titled items.")
    ignored = [c for c in frame.columns if c in KNOWN_COLUMNS - {"item_id", "title", "category"}]
    if ignored:
        notes.append(f"{path}: column(s) {', '.join(map(str, ignored))} are interaction columns, ignored in an items "
                     "file (rename them to keep them as text fields).")
    others = [c for c in frame.columns if c not in KNOWN_COLUMNS and str(c).strip()]
    if len(others) > MAX_TEXT_COLUMNS:
        notes.append(f"{path}: {len(others)} columns besides item_id, title and category; the first "
                     f"{MAX_TEXT_COLUMNS} are kept as text fields ({', '.join(map(str, others[MAX_TEXT_COLUMNS:]))} "
                     "left out).")
    extra = {str(c).strip(): frame[c].fillna("").astype(str).str.strip() for c in others[:MAX_TEXT_COLUMNS]}
    return pd.DataFrame({"item_id": ids, "title": titles, "category": categories, **extra}), notes


def _duplicate_title_note(catalog: Catalog, items_path: Path) -> str | None:
    titles = pd.Series([t for t in catalog.titles if t])
    counts = titles.value_counts()
    shared = counts[counts > 1]
    if shared.empty:
        return None
    if len(counts) == 1:
        return (f"{items_path}: every item has the same title ({_quote(counts.index[0])}): text-embedding models "
                "(LLMSeqSim, LLM2X, LLMSeqPrompt) cannot tell the items apart; their ties are broken by item id.")
    return (f"{items_path}: {int(shared.sum()):,} items share their title with another item (the most common, "
            f"{_quote(shared.index[0])}, is on {int(shared.iloc[0])} items): text-embedding models cannot tell "
            "them apart; their ties are broken by item id.")


def load_files(interactions_path: Path, items_path: Path, name: str | None = None, n_folds: int = 3,
               limits: ReadLimits = ReadLimits()) -> Dataset:
    """Load, validate and split a dataset given as two CSV files; named ``name``, else by the files' content
    (:func:`files_identity`, module docstring). Raises :class:`DataError` (one sentence)."""
    interactions, notes, has_time = read_interactions(Path(interactions_path), limits)
    items, item_notes = read_items(Path(items_path), limits)
    notes += item_notes

    unknown = ~interactions["item_id"].isin(items["item_id"])
    if unknown.all():
        raise DataError(
            f"{items_path}: none of the interactions' item ids appear in column 'item_id' "
            f"(e.g. {_quote(interactions['item_id'].iloc[0])}); are these the matching files?"
        )
    if unknown.any():
        notes.append(
            f"{interactions_path}: dropped {int(unknown.sum())} interaction(s) whose item is not in {items_path} "
            f"(first: item {_quote(interactions.loc[unknown, 'item_id'].iloc[0])})."
        )
        interactions = interactions[~unknown]
    sizes = interactions.groupby("session_id")["item_id"].transform("size")
    short = sizes < 2
    if short.all():
        raise DataError(f"{interactions_path}: every session has fewer than 2 items; nothing to predict.")
    if short.any():
        notes.append(
            f"{interactions_path}: dropped {int(interactions.loc[short, 'session_id'].nunique())} session(s) "
            f"of length 1 (first: session {_quote(interactions.loc[short, 'session_id'].iloc[0])})."
        )
        interactions = interactions[~short]

    catalog = _catalog(items, interactions)
    duplicate_titles = _duplicate_title_note(catalog, Path(items_path))
    if duplicate_titles:
        notes.append(duplicate_titles)
    try:
        split, folds = paper_split(interactions, catalog, n_folds=n_folds, has_time=has_time)
    except DataError as err:
        raise DataError(f"{interactions_path}: {err}") from None
    empty = [str(i + 1) for i, fold in enumerate(folds) if fold.n_test == 0]
    if empty:
        notes.append(f"{interactions_path}: validation fold(s) {', '.join(empty)} of {len(folds)} have no session to "
                     "score (none keeps 2 items seen before it); tuning on the folds uses the others.")
    name = name or files_identity(Path(interactions_path), Path(items_path))
    return Dataset(name=name, catalog=catalog, split=split, folds=folds, warnings=notes, has_timestamps=has_time)


def dataset_files(folder: Path) -> dict[str, Path]:
    """``interactions.csv[.gz]`` and ``items.csv[.gz]`` in ``folder`` (the first name that exists, else .csv.gz)."""
    found = {}
    for stem in ("interactions", "items"):
        candidates = [folder / f"{stem}.csv.gz", folder / f"{stem}.csv"]
        found[stem] = next((c for c in candidates if c.exists()), candidates[0])
    return found


IDENTITY = re.compile(r"data-[0-9a-f]{12}")
FOLDER_FILES = "interactions.csv[.gz] and items.csv[.gz]"


def is_identity(name: str) -> bool:
    """Whether ``name`` has the form of a data set's content name, ``data-<12 hex>``."""
    return IDENTITY.fullmatch(name) is not None


def content_identity(interactions: bytes, items: bytes) -> str:
    """``data-<12 hex>``: the name of the data set these two files hold (module docstring)."""
    return "data-" + hashlib.sha256(interactions + b"\x00" + items).hexdigest()[:12]


def files_identity(interactions_path: Path, items_path: Path) -> str:
    """:func:`content_identity` of two files, read in 1 MB chunks (memory does not grow with the files) and
    remembered while neither file changes (size, modification time). Raises :class:`DataError` when one cannot
    be read."""
    stats = []
    for path, what in ((Path(interactions_path), "interactions"), (Path(items_path), "items")):
        try:
            stat = path.stat()
        except OSError:
            raise DataError(f"{path}: {what} file not found.") from None
        stats.append((str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino))
    return _files_identity(tuple(stats))


@lru_cache(maxsize=64)
def _files_identity(stats: tuple[tuple[str, int, int, int], ...]) -> str:
    digest = hashlib.sha256()
    for i, (path, *_) in enumerate(stats):
        if i:
            digest.update(b"\x00")
        try:
            with open(path, "rb") as stream:
                while chunk := stream.read(CHUNK):
                    digest.update(chunk)
        except OSError as err:
            raise DataError(f"{path}: cannot be read ({err.strerror or type(err).__name__}).") from None
    return "data-" + digest.hexdigest()[:12]


def folder_files(name: str) -> tuple[Path, Path]:
    """The interactions and items files of a bundled data set (by name) or of a folder holding
    interactions.csv[.gz] and items.csv[.gz]. Raises :class:`DataError` (one sentence) for an unknown name or a
    folder without them."""
    folder = DATA_DIR / name if name in BUNDLED else Path(name)
    if not folder.is_dir():
        raise DataError(f"unknown dataset '{name}': choose {', '.join(BUNDLED)} or a folder with {FOLDER_FILES}.")
    found = dataset_files(folder)
    missing = [stem for stem, path in found.items() if not path.exists()]
    if missing:
        raise DataError(f"{folder}: the folder has no {' and no '.join(f'{m}.csv[.gz]' for m in missing)}; a data "
                        f"set folder holds {FOLDER_FILES}.")
    return found["interactions"], found["items"]


def dataset_name(name: str) -> str:
    """The name a data set is stored under (module docstring), without loading it: a bundled name as it is, a
    folder's the content name of its two files. Raises :class:`DataError` like :func:`load`."""
    return name if name in BUNDLED else files_identity(*folder_files(name))


def load(name: str, n_folds: int = 3, limits: ReadLimits = ReadLimits()) -> Dataset:
    """Load a bundled dataset by name (see ``BUNDLED``) or a folder holding interactions.csv[.gz] + items.csv[.gz]
    (named by their content: module docstring). Raises :class:`DataError` (one sentence)."""
    interactions, items = folder_files(name)
    return load_files(interactions, items, name=name if name in BUNDLED else None, n_folds=n_folds, limits=limits)


def _catalog(items: pd.DataFrame, interactions: pd.DataFrame) -> Catalog:
    # Catalog = items that occur in the interactions, in the order of their ids (never the file's order).
    used = items[items["item_id"].isin(interactions["item_id"])].sort_values("item_id", kind="stable")
    used = used.reset_index(drop=True)
    counts = interactions["item_id"].value_counts()
    return Catalog(
        item_ids=used["item_id"].to_numpy(dtype=object),
        titles=used["title"].tolist(),
        categories=used["category"].tolist(),
        popularity=used["item_id"].map(counts).fillna(0).to_numpy(dtype=np.int64),
        attributes={c: used[c].tolist() for c in used.columns if c not in ("item_id", "title", "category")},
    )


# --------------------------------------------------------------------------------------------- the split


def _sessions_in_order(interactions: pd.DataFrame, catalog: Catalog,
                       has_time: bool) -> tuple[list[np.ndarray], np.ndarray]:
    """Sessions as item-index arrays in session order (module docstring) and each one's time: its last
    timestamp, or its position in the file without timestamps. ``interactions`` is sorted by session, then
    by event order (as :func:`read_interactions` returns it)."""
    session_ids = interactions["session_id"].to_numpy(dtype=object)
    items = interactions["item_id"].map(catalog.index_of).to_numpy(dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, session_ids[1:] != session_ids[:-1]])
    per_session = np.split(items, starts[1:])
    summary = pd.DataFrame({
        "session_id": session_ids[starts],
        "first_row": np.minimum.reduceat(interactions["row"].to_numpy(dtype=np.int64), starts),
        "time": np.fmax.reduceat(interactions["time"].to_numpy(dtype=np.float64), starts),
        "position": np.arange(len(starts)),
    })
    if has_time:
        # By last timestamp; ties by session id (the authors' code sorts a groupby, which orders by id).
        summary = summary.sort_values(["time", "session_id"], kind="stable")
    else:
        summary = summary.sort_values("first_row", kind="stable")  # the file's order, oldest first
        summary["time"] = np.arange(len(summary), dtype=np.float64)
    return [per_session[i] for i in summary["position"]], summary["time"].to_numpy(dtype=np.float64)


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
                 targets=np.asarray(targets, dtype=np.int64), held_out=held_out)


def cold_item_split(split: Split) -> Split:
    """The held-out sessions whose target is a **new item** (never in ``split.train``), with every item kept.

    The paper's protocol removes items unseen in train from the held-out sessions (module docstring); their
    titles are known, so a content-based model can still recommend them. Here each held-out session of 2+ items
    whose last item has no train interaction is kept whole: prompt = all but the last item (new items included),
    target = the last item. Raises :class:`DataError` when no held-out session ends in a new item."""
    seen = split.train_popularity > 0
    kept = [session for session in split.held_out if len(session) >= 2 and not seen[session[-1]]]
    if not kept:
        raise DataError("no held-out session ends in an item unseen in train: there is nothing to evaluate in "
                        "cold-item mode")
    return Split(catalog=split.catalog, train=split.train, train_times=split.train_times,
                 prompts=[session[:-1] for session in kept],
                 targets=np.asarray([session[-1] for session in kept], dtype=np.int64), held_out=split.held_out)


def train_subset(split: Split, fraction: float) -> Split:
    """``split`` trained on only the latest ``fraction`` of its train sessions (at least one), same prompts.

    The latest, not the first: the gap between the train sessions and the evaluated ones stays the same, so a
    smaller fraction measures less data, not older data. Test targets the subset never saw stay in (they are
    new items for a model trained on it), so every fraction is scored on the same sessions."""
    if not 0 < fraction <= 1:
        raise DataError(f"a train fraction must be in (0, 1], got {fraction}")
    n = max(1, round(fraction * len(split.train)))
    return Split(catalog=split.catalog, train=split.train[-n:], train_times=split.train_times[-n:],
                 prompts=split.prompts, targets=split.targets, held_out=split.held_out)


def paper_split(interactions: pd.DataFrame, catalog: Catalog, test_fraction: float = 0.2,
                n_folds: int = 3, has_time: bool = True) -> tuple[Split, list[Split]]:
    """The paper's temporal split and its validation folds (module docstring: the order rule)."""
    sessions, times = _sessions_in_order(interactions, catalog, has_time)
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
    Titles name the pattern ("item 7") so text models see the same structure. Item ids are zero-padded
    ("i07") so that id order is item order.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_sessions):
        start, length = rng.integers(n_items), rng.integers(3, 7)
        for pos in range(length):
            rows.append((f"s{s}", f"i{(start + pos) % n_items:03d}", s * 10 + pos, pos))
    interactions = pd.DataFrame(rows, columns=["session_id", "item_id", "time", "order"]).astype(
        {"time": "float64", "order": "float64"})
    interactions["row"] = np.arange(len(interactions))
    items = pd.DataFrame({"item_id": [f"i{i:03d}" for i in range(n_items)],
                          "title": [f"item {i}" for i in range(n_items)],
                          "category": [f"group {i % 3}" for i in range(n_items)]})
    catalog = _catalog(items, interactions)
    split, folds = paper_split(interactions, catalog)
    return Dataset(name="synthetic", catalog=catalog, split=split, folds=folds)
