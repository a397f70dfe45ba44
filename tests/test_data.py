"""Loading, validation at the boundary, and the paper's split."""

import gzip
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

from core import data
from core.data import DataError


def write(path, text):
    path.write_text(text)
    return path


@pytest.fixture
def good_files(tmp_path):
    inter = write(tmp_path / "inter.csv", "session_id,item_id,timestamp\n"
                  "a,x,1\na,y,2\na,z,3\nb,x,4\nb,y,5\nc,y,6\nc,z,7\nd,x,8\nd,z,9\ne,x,10\ne,y,11\n")
    items = write(tmp_path / "items.csv", "item_id,title,category\nx,Ex,c1\ny,Why,c2\nz,Zed,c1\n")
    return inter, items


def test_beauty_split_matches_the_paper(beauty):
    # 22,363 sessions: ceil(20%) = 4,473 test sessions, 17,890 train; 4 test sessions keep < 2 trained items.
    assert beauty.catalog.n_items == 12101
    assert len(beauty.split.train) == 17890
    assert beauty.split.n_test == 4469
    assert int(beauty.catalog.popularity.sum()) == 198502


def test_test_prompts_hold_only_trained_items_and_targets_follow(beauty):
    seen = beauty.split.train_popularity > 0
    assert all(seen[p].all() for p in beauty.split.prompts)
    assert seen[beauty.split.targets].all()
    assert min(len(p) for p in beauty.split.prompts) >= 1


def test_validation_folds_chain_forward_on_train_only(beauty):
    folds = beauty.folds
    assert len(folds) == 3
    sizes = [len(f.train) for f in folds]
    assert sizes == sorted(sizes) and sizes[-1] < len(beauty.split.train)
    # Fold 1 trains on bin 1 only: ~ a quarter of the train sessions.
    assert sizes[0] == pytest.approx(len(beauty.split.train) / 4, abs=1)
    # No fold ever sees a test session: fold train sessions are a prefix of the train sessions.
    for fold in folds:
        assert all(np.array_equal(a, b) for a, b in zip(fold.train, beauty.split.train))


def test_split_is_temporal_with_ceil_twenty_percent(good_files):
    inter, items = good_files
    dataset = data.load_files(inter, items)
    # 5 sessions: ceil(1.0) = 1 test session, the latest one (e: x, y).
    assert len(dataset.split.train) == 4
    assert dataset.split.n_test == 1
    x, y = dataset.catalog.index_of["x"], dataset.catalog.index_of["y"]
    assert dataset.split.prompts[0].tolist() == [x]
    assert dataset.split.targets.tolist() == [y]


def test_user_files_with_user_id_and_order_columns(tmp_path):
    inter = write(tmp_path / "i.csv", "user_id,item_id,order\nu1,a,0\nu1,b,1\nu2,a,0\nu2,b,1\nu3,a,0\nu3,b,1\n")
    items = write(tmp_path / "t.csv", "item_id,title\na,A\nb,B\n")
    dataset = data.load_files(inter, items)
    assert dataset.catalog.n_items == 2
    assert not dataset.catalog.has_categories


@pytest.mark.parametrize("inter_text, items_text, message", [
    ("session_id,item_id,timestamp\na,x,1\na,y,2\n", "item_id,name\nx,X\n", "missing column 'title'"),
    ("", "item_id,title\nx,X\n", "empty"),
    ("session_id,item_id,timestamp\na,x,1\na,y,yesterday\n", "item_id,title\nx,X\ny,Y\n",
     "column 'timestamp' must be numbers or ISO dates"),
    ("session_id,item_id\na,x\na,y\n", "item_id,title\nx,X\ny,Y\n", "needs a 'timestamp' or an 'order'"),
    ("session_id,timestamp\na,1\n", "item_id,title\nx,X\n", "missing column 'item_id'"),
    ("session_id,item_id,timestamp\na,x,1\nb,y,2\n", "item_id,title\nx,X\ny,Y\n", "fewer than 2 items"),
    ("session_id,item_id,timestamp\na,x,1\na,y,2\n", "item_id,title\nx,X\nx,Y\n", "repeats"),
    ("session_id,item_id,timestamp\na,q,1\na,r,2\n", "item_id,title\nx,X\n", "matching files"),
])
def test_bad_files_raise_one_clear_error(tmp_path, inter_text, items_text, message):
    inter = write(tmp_path / "inter.csv", inter_text)
    items = write(tmp_path / "items.csv", items_text)
    with pytest.raises(DataError, match=message) as info:
        data.load_files(inter, items)
    assert "\n" not in str(info.value)


def test_error_names_file_and_example_row(tmp_path):
    inter = write(tmp_path / "inter.csv", "session_id,item_id,timestamp\na,x,1\na,y,oops\n")
    items = write(tmp_path / "items.csv", "item_id,title\nx,X\ny,Y\n")
    with pytest.raises(DataError) as info:
        data.load_files(inter, items)
    text = str(info.value)
    assert "inter.csv" in text and "line 3" in text and "oops" in text


def test_warnings_for_duplicates_untitled_items_and_short_sessions(tmp_path, good_files):
    inter, _ = good_files
    text = inter.read_text() + "e,y,11\nf,x,12\n"  # a duplicate row and a session of length 1
    inter2 = write(tmp_path / "inter2.csv", text)
    items = write(tmp_path / "items2.csv", "item_id,title\nx,Ex\ny,\nz,Zed\n")
    dataset = data.load_files(inter2, items)
    notes = " ".join(dataset.warnings)
    assert "duplicate" in notes and "no title" in notes and "length 1" in notes
    assert len(dataset.warnings) == 3
    assert dataset.catalog.title(dataset.catalog.index_of["y"]).startswith("(untitled")


