"""2-D maps of the LLM item embeddings and of a trained model's learned item vectors, coloured by popularity,
category, topic (k-means over the embeddings) or a model's scores for the session. Click a point (or find an
item by title) to see its nearest neighbours; a box or lasso lists the items, or summarises a large selection.
"""

import html

import numpy as np
import pandas as pd
import streamlit as st

from core.common import UserError
from core.jobs import JobRequest
from core.models.base import NO_ITEM, ArtifactError, Recommender
from core.projection import SUMMARY_THRESHOLD, Method, map_figure, most_popular
from core.topics import DEFAULT_TOPICS, MAX_TOPICS, Topics, topics
from core.trained import trained_models
from ui import state
from ui.components import duration, jobs_panel, page
from ui.text import md

page("Embedding space")
st.title("Embedding space")
dataset = state.current_dataset()
catalog = dataset.catalog
spec = state.embedding_spec()
items = state.session()["items"]
embedding = {"provider": spec.provider, "model": spec.model}

vectors = state.item_vectors(dataset)
if vectors is None:
    st.info(f"The catalog has no {md(spec.label)} embeddings yet.")
    # measured here: ~100 titles/s with MiniLM on the 2 cores (README); the bundled datasets ship their vectors
    if st.button(f"Embed the catalog's {catalog.n_items:,} titles (background job; ~{duration(catalog.n_items / 100)} "
                 "with the local model)", type="primary"):
        state.job_manager().submit(JobRequest(dataset=state.dataset_key(), embed=embedding),
                                   title=f"embed {state.dataset_label()}", secrets=state.embedding_secrets(),
                                   owner=state.owner())
    jobs_panel()
    st.stop()

trained = {m.label: m for m in trained_models(dataset)}
learned = {}  # label -> (model folder, its learned item vectors), when they differ from the LLM vectors
for label, saved in list(trained.items()):
    try:
        own = state.learned_vectors(saved)
    except ArtifactError:  # a damaged save: left out here (the Home page counts it)
        del trained[label]
        continue
    if own is not None and not (own.shape == vectors.shape and np.array_equal(own, vectors)):
        learned[label] = (saved, own)



@st.cache_resource(show_spinner="Finding topics (k-means over the item embeddings)…", max_entries=8)
def item_topics(vectors_key: str, k: int, _vectors: np.ndarray, _titles: tuple[str, ...]) -> Topics:
    return topics(_vectors, list(_titles), k=k)


def catalog_topics(space: np.ndarray) -> Topics | None:
    """The topics of the catalog's LLM vectors ``space`` for the chosen k (cached per embeddings file and k), or
    None with the reason shown."""
    try:
        return item_topics(state.embeddings_key(dataset), int(st.session_state["map_topics"]), space,
                           tuple(catalog.titles))
    except UserError as err:
        st.error(md(err))
        return None


method_col, colour_col, picks_col = st.columns(3)
method: Method = method_col.radio("Map", ["umap", "pca"], horizontal=True, format_func=str.upper,
                                  key=state.bind("map_method", "umap"), on_change=state.keep, args=("map_method",))
colours = (["popularity"] + (["category"] if catalog.has_categories else []) + ["topic"]
           + (["scores"] if items else []))
COLOURS = {"popularity": "popularity (log interactions)", "category": "category",
           "topic": "topic (k-means over the embeddings)", "scores": "the chosen model's scores for the session"}
colour_by: str = colour_col.selectbox("Colour by", colours, format_func=lambda c: COLOURS[c]) or "popularity"
most_topics = max(2, min(MAX_TOPICS, catalog.n_items))
state.bind("map_topics", min(DEFAULT_TOPICS, most_topics))
if colour_by == "topic":
    colour_col.number_input("Topics (k)", min_value=2, max_value=most_topics, step=1, key="_w_map_topics",
                            on_change=state.keep, args=("map_topics",),
                            help="k-means clusters of the item embeddings, each named by its most distinctive "
                                 "title words (c-TF-IDF); computed once per k and cached.")
# The paper's headline first: item vectors a model learned from an LLM initialisation (LLM2X), then the other
# models that read the titles, then the rest (each group in registry order).
preferred = sorted(trained, key=lambda label: (not trained[label].reads_titles, label not in learned))
picks_label = picks_col.selectbox("Recommendations of", preferred or ["(no trained model)"], disabled=not trained)

