"""Optuna search over the validation folds: the defaults come first, a refused draw is pruned, a killed search
continues the same study, and --apply writes the best values where the tuned defaults live."""

import os
import signal
import subprocess
import sys
import time
import tomllib

import optuna
import pytest

from core import data, tune
from core.models import model_class
from core.models.defaults import default_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_search_space_names_real_options_and_holds_the_defaults():
    assert {"sasrec", "gru4rec", "bert4rec", "vsknn", "llmseqsim", "llmseqsim_sequential"} <= set(tune.tunable_models())
    for name in tune.tunable_models():
        config = default_config(name, "beauty")
        for key, space in tune.search_space(name).items():
            value = getattr(config, key)  # AttributeError: not an option
            inside = value in space.choices if space.choices else space.low <= value <= space.high
            assert inside, f"{name}.{key}: the default {value} is outside {space.describe()}"
    with pytest.raises(tune.TuneError, match="popularity declares no search space"):
        tune.search_space("popularity")


def test_a_draw_the_config_refuses_is_a_pruned_trial(synthetic):
    run = tune.objective(synthetic, "vsknn", model_class("vsknn").Config())
    trial = optuna.trial.FixedTrial({"k": 900, "sample_size": 100, "sampling": "random", "similarity": "cosine",
                                     "idf_weighting": True, "decay": "harmonic"})
    with pytest.raises(optuna.TrialPruned, match="'k' \\(900\\) must not exceed 'sample_size' \\(100\\)"):
        run(trial)


def test_the_first_trial_is_the_current_defaults_and_the_search_stops_at_the_count(synthetic):
    study = tune.tune(synthetic, "vsknn", trials=3)
    first = study.trials[0]
    assert first.user_attrs["defaults"] and first.params == tune.defaults_in_space(
        "vsknn", default_config("vsknn", "synthetic"))
    assert len(tune.finished_trials(study)) == 3
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    for trial in complete:  # the objective is the mean of the folds' NDCG@20
        folds = [v for k, v in trial.user_attrs.items() if k.endswith("NDCG@20")]
        assert len(folds) == len(synthetic.folds) and trial.value == pytest.approx(sum(folds) / len(folds))
    again = tune.tune(synthetic, "vsknn", trials=3)  # already there: nothing more runs
    assert len(again.trials) == len(study.trials)


def add_trial(study, value, params, defaults=False, distributions=None):
    """A finished trial with a known score (the search itself is tested above)."""
    distributions = distributions or {key: optuna.distributions.CategoricalDistribution([params[key]])
                                      for key in params}
    study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, value=value,
                                              user_attrs={"defaults": True} if defaults else {}))


def test_apply_writes_the_best_values_with_their_figure_and_keeps_the_comments(tmp_path):
    study = optuna.create_study(direction="maximize", study_name="synthetic:llmseqsim")
    add_trial(study, 0.02, {"combination": "last", "decay": "harmonic_squared", "similarity": "cosine"}, defaults=True)
    add_trial(study, 0.03, {"combination": "mean", "decay": "log", "similarity": "dot"})
    target = tmp_path / "defaults.toml"
    target.write_text("# chosen on folds\n[beauty.sasrec]\nmax_length = { value = 50, fold = \"NDCG@20 0.03\" }\n")
    values = tune.apply_best(study, "synthetic", "llmseqsim", path=target)
    assert values == {"combination": "mean", "decay": "log", "similarity": "dot"}
    text = target.read_text()
    assert text.startswith("# chosen on folds") and "[beauty.sasrec]" in text
    table = tomllib.loads(text)["synthetic"]["llmseqsim"]
    assert {k: v["value"] for k, v in table.items()} == values
    assert all(v["fold"].startswith("NDCG@20 0.0300, mean of the validation folds; best of 2 Optuna TPE trials")
               and v["fold"].endswith("(the defaults before: 0.0200)") for v in table.values())


def test_apply_leaves_the_record_alone_when_the_defaults_are_best(tmp_path):
    study = optuna.create_study(direction="maximize", study_name="synthetic:llmseqsim")
    add_trial(study, 0.03, {"combination": "last"}, defaults=True)
    add_trial(study, 0.02, {"combination": "mean"})
    target = tmp_path / "defaults.toml"
    target.write_text("# untouched\n")
    assert tune.apply_best(study, "synthetic", "llmseqsim", path=target) is None
    assert target.read_text() == "# untouched\n"


