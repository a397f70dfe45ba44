"""Build a session (search, add, reorder, remove, or a random real test session) and compare every trained
model's top-K side by side."""

import numpy as np
import streamlit as st

from core.picks import compare
from core.trained import trained_models, untrained_names
from ui import state
from ui.components import LEGEND, PICKS_CSS, how_to_train, page_setup, picks_table, sidebar

page_setup("Session builder")
sidebar()
st.title("Session builder")
dataset = state.current_dataset()
catalog = dataset.catalog
current = state.session()


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
    query = st.text_input("Search the catalog by title (typos are fine)", placeholder="e.g. lip gloss red")
    for match in state.title_search(state.dataset_key()).search(query, limit=8):
        text, add = st.columns([9, 1], vertical_alignment="center")
        text.markdown(f"{match.title}  \n<small style='color:#888'>{catalog.item_ids[match.item]}</small>",
                      unsafe_allow_html=True)
        add.button("＋", key=f"add-{match.item}", help="Add to the session", on_click=state.add_items,
                   args=([match.item],), disabled=match.item in current["items"])
    st.button("🎲 Random real test session", on_click=random_test_session,
              help="A test prompt from the paper's split; its true next item is marked in the picks.")

with built:
    items = current["items"]
    st.subheader(f"Session · {len(items)} item{'s' if len(items) != 1 else ''}")
    for position, item in enumerate(items):
        text, up, down, drop = st.columns([12, 1, 1, 1], vertical_alignment="center", gap="small")
        text.markdown(f"**{position + 1}.** {catalog.title(item)}")
        up.button("↑", key=f"up-{position}", on_click=move, args=(position, -1), disabled=position == 0)
        down.button("↓", key=f"down-{position}", on_click=move, args=(position, 1),
                    disabled=position == len(items) - 1)
        drop.button("✕", key=f"drop-{position}", on_click=remove, args=(position,))
    target = state.true_next(current)
    if target is not None:
        st.success(f"True next item: **{catalog.title(target)}**")
    elif current["origin"]:
        st.caption("Edited test session: its true next item is only marked while the session is unchanged.")
    if items:
        st.button("Clear the session", on_click=clear)
    else:
        st.info("Search and add items with ＋, or start from a random real test session.")

st.divider()
trained = trained_models(dataset)
missing = untrained_names(dataset, trained)
if not trained:
    st.warning("No model is trained on this dataset yet: use “Prepare the defaults” on the home page.")
    st.markdown(how_to_train(missing))
    st.stop()

labels = {model.label: model for model in trained}
hidden = set(st.session_state.get("hidden_models", []))
pick_col, k_col = st.columns([4, 1])
shown = pick_col.multiselect("Models", list(labels), default=[label for label in labels if label not in hidden])
st.session_state["hidden_models"] = sorted(set(labels) - set(shown) | (hidden - set(labels)))
k = k_col.slider("Top K", 5, 30, key=state.bind("top_k", 10), on_change=state.keep, args=("top_k",))

if items and shown:
    models = {label: state.load_model(labels[label]) for label in shown}
    results = compare(models, items, k, catalog, vectors=state.item_vectors(dataset), target=target)
    st.markdown(PICKS_CSS + LEGEND, unsafe_allow_html=True)
    per_row = min(len(results), 4)
    for start in range(0, len(results), per_row):
        for column, entry in zip(st.columns(per_row), results[start:start + per_row]):
            with column:
                st.markdown(f"#### {entry.name}")
                if entry.label != entry.name:  # a non-default config: its changed options
                    st.caption(entry.label[len(entry.name):].strip(" ()"))
                if entry.error:
                    st.error(entry.error)
                else:
                    st.markdown(picks_table(entry), unsafe_allow_html=True)
    total_ms = 1000 * sum(entry.seconds for entry in results)
    st.caption(f"{len(results)} model(s) ranked all {catalog.n_items:,} items in {total_ms:.0f} ms.")
elif not shown:
    st.info("Choose at least one model.")

if missing:
    with st.expander(f"{len(missing)} more registered model(s), not trained here yet"):
        st.markdown(how_to_train(missing))
        st.page_link("pages/4_Train.py", label="Open the Train page", icon="🏋️")
