"""A demo for stakeholders: real test sessions chosen from the data (core.demo), one screen each, in large type —
what a user viewed, what they chose next, and what an LLM-based and an ID-based model would have shown,
each pick with a reason in plain words. Only two controls: previous / next, and the bundled dataset."""

import html

import numpy as np
import streamlit as st

from core import data, store
from core import demo as demo_core
from core.embeddings import EmbeddingSpec, cached_vectors
from core.evaluate import load_results
from core.models import model_class
from core.models.base import ArtifactError
from core.trained import trained_models
from core.uploads import display_name
from ui import state
from ui.components import page
from ui.text import md

page("Demo")
LAST_ITEMS = 8  # session items shown; earlier ones are counted
# The menu stays one click away: the screen is the demo's (Streamlit allows a later call to change the config).
st.set_page_config(initial_sidebar_state="collapsed")

CSS = """<style>
.demo{font-size:1.2rem;line-height:1.45}
.demo .story{font-size:1.75rem;font-weight:700;margin:0 0 0.8rem}
.demo .label{font-size:0.95rem;text-transform:uppercase;letter-spacing:0.06em;opacity:0.7;margin:1rem 0 0.3rem}
.demo ol.session{display:flex;flex-wrap:wrap;gap:0.6rem;list-style:none;padding:0;margin:0}
.demo ol.session li{flex:1 1 14rem;border:1px solid rgba(128,128,128,0.4);border-radius:0.6rem;padding:0.6rem 0.8rem;
  font-size:1.3rem}
.demo ol.session li b{opacity:0.55;margin-right:0.4rem}
.demo ol.session li.earlier{flex:0 1 auto;opacity:0.7;border-style:dashed}
.demo .target{font-size:1.5rem;font-weight:700;border-left:0.4rem solid #2e9e4f;background:rgba(46,158,79,0.16);
  border-radius:0.5rem;padding:0.6rem 1rem}
.demo .models{display:grid;grid-template-columns:repeat(auto-fit,minmax(17rem,1fr));gap:1rem;margin-top:0.4rem}
.demo .model{border:1px solid rgba(128,128,128,0.4);border-radius:0.7rem;padding:0.8rem 1rem}
.demo .model h3{font-size:1.45rem;margin:0;padding:0}
.demo .kind{font-size:0.95rem;opacity:0.7;margin-bottom:0.5rem}
.demo .model ol{margin:0;padding-left:1.6rem}
.demo .model li{padding:0.3rem 0.4rem;border-radius:0.4rem;margin-bottom:0.2rem}
.demo .model li.hit{background:rgba(46,158,79,0.2);font-weight:700}
.demo .why{font-size:0.95rem;opacity:0.72;font-weight:400}
.demo .verdict{margin-top:0.5rem;font-weight:700}
.demo .verdict.found{color:#2e9e4f}
.demo .metrics{margin-top:1rem;font-size:1rem;opacity:0.85}
@media (max-width:900px){.demo{font-size:1.05rem}.demo .story{font-size:1.4rem}.demo ol.session li{font-size:1.1rem}
  .demo .target{font-size:1.25rem}}
</style>"""


def short(text: str, n: int = 90) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def title_html(catalog: data.Catalog, item: int) -> str:
    """An item's title, escaped; a long one shortened, in full on hover."""
    title = catalog.title(item) or f"item {catalog.item_ids[item]}"
    return f"<span title='{html.escape(title)}'>{html.escape(short(title))}</span>"


@st.cache_resource(show_spinner=False, max_entries=4)
def title_vectors(dataset_key: str, _spec: EmbeddingSpec, spec_key: str) -> np.ndarray | None:
    return cached_vectors(state.load_dataset(dataset_key).catalog, _spec)


def has_models(key: str) -> bool:
    """Whether any model is saved for the dataset (a bundled one's name is its key; the user's own is loaded,
    as it is the app's current dataset anyway)."""
    try:
        name = key if key in data.BUNDLED else state.load_dataset(key).name
    except data.DataError:
        return False
    root = store.models_root(name)
    return root.is_dir() and any(root.iterdir())


def dataset_label(key: str) -> str:
    return data.BUNDLED[key].split(" (")[0] if key in data.BUNDLED else display_name(key)


# The bundled datasets with trained models, and the app's dataset when it is the user's own with models.
with_models = list(dict.fromkeys(key for key in [*data.BUNDLED, state.dataset_key()] if has_models(key)))
if not with_models:
    st.title("Demo")
    st.info("No model is trained yet: train an LLM-based and an ID-based model (e.g. llmseqsim and sasrec) on the "
            "Train page, then come back.")
    st.stop()
if st.session_state.get("demo_dataset") not in with_models:
    st.session_state["demo_dataset"] = state.dataset_key() if state.dataset_key() in with_models else with_models[0]
st.radio("Dataset", with_models, format_func=dataset_label, horizontal=True, label_visibility="collapsed",
         key=state.bind("demo_dataset", st.session_state["demo_dataset"]), on_change=state.keep, args=("demo_dataset",))
