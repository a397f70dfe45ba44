"""Each input in tests/cases/ (once handled wrongly, see tests/cases/README.md) gives its right value now."""

import shutil
import subprocess
import sys
import threading
import time
import tracemalloc

import numpy as np
import pytest
from conftest import ROOT

from core import data, evaluate
from core.data import DataError
from core.embeddings import EmbeddingSpec, embedding_notes, item_embeddings
from core.models import create
from core.models.base import NO_ITEM

CASES = ROOT / "tests" / "cases"


def load(case, interactions="interactions.csv", items="items.csv", **kwargs):
    return data.load_files(CASES / case / interactions, CASES / case / items, **kwargs)


def one_line_error(call) -> str:
    with pytest.raises(DataError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    return message


# ------------------------------------------------------------------------------------------- silent wrong numbers
def test_stale_titles_refit_the_text_models(tmp_path):
    shop = tmp_path / "shop"
    shutil.copytree(CASES / "stale-titles" / "shop", shop)
    shutil.copy(CASES / "stale-titles" / "items_v1.csv", shop / "items.csv")
    first = evaluate.run(data.load(str(shop)), [create("llmseqsim")]).results["llmseqsim"]
    assert first.metrics["NDCG@20"] == pytest.approx(0.3184, abs=1e-4) and first.status == "fitted"
    shutil.copy(CASES / "stale-titles" / "items_v2.csv", shop / "items.csv")  # same ids, corrected titles
    dataset = data.load(str(shop))
    second = evaluate.run(dataset, [create("llmseqsim"), create("popularity")]).results
    assert second["llmseqsim"].metrics["NDCG@20"] == pytest.approx(0.7374, abs=1e-4)
    assert second["llmseqsim"].status == "fitted"  # built again from the new titles, not loaded
    assert evaluate.load_results(dataset)["llmseqsim"].metrics["NDCG@20"] == pytest.approx(0.7374, abs=1e-4)
    again = evaluate.run(dataset, [create("llmseqsim")]).results["llmseqsim"]
    assert again.status == "loaded" and again.metrics["NDCG@20"] == second["llmseqsim"].metrics["NDCG@20"]


def test_stale_titles_refit_llm2sasrec_but_not_popularity(tmp_path):
    from core.store import model_key

    v1 = load("stale-titles", "shop/interactions.csv", "items_v1.csv")
    v2 = load("stale-titles", "shop/interactions.csv", "items_v2.csv")
    for name in ("llm2sasrec", "llmseqprompt", "llmseqsim"):
        model = create(name)
        assert model_key(v1, name, model.config) != model_key(v2, name, model.config), name
    for name in ("popularity", "vsknn", "sasrec"):  # they never read the titles: no refit needed
        model = create(name)
        assert model_key(v1, name, model.config) == model_key(v2, name, model.config), name
    assert model_key(v1, "llmseqsim", create("llmseqsim").config) != \
        model_key(v1, "llmseqsim", create("llmseqsim", embedding_provider="openai").config)


def test_order_only_sessions_keep_the_file_order():
    dataset = load("order-only")
    # 40 sessions in the file, b000..b039; without timestamps the last 8 in the file are the test sessions,
    # whatever their lengths (the old split took the 8 longest).
    assert not dataset.has_timestamps
    assert len(dataset.split.train) == 32 and dataset.split.n_test == 8
    assert [len(p) + 1 for p in dataset.split.prompts] == [3, 7, 5, 5, 5, 4, 8, 7]
    first_train = dataset.catalog.item_ids[dataset.split.train[0]].tolist()
    assert first_train == ["p2", "p3", "p4", "p5"]  # b000, its items in 'order'
    assert any("no 'timestamp' column" in note and "file's order" in note for note in dataset.warnings)


def test_small_catalog_lists_end_instead_of_padding():
    dataset = load("small-catalog")
    report = evaluate.run(dataset, [create("vsknn"), create("llmseqsim")], save=False).results
    assert report["vsknn"].metrics["HR@20"] == pytest.approx(0.675)  # 1.000 when excluded items padded the lists
    assert report["llmseqsim"].metrics["HR@20"] == pytest.approx(0.675)
    model = create("vsknn").fit(dataset.split)
    items, scores = model.recommend(dataset.split.prompts, k=20)
    for prompt, row, row_scores in zip(dataset.split.prompts, items, scores):
        real = row[row != NO_ITEM]
        assert len(real) == dataset.catalog.n_items - len(set(prompt.tolist()))
        assert not set(real.tolist()) & set(prompt.tolist())
        assert np.isneginf(row_scores[row == NO_ITEM]).all()


def test_mixed_time_units_are_refused_in_one_line():
    message = one_line_error(lambda: load("mixed-time-units"))
    assert "column 'timestamp' mixes Unix seconds" in message and "milliseconds" in message
    assert "line 2:" in message and "line 433:" in message


def test_decomposed_ids_are_one_id():
    dataset = load("decomposed-ids")
    assert dataset.catalog.n_items == 12
    assert int(dataset.catalog.popularity.sum()) == 558  # no row dropped (189 were)
    assert any("normalised to NFC" in note for note in dataset.warnings)


def test_long_titles_are_counted_and_can_keep_their_tails():
    dataset = data.load(str(CASES / "long-titles-truncated"))
    lipsticks = [dataset.catalog.index_of[f"L{i}"] for i in range(4)]
    cut = item_embeddings(dataset.catalog, EmbeddingSpec())
    notes = embedding_notes(dataset.catalog, EmbeddingSpec())
    assert notes and notes[0].startswith("4 title(s) are longer than all-MiniLM-L6-v2's window of 256 tokens")
    assert (cut[lipsticks] @ cut[lipsticks].T).min() > 0.9999  # the shades are lost: one vector
    kept = item_embeddings(dataset.catalog, EmbeddingSpec(long_titles="head_tail"))
    similarity = kept[lipsticks] @ kept[lipsticks].T
    assert similarity[~np.eye(4, dtype=bool)].max() < 0.998  # the shades tell them apart


def test_identical_titles_are_reported_and_do_not_depend_on_file_order():
    given, reversed_ = load("identical-titles"), load("identical-titles", "reversed/interactions.csv",
                                                      "reversed/items.csv")
    assert any("every item has the same title" in note for note in given.warnings)
    first = evaluate.run(given, [create("llmseqsim")], save=False).results["llmseqsim"].metrics["NDCG@20"]
    second = evaluate.run(reversed_, [create("llmseqsim")], save=False).results["llmseqsim"].metrics["NDCG@20"]
    assert first == second  # 0.2186 vs 0.0858 when ties followed the items file's order


def test_identical_titles_refuse_lda_in_one_line():
    result = subprocess.run([sys.executable, "-m", "core", "evaluate", "--dataset",
                             str(CASES / "identical-titles"), "--models", "llmseqsim", "--set", "reduction=lda",
                             "reduced_dim=2"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: llmseqsim: options reduction=lda, reduced_dim=2: LDA cannot run on these item "
                           "vectors")


# ------------------------------------------------------------------------------------------- concurrency
def test_concurrent_rankings_repro_no_longer_cancels():
    result = subprocess.run([sys.executable, str(CASES / "concurrent-rankings" / "repro.py")], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert "A done: False cancelled: False" in result.stdout
    assert "CancelledError" not in result.stdout + result.stderr


def test_ten_visitors_clicking_at_once_never_cancel_each_other(synthetic):
    from core.picks import RankingPool

    model = create("popularity").fit(synthetic.split)
    slow = model.recommend

    def recommend(*args, **kwargs):
        time.sleep(0.01)
        return slow(*args, **kwargs)

    model.recommend = recommend
    pool, errors = RankingPool(), []

    def visitor(owner):
        for click in range(20):
            session = [owner, click % 29]
            future = pool.submit("popularity", model, session, 5, owner=f"visitor-{owner}")
            time.sleep(0.002)
            if click == 19 or not future.cancelled():  # a visitor's own newer click may drop its older one
                try:
                    future.result(timeout=30)
                except BaseException as err:  # noqa: BLE001
                    errors.append(type(err).__name__)

    threads = [threading.Thread(target=visitor, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


# ------------------------------------------------------------------------------------------- hostile files
def test_gzip_bomb_is_refused_while_decompressing():
    tracemalloc.start()
    message = one_line_error(lambda: load("gzip-bomb", "bomb8M.csv.gz", limits=data.UPLOAD_LIMITS))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert "more than 2,000,000 lines" in message and "bomb8M.csv.gz" in message
    assert peak < 300 * 1024**2  # the limit, not the 64 MB of rows times pandas' overhead (2.5 GB before)


def test_tiny_limits_refuse_big_files(tmp_path):
    limits = data.ReadLimits(max_bytes=1024, max_rows=10, hint="test")
    message = one_line_error(lambda: load("gzip-bomb", "bomb2M.csv.gz", limits=limits))
    assert "bomb2M.csv.gz: the interactions file is larger than 1 KB once decompressed" in message


@pytest.mark.parametrize("name", ["truncated.csv.gz", "corrupt.csv.gz"])
def test_damaged_gzip_is_one_line(name):
    message = one_line_error(lambda: load("damaged-gzip", name))
    assert f"{name}: not a valid gzip file" in message


def test_cp1252_items_are_read_with_a_note():
    dataset = load("cp1252-items")
    assert "Crème brûlée lip balm" in dataset.catalog.titles
    note = next(note for note in dataset.warnings if "not UTF-8" in note)
    assert "line 352" in note and "cp1252" in note


def test_row_numbers_are_file_lines_and_columns_the_files():
    message = one_line_error(lambda: load("row-after-duplicates"))
    assert "line 152:" in message
    assert "'order'" not in message and "'timestamp': '2023-11-14 22:13'" in message


def test_every_bundled_file_has_the_documented_header():
    import gzip

    extra = {"beauty": "", "ml-100k": ",genres,year", "steam": ",genres,tags,developer"}  # data/*/SOURCE.md
    for name in data.BUNDLED:
        files = data.dataset_files(data.DATA_DIR / name)
        with gzip.open(files["interactions"], "rt") as handle:
            assert handle.readline().strip() == "session_id,item_id,timestamp,order", name
        with gzip.open(files["items"], "rt") as handle:
            assert handle.readline().strip() == "item_id,title,category" + extra[name], name


def test_a_tab_or_semicolon_file_is_read(tmp_path):
    inter = tmp_path / "inter.tsv"
    inter.write_text("user_id\titem_id\ttimestamp\n" + "".join(f"u{s}\tx{i}\t{s * 10 + i}\n" for s in range(6)
                                                             for i in range(3)))
    items = tmp_path / "items.csv"
    items.write_text("item_id;title\n" + "".join(f"x{i};Item {i}\n" for i in range(3)))
    dataset = data.load_files(inter, items)
    assert dataset.catalog.n_items == 3 and len(dataset.split.train) == 4
    assert any("tab-separated" in note for note in dataset.warnings)
    assert any("semicolon-separated" in note for note in dataset.warnings)


def test_messages_use_the_files_column_names(tmp_path):
    inter = tmp_path / "inter.csv"
    inter.write_text("user_id,item_id,timestamp\nu1,x,1\n,y,2\n")
    items = tmp_path / "items.csv"
    items.write_text("item_id,title\nx,X\ny,Y\n")
    message = one_line_error(lambda: data.load_files(inter, items))
    assert "column 'user_id' is empty at line 3" in message and "session_id" not in message