search_col, match_col = st.columns([1, 2])
query = search_col.text_input("Find an item on the map (typos are fine)", key="map_search",
                              placeholder=f"e.g. {catalog.title(int(np.argmax(catalog.popularity)))[:30]}")
matches = state.title_search(state.dataset_key()).search(query, limit=8)
found: int | None = None
if query.strip() and not matches:
    search_col.caption(f"No title matches “{md(query.strip())}”.")
elif matches:  # options are shown as plain text, never Markdown
    found = match_col.selectbox("Shown on the map", [m.item for m in matches], format_func=catalog.title,
                                help="The best matches for the search, best first.")

picks: list[int] = []
scores: np.ndarray | None = None
if items and picks_label in trained:
    model: Recommender | None = None
    try:
        model = state.load_model(trained[picks_label])
    except ArtifactError as err:
        st.error(md(f"{err}; train it again on the Train page."))
    if model is not None:
        ranked, values = model.recommend([items], catalog.n_items, exclude_seen=True)
        picks = [int(i) for i in ranked[0, :10] if i != NO_ITEM]
        scores = np.full(catalog.n_items, np.nan)
        finite = np.isfinite(values[0]) & (ranked[0] != NO_ITEM)
        scores[ranked[0][finite]] = values[0][finite]
topic_map = catalog_topics(vectors) if colour_by == "topic" else None
colour = {"popularity": np.log1p(catalog.popularity), "category": catalog.categories, "scores": scores,
          "topic": topic_map.item_names() if topic_map else None}[colour_by]


def draw(column, key: str, source_key: str, source_vectors: np.ndarray, title: str, source: str) -> list[int]:
    """One map; returns the item indices selected on it (click, box or lasso)."""
    coords = state.projection(source_key, source_vectors, method, compute=method == "pca")
    shown = method.upper()
    if coords is None:  # no UMAP yet: PCA meanwhile, and offer to compute it in the background
        coords, shown = state.projection(source_key, source_vectors, "pca", compute=True), "PCA"
        assert coords is not None  # PCA is computed when missing
        if column.button("Compute the UMAP map (1–2 min, in the background)", key=f"umap-{key}",
                         icon=":material/scatter_plot:", help=f"UMAP (cosine) of {title}, cached under cache/"):
            request = JobRequest(dataset=state.dataset_key(),
                                 projections=({"source": source, "method": "umap", "embedding": embedding},))
            state.job_manager().submit(request, title=f"UMAP of {title}", secrets=state.embedding_secrets(),
                                       owner=state.owner())
    figure = map_figure(coords, catalog.titles, colour, colour_by, session=items, picks=picks,
                        title=f"{title} · {shown}", highlight=found,
                        max_categories=topic_map.k if topic_map else 12)
    event = column.plotly_chart(figure, key=key, on_select="rerun", selection_mode=("points", "box", "lasso"),
                                width="stretch")
    chosen = []
    for point in event.selection.points if event else []:
        value = point.get("customdata")
        value = value[0] if isinstance(value, list) else value
        if value is not None:
            chosen.append(int(value))
    return chosen


left, right = st.columns(2)
selected = draw(left, "map-llm", state.embeddings_key(dataset), vectors, f"LLM embeddings ({spec.model_name})",
                "embeddings")
if learned:
    choices = [label for label in preferred if label in learned]
    choice = right.selectbox("Learned item vectors of", choices)
    saved, own = learned[choice]
    selected += draw(right, "map-learned", f"{saved.folder}:{saved.saved_at}", own, f"{choice} after training",
                     str(saved.folder))
else:
    right.info("Train a sequential model (sasrec, llm2sasrec, …) on the Train page to map its learned item "
               "vectors here and see what training did to the LLM space.")
jobs_panel(limit=2)

TABLE = "width:100%;border-collapse:collapse;font-size:0.88rem"


