"""Tune a model's options with Optuna (TPE) on the dataset's validation folds, as a background job: watch the
trials arrive, read Optuna's figures, and apply the best values as the dataset's defaults."""

import math
import shlex
from typing import Any, Callable

import pandas as pd
import streamlit as st

from core import tune
from core.common import UserError
from core.jobs import JobRequest
from core.models import REGISTRY
from core.models.defaults import default_config
from ui import state
from ui.components import jobs_panel, page
from ui.text import md

page("Tune")
st.title("Tune on the validation folds")
dataset = state.current_dataset()
st.caption("Optuna's TPE sampler draws each model's options from the search space declared next to its config; a "
           "trial fits the model on every validation fold and scores NDCG@20 on the fold's later sessions — never "
           "the test split. The objective is the mean over the folds; the worst 20% of trials are stopped after "
           "a fold (pruned). The first trial is always the current defaults. The study is kept in "
           f"{md(tune.storage_path(dataset.name))}: a stopped search continues where it was.")
if not dataset.folds:
    st.warning(f"{md(dataset.name)} has no validation folds (too few sessions to cut in time): nothing to tune on.")
    st.stop()

models = tune.tunable_models()
name = st.selectbox("Model", models, format_func=lambda n: f"{n} — {REGISTRY[n][2]}",
                    key=state.bind("tune_model", "vsknn"), on_change=state.keep, args=("tune_model",))
base = default_config(name, dataset.name)
space = tune.search_space(name)
st.dataframe(pd.DataFrame([{"option": key, "searched over": bounds.describe(),
                            "current default": str(getattr(base, key))} for key, bounds in space.items()]),
             hide_index=True, width="stretch")

with st.form(f"tune-{name}"):
    left, right = st.columns(2)
    trials = left.number_input("Finished trials the study should hold", min_value=1, max_value=1000, value=30,
                               help="Trials of an earlier search of this model on this dataset count.")
    minutes = right.number_input("Stop starting trials after (minutes; 0 = no limit)", min_value=0, value=0)
    start = st.form_submit_button("Start the search", type="primary")
if start:
    request = JobRequest(dataset=state.dataset_key(), evaluate=False,
                         tune={"model": name, "trials": int(trials), "timeout": float(minutes) * 60 or None})
    state.job_manager().submit(request, title=f"tune {name} on {state.dataset_label()}", owner=state.owner())
    st.caption("Same from a terminal (Ctrl-C, then the same command, continues it):")
    st.code(f"python -m core tune --dataset {shlex.quote(state.dataset_key())} --model {name} --trials {int(trials)}"
            + (f" --timeout {int(minutes) * 60}" if minutes else ""), language="bash")

st.subheader("Jobs")
st.caption("Cancel stops the search at once; the trials finished so far stay in the study.")
jobs_panel()


studies = tune.study_names(dataset.name, name)
chosen_study = st.selectbox("Study", studies, help="A search with options fixed (`--set` on the command line) is a "
                            "study of its own.") if len(studies) > 1 else (studies[0] if studies else None)


# The trials are read again every 3 s only while one of this visitor's searches runs (its end reruns the page).
searching = any(job.request.tune is not None for job in state.job_manager().active(state.owner()))


@st.fragment(run_every=3.0 if searching else None)
def trials_view() -> None:
    study = _study()
    if study is None:
        st.caption(f"No search of {name} on {md(dataset.name)} yet.")
        return
    rows = []
    for trial in study.get_trials(deepcopy=False):
        row = {"trial": trial.number, "state": trial.state.name.lower(),
               "mean fold NDCG@20": trial.value if trial.value is not None else math.nan,
               "defaults": "yes" if trial.user_attrs.get("defaults") else ""}
        row.update({key: str(value) for key, value in trial.params.items()})
        if trial.user_attrs.get("refused"):
            row["note"] = trial.user_attrs["refused"]
        rows.append(row)
    info = tune.summary(study)
    st.markdown(md(tune.describe(info)).replace("\n", "  \n"))
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
                 column_config={"mean fold NDCG@20": st.column_config.NumberColumn(format="%.4f")})
    _figures(study, info["complete"])


def _study():
    import optuna

    wanted = chosen_study or tune.study_name(dataset.name, name)  # a search started here makes the plain one
    if not tune.storage_path(dataset.name).exists():
        return None
    try:
        return optuna.load_study(study_name=wanted, storage=f"sqlite:///{tune.storage_path(dataset.name)}")
    except KeyError:
        return None


def _figures(study, complete: int) -> None:
    from optuna import visualization

    if complete < 2:
        st.caption("Optuna's figures appear once two trials are complete.")
        return
    tabs = st.tabs(["Optimization history", "Parameter importances", "Parallel coordinates"])
    draws: list[Callable[[Any], Any]] = [visualization.plot_optimization_history,
                                         visualization.plot_param_importances,
                                         visualization.plot_parallel_coordinate]
    for tab, draw in zip(tabs, draws):
        with tab:
            try:
                st.plotly_chart(draw(study), width="stretch")
            except (ValueError, RuntimeError) as err:  # e.g. importances need options that vary
                st.caption(f"Not drawn yet: {md(err)}")


st.subheader("Trials")
trials_view()

study = _study()
info = tune.summary(study) if study is not None else None
if info is not None and info["best"] is not None and tune.best_is_defaults(info):
    st.caption(f"The best trial so far is the current defaults (mean fold NDCG@20 {info['best']['value']:.4f}): "
               "nothing to apply.")
elif info is not None and info["best"] is not None:
    best = info["best"]
    st.markdown(f"**Best:** trial {best['number']}, mean fold NDCG@20 {best['value']:.4f}: "
                + md(", ".join(f"{k}={v}" for k, v in best["params"].items())))
    if st.button(f"Apply these as {dataset.name}'s defaults of {name}",
                 help="Writes them into core/models/defaults.toml (the tuned preset of the CLI and the Train page), "
                      "each with this fold figure, the number of trials and the date."):
        try:
            values = tune.apply_best(study, dataset.name, name) or {}
        except (UserError, OSError) as err:
            st.error(md(err))
        else:
            st.success(f"Applied: {md(', '.join(f'{k}={v}' for k, v in values.items()))}. The Train page now "
                       f"starts {name} from these values on {md(dataset.name)}.")
