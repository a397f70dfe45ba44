"""Background jobs: a worker process trains and evaluates, reports progress, and a cancel never corrupts
the cache. Also: what counts as trained for a dataset (core.trained)."""

import io
import json
import os
import signal

import pytest
from tiny_data import write_tiny_dataset

from core import data, evaluate, store
from core.jobs import Cancelled, Job, JobManager, JobRequest, ModelStep, _Worker, worker_main
from core.models import create
from core.models import load as load_saved
from core.trained import train_command, trained_models, untrained_names
from ui.defaults import defaults_requests


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny") / "jobshop")  # its own name: its own cache folder


def test_a_job_trains_evaluates_and_reports(tiny_folder):
    manager = JobManager()
    request = JobRequest(dataset=str(tiny_folder), models=(ModelStep("popularity"),
                                                           ModelStep("vsknn", {"k": 10, "sample_size": 50})))
    job = manager.wait(manager.submit(request, title="tiny").id, timeout=120)
    assert job.status == "done", (job.error, list(job.log))
    assert job.fraction == 1.0
    assert [r["model"] for r in job.results] == ["popularity", "vsknn (k=10, sample_size=50)"]
    assert [r["status"] for r in job.results] == ["fitted", "fitted"]
    assert all(0.0 <= r["HR@20"] <= 1.0 for r in job.results)
    dataset = data.load(str(tiny_folder))
    found = trained_models(dataset)
    assert [m.label for m in found] == ["popularity", "vsknn (k=10, sample_size=50)"]
    assert set(evaluate.load_results(dataset)) == {"popularity", "vsknn (k=10, sample_size=50)"}
    assert "popularity" not in untrained_names(dataset) and "sknn" in untrained_names(dataset)
    # the saved model gives picks without retraining
    model = load_saved(found[1].folder)
    items, _ = model.recommend([[3]], k=1)
    assert items[0, 0] == 4


def test_jobs_run_one_at_a_time_in_order(tiny_folder):
    manager = JobManager()
    first = manager.submit(JobRequest(dataset=str(tiny_folder), models=(ModelStep("popularity"),),
                                      evaluate=False), title="first")
    second = manager.submit(JobRequest(dataset=str(tiny_folder), models=(ModelStep("popularity"),),
                                       evaluate=False), title="second")
    assert second.status == "queued"
    manager.wait(second.id, timeout=120)
    assert first.status == second.status == "done"
    assert first.finished <= second.finished
    assert [j.title for j in manager.jobs()] == ["second", "first"]


def test_a_bad_dataset_fails_with_one_sentence(tmp_path):
    manager = JobManager()
    job = manager.wait(manager.submit(JobRequest(dataset=str(tmp_path / "missing")), title="x").id, timeout=60)
    assert job.status == "failed"
    assert "unknown dataset" in job.error and "\n" not in job.error


def test_cancel_stops_the_job_and_saves_nothing():
    manager = JobManager()
    # Beauty takes seconds to load: the cancel lands before any model is fitted.
    job = manager.submit(JobRequest(dataset="beauty", models=(ModelStep("sknn"),)), title="slow")
    manager.cancel(job.id)
    job = manager.wait(job.id, timeout=60)
    assert job.status == "cancelled"
    assert not list((store.models_root("beauty")).glob("sknn-*"))


def test_cancelling_a_queued_job_never_starts_it(tiny_folder):
    manager = JobManager()
    first = manager.submit(JobRequest(dataset=str(tiny_folder), models=(ModelStep("popularity"),)), title="a")
    second = manager.submit(JobRequest(dataset=str(tiny_folder), models=(ModelStep("popularity"),)), title="b")
    manager.cancel(second.id)
    assert second.status == "cancelled"
    manager.wait(first.id, timeout=120)
    assert second.status == "cancelled" and not second.results


def test_a_cancel_during_a_save_waits_for_the_save(tiny_folder, tmp_path):
    dataset = data.load(str(tiny_folder))
    model = create("popularity").fit(dataset.split)
    worker = _Worker()
    original_state = model.state

    def state_with_a_cancel():  # the signal (as the job manager sends it) arrives while the model is written
        os.kill(os.getpid(), signal.SIGTERM)
        return original_state()

    model.state = state_with_a_cancel
    previous = signal.signal(signal.SIGTERM, worker.on_sigterm)
    try:
        with pytest.raises(Cancelled):
            model.save(tmp_path / "model")
        assert load_saved(tmp_path / "model").n_items == dataset.catalog.n_items  # complete and loadable
        with pytest.raises(Cancelled):  # outside a save, the signal cancels at once
            worker.on_sigterm(signal.SIGTERM, None)
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_secrets_reach_only_the_worker(tiny_folder, monkeypatch, capsys):
    monkeypatch.setenv("LLMSEQ_TEST_SECRET", "")  # so the worker's os.environ change is undone after
    payload = JobRequest(dataset=str(tiny_folder)).to_json({"LLMSEQ_TEST_SECRET": "s3cret"})
    assert json.loads(payload)["secrets"] == {"LLMSEQ_TEST_SECRET": "s3cret"}
    assert worker_main(io.StringIO(payload)) == 0
    events = [json.loads(line[6:]) for line in capsys.readouterr().out.splitlines() if line.startswith("@@job ")]
    assert events[0] == {"step": 0, "message": "loading the dataset"}
    assert not any("s3cret" in json.dumps(e) for e in events)