key = st.session_state["demo_dataset"]
try:
    dataset = state.load_dataset(key)
except data.DataError as err:  # an upload whose files are gone or damaged
    st.error(md(err))
    st.stop()
catalog = dataset.catalog
trained = trained_models(dataset)
saved = demo_core.saved(dataset, trained)
if saved is None:  # first open for these models: every model ranks the sample (Beauty: a few seconds)
    bar = st.progress(0.0, text="Choosing the sessions to show: every model ranks a sample of test sessions…")

    def progress(done: int, total: int, message: str) -> None:
        bar.progress(done / max(total, 1), text=f"Choosing the sessions to show: {md(message)} ({done:,}/{total:,})")

    try:
        saved = demo_core.build_and_save(dataset, trained, progress)
    except (demo_core.NoDemo, ArtifactError) as err:
        bar.empty()
        st.warning(md(err))
        st.stop()
    bar.empty()
demo: demo_core.Demo = saved
if not demo.sessions:
    st.warning(md(" ".join(demo.notes)))
    st.stop()

screens = st.session_state.setdefault("demo_screens", {})
screen = min(screens.get(key, 0), len(demo.sessions) - 1)


def go(step: int) -> None:
    screens[key] = min(max(screen + step, 0), len(demo.sessions) - 1)


session = demo.sessions[screen]
back, where, forward = st.columns([1, 2, 1], vertical_alignment="center")
back.button("Previous", icon=":material/arrow_back:", on_click=go, args=(-1,), disabled=screen == 0,
            width="stretch")
where.markdown(f"<div style='text-align:center;font-size:1.1rem'>Session {screen + 1} of {len(demo.sessions)}</div>",
               unsafe_allow_html=True)
forward.button("Next", icon=":material/arrow_forward:", on_click=go, args=(1,),
               disabled=screen == len(demo.sessions) - 1, width="stretch")

columns = []
for label in session.shown:
    contender = demo.model(label)
    spec = demo_core.text_spec(contender, trained) if contender.kind == "text" else None
    vectors = title_vectors(key, spec, repr(spec)) if spec is not None else None
    rows = []
    for pick in demo_core.explain(session, contender, catalog, vectors):
        mark = " ✓ what they chose" if pick.is_target else ""
        rows.append(f"<li class='{'hit' if pick.is_target else ''}'>{title_html(catalog, pick.item)}{mark}"
                    f"<div class='why'>{html.escape(pick.why)}</div></li>")
    rank = session.ranks[label]
    verdict = ("<div class='verdict found'>✓ Found it at rank " f"{rank}</div>" if 0 < rank <= demo_core.SHOWN else
               f"<div class='verdict found'>✓ Found it at rank {rank} (below the top {demo_core.SHOWN})</div>"
               if rank else f"<div class='verdict'>✗ Not in its top {demo_core.TOP}</div>")
    columns.append(f"<div class='model'><h3 title='{html.escape(model_class(contender.name).card.how)}'>"
                   f"{html.escape(contender.name)}</h3>"
                   f"<div class='kind'>{demo_core.KIND_LABEL[contender.kind]}</div><ol>{''.join(rows)}</ol>{verdict}"
                   "</div>")
figures = demo_core.headline(demo, load_results(dataset), session.shown)
metrics = " · ".join(f"{html.escape(demo.model(label).name)}: NDCG@20 {figures[label]['NDCG@20']:.4f}, HR@20 "
                     f"{figures[label]['HR@20']:.4f}" if label in figures else
                     f"{html.escape(demo.model(label).name)}: not evaluated yet" for label in session.shown)
# A long history (MovieLens users rate hundreds of films) shows its last items; the count says what is left out.
earlier = max(len(session.prompt) - LAST_ITEMS, 0)
items = (f"<li class='earlier'>… {earlier:,} earlier item(s)</li>" if earlier else "") + "".join(
    f"<li><b>{earlier + i + 1}</b>{title_html(catalog, item)}</li>" for i, item in enumerate(session.prompt[earlier:]))
st.html(CSS + f"<div class='demo'><div class='story'>{demo_core.STORY_HEADLINE[session.story]}</div>"
        f"<div class='label'>A real session, oldest first</div><ol class='session'>{items}</ol>"
        f"<div class='label'>What they chose next</div><div class='target'>{title_html(catalog, session.target)}</div>"
        f"<div class='label'>What each model would have shown (top {demo_core.SHOWN} of all "
        f"{catalog.n_items:,} items)</div><div class='models'>{''.join(columns)}</div>"
        f"<div class='metrics'>Over all {dataset.split.n_test:,} test sessions: {metrics}</div></div>")
st.caption(f"Sessions chosen automatically from {demo.sample_size:,} random test sessions of {md(dataset_label(key))}: "
           f"where some LLM-based model has the next item in its top {demo_core.TOP} and no ID-based one does, "
           "the reverse, and both. " + " ".join(md(note) for note in demo.notes))
