"""One data set, one identity: the same two files uploaded in the app, given as a folder (``--dataset FOLDER``,
``LLMSEQ_DATASET``) or as ``--interactions F --items F`` are one data set, named ``data-<first 12 hex of
sha256(interactions bytes, NUL, items bytes)>``, so a model trained one way is listed the others; bundled data
sets keep their names; a name that does not open is refused in one sentence, in the CLI and on the page."""

import hashlib
import re
import shlex
import shutil
from pathlib import Path

import pytest
from conftest import ROOT
from streamlit.testing.v1 import AppTest
from tiny_data import N_ITEMS, write_tiny_dataset

from core import cli, data, store
from core.trained import train_command, trained_models
from core.uploads import resolve, save_upload, upload_folder, url_name
from ui.state import first_dataset

FOLDER_FILES = "interactions.csv[.gz] and items.csv[.gz]"


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """The tiny shop with its own sessions (seed 5: no other test trains on these files)."""
    return write_tiny_dataset(tmp_path_factory.mktemp("identity") / "shop", seed=5)


@pytest.fixture(scope="module")
def order_only(tmp_path_factory):
    """tests/cases/order-only (no timestamp column) copied to a folder of its own."""
    folder = tmp_path_factory.mktemp("researcher") / "order-only"
    shutil.copytree(ROOT / "tests" / "cases" / "order-only", folder)
    return folder


def identity_of(folder: Path) -> str:
    content = (folder / "interactions.csv").read_bytes() + b"\x00" + (folder / "items.csv").read_bytes()
    return "data-" + hashlib.sha256(content).hexdigest()[:12]


def test_a_model_trained_on_the_folder_is_listed_for_the_upload_of_the_same_files(shop, tmp_path, capsys):
    identity = identity_of(shop)
    elsewhere = tmp_path / "renamed"  # the same bytes under other names
    elsewhere.mkdir()
    shutil.copy(shop / "interactions.csv", elsewhere / "my_sessions.csv")
    shutil.copy(shop / "items.csv", elsewhere / "my_items.csv")

    assert cli.main(["train", "--dataset", str(shop), "--models", "popularity"]) == 0
    assert f"popularity on {identity}: trained in" in capsys.readouterr().out
    assert cli.main(["train", "--interactions", str(elsewhere / "my_sessions.csv"),
                     "--items", str(elsewhere / "my_items.csv"), "--models", "popularity"]) == 0
    assert f"popularity on {identity}: already trained -> {store.models_root(identity)}" in capsys.readouterr().out

    upload = save_upload((shop / "interactions.csv").read_bytes(), "sessions.csv",
                         (shop / "items.csv").read_bytes(), "items.csv")
    uploaded = data.load(str(upload))
    assert uploaded.name == identity == data.load(str(shop)).name
    assert data.load_files(elsewhere / "my_sessions.csv", elsewhere / "my_items.csv").name == identity
    trained = trained_models(uploaded)
    assert [model.label for model in trained] == ["popularity"]
    assert trained[0].folder.parent == store.models_root(identity)
    # The app's "how to train" line for the upload names it by its id, which the CLI opens.
    assert train_command(str(upload), "vsknn") == f".venv/bin/python -m core train --dataset {identity} --models vsknn"
    assert cli.main(["prepare", "--dataset", identity]) == 0
    assert capsys.readouterr().out.startswith(f"{identity}: {N_ITEMS} items, ")


def test_another_byte_is_another_data_set_and_bundled_names_stay(shop, tmp_path):
    changed = write_tiny_dataset(tmp_path / "shop", seed=5, title_suffix=" (new)")
    assert data.dataset_name(str(changed)) != data.dataset_name(str(shop)) == identity_of(shop)
    for name in data.BUNDLED:  # their saved models are stored under these names: they must not change
        assert data.dataset_name(name) == url_name(name) == name
        assert store.models_root(data.dataset_name(name)).name == name


