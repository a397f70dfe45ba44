"""Pieces several pages draw: the sidebar, the background-jobs panel, and a model's picks as a small table."""

from __future__ import annotations

import html
import time
from pathlib import Path

import streamlit as st

from core.data import BUNDLED, Catalog
from core.jobs import Job
from core.models import model_class
from core.picks import ModelPicks
from core.trained import TrainedModel, train_command
from ui import state
from ui.defaults import defaults_requests
from ui.text import md

ICON = str(Path(__file__).resolve().parent / "assets" / "icon.png")  # bundled: nothing fetched from the internet
# The app's pages: Streamlit finds the scripts in pages/ by itself (its documented pages/ directory); the menu
# is drawn here (client.showSidebarNavigation is off in .streamlit/config.toml) to give the pages readable
# labels and icons.
PAGES = (("app.py", "Home", ":material/home:"),
         ("pages/1_Session_Builder.py", "Session builder", ":material/playlist_add:"),
         ("pages/2_Embedding_Space.py", "Embedding space", ":material/scatter_plot:"),
         ("pages/3_Metrics.py", "Metrics", ":material/leaderboard:"),
         ("pages/4_Train.py", "Train", ":material/model_training:"),
         ("pages/5_Tune.py", "Tune", ":material/tune:"),
         ("pages/6_Findings.py", "Findings", ":material/lightbulb:"),
         ("pages/7_Demo.py", "Demo", ":material/slideshow:"))


def page(title: str) -> None:
    """A page's frame, first thing on every page: its config (wide, its title), the shared styles, and the
    sidebar (the menu, the dataset and embeddings in use, this visitor's running jobs)."""
    st.set_page_config(page_title=f"{title} · LLM sequential recommendation", page_icon=ICON, layout="wide")
    state.write_dataset_url()  # a reload or a shared link opens the same data set
    st.markdown("<style>div.block-container{padding-top:2.2rem}"
                ".true-next{background:rgba(34,197,94,0.18);border-radius:0.5rem;padding:0.75rem 1rem}"
                ".session-item,.hit-title{overflow-wrap:anywhere}"  # a long word never runs under the buttons
                # the session builder's small icon buttons (add, earlier, later, remove) stay readable when narrow
                "div[class*='st-key-add-'] button,div[class*='st-key-up-'] button,div[class*='st-key-down-'] button,"
                "div[class*='st-key-drop-'] button{padding:0.2rem 0.35rem;min-height:2rem}"
                # two columns side by side (the session builder's search and session) stack when the page is too
                # narrow for both at 340 px, instead of squeezing titles to a word a line (800 px with the sidebar)
                "div[data-testid='stHorizontalBlock']:has(.session-item){flex-wrap:wrap}"
                "div[data-testid='stColumn']:has(.session-item),div[data-testid='stColumn']:has(.search-panel)"
                "{min-width:340px}</style>",
                unsafe_allow_html=True)
    with st.sidebar:
        for script, label, icon in PAGES:
            st.page_link(script, label=label, icon=icon)
        st.divider()
        st.caption(f"Dataset: **{md(state.dataset_label())}** · embeddings: **{md(state.embedding_spec().label)}**")
        st.caption("Change both on the Home page.")
        active = state.job_manager().active(state.owner())
        if active:
            st.caption(f":material/hourglass_top: {len(active)} job(s) running or queued — see the Train page.")


