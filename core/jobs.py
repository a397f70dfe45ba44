"""Background jobs: train / evaluate / embed / project in a worker process that outlives the page that started it.

Why a process and not a thread: a cancelled job must stop at once (a thread cannot be interrupted inside a
torch epoch), and a long fit must not starve the app's own thread of the GIL. The app holds one
:class:`JobManager` for the whole server; jobs run one at a time in submission order (the machine this
targets has 2 cores, and two jobs must never write the same model folder), so a later job waits "queued".
Each job is owned by the browser session that submitted it (``owner``): only its owner sees its title, its
progress and its errors, and only its owner may cancel it; other visitors see at most how many jobs are
ahead of theirs. Submitting a job identical to one of the owner's queued or running jobs returns that job
(a double click queues one job, not two).

Protocol: the manager starts ``python -m core.jobs`` and writes the job (JSON) to its stdin — secrets such as
an OpenAI key travel this way only, never in a file, an argument or the app's environment. The worker
answers with lines ``@@job {json}`` on stdout (progress, step, result, error); anything else it prints is kept
as log.

Cancelling sends SIGTERM. The worker turns it into :class:`Cancelled` at the next Python instruction, except
while a model is being saved: then the signal waits until the save (already atomic: a temp folder, then a
rename) is complete. So a cancel never leaves a half-written model; what was saved before stays usable.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

MARKER = "@@job "
ROOT = Path(__file__).resolve().parent.parent
KILL_AFTER_SECONDS = 30.0  # a cancelled worker that has not stopped by then is killed (saves are atomic renames)


@dataclass(frozen=True)
class ModelStep:
    name: str  # registry name
    options: dict[str, Any] = field(default_factory=dict)  # config overrides (values or strings)


@dataclass(frozen=True)
class JobRequest:
    """What a job does, in order: embed the catalog, fit (and evaluate) models, compute 2-D projections."""

    dataset: str  # a bundled name or a folder with the two CSVs (what core.data.load takes)
    models: tuple[ModelStep, ...] = ()
    evaluate: bool = True  # evaluate each model on the test split and save its result for the dashboards
    retrain: bool = False  # ignore a saved model with the same config and fit again
    embed: dict[str, Any] | None = None  # EmbeddingSpec fields: embed the catalog first (cached)
    projections: tuple[dict[str, Any], ...] = ()  # {"source": "embeddings"|<model folder>, "method", "embedding"}
    confirm_spending: bool = False  # the user accepted a paid backend's cost estimate (see spending_estimate)
    tune: dict[str, Any] | None = None  # {"model", "trials", "timeout"}: an Optuna search (core.tune), last
    study: str | None = None  # an open-question study (core.study), after everything else

    def steps(self) -> list[str]:
        out = []
        if self.embed is not None:
            out.append(f"embed the catalog ({self.embed.get('provider', 'local')})")
        for step in self.models:
            out.append(f"{'train + evaluate' if self.evaluate else 'train'} {step.name}")
        for projection in self.projections:
            source = projection.get("source", "embeddings")
            what = "LLM embeddings" if source == "embeddings" else Path(source).name.split("-")[0]
            out.append(f"{projection.get('method', 'umap').upper()} map of {what}")
        if self.tune is not None:  # last, as the worker runs it
            out.append(f"tune {self.tune['model']} ({self.tune['trials']} trials on the validation folds)")
        if self.study is not None:
            out.append(f"study {self.study}")
        return out

    def to_json(self, secrets: dict[str, str] | None = None) -> str:
        return json.dumps({"request": asdict(self), "secrets": secrets or {}})

    @staticmethod
    def from_dict(payload: dict[str, Any]) -> "JobRequest":
        payload = dict(payload)
        payload["models"] = tuple(ModelStep(**m) for m in payload.get("models", ()))
        payload["projections"] = tuple(payload.get("projections", ()))
        return JobRequest(**payload)


@dataclass
class Job:
    id: int
    title: str
    request: JobRequest
    owner: str = ""  # the browser session that submitted it ("" = a script or a test)
    status: Literal["queued", "running", "done", "failed", "cancelled"] = "queued"
    step: int = 0  # index into request.steps()
    done: int = 0
    total: int = 0
    message: str = ""
    error: str = ""
    results: list[dict[str, Any]] = field(default_factory=list)  # one per finished step
    log: collections.deque = field(default_factory=lambda: collections.deque(maxlen=200))
    submitted: float = field(default_factory=time.time)
    finished: float | None = None
    cancel_requested: bool = False
    phase_started: float = field(default_factory=time.time)  # when the current done/total count began

    def seconds_left(self, now: float | None = None) -> float | None:
        """The current phase's time left, extrapolated from its own pace so far (done/total in its unit: titles,
        batches of the whole run, trials, sessions); None until there is a pace to go by (a few % done)."""
        if not self.active or not self.total or self.done <= 0 or self.done >= self.total:
            return None
        elapsed = (now if now is not None else time.time()) - self.phase_started
        if elapsed < 1.0 or self.done / self.total < 0.02:
            return None
        return elapsed * (self.total - self.done) / self.done

    @property
    def active(self) -> bool:
        return self.status in ("queued", "running")

    @property
    def fraction(self) -> float:
        """Overall progress 0..1: finished steps plus the current step's share."""
        n_steps = max(len(self.request.steps()), 1)
        if self.status == "done":
            return 1.0
        within = self.done / self.total if self.total else 0.0
        return min((self.step + min(within, 1.0)) / n_steps, 1.0)


