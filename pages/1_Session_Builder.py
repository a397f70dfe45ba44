"""Build a session (search, add, reorder, remove, or a random real test session) and compare every trained
model's top-K side by side. The view lives in the URL (``ui.link``): a link reproduces it. A session can be
pinned to see how each model's picks move when the session changes, and exported with every model's picks."""

import html
import json
from concurrent.futures import Future, wait
from urllib.parse import urlencode

import numpy as np
import pandas as pd
import streamlit as st

from core.models.base import ArtifactError
from core.picks import Ranking, assemble, export_rows, export_session, overlap
from core.trained import TrainedModel, trained_models, untrained_names
from ui import link, state
from ui.components import (
    LEGEND,
    PICKS_CSS,
    how_to_train,
    item_hover,
    jobs_panel,
    page,
    picks_columns,
    prepare_defaults,
    rerun_when_done,
)
from ui.text import md

page("Session builder")
st.title("Session builder")
dataset = state.current_dataset()
catalog = dataset.catalog
key = state.dataset_key()
current = state.session()
twins = state.title_twins(key)
trained = trained_models(dataset)
SHOWN = 12  # session items listed with controls; earlier ones fold away
WAIT_SECONDS = 1.0  # the page waits at most this long for the rankings...
QUICK_SECONDS = 0.3  # ...and only for models that took less than this last time (a generative one fills in later)

# ------------------------------------------------------------------------------------------------ the link
if st.session_state.get("link_read") != key:  # once per browser session and dataset: what the URL asks for
    st.session_state["link_read"] = key
    wanted, st.session_state["link_problems"] = link.read(dataset, trained, state.dataset_label())
    if wanted["items"]:
        current.update(items=wanted["items"], origin=wanted["origin"])
    if wanted["models"]:
        st.session_state["hidden_models"] = sorted({m.label for m in trained} - set(wanted["models"]))
    if wanted["k"]:
        st.session_state["top_k"] = wanted["k"]
for problem in st.session_state.get("link_problems", []):
    st.warning(md(problem), icon=":material/link_off:")


def move(position: int, step: int) -> None:
    items = current["items"]
    other = position + step
    if 0 <= other < len(items):
        items[position], items[other] = items[other], items[position]


def remove(position: int) -> None:
    current["items"] = current["items"][:position] + current["items"][position + 1:]


def random_test_session() -> None:
    split = dataset.split
    row = int(np.random.default_rng().integers(split.n_test))
    prompt = [int(i) for i in split.prompts[row]]
    current.update(items=list(prompt), origin={"prompt": prompt, "target": int(split.targets[row]), "row": row})


def clear() -> None:
    current.update(items=[], origin=None)


def pin() -> None:
    st.session_state["pinned"] = {"dataset": key, "items": list(current["items"]), "origin": current["origin"]}


def unpin() -> None:
    st.session_state.pop("pinned", None)


def title_html(item: int) -> str:
    """A title as the file has it (escaped), with its id beside it when another item has the same title."""
    twin = f" <small style='color:#888'>· id {html.escape(str(catalog.item_ids[item]))}</small>" \
        if item in twins else ""
    return f"<span title='{html.escape(item_hover(catalog, item))}'>{html.escape(catalog.title(item))}</span>{twin}"


find, built = st.columns(2, gap="large")
with find:
    st.html("<span class='search-panel'></span>")  # marks the column (ui.components.page: narrow pages stack)
    st.subheader("Find items")
    example = " ".join(catalog.title(int(np.argmax(catalog.popularity))).split(",")[0].split()[:4])
    query = st.text_input("Search the catalog by title (typos are fine)", placeholder=f"e.g. {example}")
    matches = state.title_search(key).search(query, limit=6)
    if query.strip() and not matches:
        st.info(f"No title in {md(state.dataset_label())} matches “{md(query.strip())}”: try fewer or other words.",
                icon=":material/search_off:")
    for match in matches:
        with st.container(horizontal=True, vertical_alignment="center", wrap=False):
            about = " · ".join(x for x in (catalog.categories[match.item],
                                           f"{catalog.popularity[match.item]:,} interactions") if x)
            # titles and categories are the file's text: escaped, never rendered as HTML or Markdown
            st.html(f"<div class='search-hit'><div class='hit-title'>{title_html(match.item)}</div>"
                    f"<small style='color:#888'>{html.escape(about)}</small></div>")
            st.button(":material/add:", key=f"add-{match.item}", help="Add to the session",
                      on_click=state.add_items, args=([match.item],), disabled=match.item in current["items"])
    st.button("Random real test session", icon=":material/casino:", on_click=random_test_session,
              help="A test prompt from the paper's split; its true next item is marked in the picks.")

