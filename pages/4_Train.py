"""Train, fine-tune and evaluate any registered model with its options, as a background job with progress
and a cancel that leaves the cache intact; jobs keep running when you switch page."""

import shlex

import pandas as pd
import streamlit as st

from core import store
from core.common import ConfigError
from core.config import apply_overrides, config_dict
from core.jobs import JobRequest, ModelStep, spending_estimate
from core.models import REGISTRY, model_class
from core.models.defaults import PRESETS, dataset_defaults
from core.options import Option, changed_options, model_options
from core.trained import train_command, trained_models
from ui import state
from ui.components import jobs_panel, page
from ui.text import md

page("Train")
st.title("Train and evaluate")
dataset = state.current_dataset()
spec = state.embedding_spec()

name = st.selectbox("Model", list(REGISTRY), format_func=lambda n: f"{n} — {REGISTRY[n][2]}",
                    key=state.bind("train_model", "vsknn"), on_change=state.keep, args=("train_model",))
try:
    config_class = model_class(name).Config
except (ImportError, AttributeError) as err:
    st.error(f"{name} is registered but its code cannot be loaded yet ({err}).")
    st.stop()


def option_widget(column, option: Option, default, start_from: str):
    # the paper preset's widgets are other widgets (their own defaults); the tuned ones keep the plain key
    preset_key = "" if start_from == "tuned" else f"{start_from}-"
    label, help_text, key = option.name, option.help or None, f"opt-{name}-{preset_key}{option.name}"
    if option.kind == "bool":
        return column.checkbox(label, value=bool(default), help=help_text, key=key)
    if option.kind == "choice":
        return column.selectbox(label, option.choices, index=option.choices.index(default), help=help_text, key=key)
    bounds = option.range
    if option.kind == "int":  # the widget itself refuses values outside the option's range
        low = int(bounds.low + (1 if bounds.low_open else 0)) if bounds and bounds.low is not None else None
        high = int(bounds.high - (1 if bounds.high_open else 0)) if bounds and bounds.high is not None else None
        return column.number_input(label, value=default, min_value=low, max_value=high, step=1, help=help_text,
                                   key=key)
    if option.kind == "float":  # open bounds are checked when the config is built (one line, below)
        return column.number_input(label, value=default, format="%g", help=help_text, key=key,
                                   min_value=bounds.low if bounds and bounds.low is not None else None,
                                   max_value=bounds.high if bounds and bounds.high is not None else None,
                                   placeholder="none" if option.optional else None)
    return column.text_input(label, value="" if default is None else str(default), help=help_text, key=key,
                             placeholder="empty = default" if option.optional else "")


tuned = dataset_defaults(name, dataset.name)
start_from = "tuned"
if tuned:
    start_from = st.radio("Start from", PRESETS, horizontal=True, key=f"preset-{name}",
                          format_func=lambda p: {"tuned": f"values tuned on {dataset.name}'s validation folds",
                                                 "paper": "the paper's Beauty values"}[p],
                          help="Tuned values were chosen on the dataset's validation folds, never its test split "
                               "(core/models/defaults.toml holds each with the fold figure that chose it).")
# The dataset's defaults, and the embedding provider chosen on the home page for every LLM model.
preset = {**dataset_defaults(name, dataset.name, start_from), "embedding_provider": spec.provider,
          "embedding_model": spec.model}
with st.form(f"options-{name}-{start_from}"):
    st.markdown(f"**{name}** options (hover a name for why its default is what it is)")
    options = model_options(config_class)
    columns = st.columns(3)
    values = {option.name: option_widget(columns[i % 3], option, preset.get(option.name, option.default),
                                         start_from)
              for i, option in enumerate(options)}
    evaluate = st.checkbox("Evaluate on the test split afterwards (results go to the Metrics page)", value=True)
    retrain = st.checkbox("Fit again even if a model with exactly these options is saved", value=False)
    confirm = st.checkbox("Confirm the cost (paid backends only: the estimate shows after the first click)")
    submitted = st.form_submit_button("Start training", type="primary")

if submitted:
    try:
        changes = changed_options(config_class, values)
        cost = spending_estimate(name, changes, dataset)
    except (ConfigError, RuntimeError) as err:
        st.error(md(err))
    else:
        if cost and not confirm:
            st.warning(f"Not started: {md(cost)}. Tick “Confirm the cost” and start again.")
        else:
            request = JobRequest(dataset=state.dataset_key(), models=(ModelStep(name, changes),),
                                 evaluate=evaluate, retrain=retrain, confirm_spending=bool(cost and confirm))
            state.job_manager().submit(request, title=f"{name} on {state.dataset_label()}",
                                       secrets=state.embedding_secrets(), owner=state.owner())
            # The CLI starts from the dataset's tuned defaults: name what differs from them.
            full = config_dict(apply_overrides(config_class(), changes))
            sets = " ".join(f"--set {shlex.quote(f'{k}={v}')}"
                            for k, v in store.changed_options(name, full, dataset.name).items())
            st.caption("Same from a terminal:")
            st.code(f"{train_command(state.dataset_key(), name)}{' ' + sets if sets else ''}", language="bash")

st.subheader("Jobs")
st.caption("Jobs run one at a time in a separate process: switch pages freely. Cancel stops at once and keeps "
           "every model saved before; a model being written is finished first.")
jobs_panel()
if not state.job_manager().jobs(state.owner()):
    st.caption("No job of yours yet.")

st.subheader("Trained on this dataset")
trained = trained_models(dataset)
if trained:
    st.dataframe(pd.DataFrame([{"model": m.label, "fit s": m.fit_seconds,
                                "saved": pd.Timestamp(m.saved_at, unit="s").strftime("%Y-%m-%d %H:%M"),
                                "folder": str(m.folder)} for m in trained]),
                 hide_index=True, width="stretch",
                 column_config={"fit s": st.column_config.NumberColumn(format="%.1f")})
else:
    st.caption("Nothing yet.")