class JobManager:
    """Runs jobs one at a time in worker processes; safe to call from any Streamlit session thread."""

    def __init__(self, python: str = sys.executable, env: dict[str, str] | None = None) -> None:
        self._python = python
        self._env = env
        self._lock = threading.RLock()
        self._jobs: dict[int, Job] = {}
        self._secrets: dict[int, dict[str, str]] = {}  # held in memory only until the worker has them
        self._process: subprocess.Popen | None = None
        self._running: Job | None = None
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------------------------------ public
    def submit(self, request: JobRequest, title: str, secrets: dict[str, str] | None = None,
               owner: str = "") -> Job:
        """Queue a job for ``owner``; for a browser session (a non-empty owner), its identical queued or running
        job if there is one (a double click)."""
        with self._lock:
            for job in self._jobs.values():
                if owner and job.active and job.owner == owner and job.request == request \
                        and not job.cancel_requested:
                    return job
            job = Job(id=next(self._ids), title=title, request=request, owner=owner)
            self._jobs[job.id] = job
            self._secrets[job.id] = dict(secrets or {})
            self._start_next()
            return job

    def jobs(self, owner: str | None = None) -> list[Job]:
        """Newest first: every job (``owner=None``, for scripts and tests) or one owner's."""
        with self._lock:
            return sorted((j for j in self._jobs.values() if owner is None or j.owner == owner), key=lambda j: -j.id)

    def others_active(self, owner: str) -> int:
        """How many queued or running jobs belong to other owners (all another visitor may learn of them)."""
        with self._lock:
            return sum(1 for j in self._jobs.values() if j.active and j.owner != owner)

    def get(self, job_id: int) -> Job | None:
        return self._jobs.get(job_id)

    def active(self, owner: str | None = None) -> list[Job]:
        return [job for job in self.jobs(owner) if job.active]

    def cancel(self, job_id: int, owner: str | None = None) -> None:
        """Cancel a job; with ``owner``, only a job of that owner (anyone else's request is ignored)."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or not job.active or (owner is not None and job.owner != owner):
                return
            job.cancel_requested = True
            if job.status == "queued":
                job.status, job.finished, job.message = "cancelled", time.time(), "cancelled before it started"
                self._secrets.pop(job.id, None)
                return
            process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            threading.Thread(target=self._kill_if_stuck, args=(job, process), daemon=True).start()

    def wait(self, job_id: int, timeout: float = 600.0) -> Job:
        """Block until the job has ended (for tests and scripts)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            job = self._jobs[job_id]
            if not job.active:
                return job
            time.sleep(0.05)
        raise TimeoutError(f"job {job_id} still {self._jobs[job_id].status} after {timeout:.0f} s")

    def forget_finished(self) -> None:
        with self._lock:
            for job_id in [j.id for j in self._jobs.values() if not j.active]:
                del self._jobs[job_id]

    # ------------------------------------------------------------------------------------------ internals
    def _start_next(self) -> None:
        with self._lock:
            if self._running is not None:
                return
            queued = sorted((j for j in self._jobs.values() if j.status == "queued"), key=lambda j: j.id)
            if not queued:
                return
            job = queued[0]
            env = dict(self._env if self._env is not None else os.environ)
            env["PYTHONUNBUFFERED"] = "1"
            try:
                process = subprocess.Popen(
                    [self._python, "-m", "core.jobs"], cwd=ROOT, env=env, text=True, bufsize=1,
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            except OSError as err:
                job.status, job.error, job.finished = "failed", f"could not start the worker: {err}", time.time()
                return
            job.status = "running"
            self._running, self._process = job, process
            payload = job.request.to_json(self._secrets.pop(job.id, {}))
            threading.Thread(target=self._follow, args=(job, process, payload), daemon=True).start()

    def _follow(self, job: Job, process: subprocess.Popen, payload: str) -> None:
        assert process.stdin is not None and process.stdout is not None  # both are pipes (see _start_next)
        try:
            process.stdin.write(payload)
            process.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        for line in process.stdout:
            line = line.rstrip("\n")
            if line.startswith(MARKER):
                try:
                    self._apply(job, json.loads(line[len(MARKER):]))
                except json.JSONDecodeError:
                    job.log.append(line)
            elif line.strip():
                job.log.append(line)
        code = process.wait()
        with self._lock:
            job.finished = time.time()
            if job.status == "running":
                if job.cancel_requested:
                    job.status, job.message = "cancelled", "cancelled; what was saved before stays in the cache"
                elif code == 0:
                    job.status = "done"
                else:
                    job.status = "failed"
                    job.error = job.error or (f"the worker stopped (exit code {code}); last output: "
                                              + (job.log[-1] if job.log else "none"))
            self._running, self._process = None, None
            self._start_next()

    def _apply(self, job: Job, event: dict[str, Any]) -> None:
        with self._lock:
            if "progress" in event:
                done, total, job.message = event["progress"]
                if total != job.total or done < job.done:  # a new phase (e.g. embedding, then training)
                    job.phase_started = time.time()
                job.done, job.total = done, total
            if "step" in event:
                job.step, job.done, job.total = event["step"], 0, 0
                job.message = event.get("message", "")
            if "result" in event:
                job.results.append(event["result"])
            if "error" in event:
                job.status, job.error = "failed", event["error"]
            if "cancelled" in event:
                job.status = "cancelled"
                job.message = "cancelled; what was saved before stays in the cache"

    def _kill_if_stuck(self, job: Job, process: subprocess.Popen) -> None:
        deadline = time.time() + KILL_AFTER_SECONDS
        while process.poll() is None:
            if time.time() > deadline:
                process.kill()
                return
            time.sleep(0.2)


_MANAGER: JobManager | None = None
_MANAGER_LOCK = threading.Lock()


def manager() -> JobManager:
    """The server-wide job manager (jobs survive page switches and browser reloads)."""
    global _MANAGER
    with _MANAGER_LOCK:
        if _MANAGER is None:
            _MANAGER = JobManager()
        return _MANAGER


# ================================================================================================ worker


class Cancelled(BaseException):
    """Raised inside the worker when the job is cancelled (a BaseException, like KeyboardInterrupt, so that
    no library's ``except Exception`` swallows it)."""


def _emit(**event: Any) -> None:
    sys.stdout.write(MARKER + json.dumps(event) + "\n")
    sys.stdout.flush()


class _Worker:
    def __init__(self) -> None:
        self._last_emit = 0.0

    def on_sigterm(self, signum: int, frame: Any) -> None:
        from core.storage import defer_while_saving

        defer_while_saving(self.cancel)  # while a model is saved, the cancel waits until it is complete

    @staticmethod
    def cancel() -> None:
        raise Cancelled()

    def progress(self, done: int, total: int, message: str) -> None:
        now = time.monotonic()
        if done >= total or now - self._last_emit > 0.1:  # at most ~10 events a second
            self._last_emit = now
            _emit(progress=[int(done), int(total), str(message)])

    def run(self, request: JobRequest, secrets: dict[str, str]) -> None:
        os.environ.update(secrets)  # this process only; it ends with the job
        from core import data

        step = 0
        _emit(step=step, message="loading the dataset")
        dataset = data.load(request.dataset)
        if request.embed is not None:
            from core.embeddings import EmbeddingSpec, item_embeddings

            _emit(step=step, message="embedding the catalog")
            vectors = item_embeddings(dataset.catalog, EmbeddingSpec(**request.embed), progress=self.progress)
            _emit(result={"step": "embed", "shape": list(vectors.shape)})
            step += 1
        for model_step in request.models:
            _emit(step=step, message=f"{model_step.name}: starting")
            _emit(result=self._fit(dataset, model_step, request))
            step += 1
        for projection in request.projections:
            _emit(step=step, message=f"{projection.get('method', 'umap')} projection")
            _emit(result=self._project(dataset, projection))
            step += 1
        if request.tune is not None:
            _emit(step=step, message=f"tuning {request.tune['model']}")
            _emit(result=self._tune(dataset, request.tune))
            step += 1
        if request.study is not None:
            from core import study

            _emit(step=step, message=f"study {request.study}")
            command = f"python -m core study {request.study} --dataset {request.dataset}"
            result = study.run(request.study, dataset, command, progress=self.progress)
            _emit(result={"step": "study", "study": request.study, "path": str(study.save(result)),
                          "measurements": len(result.rows)})

    def _fit(self, dataset: Any, model_step: ModelStep, request: JobRequest) -> dict[str, Any]:
        from core import evaluate, store
        from core.config import config_dict
        from core.models import model_class
        from core.models.defaults import default_config

        # the dataset's tuned defaults first (as the CLI), then the step's options: "popularity" with no options
        # is the same model whether the app or `python -m core train` fits it
        model = model_class(model_step.name)(default_config(model_step.name, dataset.name), **model_step.options)
        folder = str(store.model_folder(dataset, model))
        if request.evaluate:
            report = evaluate.run(dataset, [model], progress=self.progress, retrain=request.retrain,
                                  confirm_spending=request.confirm_spending)
            result = next(iter(report.results.values()))
            return {"step": "train", "model": result.label, "folder": folder, "fit_seconds": result.fit_seconds,
                    "status": result.status, "notes": result.notes,
                    "NDCG@20": result.metrics["NDCG@20"], "HR@20": result.metrics["HR@20"]}
        fitted = store.fit_or_load(model, dataset, progress=self.progress, retrain=request.retrain,
                                   confirm_spending=request.confirm_spending)
        return {"step": "train", "model": store.label(model.name, config_dict(model.config), dataset.name),
                "folder": folder,
                "fit_seconds": fitted.fit_seconds, "status": fitted.status, "notes": fitted.notes}

    def _tune(self, dataset: Any, spec: dict[str, Any]) -> dict[str, Any]:
        from core import tune

        trials = int(spec["trials"])

        def progress_for(trial: Any) -> tuple[Any, Any]:
            done = len(tune.finished_trials(trial.study))

            def report(step: int, total: int, message: str) -> None:  # the bar counts trials; the text, the fold
                self.progress(min(done, trials - 1), trials, message)

            return report, lambda: None

        study = tune.tune(dataset, spec["model"], trials, timeout=spec.get("timeout"), progress_for=progress_for)
        return {"step": "tune", "model": spec["model"], **tune.summary(study)}

    def _project(self, dataset: Any, projection: dict[str, Any]) -> dict[str, Any]:
        from core import projection as projection_module

        vectors = projection_module.source_vectors(dataset, projection.get("source", "embeddings"),
                                                   projection.get("embedding"))
        coords = projection_module.project(vectors, method=projection.get("method", "umap"),
                                           progress=self.progress)
        return {"step": "project", "method": projection.get("method", "umap"), "n_points": len(coords)}


def worker_main(stdin: Any = None) -> int:
    """Entry point of ``python -m core.jobs``: one job from stdin, events on stdout."""
    payload = json.loads((stdin or sys.stdin).read())
    worker = _Worker()
    signal.signal(signal.SIGTERM, worker.on_sigterm)
    from core.common import UserError, describe_bug

    try:
        worker.run(JobRequest.from_dict(payload["request"]), payload.get("secrets", {}))
    except Cancelled:
        _emit(cancelled=True)
        return 130
    except UserError as err:
        _emit(error=str(err))
        return 1
    except Exception as err:  # noqa: BLE001 (a bug: its traceback goes to the job's log, which the app shows)
        traceback.print_exc(file=sys.stdout)
        sys.stdout.flush()
        _emit(error=f"{describe_bug(err)} (a bug: the job's log has the traceback)")
        return 1
    return 0


def spending_estimate(name: str, options: dict[str, Any], dataset: Any) -> str | None:
    """What training would cost in money (``Recommender.spending_estimate``), for the Train page to show before
    anything is started; None when free."""
    from core.models import create

    return create(name, **options).spending_estimate(dataset.split)


if __name__ == "__main__":
    sys.exit(worker_main())