def test_a_folder_path_in_a_train_command_is_quoted_for_the_shell(tmp_path):
    folder = tmp_path / "it's mine"
    line = train_command(str(folder), "sknn")
    assert shlex.split(line) == [".venv/bin/python", "-m", "core", "train", "--dataset", str(folder), "--models",
                                 "sknn"]
    assert train_command("steam", "sknn") == ".venv/bin/python -m core train --dataset steam --models sknn"


# ------------------------------------------------------------------------------------------------ the CLI
COMMANDS = [["prepare"], ["embed"], ["train"], ["evaluate"], ["finetune"], ["reproduce", "--output", "o.json"],
            ["study", "cold-items"], ["tune", "--model", "vsknn"]]


@pytest.mark.parametrize("command", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_every_command_takes_a_data_set_both_ways(command):
    by_name = cli.parser().parse_args([*command, "--dataset", "my folder"])
    assert (by_name.dataset, by_name.interactions, by_name.items) == ("my folder", None, None)
    assert cli.dataset_arguments(by_name) == "--dataset 'my folder'"
    by_files = cli.parser().parse_args([*command, "--interactions", "a b.csv", "--items", "items.csv.gz"])
    assert (by_files.dataset, by_files.interactions, by_files.items) == (None, "a b.csv", "items.csv.gz")
    assert cli.dataset_arguments(by_files) == "--interactions 'a b.csv' --items items.csv.gz"
    assert cli.dataset_arguments(cli.parser().parse_args(command)) == "--dataset beauty"


def test_the_two_forms_name_the_same_data_set_before_loading(order_only):
    by_folder = cli.parser().parse_args(["train", "--dataset", str(order_only)])
    by_files = cli.parser().parse_args(["train", "--interactions", str(order_only / "interactions.csv"),
                                        "--items", str(order_only / "items.csv")])
    assert cli.dataset_name(by_folder) == cli.dataset_name(by_files) == identity_of(order_only)
    assert cli.dataset_name(cli.parser().parse_args(["train"])) == "beauty"


@pytest.mark.parametrize("argv, message", [
    (["prepare", "--dataset", "doesnotexist"],
     f"unknown dataset 'doesnotexist': choose beauty, ml-100k, steam or a folder with {FOLDER_FILES}."),
    (["train", "--interactions", "a.csv"],
     "--interactions and --items go together: give both files (or --dataset NAME|FOLDER)."),
    (["evaluate", "--dataset", "beauty", "--interactions", "a.csv", "--items", "b.csv"],
     "give the data set once: --dataset, or --interactions with --items, not both."),
    (["prepare", "--dataset", "data-0123456789ab"],
     "No data set data-0123456789ab on this server: upload its two files on the Home page (or open their folder "
     "from the command line)."),
])
def test_a_data_set_that_does_not_open_is_one_line(argv, message, capsys):
    assert cli.main(argv) == 2
    assert capsys.readouterr().err == f"error: {message}\n"


def test_a_folder_without_the_two_files_is_refused_in_one_line(tmp_path, capsys):
    (tmp_path / "items.csv").write_text("item_id,title\na,A\n")
    assert cli.main(["prepare", "--dataset", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (f"error: {tmp_path}: the folder has no interactions.csv[.gz]; a data set "
                                       f"folder holds {FOLDER_FILES}.\n")


# ------------------------------------------------------------------------------------------------ the URL
def test_the_url_takes_bundled_names_and_ids_never_server_paths(shop, order_only):
    upload = save_upload((shop / "interactions.csv").read_bytes(), "s.csv", (shop / "items.csv").read_bytes(), "i.csv")
    assert upload_folder(identity_of(shop)) == upload
    # the URL form of each data set reads back to it (first_dataset is what dataset_key() runs on a first visit)
    for key, env in (("ml-100k", ""), (str(upload), ""), (str(order_only), str(order_only))):
        assert first_dataset(url_name(key), env) == key
    assert url_name(str(order_only)) == identity_of(order_only)
    assert first_dataset(None, str(order_only)) == str(order_only)
    assert first_dataset(None, "") == "beauty"
    with pytest.raises(data.DataError) as refused:
        first_dataset(str(order_only), str(order_only))  # a path in the URL, even the server's own folder
    assert str(refused.value) == (f"No data set named '{order_only}': choose beauty, ml-100k, steam or the id "
                                  "(data-…) of uploaded files; a folder opens only from LLMSEQ_DATASET or the "
                                  "command line.")
    with pytest.raises(data.DataError, match="^No data set data-"):
        first_dataset(identity_of(order_only), "")  # the folder's id, on a server that does not open that folder
    assert resolve(str(order_only)) == str(order_only)  # the environment and the CLI may open a folder


def plain(text: str) -> str:
    """Markdown as the browser shows it: the backslash escapes of user text (ui.text.md) removed."""
    return re.sub(r"\\(.)", r"\1", text)


def home(monkeypatch, env: str | None, url: str | None = None) -> AppTest:
    if env is None:
        monkeypatch.delenv("LLMSEQ_DATASET", raising=False)
    else:
        monkeypatch.setenv("LLMSEQ_DATASET", env)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    if url is not None:
        at.query_params["dataset"] = url
    at.run()
    assert not at.exception, at.exception
    return at


def test_llmseq_dataset_opens_the_folder(monkeypatch, order_only):
    at = home(monkeypatch, str(order_only))
    assert at.session_state["dataset"] == str(order_only)
    assert at.metric[0].value == "12"  # order-only's 12 items, not Beauty's 12,101
    assert not at.error
    assert any(identity_of(order_only) in caption.value for caption in at.caption)


def test_the_url_opens_the_servers_folder_by_its_id_even_once_its_files_are_uploaded(monkeypatch, order_only):
    save_upload((order_only / "interactions.csv").read_bytes(), "mine.csv", (order_only / "items.csv").read_bytes(),
                "items.csv")
    at = home(monkeypatch, str(order_only), url=identity_of(order_only))
    assert at.session_state["dataset"] == str(order_only) and at.metric[0].value == "12"
    assert first_dataset(identity_of(order_only), "") == str(upload_folder(identity_of(order_only)))


def test_an_unknown_name_in_the_url_is_refused_on_the_page_not_replaced(monkeypatch, order_only):
    at = home(monkeypatch, str(order_only), url="doesnotexist")
    assert [plain(error.value) for error in at.error] == [
        "No data set named 'doesnotexist': choose beauty, ml-100k, steam or the id (data-…) of uploaded files; a "
        "folder opens only from LLMSEQ_DATASET or the command line."]
    assert not at.metric and "dataset" not in at.session_state  # nothing opened in its place
    next(b for b in at.button if b.label == "Open order-only instead").click().run()
    assert not at.exception and not at.error
    assert at.metric[0].value == "12"
    assert at.query_params.get("dataset") in (None, identity_of(order_only))  # the bad name left the URL


def test_a_missing_llmseq_dataset_folder_is_refused_on_the_page(monkeypatch, tmp_path):
    missing = tmp_path / "nowhere"
    at = home(monkeypatch, str(missing))
    assert len(at.error) == 1 and not at.metric
    assert plain(at.error[0].value) == (f"LLMSEQ_DATASET: No data set named '{missing}': choose beauty, ml-100k, "
                                        f"steam or a folder with {FOLDER_FILES}.")
    assert [b.label for b in at.button] == ["Open beauty instead"]


def test_the_chosen_data_set_is_written_into_the_url(monkeypatch, order_only):
    monkeypatch.setenv("LLMSEQ_DATASET", str(order_only))

    def script():
        from ui import state

        state.write_dataset_url()

    at = AppTest.from_function(script)
    at.run()
    assert not at.exception
    assert at.query_params["dataset"] == identity_of(order_only)
    at.session_state["dataset"] = "ml-100k"
    at.run()
    assert at.query_params["dataset"] == "ml-100k"
