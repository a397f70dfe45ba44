"""Build a session (search, add, reorder, remove, or a random real test session) and compare every trained
model's top-K side by side."""

import html
from concurrent.futures import wait

import numpy as np
import streamlit as st

from core.models.base import ArtifactError
from core.picks import Ranking, assemble
from core.trained import trained_models, untrained_names
from ui import state
from ui.components import LEGEND, PICKS_CSS, how_to_train, page, picks_table, rerun_when_done
from ui.text import md

page("Session builder")
st.title("Session builder")
dataset = state.current_dataset()
catalog = dataset.catalog
current = state.session()
SHOWN = 12  # session items listed with controls; earlier ones fold away
WAIT_SECONDS = 1.0  # the page waits at most this long for the rankings...
QUICK_SECONDS = 0.3  # ...and only for models that took less than this last time (a generative one fills in later)


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
    current.update(items=list(prompt), origin={"prompt": prompt, "target": int(split.targets[row])})


def clear() -> None:
    current.update(items=[], origin=None)


find, built = st.columns(2, gap="large")
with find:
    st.subheader("Find items")
    query = st.text_input("Search the catalog by title (typos are fine)",
                          placeholder=f"e.g. {catalog.title(int(np.argmax(catalog.popularity))).split(',')[0][:40]}")
    matches = state.title_search(state.dataset_key()).search(query, limit=6)
    if query.strip() and not matches:
        st.caption(f"No title matches “{md(query.strip())}”.")
    for match in matches:
        text, add = st.columns([9, 1], vertical_alignment="center")
        about = " · ".join(x for x in (catalog.categories[match.item],
                                       f"{catalog.popularity[match.item]:,} interactions") if x)
        with text:  # titles and categories are the file's text: escaped, never rendered as HTML or Markdown
            st.html(f"<div class='search-hit'><div class='hit-title'>{html.escape(match.title)}</div>"
                    f"<small style='color:#888'>{html.escape(about)}</small></div>")
        add.button(":material/add:", key=f"add-{match.item}", help="Add to the session", on_click=state.add_items,
                   args=([match.item],), disabled=match.item in current["items"])
    st.button("Random real test session", icon=":material/casino:", on_click=random_test_session,
              help="A test prompt from the paper's split; its true next item is marked in the picks.")

with built:
    items = current["items"]
    st.subheader(f"Session · {len(items)} item{'s' if len(items) != 1 else ''}")
    first_shown = max(0, len(items) - SHOWN)  # long sessions (MovieLens histories): the most recent items
    if first_shown:
        with st.expander(f"{first_shown} earlier item(s)"):
            st.html("<ol class='session-items'>" + "".join(f"<li>{html.escape(catalog.title(i))}</li>"
                                                           for i in items[:first_shown]) + "</ol>")
    for position in range(first_shown, len(items)):
        text, up, down, drop = st.columns([9, 1, 1, 1], vertical_alignment="center", gap="small")
        with text:
            st.html(f"<div class='session-item'><b>{position + 1}.</b> {html.escape(catalog.title(items[position]))}"
                    "</div>")
        up.button(":material/arrow_upward:", key=f"up-{position}", help="Earlier", on_click=move,
                  args=(position, -1), disabled=position == 0)
        down.button(":material/arrow_downward:", key=f"down-{position}", help="Later", on_click=move,
                    args=(position, 1), disabled=position == len(items) - 1)
        drop.button(":material/close:", key=f"drop-{position}", help="Remove", on_click=remove, args=(position,))
    target = state.true_next(current)
    if target is not None:
        st.html(f"<div class='true-next'>True next item: <b>{html.escape(catalog.title(target))}</b></div>")
    elif current["origin"]:
        st.caption("Edited test session: its true next item is only marked while the session is unchanged.")
    if items:
        st.button("Clear the session", icon=":material/delete:", on_click=clear)
    else:
        st.info("Search and add items with :material/add:, or start from a random real test session.")

