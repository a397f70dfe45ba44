"""A user's own files: validated like the bundled ones, kept under the cache, errors named as the user named
the files; and a model's options as form fields (core.options)."""

import pytest
from tiny_data import N_ITEMS, write_tiny_dataset

from core import data
from core.common import ConfigError
from core.models.sknn import VSKNNConfig
from core.options import changed_options, model_options
from core.uploads import display_name, readable_note, save_upload


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = write_tiny_dataset(tmp_path_factory.mktemp("upload") / "shop")
    return (folder / "interactions.csv").read_bytes(), (folder / "items.csv").read_bytes()


def test_a_good_upload_is_kept_and_loads_by_folder(files):
    folder = save_upload(files[0], "my_sessions.csv", files[1], "my_items.csv")
    dataset = data.load(str(folder))
    assert dataset.catalog.n_items == N_ITEMS and dataset.name.startswith("data-")
    assert display_name(str(folder)) == "my_sessions.csv (uploaded)"
    assert save_upload(files[0], "again.csv", files[1], "x.csv") == folder  # same bytes, same dataset


def test_a_bad_upload_names_the_users_file_and_is_not_kept(files):
    bad = b"session_id,item_id,timestamp\ns1,p1,yesterday\ns1,p2,3\n"
    with pytest.raises(data.DataError) as caught:
        save_upload(bad, "my_sessions.csv", files[1], "my_items.csv")
    message = str(caught.value)
    assert message.startswith("my_sessions.csv: column 'timestamp' must be numbers or ISO dates")
    assert "cache" not in message and "\n" not in message
    with pytest.raises(data.DataError, match="my_items.csv: missing column 'title'"):
        save_upload(files[0], "my_sessions.csv", b"item_id,name\np1,x\n", "my_items.csv")


def test_notes_show_file_names_not_paths(files):
    folder = save_upload(files[0], "my_sessions.csv", files[1], "my_items.csv")
    note = f"{folder}/interactions.csv: dropped 2 duplicate row(s)"
    assert readable_note(note, str(folder)) == "my_sessions.csv: dropped 2 duplicate row(s)"
    assert readable_note(f"{data.DATA_DIR}/beauty/items.csv.gz: 7 item(s) have no title", "beauty") == \
        "items.csv.gz: 7 item(s) have no title"


def test_model_options_carry_kind_choices_and_the_why_comment():
    options = {o.name: o for o in model_options(VSKNNConfig)}
    assert options["k"].kind == "int" and options["k"].default == 70
    assert options["k"].help == "neighbours that vote (valid: [1, ∞))"
    assert options["k"].range.low == 1 and options["k"].range.high is None
    assert options["sampling"].kind == "choice" and options["sampling"].choices == ("random", "recent")
    assert options["decay"].default == "harmonic"


def test_changed_options_keeps_only_differences_and_validates():
    assert changed_options(VSKNNConfig, {"k": 70, "sample_size": 900, "decay": "log"}) == \
        {"sample_size": 900, "decay": "log"}
    with pytest.raises(ConfigError, match="sampling"):
        changed_options(VSKNNConfig, {"sampling": "sometimes"})
