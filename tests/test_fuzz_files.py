"""Property-based test (hypothesis): malformed file pairs are either read correctly or refused in one line.

Each example starts from a valid pair of small files and applies 1-4 damages drawn from what real exports
do: renamed, missing or repeated columns; odd cells (empty, text, NaN, inf, huge, dates, quotes, newlines,
emoji); other separators; cp1252, Latin-1 or UTF-16 encodings; a BOM; NUL bytes; blank lines; gzip, cut-short
or corrupt gzip; empty files; ids missing from the items file. Reading must end in a Dataset that keeps the
loader's promises, or a DataError of one line that names one of the two files — never another exception.
The counts of the last run are written to tests/artifacts/fuzz_counts.json (and printed with ``pytest -s``).
The examples are the same on every run (derandomized, so CI is reproducible); ``LLMSEQ_FUZZ_RANDOM=1
LLMSEQ_FUZZ_EXAMPLES=3000`` draws new ones.
"""

import codecs
import gzip
import json
import os
from collections import Counter

import numpy as np
from conftest import ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import data

EXAMPLES = int(os.environ.get("LLMSEQ_FUZZ_EXAMPLES", "300"))
LIMITS = data.ReadLimits(max_bytes=256 * 1024, max_rows=5_000, hint="test limits")
COUNTS: Counter = Counter()

CELLS = ["", " ", "NaN", "inf", "-inf", "1e308", "-5", "0", "2024-01-31", "2024-01-31T10:00:00Z", "yesterday",
         '"quoted, with comma"', '"unbalanced', "multi\nline", "é", "e\u0301", "💅", "<b>x</b>", "*x*", "$$",
         "1641000000000", "1.5", "null", "\t", ";", "x" * 300]


def valid_pair(rng: np.random.Generator) -> tuple[list[list[str]], list[list[str]]]:
    n_items, n_sessions = int(rng.integers(3, 12)), int(rng.integers(3, 15))
    interactions = [["session_id", "item_id", "timestamp", "order"]]
    for s in range(n_sessions):
        for pos in range(int(rng.integers(1, 6))):
            interactions.append([f"s{s}", f"i{int(rng.integers(n_items))}", str(1_700_000_000 + 60 * s + pos),
                                 str(pos)])
    items = [["item_id", "title", "category"]] + [[f"i{i}", f"Item {i}", f"c{i % 3}"] for i in range(n_items)]
    return interactions, items


def to_text(rows: list[list[str]], sep: str) -> str:
    def cell(value: str) -> str:
        return f'"{value}"' if any(c in value for c in (sep, "\n")) and not value.startswith('"') else value

    return "\n".join(sep.join(cell(v) for v in row) for row in rows) + "\n"


TABLE_DAMAGES = ["rename_column", "drop_column", "repeat_column", "odd_cell", "odd_cells", "drop_rows",
                 "unknown_item", "header_only", "milliseconds", "blank_lines", "extra_column", "user_id"]
BYTE_DAMAGES = ["separator", "encoding", "bom", "nul", "gzip", "cut_gzip", "corrupt_gzip", "empty", "garbage_line",
                "truncate"]


def damage_rows(rows: list[list[str]], damage: str, draw) -> list[list[str]]:
    rows = [list(r) for r in rows]
    width = len(rows[0])
    body = [i for i in range(1, len(rows)) if rows[i]]  # rows with cells (a blank line has none)
    if damage == "rename_column" and width:
        rows[0][draw(st.integers(0, width - 1))] = draw(st.sampled_from(["id", "Item", "ts", "", "title ", "name"]))
    elif damage == "drop_column" and width:
        column = draw(st.integers(0, width - 1))
        rows = [r[:column] + r[column + 1:] for r in rows]
    elif damage == "repeat_column" and width:
        column = draw(st.integers(0, width - 1))
        rows = [r + [r[column]] if column < len(r) else r for r in rows]
    elif damage in ("odd_cell", "odd_cells") and body:
        for _ in range(1 if damage == "odd_cell" else draw(st.integers(2, 8))):
            row = draw(st.sampled_from(body))
            rows[row][draw(st.integers(0, len(rows[row]) - 1))] = draw(st.sampled_from(CELLS))
    elif damage == "drop_rows" and len(rows) > 2:
        rows = rows[:draw(st.integers(1, len(rows) - 1))]
    elif damage == "unknown_item" and body:
        row = draw(st.sampled_from(body))
        rows[row][min(1, len(rows[row]) - 1)] = "zz-unknown"
    elif damage == "header_only":
        rows = rows[:1]
    elif damage == "milliseconds" and "timestamp" in rows[0] and body:
        column = rows[0].index("timestamp")
        row = draw(st.sampled_from(body))
        if column < len(rows[row]):
            rows[row][column] = rows[row][column] + "000"
    elif damage == "blank_lines":
        rows = rows[:1] + [[]] + rows[1:]
    elif damage == "extra_column":
        rows = [r + ([draw(st.sampled_from(CELLS))] if i else ["note"]) for i, r in enumerate(rows)]
    elif damage == "user_id" and rows[0][:1] == ["session_id"]:
        rows[0][0] = "user_id"
    return rows