def test_gzip_files_load(tmp_path, good_files):
    inter, items = good_files
    gz = tmp_path / "inter.csv.gz"
    with gzip.open(gz, "wt") as handle:
        handle.write(inter.read_text())
    assert data.load_files(gz, items).catalog.n_items == 3


def test_bundled_datasets_load(ml100k):
    assert ml100k.catalog.n_items == 1682
    assert ml100k.catalog.has_categories
    steam = data.load("steam")
    assert steam.split.n_test > 1000


@pytest.mark.parametrize("case", ["missing_title", "empty", "text_timestamp"])
def test_cli_prints_one_line_not_a_traceback(tmp_path, case):
    inter = tmp_path / "inter.csv"
    items = tmp_path / "items.csv"
    inter.write_text("session_id,item_id,timestamp\na,x,1\na,y,2\nb,x,3\nb,y,4\n")
    items.write_text("item_id,title\nx,X\ny,Y\n")
    if case == "missing_title":
        items.write_text("item_id,name\nx,X\ny,Y\n")
    elif case == "empty":
        inter.write_text("")
    else:
        inter.write_text("session_id,item_id,timestamp\na,x,1\na,y,noon\n")
    result = subprocess.run([sys.executable, "-m", "core", "prepare", "--interactions", str(inter),
                             "--items", str(items)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("error: ")


def test_the_order_rule_on_tiny_files(tmp_path):
    # With timestamps: sessions by last timestamp, ties by session id (not by file order).
    inter = write(tmp_path / "t.csv", "session_id,item_id,timestamp\n"
                  "zed,x,5\nzed,y,9\namy,y,3\namy,z,9\nbob,x,1\nbob,z,2\ncat,x,4\ncat,y,6\ndan,y,7\ndan,x,8\n")
    items = write(tmp_path / "items.csv", "item_id,title\nx,X\ny,Y\nz,Z\n")
    dataset = data.load_files(inter, items)
    ids = dataset.catalog.item_ids
    # bob (2), cat (6), dan (8), then amy and zed both at 9: amy first by id; ceil(20% of 5) = 1 test session
    assert [ids[s].tolist() for s in dataset.split.train] == [["x", "z"], ["x", "y"], ["y", "x"], ["y", "z"]]
    assert dataset.split.prompts[0].tolist() == [dataset.catalog.index_of["x"]]  # zed: x, then y
    # Without timestamps: the file's order of sessions; 'order' orders the items inside each one.
    inter = write(tmp_path / "o.csv", "session_id,item_id,order\n"
                  "zed,y,2\nzed,x,1\namy,z,1\namy,y,0\nbob,x,0\nbob,z,1\ncat,y,1\ncat,x,0\ndan,z,0\ndan,x,1\n")
    dataset = data.load_files(inter, items)
    assert [ids[s].tolist() for s in dataset.split.train] == [["x", "y"], ["y", "z"], ["x", "z"], ["x", "y"]]
    assert dataset.catalog.item_ids[dataset.split.targets].tolist() == ["x"]  # dan: z, then x


@pytest.mark.parametrize("times, message", [
    (["2023-01-01", "2023-01-02", "2023-01-03", "2023-01-04", "2023-01-05", "2023-02-30"],
     "1 value(s) are neither (first at line 7:"),
    (["2023-01-01", "2023-01-02", "2023-01-03", "2023-01-04", "2023-01-05", "1700000000"],
     "mixes numbers (line 7: {'timestamp': '1700000000'}) and dates (line 2: {'timestamp': '2023-01-01'})"),
    (["1", "2", "3", "4", "5", "1e300"], "holds a value no clock gives (first at line 7: {'timestamp': '1e300'})"),
    (["1700000000", "1700000001", "1700000003", "0", "1700000005", "1700000006"],
     "mixes small numbers (line 5: {'timestamp': '0'}) and Unix seconds (line 2:"),
])
def test_implausible_timestamps_are_refused_naming_the_line(tmp_path, times, message):
    rows = "".join(f"s{i // 2},{'xy'[i % 2]},{t}\n" for i, t in enumerate(times))
    inter = write(tmp_path / "inter.csv", "session_id,item_id,timestamp\n" + rows)
    items = write(tmp_path / "items.csv", "item_id,title\nx,X\ny,Y\n")
    with pytest.raises(DataError) as caught:
        data.load_files(inter, items)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_iso_dates_with_time_zones_are_ordered_in_utc(tmp_path):
    inter = write(tmp_path / "inter.csv", "session_id,item_id,timestamp\n"
                  "a,x,2024-01-01T10:00:00+02:00\na,y,2024-01-01T09:30:00Z\n"  # y is the later one in UTC
                  "b,x,2024-01-02\nb,y,2024-01-03\nc,y,2024-01-04\nc,x,2024-01-05\n"
                  "d,x,2024-01-06\nd,y,2024-01-07\ne,x,2024-01-08\ne,y,2024-01-09T00:00:00Z\n")
    items = write(tmp_path / "items.csv", "item_id,title\nx,X\ny,Y\n")
    dataset = data.load_files(inter, items)
    assert dataset.catalog.item_ids[dataset.split.train[0]].tolist() == ["x", "y"]
    assert any("holds dates" in note for note in dataset.warnings)


def test_a_header_wider_than_64_kb_is_read(tmp_path):
    extra = [f"c{i}" for i in range(20_000)]
    inter = write(tmp_path / "inter.csv", "session_id,item_id,timestamp," + ",".join(extra) + "\n"
                  + "".join(f"s{i // 2},{'xy'[i % 2]},{i}," + ",".join("v" * len(extra)) + "\n" for i in range(10)))
    items = write(tmp_path / "items.csv", "item_id,title\nx,X\ny,Y\n")
    assert data.load_files(inter, items).split.n_test == 1
