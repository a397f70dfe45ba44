"""2-D maps of the LLM item embeddings and of a trained model's learned item vectors, coloured by popularity,
category or a model's scores for the session; select points to see their nearest neighbours and add them."""

import numpy as np
import pandas as pd
import streamlit as st

from core.jobs import JobRequest
from core.models.base import NO_ITEM, ArtifactError, Recommender
from core.projection import Method, map_figure
from core.trained import trained_models
from ui import state
from ui.components import jobs_panel, page
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
    if st.button("Embed the catalog (background job; 1–2 min on Beauty with the local model)", type="primary"):
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

method_col, colour_col, picks_col = st.columns(3)
method: Method = method_col.radio("Map", ["umap", "pca"], horizontal=True, format_func=str.upper,
                                  key=state.bind("map_method", "umap"), on_change=state.keep, args=("map_method",))
colours = ["popularity"] + (["category"] if catalog.has_categories else []) + (["scores"] if items else [])
COLOURS = {"popularity": "popularity (log interactions)", "category": "category",
           "scores": "the chosen model's scores for the session"}
colour_by: str = colour_col.selectbox("Colour by", colours, format_func=lambda c: COLOURS[c]) or "popularity"
# The paper's headline first: item vectors a model learned from an LLM initialisation (LLM2X), then the other
# models that read the titles, then the rest (each group in registry order).
preferred = sorted(trained, key=lambda label: (not trained[label].reads_titles, label not in learned))
picks_label = picks_col.selectbox("Recommendations of", preferred or ["(no trained model)"], disabled=not trained)

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
colour = {"popularity": np.log1p(catalog.popularity), "category": catalog.categories, "scores": scores}[colour_by]


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
                        title=f"{title} · {shown}")
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

selected = list(dict.fromkeys(selected))
if not selected:
    st.caption("Click a point, or drag a box (or a lasso, from the chart's toolbar) to list the items and their "
               "nearest neighbours.")
    st.stop()
st.subheader(f"{len(selected)} selected item(s)")
index = state.item_index(dataset, vectors)
query = vectors[selected[:50]].mean(axis=0)  # the selection's centre in the LLM space
untitled = {i for i, title in enumerate(catalog.titles) if not title}  # their vector is a stand-in: no neighbours
ids, sims = index.neighbours(query, k=10, exclude=set(selected) | set(items) | untitled)
show, near = st.columns(2)
show.dataframe(pd.DataFrame({"title": [catalog.title(i) for i in selected[:50]],
                             "interactions": catalog.popularity[selected[:50]]}), hide_index=True, width="stretch")
show.button(f"Add the {min(len(selected), 20)} selected item(s) to the session", icon=":material/add:",
            on_click=state.add_items, args=(selected[:20],))
neighbours = [int(i) for i in ids[0] if i >= 0]
near.dataframe(pd.DataFrame({"nearest neighbours (faiss, cosine)": [catalog.title(i) for i in neighbours],
                             "similarity": sims[0][: len(neighbours)]}),
               hide_index=True, width="stretch",
               column_config={"similarity": st.column_config.NumberColumn(format="%.3f")})
near.button("Add the 3 nearest neighbours to the session", icon=":material/add:", on_click=state.add_items,
            args=(neighbours[:3],))
