"""What every page shares: the chosen dataset and embedding provider, the session being built, and the heavy
objects (datasets, fitted models, search index, vectors) cached per server with ``st.cache_resource``.

Streamlit forgets a widget's value when a page that does not draw it runs, so choices that must survive a
page switch live in plain session-state keys; widgets are bound to them with :func:`bind`.
"""

from __future__ import annotations

import collections
import contextlib
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from core import data, jobs, uploads
from core.embeddings import DEFAULT_LOCAL_MODEL, EmbeddingSpec, vectors_file
from core.index import ItemIndex
from core.models import load as load_saved
from core.models.base import Recommender
from core.picks import RankingPool
from core.projection import Method, cached_projection, project
from core.search import TitleSearch
from core.storage import load_npy
from core.trained import TrainedModel
from core.uploads import display_name
from ui.text import md

DEFAULT_DATASET = "beauty"


def bind(key: str, default: Any) -> str:
    """A widget key whose value is kept in ``st.session_state[key]`` across pages; pass it as the widget's
    ``key`` together with ``on_change=keep, args=(key,)``."""
    if key not in st.session_state:
        st.session_state[key] = default
    st.session_state[f"_w_{key}"] = st.session_state[key]
    return f"_w_{key}"


def keep(key: str) -> None:
    st.session_state[key] = st.session_state[f"_w_{key}"]


# ------------------------------------------------------------------------------------------------ dataset
def dataset_key() -> str:
    """The chosen data set as ``core.data.load`` takes it: a bundled name or a folder (an upload's, or the one
    ``LLMSEQ_DATASET`` names).

    A browser session starts on the URL's ``?dataset=``, else ``LLMSEQ_DATASET``, else beauty. What anyone can
    type — the URL, on a shared server — may name only bundled data sets and data sets by their content id
    (``data-<12 hex>``, :func:`dataset_query`): uploaded files, or the ``LLMSEQ_DATASET`` folder. A server path
    is never opened from a URL (it would let any visitor read the server's folders); a folder opens only from
    ``LLMSEQ_DATASET``, set by whoever starts the server, or from the command line. A name that does not open is
    refused where it is asked for: ``st.error`` with one sentence and a button to open the default, then the
    page stops — never silently replaced by beauty."""
    if "dataset" not in st.session_state:
        env = os.environ.get("LLMSEQ_DATASET", "").strip()
        try:
            st.session_state["dataset"] = first_dataset(st.query_params.get("dataset"), env)
        except data.DataError as err:
            _refuse(str(err), env)
    return st.session_state["dataset"]


def first_dataset(url_value: str | None, env: str) -> str:
    """The key a new browser session opens (:func:`dataset_key`'s rules): from ``url_value`` (``?dataset=``) when
    given, else from ``env`` (``LLMSEQ_DATASET``) when set, else beauty. Raises DataError (one sentence)."""
    if url_value is not None:
        if env and data.is_identity(url_value):
            with contextlib.suppress(data.DataError):  # the server's own folder by its id (before an upload of it)
                folder = uploads.resolve(env)
                if uploads.url_name(folder) == url_value:
                    return folder
        return uploads.resolve(url_value.strip(), folders=False)
    if env:
        try:
            return uploads.resolve(env)
        except data.DataError as err:
            raise data.DataError(f"LLMSEQ_DATASET: {err}") from None
    return DEFAULT_DATASET


def _refuse(message: str, env: str) -> None:
    """Show why the data set asked for does not open, offer the server's default instead, and stop the page."""
    try:
        fallback = uploads.resolve(env) if env else DEFAULT_DATASET
    except data.DataError:
        fallback = DEFAULT_DATASET
    st.error(md(message), icon=":material/error:")

    def open_fallback() -> None:
        st.session_state["dataset"] = fallback
        st.query_params.pop("dataset", None)

    st.button(f"Open {display_name(fallback)} instead", on_click=open_fallback, key="_open_default_dataset")
    st.stop()


def dataset_query(key: str | None = None) -> str:
    """The URL form of a data set (``?dataset=`` value; the current one when ``key`` is None): a bundled name, or
    its content id ``data-<12 hex>`` — never a server path. :func:`dataset_key` reads it back to the same data
    set (an upload, or the ``LLMSEQ_DATASET`` folder). Raises DataError when the folder's files cannot be read."""
    return uploads.url_name(key if key is not None else dataset_key())


def write_dataset_url() -> None:
    """Put the chosen data set into the page's URL (``?dataset=...``, :func:`dataset_query`), so that a reload or
    a shared link opens it again. Call it first on every page (before the sidebar): a refused ``?dataset=`` then
    shows its error in the page. A data set whose files are gone leaves the URL as it is (the page says why)."""
    try:
        value = dataset_query()
    except data.DataError:
        return
    if st.query_params.get("dataset") != value:
        st.query_params["dataset"] = value


@st.cache_resource(show_spinner="Loading the dataset…", max_entries=4)
def load_dataset(key: str) -> data.Dataset:
    return data.load(key)


def current_dataset() -> data.Dataset:
    """The chosen dataset; on a data problem the page shows the one-sentence error and stops."""
    try:
        return load_dataset(dataset_key())
    except data.DataError as err:
        st.error(md(err))
        st.stop()


@st.cache_resource(max_entries=4)
def title_search(key: str) -> TitleSearch:
    catalog = load_dataset(key).catalog
    return TitleSearch(catalog.titles, catalog.popularity)


# ------------------------------------------------------------------------------------------------ models
@st.cache_resource(show_spinner=False, max_entries=24)
def _load_model(folder: str, saved_at: float) -> Recommender:
    return load_saved(Path(folder))