def items_table(rows: list[int], first: str = "", values: list[str] | None = None, name: str = "map-items") -> str:
    """Items as an HTML table for ``st.html``: an optional first column (e.g. the similarity), the title (escaped,
    wrapping, so nothing needs a horizontal scroll) and the item's interactions."""
    head = (f"<th style='text-align:right;padding-right:8px'>{html.escape(first)}</th>" if first else "") + \
        "<th style='text-align:left'>title</th><th style='text-align:right'>interactions</th>"
    body = "".join(
        "<tr style='border-top:1px solid #eee'>"
        + (f"<td style='text-align:right;padding-right:8px'>{values[n]}</td>" if first and values else "")
        + f"<td class='title'>{html.escape(catalog.title(i))}</td>"
        f"<td style='text-align:right'>{catalog.popularity[i]:,}</td></tr>" for n, i in enumerate(rows))
    return f"<table class='{name}' style='{TABLE}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def neighbours_of(space: np.ndarray, query: np.ndarray, skip: set[int], where) -> None:
    """The 10 items nearest to ``query`` (a vector) in the LLM space ``space`` (the catalog's vectors), with their
    cosine similarity, and a button."""
    untitled = {i for i, title in enumerate(catalog.titles) if not title}  # their vector is a stand-in
    index = state.item_index(dataset, space)
    ids, sims = index.neighbours(query, k=10, exclude=skip | set(items) | untitled)
    near = [int(i) for i in ids[0] if i >= 0]
    where.markdown(f"**Nearest neighbours** in the LLM space ({md(spec.model_name)}, cosine)")
    if index.kind != "exact":  # an approximate index: say how close to exact search it measured itself
        where.caption(md(index.report.line()))
    where.html(items_table(near, "cosine", [f"{s:.3f}" for s in sims[0][: len(near)]], name="map-items neighbours"))
    where.button("Add the 3 nearest neighbours to the session", icon=":material/add:", on_click=state.add_items,
                 args=(near[:3],), key="add-neighbours")


def share(part: int, whole: int) -> str:
    return "<1%" if part * 100 < whole else f"{part / whole:.0%}"


selected = list(dict.fromkeys(selected))
focus = selected[0] if len(selected) == 1 else (found if not selected else None)
if focus is not None:  # one item: clicked on a map, or found by the search
    about, near_col = st.columns([2, 3])
    about.subheader("Selected item" if selected else "Found item")
    about.html(f"<div class='focus-title' style='font-size:1.05rem'><b>{html.escape(catalog.title(focus))}</b>"
               f"</div><small style='color:#666'>{catalog.popularity[focus]:,} interactions</small>")
    about.button("Add it to the session", icon=":material/add:", on_click=state.add_items, args=([focus],),
                 disabled=focus in items, key="add-focus")
    neighbours_of(vectors, vectors[focus], {focus}, near_col)
elif len(selected) > SUMMARY_THRESHOLD:  # too many to read: who they are, in brief
    st.subheader(f"{len(selected):,} selected items")
    st.caption(f"More than {SUMMARY_THRESHOLD} items: their most popular and their topics. Drag a smaller box "
               "(or zoom in first) to list the items themselves.")
    popular_col, topics_col = st.columns([3, 2])
    top = most_popular(selected, catalog.popularity, 10)
    popular_col.markdown("**Most popular**")
    popular_col.html(items_table(top))
    popular_col.button("Add the 3 most popular to the session", icon=":material/add:", on_click=state.add_items,
                       args=(top[:3],), key="add-popular")
    summary_topics = topic_map or catalog_topics(vectors)
    if summary_topics is not None:
        counts = summary_topics.counts(selected)
        topics_col.markdown(f"**Topics** (of {summary_topics.k})")
        topics_col.html(f"<table class='map-topics' style='{TABLE}'><tbody>" + "".join(
            f"<tr style='border-top:1px solid #eee'><td>{html.escape(summary_topics.name(t))}</td>"
            f"<td style='text-align:right'>{n:,}</td><td style='text-align:right;color:#666'>"
            f"{html.escape(share(n, len(selected)))}</td></tr>" for t, n in counts[:8]) + "</tbody></table>")
elif selected:
    st.subheader(f"{len(selected)} selected items")
    listed, near_col = st.columns(2)
    listed.dataframe(pd.DataFrame({"title": [catalog.title(i) for i in selected],
                                   "interactions": catalog.popularity[selected]}),
                     hide_index=True, width="stretch", height=min(400, 38 + 35 * len(selected)))
    listed.button(f"Add the {min(len(selected), 20)} selected item(s) to the session", icon=":material/add:",
                  on_click=state.add_items, args=(selected[:20],), key="add-selected")
    neighbours_of(vectors, vectors[selected].mean(axis=0), set(selected), near_col)  # around the selection's centre
else:
    st.caption("Click a point, or search an item above, to see its nearest neighbours. To list many items, pick "
               "box or lasso select in the chart's toolbar and drag; drag (zoom) and double-click (reset) to "
               "look closer.")
