"""Every page of the app renders on a tiny dataset and its main interactions change what is shown
(streamlit.testing AppTest). The tiny dataset walks i -> i+1 (tests/tiny_data.py), so picks are predictable.
"""

import re

import pytest
from conftest import ROOT
from streamlit.testing.v1 import AppTest
from tiny_data import N_ITEMS, write_tiny_dataset

from core import data, evaluate, store
from core.embeddings import item_embeddings
from core.jobs import JobRequest, ModelStep, manager
from core.models import REGISTRY, create

TINY_SASREC = {"embedding_dim": 16, "heads": 2, "layers": 1, "learning_rate": 0.01, "init_std": 0.1,
               "max_epochs": 3, "patience": 1}
LLM2SASREC = ("llm2sasrec (embedding_dim=16, learning_rate=0.01, max_epochs=3, patience=1, init_std=0.1, heads=2, "
              "layers=1)")


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """A tiny dataset with its embeddings, popularity, V-SKNN, LLMSeqSim and a small LLM2SASRec evaluated."""
    folder = write_tiny_dataset(tmp_path_factory.mktemp("app") / "shop")
    dataset = data.load(str(folder))
    item_embeddings(dataset.catalog)
    evaluate.run(dataset, [create("popularity"), create("vsknn"), create("llmseqsim"),
                           create("llm2sasrec", **TINY_SASREC)])
    return str(folder)


def app(shop, page=None):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["dataset"] = shop
    at.run()
    assert not at.exception, at.exception
    if page:
        at.switch_page(page).run()
        assert not at.exception, at.exception
    return at


def markdown(at):
    return "\n".join(m.value for m in at.markdown)


def html_blocks(at):
    """What the page drew with st.html (titles there are HTML-escaped, never rendered)."""
    return "\n".join(element.proto.body for element in at.get("html"))


def headers(at):
    """The models whose column of picks the session builder drew, in order."""
    return re.findall(r"<h4 title='[^']*'>([^<]+)</h4>", html_blocks(at))


def picks_by_model(at):
    return dict(zip(headers(at), html_blocks(at).split("<table class='picks'>")[1:]))


def plain(text):
    """Markdown text as the browser shows it: the backslash escapes of user text (ui.text.md) removed."""
    return re.sub(r"\\(.)", r"\1", text)


# ------------------------------------------------------------------------------------------------ home
def test_home_shows_the_dataset_and_every_registered_model(shop):
    at = app(shop)
    assert at.metric[0].value == str(N_ITEMS)
    models = at.dataframe[0].value
    assert list(models["model"]) == list(REGISTRY)
    trained = dict(zip(models["model"], models["trained"]))
    assert trained["vsknn"] == "vsknn" and trained["sknn"] == "—"


def test_home_switches_to_a_bundled_dataset(shop):
    at = app(shop)
    at.radio[0].set_value("Bundled").run()
    at.selectbox[0].select("ml-100k").run()
    assert not at.exception
    assert at.metric[0].value == "1,682"


def test_upload_shows_the_data_error_then_loads_good_files(shop, tmp_path):
    at = app(shop)
    at.radio[0].set_value("Your own CSV files").run()
    bad = b"session_id,item_id,timestamp\ns1,p1,yesterday\ns1,p2,3\n"
    good_items = open(f"{shop}/items.csv", "rb").read()
    at.file_uploader[0].set_value(("my_sessions.csv", bad, "text/csv"))
    at.file_uploader[1].set_value(("my_items.csv", good_items, "text/csv"))
    at.run()
    next(b for b in at.button if b.label == "Use these files").click().run()
    assert not at.exception
    assert at.error and "my_sessions.csv: column 'timestamp' must be numbers or ISO dates" in plain(at.error[0].value)
    at.file_uploader[0].set_value(("my_sessions.csv", open(f"{shop}/interactions.csv", "rb").read(), "text/csv"))
    at.run()
    next(b for b in at.button if b.label == "Use these files").click().run()
    assert not at.exception and not at.error
    assert "upload-" in at.session_state["dataset"]
    assert at.metric[0].value == str(N_ITEMS)


