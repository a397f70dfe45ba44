"""The paper's open questions, answered from measured studies: embedding-model size, new products (cold start),
amount of training data, what text to embed — per dataset, each with its chart, table, the command that
regenerates it and an answer written from the numbers; exportable as one offline HTML file."""

import shlex

import streamlit as st

from core import findings, study
from core.data import BUNDLED
from core.jobs import JobRequest
from ui import state
from ui.components import jobs_panel, page
from ui.text import md

page("Findings")
st.title("Findings: the paper's open questions")
st.caption("Each answer below is written from the saved numbers of a study (`python -m core study`), on the test "
           "split, with settings chosen on the validation folds where a study chooses any. A dataset's section "
           "shows this machine's latest run of the study, else the figures the project measured and ships in "
           "`bench/results/studies/` (said under the chart).")

current = state.dataset_key()
datasets = list(findings.DATASETS) + ([current] if current not in BUNDLED else [])
names = {key: (state.dataset_label() if key == current else key) for key in datasets}
loaded = {(name, key): result for name in findings.QUESTIONS for key in datasets
          if (result := study.load(state.load_dataset(key).name if key not in BUNDLED else key, name)) is not None}


def run_button(name: str, key: str) -> None:
    if st.button(f"Run it now on {names[key]}", key=f"run-{name}-{key}",
                 help="A background job; its progress is under Jobs at the bottom of this page."):
        state.job_manager().submit(JobRequest(dataset=key, evaluate=False, study=name),
                                   title=f"study {name} on {names[key]}", owner=state.owner())
        st.rerun()


for name, question in findings.QUESTIONS.items():
    st.header(question)
    measured = {key: loaded[(name, key)] for key in datasets if (name, key) in loaded}
    if len(measured) > 1:
        st.markdown("**Across datasets** (does Beauty's answer carry over?)")
        for key, result in measured.items():
            st.markdown(f"- **{md(names[key])}**: {md(findings.answer(result))}")
    tabs = st.tabs([names[key] for key in datasets])
    for tab, key in zip(tabs, datasets):
        with tab:
            command = f"python -m core study {name} --dataset {shlex.quote(key)}"
            result = measured.get(key)
            if result is None and name == "item-text" and not state.load_dataset(key).catalog.text_fields:
                st.info(f"{md(names[key])}'s items have no text besides the title (no category nor other text "
                        "column): there is nothing to add to the embedded text.")
                continue
            if result is None:
                st.info(f"Not measured on {md(names[key])} yet.")
                st.code(command, language="bash")
                run_button(name, key)
                continue
            st.success(findings.answer(result))
            st.plotly_chart(findings.figure(result), width="stretch", key=f"chart-{name}-{key}")
            st.dataframe(study.summary(result), hide_index=True, width="stretch")
            origin = "measured by the project (bench/results/studies)" if result.source == "published" else \
                "measured on this machine"
            st.caption(f"{origin}, {md(result.created[:10])}, in {findings.duration(result.seconds)}. Regenerate:")
            if result.source == "cache" and study.published_path(key, name).exists():
                st.caption(f"The project's own run is in `{study.published_path(key, name).relative_to(study.ROOT)}`; "
                           "this machine's run (above) replaces it here. Delete "
                           f"`cache/studies/{md(key)}/{name}.json` to show the project's again.")
            st.code(result.command, language="bash")
            for note in result.notes:
                st.caption(f":material/info: {md(note)}")
            run_button(name, key)

st.header("Export")
if st.button("Build the HTML report of the findings"):
    st.session_state["findings_html"] = findings.html_report(loaded)
if st.session_state.get("findings_html"):
    st.download_button("Download the findings (one HTML file, opens offline)", st.session_state["findings_html"],
                       file_name="findings.html", mime="text/html")
st.subheader("Jobs")
jobs_panel()