st.divider()
trained = trained_models(dataset)
missing = untrained_names(dataset, trained)
if not trained:
    st.warning("No model is trained on this dataset yet: use “Prepare the defaults” on the home page.")
    st.markdown(how_to_train(missing))
    st.stop()

labels = {model.label: model for model in trained}
# One column per model by default (its default config, else its newest save); other variants can be added.
extra_variants = {m.label for i, m in enumerate(trained) if any(o.name == m.name for o in trained[:i])}
if "hidden_models" not in st.session_state and st.query_params.get("models"):  # e.g. ?models=vsknn,llmseqsim
    wanted = st.query_params["models"].split(",")
    st.session_state["hidden_models"] = sorted(extra_variants | {m.label for m in trained if m.name not in wanted})
hidden = set(st.session_state.get("hidden_models", extra_variants))
pick_col, k_col = st.columns([4, 1])
shown = pick_col.multiselect("Models", list(labels), default=[label for label in labels if label not in hidden])
st.session_state["hidden_models"] = sorted(set(labels) - set(shown) | (hidden - set(labels)))
k = k_col.slider("Top K", 5, 30, key=state.bind("top_k", 10), on_change=state.keep, args=("top_k",))

if items and shown:
    pool = state.ranking_pool()
    model_keys = {label: (str(labels[label].folder), labels[label].saved_at) for label in shown}
    futures, ready = {}, {}
    for label in shown:
        try:
            model = state.load_model(labels[label])
        except ArtifactError as err:  # a damaged save: that column says so, the others still rank
            ready[label] = Ranking(labels[label].name, np.zeros(0, np.int64), np.zeros(0, np.float32), 0.0,
                                   error=f"{err}; train it again on the Train page")
            continue
        futures[label] = pool.submit(model_keys[label], model, items, k, owner=state.owner())
    # Wait for the models known to be quick (or not yet timed); a slow one fills in its column when done.
    quick = [futures[label] for label in futures if (pool.last_seconds(model_keys[label]) or 0.0) < QUICK_SECONDS]
    wait(quick, timeout=WAIT_SECONDS)
    for label, future in futures.items():
        if future.done() and not future.cancelled():  # a ranking is only ever dropped for a newer one of ours
            ready[label] = future.result()
    pending = [label for label in shown if label not in ready]
    results = {entry.label: entry for entry in assemble(ready, items, catalog, state.item_vectors(dataset), target)}
    st.html(PICKS_CSS + LEGEND)
    per_row = min(len(shown), 4)
    for start in range(0, len(shown), per_row):
        for column, label in zip(st.columns(per_row), shown[start:start + per_row]):
            with column:
                name = labels[label].name
                st.markdown(f"#### {name}")
                if label != name:  # a non-default config: its changed options
                    st.caption(md(label[len(name):].strip(" ()")))
                entry = results.get(label)
                if entry is None:
                    st.info(f"Still ranking: {name} takes seconds on a CPU; its picks appear here when ready.",
                            icon=":material/hourglass_top:")
                elif entry.error:
                    st.error(md(entry.error))
                else:
                    if entry.note:
                        st.caption(md(entry.note))
                    if len(entry.picks) < k:
                        st.caption(f"{len(entry.picks)} pick(s): only these catalog items may be recommended here.")
                    st.html(picks_table(entry))
    total_ms = 1000 * sum(entry.seconds for entry in results.values())
    waiting = f"; waiting for {md(', '.join(pending))}" if pending else ""
    st.caption(f"{len(results)}/{len(shown)} model(s) ranked all {catalog.n_items:,} items for this session of "
               f"{len(items)} item(s) in {total_ms:.0f} ms{waiting}.")
    if pending:
        rerun_when_done([futures[label] for label in pending])
elif not shown:
    st.info("Choose at least one model.")

if missing:
    with st.expander(f"{len(missing)} more registered model(s), not trained here yet"):
        st.markdown(how_to_train(missing))
        st.page_link("pages/4_Train.py", label="Open the Train page", icon=":material/model_training:")