with built:
    items = current["items"]
    st.subheader(f"Session · {len(items)} item{'s' if len(items) != 1 else ''}")
    first_shown = max(0, len(items) - SHOWN)  # long sessions (MovieLens histories): the most recent items
    if first_shown:
        with st.expander(f"{first_shown} earlier item(s)"):
            st.html("<ol class='session-items'>" + "".join(f"<li>{title_html(i)}</li>"
                                                           for i in items[:first_shown]) + "</ol>")
    for position in range(first_shown, len(items)):
        # one row that never wraps: the title takes what the three buttons leave (1280 px, 800 px alike)
        with st.container(horizontal=True, vertical_alignment="center", wrap=False, gap="small"):
            st.html(f"<div class='session-item'><b>{position + 1}.</b> {title_html(items[position])}</div>")
            st.button(":material/arrow_upward:", key=f"up-{position}", help="Earlier", on_click=move,
                      args=(position, -1), disabled=position == 0)
            st.button(":material/arrow_downward:", key=f"down-{position}", help="Later", on_click=move,
                      args=(position, 1), disabled=position == len(items) - 1)
            st.button(":material/close:", key=f"drop-{position}", help="Remove", on_click=remove, args=(position,))
    target = state.true_next(current)
    if target is not None:
        st.html(f"<div class='true-next'>True next item: <b>{title_html(target)}</b></div>")
    elif current["origin"]:
        st.caption("Edited test session: its true next item is only marked while the session is unchanged.")
    pinned = st.session_state.get("pinned")
    if pinned and pinned["dataset"] != key:
        pinned = None
    if items:
        with st.container(horizontal=True):
            st.button("Clear the session", icon=":material/delete:", on_click=clear)
            if pinned:
                st.button("Unpin", icon=":material/keep_off:", on_click=unpin,
                          help="Stop comparing with the pinned session.")
            st.button("Pin to compare" if not pinned else "Pin this one instead", icon=":material/keep:",
                      on_click=pin, help="Keep this session; edit the session and see how each model's picks move.")
    else:
        st.info("Search and add items with :material/add:, or start from a random real test session.")

st.divider()
manager = state.job_manager()
mine = [job for job in manager.active(state.owner()) if job.request.dataset == key]
if not trained:
    if not mine and not st.session_state.get(f"auto-prepared:{key}"):  # once per browser session and dataset
        st.session_state[f"auto-prepared:{key}"] = True
        mine = prepare_defaults(embed=state.embedding_spec().provider == "local")
    if mine:
        st.info("Nothing is trained on this dataset yet, so the defaults are being prepared: popularity, SKNN and "
                "V-SKNN first (seconds), then LLMSeqSim. Their picks appear here as soon as each is saved.",
                icon=":material/bolt:")
        jobs_panel()
    else:
        st.warning("No model is trained on this dataset yet: use “Prepare the defaults” on the home page.")
        st.markdown(how_to_train(untrained_names(dataset, trained)))
    st.stop()

labels = {model.label: model for model in trained}
# One column per model by default (its default config, else its newest save); other variants can be added.
extra_variants = {m.label for i, m in enumerate(trained) if any(o.name == m.name for o in trained[:i])}
hidden = set(st.session_state.get("hidden_models", extra_variants))
pick_col, k_col = st.columns([4, 1])
chosen = pick_col.multiselect("Models", list(labels), default=[label for label in labels if label not in hidden],
                              help="Each model's default config is shown; add other trained variants here.")
st.session_state["hidden_models"] = sorted(set(labels) - set(chosen) | (hidden - set(labels)))
k = k_col.slider("Top K", link.K_RANGE[0], link.K_RANGE[1], key=state.bind("top_k", 10), on_change=state.keep,
                 args=("top_k",))
shown: list[TrainedModel] = [labels[label] for label in chosen]
link.write(current, shown, k, dataset)
if mine:  # e.g. LLMSeqSim still being prepared: its column appears when its job ends
    jobs_panel()