def test_a_killed_search_continues_the_same_study(tmp_path):
    from tiny_data import write_tiny_dataset

    folder = write_tiny_dataset(tmp_path / "shop", n_sessions=400)
    env = {**os.environ, "LLMSEQ_CACHE": str(tmp_path / "cache"), "PYTHONPATH": ROOT}
    command = [sys.executable, "-m", "core", "tune", "--dataset", str(folder), "--model", "sasrec", "--trials", "2",
               "--grace", "2"]
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    name = data.dataset_name(str(folder))  # the data set's content name (core.data), not the folder's
    storage = f"sqlite:///{tmp_path / 'cache' / 'tune' / f'{name}.sqlite3'}"
    deadline = time.time() + 300
    running = None
    while time.time() < deadline and running is None:  # kill it once a trial has scored a fold, not the last
        time.sleep(0.5)
        try:
            trials = optuna.load_study(study_name=f"{name}:sasrec", storage=storage).trials
        except Exception:  # noqa: BLE001 (the database or the study is not created yet)
            continue
        running = next((t for t in trials if t.state == optuna.trial.TrialState.RUNNING
                        and t.intermediate_values), None)
    assert running is not None, "the search never got half-way through a trial"
    process.send_signal(signal.SIGKILL)
    process.wait()
    time.sleep(3)  # longer than --grace: the killed trial's heartbeat is stale
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    study = optuna.load_study(study_name=f"{name}:sasrec", storage=storage)
    killed = study.trials[running.number]
    assert killed.state == optuna.trial.TrialState.FAIL
    assert len(tune.finished_trials(study)) == 2
    retried = [t for t in study.trials if t.number > running.number and t.params == killed.params]
    assert retried, "the killed trial's options were not tried again"
    assert "finished trial(s)" in done.stdout


def test_fixed_options_name_their_own_study_and_are_applied_with_the_best(synthetic, tmp_path):
    fixed = {"similarity": "llmseqsim (combination=mean)"}
    study = tune.tune(synthetic, "llmseqsim_popularity", trials=2, fixed=fixed)
    assert study.study_name == "synthetic:llmseqsim_popularity[similarity=llmseqsim (combination=mean)]"
    add_trial(study, 1.0, {"quantile": 0.3, "candidates": 50},  # better than any real trial
              distributions={"quantile": optuna.distributions.FloatDistribution(0.0, 1.0),
                             "candidates": optuna.distributions.CategoricalDistribution([50, 100, 200])})
    target = tmp_path / "defaults.toml"
    target.write_text("")
    values = tune.apply_best(study, "synthetic", "llmseqsim_popularity", path=target)
    assert values == {**fixed, "quantile": 0.3, "candidates": 50}
    written = tomllib.loads(target.read_text())["synthetic"]["llmseqsim_popularity"]
    assert "fixed with --set" in written["similarity"]["fold"]
    with pytest.raises(tune.TuneError, match="quantile: searched"):
        tune.tune(synthetic, "llmseqsim_popularity", trials=1, fixed={"quantile": 0.1})
    tune.tune(synthetic, "llmseqsim_popularity", trials=1)  # the plain study is listed first (the Tune page's order)
    assert tune.study_names("synthetic", "llmseqsim_popularity") == [
        "synthetic:llmseqsim_popularity", "synthetic:llmseqsim_popularity[similarity=llmseqsim (combination=mean)]"]


@pytest.mark.parametrize("args, message", [
    (["--model", "popularity"], "popularity declares no search space"),
    (["--model", "vsknn", "--trials", "0"], "--trials must be at least 1, got 0"),
    (["--model", "vsknn", "--timeout", "-5"], "--timeout must be a positive number of seconds, got -5"),
    (["--model", "vsknn", "--grace", "0"], "--grace must be at least 1 second, got 0"),
])
def test_bad_tune_arguments_are_refused_in_one_line_before_any_work(args, message, capsys):
    from core.cli import main

    assert main(["tune", "--dataset", "nosuchdataset", *args]) == 2  # refused before the data set is looked up
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"error: {message}" + err.strip().split(message, 1)[1]]