def load_model(model: TrainedModel) -> Recommender:
    """A fitted model from its folder, once per server (reloaded when its weights change); raises
    ``ArtifactError`` (one sentence) when the save cannot be read."""
    return _load_model(str(model.folder), model.saved_at)


@st.cache_resource(show_spinner=False, max_entries=24)
def _learned_vectors(folder: str, saved_at: float) -> np.ndarray | None:
    return _load_model(folder, saved_at).learned_item_vectors()


def learned_vectors(model: TrainedModel) -> np.ndarray | None:
    """A trained model's own item vectors (e.g. SASRec's item table), or None; once per saved model."""
    return _learned_vectors(str(model.folder), model.saved_at)


# ------------------------------------------------------------------------------------------------ embeddings
OTHER_FOLDER = "Another folder…"


def embedding_spec() -> EmbeddingSpec:
    """The provider chosen on the home page: local (a known model by name, or a folder) or OpenAI (a model
    name). The default local model is ``model=None``, as in the models' default configs."""
    provider = st.session_state.get("embedding_provider", "local")
    if provider == "local":
        choice = st.session_state.get("local_model", DEFAULT_LOCAL_MODEL)
        model = st.session_state.get("local_model_path") if choice == OTHER_FOLDER else choice
        if model == DEFAULT_LOCAL_MODEL:
            model = None
    else:
        model = st.session_state.get("openai_model")
    return EmbeddingSpec(provider=provider, model=model.strip() if model else None)


def embedding_secrets() -> dict[str, str]:
    """The OpenAI key typed on the home page (this browser session only), for a job's worker process."""
    key = st.session_state.get("openai_key", "")
    return {"OPENAI_API_KEY": key} if key else {}


@st.cache_resource(show_spinner=False, max_entries=8)
def _load_vectors(path: str, modified: float) -> np.ndarray | None:
    return load_npy(Path(path))


def item_vectors(dataset: data.Dataset, spec: EmbeddingSpec | None = None) -> np.ndarray | None:
    """The catalog's cached embeddings for ``spec``, or None when they have not been computed or the file is
    damaged (never computes: embedding runs as a job, see the home page)."""
    path = vectors_file(dataset.catalog, spec or embedding_spec())
    try:
        modified = path.stat().st_mtime
    except OSError:
        return None
    vectors = _load_vectors(str(path), modified)
    if vectors is None or vectors.ndim != 2 or vectors.shape[0] != dataset.catalog.n_items \
            or not np.isfinite(vectors).all():
        return None
    return vectors


@st.cache_resource
def _projections() -> dict[tuple[str, str], np.ndarray]:
    return {}


def projection(source_key: str, vectors: np.ndarray, method: Method, compute: bool = False) -> np.ndarray | None:
    """2-D coordinates of ``vectors`` (identified by ``source_key``, e.g. a file and its mtime): from memory,
    else from cache/projections, else — only when ``compute`` (PCA: a second or two) — computed. A map that
    does not exist yet is not remembered as missing, so one a job computes later shows up."""
    store = _projections()
    if (source_key, method) not in store:
        coords = project(vectors, method) if compute else cached_projection(vectors, method)
        if coords is None:
            return None
        store[(source_key, method)] = coords
    return store[(source_key, method)]


@st.cache_resource(show_spinner=False, max_entries=4)
def _item_index(vectors_key: str, _vectors: np.ndarray) -> ItemIndex:
    return ItemIndex(_vectors)


def item_index(dataset: data.Dataset, vectors: np.ndarray) -> ItemIndex:
    """A faiss index over the catalog's embeddings, built once per server for each set of vectors."""
    return _item_index(embeddings_key(dataset), vectors)


def embeddings_key(dataset: data.Dataset, spec: EmbeddingSpec | None = None) -> str:
    path = vectors_file(dataset.catalog, spec or embedding_spec())
    return f"{path}:{path.stat().st_mtime if path.exists() else 0}"


# ------------------------------------------------------------------------------------------------ session
def session() -> dict[str, Any]:
    """The session being built: ``items`` (catalog indices, in order) and, when it came from the test split,
    ``origin`` = {"prompt": [...], "target": item}. Reset when the dataset changes."""
    key = dataset_key()
    current = st.session_state.get("session")
    if current is None or current["dataset"] != key:
        current = {"dataset": key, "items": [], "origin": None}
        st.session_state["session"] = current
    return current


def true_next(current: dict[str, Any]) -> int | None:
    """The real next item, while the session is still exactly the test prompt it came from."""
    origin = current.get("origin")
    if origin and current["items"] == origin["prompt"]:
        return origin["target"]
    return None


def add_items(items: list[int]) -> None:
    current = session()
    current["items"] = current["items"] + [int(i) for i in items if int(i) not in current["items"]]


@st.cache_resource
def ranking_pool() -> RankingPool:
    """Background rankings for the session builder, shared by every browser session of this server (a request
    only ever replaces its own owner's earlier requests: see ``RankingPool``)."""
    return RankingPool()


def owner() -> str:
    """This browser session's id: it owns its jobs and its rankings (other visitors never see or cancel them)."""
    if "owner" not in st.session_state:
        st.session_state["owner"] = uuid.uuid4().hex
    return st.session_state["owner"]


def job_manager() -> jobs.JobManager:
    return jobs.manager()


def dataset_label() -> str:
    return display_name(dataset_key())


@st.cache_resource(max_entries=4)
def title_twins(key: str) -> frozenset[int]:
    """Items whose title another item of the catalog shares (Beauty: 55): the pages show their ids beside the
    title so that the two can be told apart."""
    titles = load_dataset(key).catalog.titles
    counts = collections.Counter(t for t in titles if t)
    return frozenset(i for i, t in enumerate(titles) if t and counts[t] > 1)