def rankings(session: list[int]) -> tuple[dict[str, Ranking], dict[str, Future]]:
    """Every shown model's ranking of ``session`` that is ready within the page's wait, and the futures of the
    ones still running (they fill in later)."""
    pool = state.ranking_pool()
    futures, ready = {}, {}
    for model in shown:
        try:
            fitted = state.load_model(model)
        except ArtifactError as err:  # a damaged save: that column says so, the others still rank
            ready[model.label] = Ranking(model.name, np.zeros(0, np.int64), np.zeros(0, np.float32), 0.0,
                                         error=f"{err}; train it again on the Train page")
            continue
        futures[model.label] = pool.submit((str(model.folder), model.saved_at), fitted, session, k,
                                           owner=(state.owner(), tuple(session) == tuple(current["items"])))
    # Wait for the models known to be quick (or not yet timed); a slow one fills in its column when done.
    quick = [futures[m.label] for m in shown if m.label in futures
             and (pool.last_seconds((str(m.folder), m.saved_at)) or 0.0) < QUICK_SECONDS]
    wait(quick, timeout=WAIT_SECONDS)
    for label, future in futures.items():
        if future.done() and not future.cancelled():  # a ranking is only ever dropped for a newer one of ours
            ready[label] = future.result()
    return ready, {label: f for label, f in futures.items() if label not in ready}


if items and shown:
    ready, pending = rankings(items)
    entries = assemble(ready, items, catalog, state.item_vectors(dataset), target)
    results = {entry.label: entry for entry in entries}
    st.html(PICKS_CSS + LEGEND)
    st.html(picks_columns([(model, results.get(model.label)) for model in shown], catalog, k, twins))
    if len(shown) > 3:  # four fit at 1400 px; fewer on a narrower window
        st.caption(f"{len(shown)} models: scroll the row sideways when they do not all fit the window.")
    total_ms = 1000 * sum(entry.seconds for entry in results.values())
    waiting = f"; waiting for {md(', '.join(pending))}" if pending else ""
    st.caption(f"{len(results)}/{len(shown)} model(s) ranked all {catalog.n_items:,} items for this session of "
               f"{len(items)} item(s) in {total_ms:.0f} ms{waiting}.")

    share = f"{(st.context.url or '').split('?')[0]}?" + urlencode(
        [(name, value) for name in st.query_params for value in st.query_params.get_all(name)])
    with st.container(horizontal=True, vertical_alignment="center"):
        name = f"session-{state.dataset_label()}-{len(items)}-items"
        st.download_button("Export CSV", pd.DataFrame(export_rows(entries, catalog, items)).to_csv(index=False),
                           file_name=f"{name}.csv", mime="text/csv", icon=":material/download:",
                           help="One row per model and pick: the session (item ids, oldest first), rank, item "
                                "id, title, score, how many models picked it, whether it is the true next item.")
        st.download_button("Export JSON", json.dumps(export_session(state.dataset_label(), items, catalog, entries, k,
                                                                   target, link=share), indent=1,
                                                     ensure_ascii=False),
                           file_name=f"{name}.json", mime="application/json", icon=":material/download:",
                           help="The session, the true next item when known, K, the link and every model's picks.")
        with st.popover("Share a link", icon=":material/link:"):
            st.caption("This view (dataset, session, models, K) opens from this link:")
            st.code(share, language=None, wrap_lines=True)

    if pinned and pinned["items"] and pinned["items"] != items:
        st.subheader("Compared with the pinned session")
        st.html("<div class='session-item'>Pinned: " + " → ".join(title_html(i) for i in pinned["items"]) + "</div>")
        before_ready, before_pending = rankings(pinned["items"])
        before = {e.label: e for e in assemble(before_ready, pinned["items"], catalog)}
        rows = []
        for model in shown:
            if model.label not in before or model.label not in results or results[model.label].error:
                continue
            moved = overlap(before[model.label], results[model.label])
            unique = sum(m.name == model.name for m in shown) == 1
            rows.append({"model": model.name if unique else model.label, "kept": f"{len(moved.both)}/{k}",
                         "came in": " · ".join(catalog.title(i)[:40] for i in moved.only_current[:3])
                         + (" …" if len(moved.only_current) > 3 else ""),
                         "left": " · ".join(catalog.title(i)[:40] for i in moved.only_pinned[:3])
                         + (" …" if len(moved.only_pinned) > 3 else "")})
        if rows:
            st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
                         column_config={"kept": st.column_config.TextColumn(
                             "kept", help="Picks shared by the pinned session and this one", width="small")})
        pending.update(before_pending)
    if pending:
        rerun_when_done(list(pending.values()))
elif not shown:
    st.info("Choose at least one model above: every trained model of this dataset is listed there.")

missing = untrained_names(dataset, trained)
if missing:
    with st.expander(f"{len(missing)} more registered model(s), not trained here yet"):
        st.markdown(how_to_train(missing))
        st.page_link("pages/4_Train.py", label="Open the Train page", icon=":material/model_training:")