def test_prepare_the_defaults_trains_them_in_the_background(tmp_path):
    folder = str(write_tiny_dataset(tmp_path / "fresh", seed=1))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["dataset"] = folder
    at.run()
    assert dict(zip(at.dataframe[0].value["model"], at.dataframe[0].value["trained"]))["sknn"] == "—"
    at.checkbox[0].uncheck()
    next(b for b in at.button if b.label == "Prepare the defaults").click().run()
    job = manager().wait(manager().jobs()[0].id, timeout=120)
    assert job.status == "done", job.error
    at.run()
    trained = dict(zip(at.dataframe[0].value["model"], at.dataframe[0].value["trained"]))
    assert trained["popularity"] == "popularity" and trained["sknn"] == "sknn" and trained["vsknn"] == "vsknn"


# ------------------------------------------------------------------------------------------------ session builder
def test_session_builder_search_add_and_every_trained_model_picks(shop):
    at = app(shop, "pages/1_Session_Builder.py")
    assert "Search and add items" in at.info[0].value
    at.text_input[0].input("ember mascara").run()
    add = [b for b in at.button if (b.key or "").startswith("add-")]
    assert add, "the search found nothing"
    add[0].click().run()
    assert not at.exception
    session = at.session_state["session"]["items"]
    assert len(session) == 1
    assert headers(at) == ["popularity", "vsknn", "llm2sasrec", "llmseqsim"]  # one column per model
    # On the tiny data item i co-occurs most with i-1 and i+1: V-SKNN's top two for the session [i]
    picks = picks_by_model(at)
    rows = picks["vsknn"].split("</tr>")[1:3]  # after the header row
    neighbours = {(session[0] - 1) % N_ITEMS, (session[0] + 1) % N_ITEMS}
    assert {int(re.search(r"no\. (\d+)<", row).group(1)) for row in rows} == neighbours
    assert "cosine similarity" in picks["llmseqsim"] and "summed neighbour similarity" in picks["vsknn"]
    assert "near session item #1" in picks["llmseqsim"]  # LLM picks carry a "why"


def test_session_builder_random_test_session_marks_the_true_next_item(shop):
    at = app(shop, "pages/1_Session_Builder.py")
    next(b for b in at.button if "Random real test session" in b.label).click().run()
    assert "<div class='true-next'>True next item: <b>" in html_blocks(at)
    assert "✓ true next" in html_blocks(at)  # at least one model has it in its top 10 on this easy data


def test_session_builder_reorder_remove_and_hide_a_model(shop):
    at = app(shop, "pages/1_Session_Builder.py")
    at.session_state["session"] = {"dataset": shop, "items": [3, 4, 5], "origin": None}
    at.run()
    at.button(key="down-0").click().run()
    assert at.session_state["session"]["items"] == [4, 3, 5]
    at.button(key="drop-2").click().run()
    assert at.session_state["session"]["items"] == [4, 3]
    at.multiselect[0].unselect("popularity").run()
    assert "popularity" not in headers(at)
    at.run()
    assert "popularity" not in headers(at) and "vsknn" in headers(at)