def test_defaults_request_and_train_command():
    (_, fits), (_, evaluation) = defaults_requests("beauty", embed=None)
    assert [m.name for m in fits.models] == ["popularity", "sknn", "vsknn"] and not fits.evaluate
    assert fits.steps()[0] == "train popularity" and evaluation.steps()[0] == "train + evaluate popularity"
    titles = [title for title, _ in defaults_requests("beauty", embed={"provider": "local", "model": None})]
    assert titles == ["fit the baselines", "embed the titles and fit LLMSeqSim", "evaluate the defaults"]
    assert train_command("beauty", "sasrec") == ".venv/bin/python -m core train --dataset beauty --models sasrec"


def test_a_save_with_an_option_this_version_lacks_is_not_listed(tiny_folder):
    dataset = data.load(str(tiny_folder))
    folder = store.fit_or_load(create("popularity"), dataset).folder
    stale = folder.with_name(folder.name[:-10] + "0123456789")
    stale.mkdir(exist_ok=True)
    meta = json.loads((folder / "config.json").read_text())
    meta["config"]["an_option_removed_since"] = 1.0
    (stale / "config.json").write_text(json.dumps(meta))
    (stale / "state.safetensors").write_bytes((folder / "state.safetensors").read_bytes())
    listed = [m.folder for m in trained_models(dataset)]
    assert folder in listed and stale not in listed


def test_a_job_belongs_to_the_browser_session_that_started_it(tiny_folder):
    manager = JobManager()
    slow = JobRequest(dataset="beauty", models=(ModelStep("sknn"),), retrain=True, evaluate=False)
    mine = manager.submit(slow, title="alice's upload.csv", owner="alice")
    assert manager.submit(slow, title="double click", owner="alice") is mine  # one job, not two
    queued = manager.submit(JobRequest(dataset=str(tiny_folder)), title="bob's", owner="bob")
    assert [j.title for j in manager.jobs("bob")] == ["bob's"]  # bob never sees alice's job or its title
    assert manager.others_active("bob") == 1 and manager.others_active("alice") == 1
    manager.cancel(mine.id, owner="bob")  # not bob's to cancel
    assert not mine.cancel_requested and mine.active
    manager.cancel(mine.id, owner="alice")
    assert manager.wait(mine.id, timeout=60).status == "cancelled"
    assert manager.wait(queued.id, timeout=120).status == "done"


def test_a_bug_in_a_job_keeps_its_traceback_in_the_log(tiny_folder, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero inside a model")

    monkeypatch.setattr(data, "load", broken)
    payload = JobRequest(dataset=str(tiny_folder)).to_json()
    assert worker_main(io.StringIO(payload)) == 1
    out = capsys.readouterr().out
    events = [json.loads(line[6:]) for line in out.splitlines() if line.startswith("@@job ")]
    assert events[-1]["error"].startswith("unexpected ZeroDivisionError: division by zero inside a model")
    assert "Traceback (most recent call last)" in out  # the manager keeps these lines as the job's log


def test_time_left_is_extrapolated_from_the_current_phase_only():
    job = Job(id=1, title="t", request=JobRequest(dataset="beauty"), status="running")
    manager = JobManager()
    manager._apply(job, {"progress": [0, 12_101, "embedding titles"]})
    job.phase_started -= 30.0  # 30 s into embedding the titles
    manager._apply(job, {"progress": [3_025, 12_101, "embedding titles"]})
    assert job.seconds_left(now=job.phase_started + 30.0) == pytest.approx(30.0 * 9_076 / 3_025)
    manager._apply(job, {"progress": [20, 400, "sasrec epoch 1 of 200"]})  # a new count: a new pace
    assert job.seconds_left(now=job.phase_started + 0.5) is None  # no pace to go by yet
    assert job.seconds_left(now=job.phase_started + 10.0) == pytest.approx(10.0 * 380 / 20)


def test_durations_read_as_a_person_says_them():
    from ui.components import duration

    assert [duration(s) for s in (0.4, 42, 185, 3725)] == ["<1 s", "42 s", "3 min 5 s", "1 h 02 min"]


def test_a_job_fits_a_model_with_the_datasets_tuned_defaults_like_the_cli(capsys, beauty):
    from core.models.defaults import default_config

    payload = JobRequest(dataset="beauty", models=(ModelStep("vsknn"),), evaluate=False).to_json()
    assert worker_main(io.StringIO(payload)) == 0
    events = [json.loads(line[6:]) for line in capsys.readouterr().out.splitlines() if line.startswith("@@job ")]
    [fitted] = [e["result"] for e in events if "result" in e]
    tuned = create("vsknn", **vars(default_config("vsknn", "beauty")))
    assert fitted["model"] == "vsknn"  # Beauty's defaults (defaults.toml), not a variant with the class defaults
    assert fitted["folder"] == str(store.model_folder(beauty, tuned))
