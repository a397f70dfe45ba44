"""2-D maps of item vectors (UMAP, or PCA as the fast fallback), cached under ``cache/projections/``.

UMAP (umap-learn, cosine metric) on Beauty's 12,101 x 384 MiniLM vectors takes about a minute and a half on
2 cores in a fresh process (most of it numba compiling), so the app computes it only when asked, in a
background job, and reads it from the cache afterwards. PCA takes a second or two and is what the map shows
until a UMAP exists. The cache key is a hash of the vectors' bytes plus the method and its parameters, so
new embeddings or a retrained model never reuse a stale map.

A trained model's own item vectors (``Recommender.learned_item_vectors``, e.g. SASRec's item table after
training) can be mapped too, so the app can show what training did to the LLM space.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from core.common import Progress, UserError
from core.models import load as load_saved
from core.storage import CACHE_DIR, atomic_save_npy, load_npy

if TYPE_CHECKING:
    import plotly.graph_objects as go

Method = Literal["umap", "pca"]
# umap-learn's defaults, but cosine
UMAP_PARAMS: dict[str, Any] = {"n_neighbors": 15, "min_dist": 0.1, "metric": "cosine"}


def cache_path(vectors: np.ndarray, method: Method, seed: int = 0) -> Path:
    digest = hashlib.sha256(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
    digest.update(json.dumps({"method": method, "seed": seed, **(UMAP_PARAMS if method == "umap" else {})},
                             sort_keys=True).encode())
    return CACHE_DIR / "projections" / f"{method}-{vectors.shape[0]}x{vectors.shape[1]}-{digest.hexdigest()[:16]}.npy"


def cached_projection(vectors: np.ndarray, method: Method, seed: int = 0) -> np.ndarray | None:
    """The cached 2-D coordinates, or None when this map has never been computed or its file is damaged (never
    computes)."""
    coords = load_npy(cache_path(vectors, method, seed))
    if coords is None or coords.shape != (len(vectors), 2) or not np.isfinite(coords).all():
        return None
    return coords


def project(vectors: np.ndarray, method: Method = "pca", seed: int = 0,
            progress: Progress | None = None) -> np.ndarray:
    """(n, 2) float32 coordinates of ``vectors``, from the cache or computed and cached."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    cached = cached_projection(vectors, method, seed)
    if cached is not None:
        return cached
    if method not in ("umap", "pca"):
        raise UserError(f"unknown projection '{method}'; use 'umap' or 'pca'")
    if len(vectors) < 3:
        raise UserError(f"a map needs at least 3 items, got {len(vectors)}")
    if progress:
        progress(0, 1, f"{method.upper()} of {len(vectors):,} items")
    if method == "pca":
        from sklearn.decomposition import PCA

        coords = PCA(n_components=2, random_state=seed).fit_transform(vectors)
    else:
        import umap

        neighbours = min(UMAP_PARAMS["n_neighbors"], len(vectors) - 1)
        reducer = umap.UMAP(n_components=2, random_state=seed, n_jobs=1,
                            **{**UMAP_PARAMS, "n_neighbors": neighbours})
        coords = reducer.fit_transform(vectors)
    coords = np.asarray(coords, dtype=np.float32)
    atomic_save_npy(cache_path(vectors, method, seed), coords)
    if progress:
        progress(1, 1, f"{method.upper()} done")
    return coords


def source_vectors(dataset: Any, source: str, embedding: dict[str, Any] | None = None) -> np.ndarray:
    """The vectors a map shows: ``"embeddings"`` (the catalog's LLM embeddings for ``embedding``, an
    EmbeddingSpec as a dict) or the folder of a trained model (its learned item vectors)."""
    if source == "embeddings":
        from core.embeddings import EmbeddingSpec, item_embeddings

        return item_embeddings(dataset.catalog, EmbeddingSpec(**(embedding or {})))
    model = load_saved(Path(source))
    vectors = model.learned_item_vectors()
    if vectors is None:
        raise UserError(f"{model.name} has no item vectors to map")
    return vectors



MAX_CATEGORIES = 12  # more legend entries than this are unreadable; the rest become "other"
UNSELECTED = dict(marker=dict(opacity=0.3))  # a selection dims the other items, but they stay visible