# ------------------------------------------------------------------------------------------------ jobs
def _job_row(job: Job, allow_cancel: bool) -> None:
    steps = job.request.steps()
    step = steps[min(job.step, len(steps) - 1)] if steps else ""
    head, button = st.columns([6, 1])
    if job.active:
        text = f"**{md(job.title)}** — {job.status}: {md(step)}" + (f" · {md(job.message)}" if job.message else "")
        if job.total > 1:  # done/total in the step's own unit (titles, batches, trials, sessions) and time left
            left = job.seconds_left()
            text += f" · {job.done:,}/{job.total:,}" + (f", ~{duration(left)} left" if left is not None else "")
        head.progress(job.fraction, text=text)
        if allow_cancel and not job.cancel_requested:
            button.button("Cancel", key=f"cancel-{job.id}", on_click=state.job_manager().cancel,
                          args=(job.id, state.owner()))
        elif job.cancel_requested:
            button.caption("cancelling…")
    else:
        took = f" in {duration(job.finished - job.submitted)}" if job.finished else ""
        icon = {"done": ":material/check_circle:", "failed": ":material/error:",
                "cancelled": ":material/stop_circle:"}.get(job.status, "")
        head.markdown(f"{icon} **{md(job.title)}** — {job.status}{took}")
        if job.error:
            head.error(md(job.error))
            if job.log:  # what the worker printed: a bug's traceback is here
                with head.expander("The job's log"):
                    st.code("\n".join(job.log), language=None)
        for result in job.results:
            for note in result.get("notes", []):
                head.caption(f":material/info: {md(note)}")
            if result.get("step") == "train" and "NDCG@20" in result:
                head.caption(f"{md(result['model'])}: NDCG@20 {result['NDCG@20']:.4f}, HR@20 {result['HR@20']:.4f}"
                             f" ({result.get('status', 'fitted')})")


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 5 s``, ``1 h 02 min``: a time left or taken, as a person reads it."""
    if seconds < 1:
        return "<1 s"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _others_busy() -> None:
    others = state.job_manager().others_active(state.owner())
    if others:
        st.caption(f":material/hourglass_top: The server is busy with {others} job(s) of other visitors; jobs "
                   "run one at a time, so a job you start waits for them.")


@st.fragment(run_every=1.0)
def _live_jobs(allow_cancel: bool, watched: tuple[int, ...]) -> None:
    manager = state.job_manager()
    for job in manager.jobs(state.owner())[:6]:
        _job_row(job, allow_cancel)
    _others_busy()
    if any(job is None or not job.active for job in (manager.get(i) for i in watched)):
        time.sleep(0.2)
        st.rerun()  # the whole page, as soon as any of them ends: its newly trained models and results appear


@st.fragment(run_every=0.5)
def rerun_when_done(futures: list) -> None:
    """Twice a second, until every background ranking is done; then the page redraws with all of them."""
    if all(future.done() for future in futures):
        st.rerun()


def jobs_panel(allow_cancel: bool = True, limit: int = 6) -> None:
    """Progress of this visitor's running job (live, once a second) and the outcome of their recent ones; other
    visitors' jobs only as a count."""
    manager = state.job_manager()
    jobs = manager.jobs(state.owner())[:limit]
    active = tuple(job.id for job in jobs if job.active)
    if active:
        _live_jobs(allow_cancel, active)
        return
    for job in jobs:
        _job_row(job, allow_cancel)
    _others_busy()


def prepare_defaults(embed: bool = True) -> list[Job]:
    """Queue the fast defaults for this visitor on the chosen dataset (``ui.defaults``): the baselines, then
    (with ``embed``) the catalog's embeddings and LLMSeqSim, then their evaluation. A second call while they
    are queued or running returns the same jobs (a double click queues nothing twice)."""
    spec = state.embedding_spec()
    requests = defaults_requests(state.dataset_key(),
                                 embed={"provider": spec.provider, "model": spec.model} if embed else None)
    return [state.job_manager().submit(request, title=f"{title} on {state.dataset_label()}",
                                       secrets=state.embedding_secrets(), owner=state.owner())
            for title, request in requests]


def how_to_train(names: list[str]) -> str:
    key = state.dataset_key()
    lines = [f"- **{name}**: `{train_command(key, name)}`" for name in names]
    where = "" if key in BUNDLED else f" ({md(state.dataset_label())}, your own files)"
    return (f"Not trained on this dataset{where} yet — train them on the **Train** page, or from a terminal:\n\n"
            + "\n".join(lines))


# ------------------------------------------------------------------------------------------------ picks
# Every model's picks in one row of columns that scrolls sideways when more models are shown than fit (never
# wrapping mid-row); each column is at least MIN_COLUMN_PX wide, so titles stay readable at 800 px.
MIN_COLUMN_PX = 230
PICKS_CSS = f"""
<style>
.picks-row{{display:flex;gap:14px;overflow-x:auto;padding-bottom:6px;align-items:flex-start}}
.picks-col{{flex:1 0 {MIN_COLUMN_PX}px;max-width:520px;min-width:{MIN_COLUMN_PX}px}}
.picks-col h4{{margin:0;padding:0;font-size:1.05rem;cursor:help}}
.picks-col .reads{{font-size:0.72rem;color:#6b7280;margin:0 0 4px 0}}
.picks-col .variant{{font-size:0.75rem;color:#6b7280;margin:0 0 4px 0;overflow-wrap:anywhere}}
.picks-col .status{{font-size:0.8rem;padding:6px 8px;border-radius:6px;background:rgba(128,128,128,0.12)}}
.picks-col .status.error{{background:rgba(220,38,38,0.12);color:inherit}}
.picks{{width:100%;border-collapse:collapse;font-size:0.86rem}}
.picks th{{font-size:0.7rem;font-weight:500;color:#6b7280;text-align:left;padding:2px 4px;
  border-bottom:1px solid rgba(128,128,128,0.35)}}
.picks th.score,.picks td.score{{text-align:right}}
.picks td{{padding:3px 4px;border-bottom:1px solid rgba(128,128,128,0.18);vertical-align:top}}
.picks td.rank{{color:#888;width:1.6em;text-align:right}}
.picks td.score{{color:#888;white-space:nowrap;font-variant-numeric:tabular-nums}}
.picks tr.shared td{{background:rgba(250,204,21,0.22)}}
.picks tr.target td{{background:rgba(34,197,94,0.25);font-weight:600}}
.picks .why{{color:#777;font-size:0.78rem;font-weight:400}}
.picks .id{{color:#888;font-size:0.72rem;font-weight:400}}
.picks .badge{{font-size:0.7rem;color:#8a6d00;margin-left:4px;white-space:nowrap}}
.legend{{font-size:0.8rem;color:#6b7280}}
.legend span{{padding:1px 6px;border-radius:3px;margin-right:8px}}
</style>
"""