def link_app(shop, **params):
    """The session builder opened from a link with these query parameters (lists repeat the key)."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["dataset"] = shop
    at.run()
    for name, value in params.items():
        at.query_params[name] = value
    at.switch_page("pages/1_Session_Builder.py").run()
    assert not at.exception, at.exception
    return at


def test_a_link_reproduces_the_session_the_models_and_k(shop):
    catalog = data.load(shop).catalog
    items = [catalog.index_of[i] for i in ("p07", "p08")]
    at = link_app(shop, item=["p07", "p08"], model=["vsknn", "llmseqsim"], k="5")
    assert at.session_state["session"]["items"] == items
    assert headers(at) == ["vsknn", "llmseqsim"] and at.slider[0].value == 5
    assert all(table.count("<tr>") + table.count("<tr class") == 6 for table in picks_by_model(at).values())
    # what the page writes back is the same link (a reload of it draws the same picks)
    assert at.query_params["item"] == ["p07", "p08"] and at.query_params["model"] == ["vsknn", "llmseqsim"]
    again = link_app(shop, **{name: at.query_params[name] for name in ("item", "model", "k")})
    assert picks_by_model(again) == picks_by_model(at)


def test_an_earlier_versions_models_link_still_opens(shop):
    at = link_app(shop, models="vsknn,llmseqsim")
    assert headers(at) == [] and at.query_params["model"] == ["vsknn", "llmseqsim"]  # no session yet: no columns
    assert "models" not in at.query_params and not at.warning


def test_a_link_to_a_test_session_marks_its_true_next_item_again(shop):
    split = data.load(shop).split
    at = link_app(shop, test="3")
    assert at.session_state["session"]["items"] == [int(i) for i in split.prompts[3]]
    assert "True next item:" in html_blocks(at)
    assert at.query_params["test"] in ("3", ["3"]) and "item" not in at.query_params


def test_a_link_naming_what_is_not_there_says_so_in_one_sentence(shop):
    superscript = link_app(shop, k="²", test="²")  # digits to str.isdigit, not to int()
    assert not superscript.exception and len(superscript.warning) == 2
    at = link_app(shop, item=["p07", "nope"], model=["xyz", "vsknn"], k="99")
    warnings = [plain(w.value) for w in at.warning]
    assert any("1 item id(s) of the link are not in" in w and "nope" in w for w in warnings)
    assert any("not trained on" in w and "xyz" in w and "vsknn" in w for w in warnings)
    assert any("K “99”" in w for w in warnings)
    assert headers(at) == ["vsknn"] and at.slider[0].value == 10


def test_pin_a_session_and_see_how_each_models_picks_move(shop):
    at = app(shop, "pages/1_Session_Builder.py")
    at.session_state["session"] = {"dataset": shop, "items": [3, 4], "origin": None}
    at.run()
    next(b for b in at.button if b.label == "Pin to compare").click().run()
    at.button(key="drop-1").click().run()  # the session is now [3]
    assert any(h.value == "Compared with the pinned session" for h in at.subheader)
    moved = at.dataframe[0].value
    assert list(moved["model"]) == ["popularity", "vsknn", "llm2sasrec", "llmseqsim"]
    assert moved.set_index("model").loc["popularity", "kept"].endswith("/10")


def test_the_session_builder_prepares_the_defaults_by_itself_when_nothing_is_trained(tmp_path):
    folder = write_tiny_dataset(tmp_path / "fresh", title_suffix=" fresh")
    before = max((job.id for job in manager().jobs()), default=0)
    at = app(str(folder), "pages/1_Session_Builder.py")
    assert any("the defaults are being prepared" in i.value for i in at.info)
    started = [job for job in reversed(manager().jobs()) if job.id > before]
    assert [job.title.split(" on ")[0] for job in started] == [
        "fit the baselines", "embed the titles and fit LLMSeqSim", "evaluate the defaults"]
    at.run()  # a rerun while they run queues nothing more
    assert len([job for job in manager().jobs() if job.id > before]) == 3
    assert all(manager().wait(job.id, timeout=300).status == "done" for job in started)
    at.session_state["session"] = {"dataset": at.session_state["dataset"], "items": [3], "origin": None}
    at.run()
    assert headers(at) == ["popularity", "sknn", "vsknn", "llmseqsim"]


def test_search_without_a_match_says_so(shop):
    at = app(shop, "pages/1_Session_Builder.py")
    at.text_input[0].input("zzzzqqqq").run()
    assert any("matches “zzzzqqqq”" in i.value for i in at.info)


# ------------------------------------------------------------------------------------------------ embedding space
def test_embedding_space_shows_both_maps_and_recolours(shop):
    at = app(shop, "pages/2_Embedding_Space.py")
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # the LLM space and llm2sasrec's learned vectors
    assert any("Compute the UMAP map" in b.label for b in at.button)  # PCA until a UMAP is asked for
    at.selectbox[0].select("category").run()
    assert not at.exception
    at.session_state["session"] = {"dataset": shop, "items": [3, 4], "origin": None}
    at.run()
    at.selectbox[0].select("scores").run()
    assert not at.exception and len(at.get("plotly_chart")) == 2


# ------------------------------------------------------------------------------------------------ metrics
def test_metrics_table_cutoff_and_html_report(shop):
    at = app(shop, "pages/3_Metrics.py")
    table = at.dataframe[0].value
    assert set(table.index) == {"popularity", "vsknn", "llmseqsim", LLM2SASREC}
    assert "NDCG@20" in table.columns and "NDCG@10" not in table.columns
    at.radio[0].set_value(10).run()
    assert "NDCG@10" in at.dataframe[0].value.columns
    assert len(at.get("plotly_chart")) == 4  # bars, trade-off, by prompt length, by target popularity
    next(b for b in at.button if b.label == "Build the HTML report").click().run()
    assert at.session_state["html_report"][1].startswith("<!DOCTYPE html>")


def test_metrics_page_offers_only_what_was_measured(tmp_path):
    # A catalog never embedded: its results have no Diversity@K, and no chart may ask for it.
    folder = write_tiny_dataset(tmp_path / "plain", title_suffix=" (unembedded)")
    report = evaluate.run(data.load(str(folder)), [create("popularity"), create("vsknn")])
    assert all("Diversity@20" not in result.metrics for result in report.results.values())
    at = app(str(folder), "pages/3_Metrics.py")
    against = next(s for s in at.selectbox if s.label == "Accuracy against")
    assert "Diversity@20" not in against.options and "Coverage@20" in against.options
    for choice in against.options:
        against.set_value(choice).run()
        assert not at.exception, at.exception
    bars = next(s for s in at.selectbox if s.label == "Bar chart")
    assert "Diversity@20" not in bars.options and "NDCG@20" in bars.options


def test_metrics_page_groups_seeds_with_their_spread_and_the_toggle_splits_them(tmp_path):
    folder = write_tiny_dataset(tmp_path / "seeds", title_suffix=" (unembedded)")
    evaluate.run(data.load(str(folder)), [create("popularity"), create("vsknn"), create("vsknn", seed=1),
                                          create("vsknn", seed=2), create("vsknn", k=100)])
    at = app(str(folder), "pages/3_Metrics.py")
    assert set(at.dataframe[0].value.index) == {"popularity", "vsknn (3 seeds)", "vsknn (k=100)"}  # its own row
    table = at.dataframe[1].value  # the intervals and what was trained
    assert "±" in table.loc["vsknn (3 seeds)", "NDCG@20"] and "[" in table.loc["vsknn (k=100)", "NDCG@20"]
    assert table.loc["vsknn (3 seeds)", "trained"] == "3 (seeds 0, 1, 2)"
    assert any("standard deviation over seeds" in c.value for c in at.caption)
    next(b for b in at.button if b.label == "Build the HTML report").click().run()
    assert not at.exception, at.exception
    assert "vsknn (3 seeds)" in at.session_state["html_report"][1]
    next(t for t in at.toggle if t.label == "Group seeds").set_value(False).run()
    assert not at.exception, at.exception
    assert set(at.dataframe[0].value.index) == {"popularity", "vsknn", "vsknn (seed=1)", "vsknn (seed=2)",
                                                "vsknn (k=100)"}


# ------------------------------------------------------------------------------------------------ train
def test_train_page_runs_a_job_with_changed_options(shop):
    at = app(shop, "pages/4_Train.py")
    at.selectbox[0].select("popularity").run()
    at.checkbox(key="opt-popularity-filter_prompt_items").check()
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception
    job = manager().wait(manager().jobs()[0].id, timeout=120)
    assert job.status == "done", job.error
    at.run()
    assert "popularity (filter_prompt_items=True)" in list(at.dataframe[-1].value["model"])


def test_train_page_starts_from_the_datasets_tuned_values_or_the_papers():
    at = app("beauty", "pages/4_Train.py")
    at.selectbox[0].select("gru4rec").run()
    assert not at.exception, at.exception
    assert at.number_input(key="opt-gru4rec-max_length").value == 50  # core/models/defaults.toml, chosen on a fold
    next(r for r in at.radio if r.label == "Start from").set_value("paper").run()
    assert not at.exception, at.exception
    assert at.number_input(key="opt-gru4rec-paper-max_length").value == 20  # the paper's appendix value


def test_a_job_survives_a_page_switch_and_the_cancel_button_stops_it(shop):
    at = app(shop, "pages/4_Train.py")
    # Beauty takes seconds to load in the worker: time to switch pages and come back while it runs
    job = manager().submit(JobRequest(dataset="beauty", models=(ModelStep("sknn"),), retrain=True), title="slow",
                           owner=at.session_state["owner"])
    at.switch_page("pages/3_Metrics.py").run()
    at.switch_page("pages/4_Train.py").run()
    assert manager().get(job.id).active
    next(b for b in at.button if b.label == "Cancel").click().run()
    assert not at.exception
    assert manager().wait(job.id, timeout=60).status == "cancelled"
    assert not list((store.models_root("beauty")).glob("sknn-*"))


def test_the_train_page_has_a_form_for_every_registered_model(shop):
    at = app(shop, "pages/4_Train.py")
    for name in REGISTRY:
        at.selectbox[0].select(name).run()
        assert not at.exception, (name, at.exception)
        assert any(b.label == "Start training" for b in at.button), name


def test_a_paid_backend_needs_the_cost_confirmed(shop):
    at = app(shop, "pages/4_Train.py")
    at.selectbox[0].select("llmseqprompt").run()
    at.selectbox(key="opt-llmseqprompt-backend").select("openai")  # staged in the form until submitted
    jobs_before = len(manager().jobs())
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception
    assert at.warning and at.warning[0].value.startswith("Not started:") and "$" in at.warning[0].value
    assert len(manager().jobs()) == jobs_before  # nothing submitted, nothing spent


def test_a_damaged_saved_model_is_reported_not_fatal(tmp_path):
    from core import store

    folder = write_tiny_dataset(tmp_path / "damagedshop")
    dataset = data.load(str(folder))
    saved = store.fit_or_load(create("vsknn"), dataset).folder
    evaluate.run(dataset, [create("popularity")])
    weights = saved / "state.safetensors"
    weights.write_bytes(weights.read_bytes()[:50])  # a kill or a full disk while an older version wrote it
    at = app(str(folder))
    models = dict(zip(at.dataframe[0].value["model"], at.dataframe[0].value["trained"]))
    assert models["vsknn"] == "—" and models["popularity"] == "popularity"
    assert any("1 saved model(s) of this dataset cannot be read" in plain(c.value) for c in at.caption)
    for page in ("pages/1_Session_Builder.py", "pages/2_Embedding_Space.py", "pages/3_Metrics.py",
                 "pages/4_Train.py"):
        at.switch_page(page).run()
        assert not at.exception, (page, at.exception)


def test_without_timestamps_the_home_page_says_sessions_keep_the_file_order(tmp_path):
    import shutil

    shutil.copytree(ROOT / "tests" / "cases" / "order-only", tmp_path / "orders")
    at = app(str(tmp_path / "orders"))
    assert any("no 'timestamp' column, so sessions are taken in the file's order" in plain(c.value)
               for c in at.caption)


def test_a_variant_never_changes_the_default_models_figures_on_the_metrics_page(shop):
    dataset = data.load(shop)
    at = app(shop, "pages/3_Metrics.py")
    before = at.dataframe[0].value.loc["vsknn"].copy()
    evaluate.run(dataset, [create("vsknn", k=100)])  # the CLI's `evaluate --models vsknn --set k=100`
    at.run()
    table = at.dataframe[0].value
    assert "vsknn (k=100)" in table.index  # the variant has its own row...
    assert table.loc["vsknn"].equals(before)  # ...and the default's figures are untouched
    assert "Diversity@20" in table.columns and table.loc["vsknn", "Diversity@20"] != "–"  # the catalog is embedded


# ------------------------------------------------------------------------------------------------ tune
@pytest.fixture()
def defaults_copy(tmp_path, monkeypatch):
    """The tuned defaults in a copy the test may write to (the real file is never touched)."""
    from core.models import defaults

    copy = tmp_path / "defaults.toml"
    copy.write_text(defaults.DEFAULTS_FILE.read_text())
    monkeypatch.setattr(defaults, "DEFAULTS_FILE", copy)
    defaults._table.cache_clear()
    yield copy
    monkeypatch.undo()
    defaults._table.cache_clear()


def test_tune_page_runs_a_search_shows_its_trials_and_applies_the_best(shop, defaults_copy):
    import tomllib

    at = app(shop, "pages/5_Tune.py")
    at.selectbox[0].select("vsknn").run()
    assert "sample_size" in list(at.dataframe[0].value["option"])  # the search space, with the defaults
    at.number_input[0].set_value(3)
    next(b for b in at.button if b.label == "Start the search").click().run()
    assert not at.exception, at.exception
    job = manager().wait(manager().jobs(at.session_state["owner"])[0].id, timeout=300)
    assert job.status == "done", job.error
    at.run()
    assert not at.exception, at.exception
    trials = at.dataframe[-1].value
    assert len(trials) == 3 and trials["defaults"].iloc[0] == "yes"
    assert len(at.get("plotly_chart")) == 3  # Optuna's history, importances, parallel coordinates
    apply = [b for b in at.button if b.label.startswith("Apply these as shop's defaults")]
    if not apply:  # three trials: the defaults may still be the best, and then there is nothing to apply
        assert any(c.value.startswith("The best trial so far is the current defaults") for c in at.caption)
        assert "shop" not in tomllib.loads(defaults_copy.read_text())
        return
    apply[0].click().run()
    assert not at.exception, at.exception
    assert at.success and at.success[0].value.startswith("Applied:")
    assert set(tomllib.loads(defaults_copy.read_text())["shop"]["vsknn"]) == {"k", "sample_size", "sampling",
                                                                              "similarity", "idf_weighting", "decay"}


# ------------------------------------------------------------------------------------------------ findings
def test_findings_page_answers_from_a_saved_study_and_exports_it(shop):
    from core import study

    dataset = data.load(shop)
    result = study.run("data-size", dataset, f"python -m core study data-size --dataset {shop}",
                       models=["popularity", "llmseqsim"], fractions=[0.5, 1.0])
    study.save(result)
    table = study.summary(result).set_index("model")
    at = app(shop, "pages/6_Findings.py")
    answers = [s.value for s in at.success]
    best = table["NDCG@20 at 50%"].idxmax()
    assert any(a.startswith(f"With 50% of the train sessions the best model is {best} (NDCG@20 "
                            f"{table.loc[best, 'NDCG@20 at 50%']:.4f})") for a in answers), answers
    assert any(c.value == f"python -m core study data-size --dataset {shop}" for c in at.code)
    assert any(c.value == f"python -m core study cold-items --dataset {shlex_quote(shop)}" for c in at.code)
    next(b for b in at.button if b.label == "Build the HTML report of the findings").click().run()
    assert not at.exception, at.exception
    page = at.session_state["findings_html"]
    assert page.startswith("<!DOCTYPE html>") and "How much interaction data do the models need?" in page
    assert f"{table.loc[best, 'NDCG@20 at 50%']:.4f}" in page


def shlex_quote(text):
    import shlex

    return shlex.quote(text)


def test_home_offers_both_offline_embedding_models_with_their_size(shop):
    at = app(shop)
    model = next(s for s in at.selectbox if s.label == "Model")
    assert model.options == ["all-MiniLM-L6-v2: 22.7M parameters, 384-d", "all-mpnet-base-v2: 109.5M parameters, 768-d",
                             "Another folder…"]
    assert at.session_state["local_model"] == "all-MiniLM-L6-v2"
    model.select("all-mpnet-base-v2").run()
    assert not at.exception, at.exception
    assert plain(at.info[0].value).startswith("The catalog has no local:all-mpnet-base-v2 embeddings yet")
    assert any("embeddings: **local:all-mpnet-base-v2**" in plain(c.value) for c in at.caption)  # the sidebar
    assert any("Text fields besides the title: category" in plain(c.value) for c in at.caption)


def test_a_model_folder_that_does_not_exist_is_said_where_it_is_typed(shop, tmp_path):
    at = app(shop)
    at.selectbox(key="_w_local_model").select("Another folder…").run()
    at.text_input(key="_w_local_model_path").input(str(tmp_path / "nowhere")).run()
    assert not at.exception
    assert [plain(e.value) for e in at.error] == [
        f"{tmp_path / 'nowhere'}: no such model folder; use a folder path or one of "
        "['all-MiniLM-L6-v2', 'all-mpnet-base-v2']"]