def map_figure(coords: np.ndarray, titles: list[str], colour: np.ndarray | list[str] | None = None,
               colour_name: str = "", session: list[int] | None = None, picks: list[int] | None = None,
               title: str = "", highlight: int | None = None, max_categories: int = MAX_CATEGORIES) -> "go.Figure":
    """A scatter of every item (hover: its title; ``customdata``: its item index, for selection events), coloured
    by a number per item or, when ``colour`` holds strings, by category (the ``max_categories`` largest get a
    legend entry, the rest are "other"); the session's items (numbered stars), recommended items (diamonds)
    and a ``highlight``-ed item (a large ring and its title: a search hit) drawn on top. Every trace is WebGL:
    an SVG trace would be drawn under the WebGL points.

    Clicking a point selects it: the figure's drag mode is zoom, because Streamlit turns plotly's click
    selection off (``clickmode="event"``) whenever the drag mode is box or lasso select, and with
    ``dragmode="select"`` a click selected nothing. Box and lasso selection stay one click away in the toolbar.
    """
    import plotly.colors
    import plotly.graph_objects as go

    from core.report import plotly_text

    n_items = len(coords)
    ids = np.arange(n_items)
    # Plotly renders <b>, <a href>, <br>... in texts: titles are escaped, so they show exactly as in the file.
    short = np.array([plotly_text(t if len(t) <= 80 else t[:79] + "…") for t in titles], dtype=object)
    hover = "%{text}<extra></extra>"
    figure = go.Figure()
    if colour is not None and len(colour) and isinstance(colour[0], str):
        labels = np.array([plotly_text(c) if c else "(none)" for c in colour], dtype=object)
        values, counts = np.unique(labels, return_counts=True)
        kept = set(values[np.argsort(-counts, kind="stable")][:max_categories])
        labels = np.array([c if c in kept else "other" for c in labels], dtype=object)
        categories = sorted(set(labels), key=lambda c: (c == "other", c))
        if len(categories) > 10:  # plotly's default ten colours would repeat: 24 dark ones (readable on white)
            figure.update_layout(colorway=plotly.colors.qualitative.Dark24 + plotly.colors.qualitative.Alphabet)
        for category in categories:
            mask = labels == category
            figure.add_trace(go.Scattergl(x=coords[mask, 0], y=coords[mask, 1], mode="markers", name=category,
                                          customdata=ids[mask], text=short[mask], hovertemplate=hover,
                                          marker=dict(size=4, opacity=0.65), unselected=UNSELECTED))
    else:
        marker = dict(size=4, opacity=0.7, color="#7f8c9a")
        if colour is not None:
            marker.update(color=np.asarray(colour, dtype=float), colorscale="Viridis", showscale=True,
                          colorbar=dict(title=dict(text=colour_name, side="right"), thickness=12))
        figure.add_trace(go.Scattergl(x=coords[:, 0], y=coords[:, 1], mode="markers", name="items",
                                      customdata=ids, text=short, hovertemplate=hover, marker=marker,
                                      unselected=UNSELECTED, showlegend=False))
    if picks:
        picks = list(picks)
        figure.add_trace(go.Scattergl(x=coords[picks, 0], y=coords[picks, 1], mode="markers", name="recommended",
                                      customdata=picks, text=short[picks], hovertemplate=hover,
                                      marker=dict(symbol="diamond", size=11, color="#e4572e",
                                                  line=dict(width=1, color="white")),
                                      unselected=dict(marker=dict(opacity=1.0))))
    if highlight is not None:
        figure.add_trace(go.Scattergl(x=coords[[highlight], 0], y=coords[[highlight], 1], mode="markers",
                                      name="found", customdata=[highlight], text=short[[highlight]],
                                      hovertemplate=hover, showlegend=False,
                                      marker=dict(symbol="circle-open", size=26, color="#d6249f",
                                                  line=dict(width=4, color="#d6249f")),
                                      unselected=dict(marker=dict(opacity=1.0))))
        found = titles[highlight] if len(titles[highlight]) <= 50 else titles[highlight][:49] + "…"
        figure.add_annotation(x=float(coords[highlight, 0]), y=float(coords[highlight, 1]),
                              text=f"<b>{plotly_text(found)}</b>", showarrow=True,
                              arrowhead=2, arrowcolor="#d6249f", ax=0, ay=-45, font=dict(size=12, color="#111"),
                              bgcolor="rgba(255,255,255,0.85)", bordercolor="#d6249f")
    if session:
        session = list(session)
        figure.add_trace(go.Scattergl(x=coords[session, 0], y=coords[session, 1], mode="markers+text",
                                    name="session", customdata=session, text=[str(i + 1) for i in range(len(session))],
                                    hovertext=short[session], hovertemplate="%{hovertext}<extra></extra>",
                                    textposition="top center", textfont=dict(size=12, color="#111"),
                                    marker=dict(symbol="star", size=15, color="#ffd166",
                                                line=dict(width=1.5, color="#111")),
                                    unselected=dict(marker=dict(opacity=1.0))))
    figure.update_layout(title=dict(text=plotly_text(title), font=dict(size=15)), height=600,
                         margin=dict(t=40, b=10, l=10, r=10),
                         legend=dict(orientation="h", yanchor="bottom", y=-0.12, font=dict(size=11)),
                         plot_bgcolor="white", dragmode="zoom")
    figure.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    figure.update_yaxes(showticklabels=False, showgrid=False, zeroline=False)
    return figure


SUMMARY_THRESHOLD = 500  # a selection larger than this is summarised on the page, not listed item by item


def most_popular(items: list[int] | np.ndarray, popularity: np.ndarray, n: int = 10) -> list[int]:
    """The ``n`` items of ``items`` with the most interactions (``popularity``: (n_items,) counts), most first;
    ties by item index."""
    chosen = np.unique(np.asarray(items, dtype=np.int64))
    order = np.lexsort((chosen, -np.asarray(popularity)[chosen]))
    return [int(i) for i in chosen[order][:n]]