def _short(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def item_hover(catalog: Catalog, item: int) -> str:
    """What a title's tooltip says: the full title, the file's id, the category and the interactions."""
    parts = [catalog.title(item), f"id {catalog.item_ids[item]}", catalog.categories[item],
             f"{int(catalog.popularity[item]):,} interactions"]
    return " · ".join(p for p in parts if p)


def picks_table(entry: ModelPicks, catalog: Catalog, score: str, n_models: int,
                twins: frozenset[int] = frozenset()) -> str:
    """The picks as an HTML table; every title is escaped (shown exactly as in the file). ``twins``: items whose
    title another item shares, shown with their id so that the two can be told apart."""
    rows = []
    for pick in entry.picks:
        classes = " ".join(c for c, on in (("target", pick.is_target), ("shared", pick.consensus)) if on)
        badge = ""
        if pick.is_target:
            badge = "<span class='badge' style='color:#1a7f37'>✓ true next</span>"
        elif pick.consensus:
            badge = f"<span class='badge' title='picked by {pick.shared + 1} of the {n_models} models shown'>" \
                    f"{pick.shared + 1}/{n_models}</span>"
        extra = f" <span class='id'>· id {html.escape(str(catalog.item_ids[pick.item]))}</span>" \
            if pick.item in twins else ""
        why = ""
        if pick.why:
            near = ", ".join(f"#{position} ({sim:.2f})" for position, sim in pick.why)
            why = f"<div class='why'>near session item {near}</div>"
        if pick.source:
            why += f"<div class='why'>from {html.escape(pick.source)}</div>"
        rows.append(
            f"<tr class='{classes}'><td class='rank'>{pick.rank}</td>"
            f"<td title='{html.escape(item_hover(catalog, pick.item))}'>{html.escape(_short(pick.title))}{extra}"
            f"{badge}{why}</td><td class='score'>{pick.score:.3g}</td></tr>")
    head = f"<tr><th>#</th><th>item</th><th class='score' title='{html.escape(score)}'>{html.escape(score)}</th></tr>"
    return f"<table class='picks'>{head}{''.join(rows)}</table>"


def picks_columns(columns: list[tuple[TrainedModel, ModelPicks | None]], catalog: Catalog, k: int,
                  twins: frozenset[int] = frozenset()) -> str:
    """One HTML row of columns, one per shown model: its name (hover: what it reads and how it picks), the
    variant's changed options, its note, then its picks (None: still ranking)."""
    n_models = sum(1 for _, entry in columns if entry is not None and not entry.error)
    out = []
    for model, entry in columns:
        about = model_class(model.name).card
        body = ["<div class='picks-col'>",
                f"<h4 title='{html.escape(about.how)} Reads: {html.escape(about.reads)}.'>{html.escape(model.name)}"
                "</h4>", f"<div class='reads'>reads {html.escape(about.reads)}</div>"]
        if model.changed:
            body.append(f"<div class='variant'>{html.escape(model.label[len(model.name):].strip(' ()'))}</div>")
        if entry is None:
            body.append("<div class='status'>⏳ Still ranking: this model takes seconds on a CPU; its picks appear "
                        "here when ready.</div>")
        elif entry.error:
            body.append(f"<div class='status error'>{html.escape(entry.error)}</div>")
        else:
            if entry.note:
                body.append(f"<div class='variant'>{html.escape(entry.note)}</div>")
            if len(entry.picks) < k:
                body.append(f"<div class='variant'>{len(entry.picks)} pick(s): only these catalog items may be "
                            "recommended here.</div>")
            body.append(picks_table(entry, catalog, about.score, n_models, twins))
        body.append("</div>")
        out.append("".join(body))
    return f"<div class='picks-row'>{''.join(out)}</div>"


LEGEND = ("<div class='legend'><span style='background:rgba(250,204,21,0.22)'>n/N: picked by at least half of the "
          "N models shown</span><span style='background:rgba(34,197,94,0.25)'>✓ the session's true next item</span>"
          "near session item #n: the session items closest to a pick in LLM embedding space (cosine). Hover a "
          "model's name for how it picks, a title for its id.</div>")
