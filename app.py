"""The app's entry point and home page: choose the dataset (bundled or your own CSVs) and the embedding provider,
see what is trained, and prepare the fast defaults in one click. The other pages are the scripts in pages/
(Streamlit's pages directory); ``ui.components.page`` draws every page's frame and menu."""

import os

import pandas as pd
import streamlit as st

from core import data, uploads
from core.embeddings import (
    DEFAULT_LOCAL_MODEL,
    LOCAL_MODELS,
    OPENAI_DIMENSIONS,
    OPENAI_MODELS,
    EmbeddingSpec,
    cached_vectors,
    embedding_notes,
    folder_problem,
    model_state,
)
from core.evaluate import load_results
from core.models import REGISTRY
from core.trained import trained_models, untrained_names
from core.uploads import readable_note, save_upload
from ui import state
from ui.components import how_to_train, jobs_panel, page, prepare_defaults
from ui.text import md

OWN_FILES = "Your own CSV files"


def choose_bundled() -> None:
    state.keep("bundled")
    st.session_state["dataset"] = st.session_state["bundled"]


def in_use() -> None:
    """Which of the user's data sets is open, and its id: the same two files uploaded, given as a folder
    (LLMSEQ_DATASET, the command line) or as --interactions/--items are one data set, with one set of models."""
    try:
        identity = state.dataset_query()
    except data.DataError:
        return  # the files are gone: loading the data set says so
    where = "" if uploads.upload_folder(identity) else f" (folder {md(state.dataset_key())})"
    st.caption(f"Using **{md(state.dataset_label())}**{where}, data set `{identity}`: the same two files, uploaded "
               "here or given to the command line (`--dataset FOLDER` or `--interactions FILE --items FILE`), are "
               "this data set and share its trained models.")


def dataset_section() -> data.Dataset:
    st.subheader("1 · Dataset")
    key = state.dataset_key()
    source = st.radio("Source", ["Bundled", OWN_FILES], horizontal=True, label_visibility="collapsed",
                      key=state.bind("dataset_source", "Bundled" if key in data.BUNDLED else OWN_FILES),
                      on_change=state.keep, args=("dataset_source",))
    if source == "Bundled":
        st.selectbox("Dataset", list(data.BUNDLED), format_func=lambda n: f"{n} — {data.BUNDLED[n]}",
                     key=state.bind("bundled", key if key in data.BUNDLED else state.DEFAULT_DATASET),
                     on_change=choose_bundled)
        if key not in data.BUNDLED:
            choose_bundled()
    else:
        st.caption("Interactions: `session_id` (or `user_id`), `item_id`, `timestamp` and/or `order`. "
                   "Items: `item_id`, `title`, optional `category`. `.csv` or `.csv.gz` (comma, tab or semicolon; "
                   f"at most {data.UPLOAD_LIMITS.max_bytes // 1024**2} MB and "
                   f"{data.UPLOAD_LIMITS.max_rows:,} lines a file once decompressed). Without a `timestamp` "
                   "column, sessions are taken in the file's order, oldest first.")
        files = st.columns(2)
        interactions = files[0].file_uploader("Interactions CSV", type=["csv", "gz"])
        items = files[1].file_uploader("Items CSV", type=["csv", "gz"])
        if st.button("Use these files", disabled=not (interactions and items)) and interactions and items:
            try:
                folder = save_upload(interactions.getvalue(), interactions.name, items.getvalue(), items.name)
                st.session_state["dataset"] = str(folder)
            except data.DataError as err:
                st.error(md(err))
        if state.dataset_key() in data.BUNDLED:
            st.info(f"Still using the bundled **{state.dataset_key()}** until your files load.")
        else:
            in_use()
    dataset = state.current_dataset()
    cols = st.columns(4)
    cols[0].metric("Items", f"{dataset.catalog.n_items:,}")
    cols[1].metric("Train sessions", f"{len(dataset.split.train):,}")
    cols[2].metric("Test sessions", f"{dataset.split.n_test:,}")
    cols[3].metric("Validation folds", len(dataset.folds))
    for note in dataset.warnings:  # what validation fixed or dropped, with file names (not cache paths)
        st.caption(f":material/info: {md(readable_note(note, state.dataset_key()))}")
    return dataset