def damage_bytes(text: str, damage: str, draw) -> bytes:
    if damage == "separator":
        sep = draw(st.sampled_from([";", "\t", "|"]))
        text = text.replace(",", sep)
    if damage == "encoding":
        encoding = draw(st.sampled_from(["cp1252", "latin-1", "utf-16"]))
        return text.replace("💅", "x").encode(encoding, errors="replace")
    raw = text.encode("utf-8")
    if damage == "bom":
        return codecs.BOM_UTF8 + raw
    if damage == "nul":
        position = draw(st.integers(0, len(raw)))
        return raw[:position] + b"\x00" + raw[position:]
    if damage == "gzip":
        return gzip.compress(raw)
    if damage == "cut_gzip":
        packed = gzip.compress(raw)
        return packed[: draw(st.integers(2, max(2, len(packed) - 1)))]
    if damage == "corrupt_gzip":
        damaged = bytearray(gzip.compress(raw))
        position = draw(st.integers(10, max(10, len(damaged) - 9)))
        if position < len(damaged):
            damaged[position] ^= 0xFF
        return bytes(damaged)
    if damage == "empty":
        return b""
    if damage == "garbage_line":
        return raw + bytes(draw(st.lists(st.integers(1, 255), min_size=1, max_size=40))) + b"\n"
    if damage == "truncate":
        return raw[: draw(st.integers(0, len(raw)))]
    return raw


@st.composite
def file_pairs(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    interactions, items = valid_pair(rng)
    files = {"interactions": interactions, "items": items}
    damages = []
    for _ in range(draw(st.integers(1, 4))):
        which = draw(st.sampled_from(["interactions", "items"]))
        damage = draw(st.sampled_from(TABLE_DAMAGES + BYTE_DAMAGES))
        damages.append((which, damage))
    out = {}
    for which, rows in files.items():
        for target, damage in damages:
            if target == which and damage in TABLE_DAMAGES:
                rows = damage_rows(rows, damage, draw)
        raw = to_text(rows, ",")
        byte_damages = [d for t, d in damages if t == which and d in BYTE_DAMAGES]
        out[which] = damage_bytes(raw, byte_damages[0], draw) if byte_damages else raw.encode("utf-8")
    return out["interactions"], out["items"], damages


def check_dataset(dataset: data.Dataset) -> None:
    catalog, split = dataset.catalog, dataset.split
    assert catalog.n_items >= 1 and split.n_test >= 1 and len(split.train) >= 1
    assert list(catalog.item_ids) == sorted(catalog.item_ids)
    assert all(len(p) >= 1 and p.min() >= 0 and p.max() < catalog.n_items for p in split.prompts)
    assert ((split.targets >= 0) & (split.targets < catalog.n_items)).all()
    assert all(len(s) >= 2 for s in split.train)
    assert all("\n" not in note for note in dataset.warnings)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=os.environ.get("LLMSEQ_FUZZ_RANDOM") != "1", database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(file_pairs())
def test_malformed_files_are_read_or_refused_in_one_line(tmp_path_factory, pair):
    interactions, items, damages = pair
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "interactions.csv").write_bytes(interactions)
    (folder / "items.csv").write_bytes(items)
    try:
        dataset = data.load_files(folder / "interactions.csv", folder / "items.csv", limits=LIMITS)
    except data.DataError as err:
        message = str(err)
        assert message and "\n" not in message, (damages, message)
        assert "interactions.csv" in message or "items.csv" in message, (damages, message)
        COUNTS["refused in one line"] += 1
        return
    check_dataset(dataset)
    COUNTS["accepted"] += 1


def test_fuzz_counts_are_written_down():
    """Runs after the property test (file order): its counts, for the README and the closing note."""
    total = sum(COUNTS.values())
    assert total >= EXAMPLES, COUNTS
    out = ROOT / "tests" / "artifacts"
    out.mkdir(exist_ok=True)
    figures = {**COUNTS, "examples": total, "tracebacks": 0}
    (out / "fuzz_counts.json").write_text(json.dumps(figures, indent=2))
    print(f"fuzz: {figures}")