def embeddings_section(dataset: data.Dataset) -> EmbeddingSpec:
    st.subheader("2 · Item embeddings")
    provider = st.radio("Provider", ["local", "openai"], horizontal=True,
                        format_func={"local": "Local (offline)", "openai": "OpenAI"}.get,
                        key=state.bind("embedding_provider", "local"), on_change=state.keep,
                        args=("embedding_provider",))
    if provider == "local":
        choice = st.selectbox("Model", [*LOCAL_MODELS, state.OTHER_FOLDER],
                              format_func=lambda name: LOCAL_MODELS[name].summary if name in LOCAL_MODELS else name,
                              key=state.bind("local_model", DEFAULT_LOCAL_MODEL), on_change=state.keep,
                              args=("local_model",),
                              help="Both run offline; all-mpnet-base-v2 is ~7x slower to embed on a CPU (Beauty: "
                                   "~15 min). Compare them: `python -m core study embedding-size`.")
        if choice == state.OTHER_FOLDER:
            path = st.text_input("Model folder", placeholder="/path/to/a/sentence-transformers/model",
                                 help="Any local sentence-transformers folder, to compare embedding models.",
                                 key=state.bind("local_model_path", ""), on_change=state.keep,
                                 args=("local_model_path",))
            problem = folder_problem(path.strip()) if path.strip() else None
            if problem:
                st.error(md(problem))
        else:
            st.caption(f"{md(LOCAL_MODELS[choice].summary)} · {md(model_state(LOCAL_MODELS[choice]))}")
    else:
        st.selectbox("Model", OPENAI_MODELS, key=state.bind("openai_model", OPENAI_MODELS[0]),
                     on_change=state.keep, args=("openai_model",), help="text-embedding-ada-002 is the paper's.",
                     format_func=lambda name: f"{name} ({OPENAI_DIMENSIONS[name]}-d)")
        if os.environ.get("OPENAI_API_KEY"):
            st.caption("Using `OPENAI_API_KEY` from the environment.")
        else:
            st.text_input("OpenAI API key", type="password", key=state.bind("openai_key", ""),
                          on_change=state.keep, args=("openai_key",),
                          help="Kept in this browser session's memory only; never written anywhere.")
            if not st.session_state.get("openai_key"):
                st.warning("Type a key (or set OPENAI_API_KEY) to embed with OpenAI.")
    spec = state.embedding_spec()
    if dataset.catalog.text_fields:
        st.caption(f"Text fields besides the title: {md(', '.join(dataset.catalog.text_fields))}. The models embed "
                   "the title only unless their option `embedding_fields` names some (Train page); compare both "
                   "with `python -m core study item-text` (Findings page).")
    if cached_vectors(dataset.catalog, spec) is not None:
        st.success(f"Catalog embedded with {md(spec.label)}.", icon=":material/check_circle:")
        for note in embedding_notes(dataset.catalog, spec):
            st.caption(f":material/info: {md(note)}")
    else:
        st.info(f"The catalog has no {md(spec.label)} embeddings yet: “Prepare the defaults” computes them.")
    return spec


def models_section(dataset: data.Dataset, spec: EmbeddingSpec) -> None:
    st.subheader("3 · Models")
    damaged: list[str] = []
    trained = trained_models(dataset, damaged)
    results = load_results(dataset)
    rows = []
    for name, (_, _, description) in REGISTRY.items():
        saves = [m for m in trained if m.name == name]
        figures = results[name].metrics if name in results else {}  # the default config's result
        fit = saves[0].fit_seconds if saves else None
        rows.append({"model": name, "what": description, "trained": ", ".join(m.label for m in saves) or "—",
                     "fit s": "—" if fit is None else f"{fit:.1f}",
                     **{key: f"{figures[key]:.4f}" if key in figures else "—" for key in ("NDCG@20", "HR@20")}})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", height=36 * (len(rows) + 1) + 2)
    if damaged:
        st.caption(f":material/warning: {len(damaged)} saved model(s) of this dataset cannot be read (damaged or "
                   "written by another version); they are left out and fitted again when trained.")
    button, embed_box = st.columns([1, 3], vertical_alignment="center")
    embed = embed_box.checkbox("Also embed the catalog and fit LLMSeqSim (the bundled datasets ship their "
                               "MiniLM vectors: seconds; your own files: ~100 titles/s on this CPU)", value=True)
    if button.button("Prepare the defaults", type="primary", icon=":material/bolt:",
                     help="Fit popularity, SKNN and V-SKNN (seconds each on Beauty), then evaluate them for the "
                          "dashboards (~1 min on Beauty). The Session builder starts this by itself when "
                          "nothing is trained yet."):
        prepare_defaults(embed)
    jobs_panel()
    missing = untrained_names(dataset, trained)
    if missing:
        with st.expander(f"{len(missing)} registered model(s) not trained on this dataset"):
            st.markdown(how_to_train(missing))
    if trained:
        st.page_link("pages/1_Session_Builder.py", label="Build a session and compare the trained models",
                     icon=":material/arrow_forward:")


def home() -> None:
    st.title("LLM-enhanced sequential recommendation")
    st.caption("Boz et al., *Improving Sequential Recommendations with LLMs* (arXiv 2402.01339) — every model "
               "ranks the full catalog for a session and predicts its next item. Runs offline on a CPU.")
    left, right = st.columns([3, 2], gap="large")
    with left:
        dataset = dataset_section()
    with right:
        spec = embeddings_section(dataset)
    models_section(dataset, spec)


page("Home")
home()
