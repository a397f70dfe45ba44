"""Beyond one process: item embeddings on Ray Data, and evaluation prompts ranked in parallel shards.

**Embedding on Ray Data** (:func:`ray_item_embeddings`, ``python -m core embed --engine ray``). The catalog's texts
are read exactly as :func:`core.embeddings.item_embeddings` reads them (:func:`core.embeddings.catalog_texts`: the
same titles and field texts, the same long-title rule through the provider's ``too_long``/``fit_window``, untitled
items filled with the normalised mean of the titled ones), put in a ``ray.data`` dataset of ``(row, text)`` with
one block per shard of ``shard_rows`` rows, and embedded by ``map_batches`` with a callable class that holds one
embedding provider per actor (``compute=ray.data.ActorPoolStrategy(size=actors)``, Ray Data's API since 2.x; the
older ``concurrency=`` is deprecated). The driver writes each finished shard atomically as
``cache/embeddings/<cache_key>.shards/rows-<start>-<end>.npy``; a shard already there is skipped, so a killed run
resumes where it stopped. The shards are then assembled into exactly the file the content-keyed cache reads
(``core.embeddings.cached_path``, and the ``.json`` record beside it), so every other part of the product uses the
result unchanged; the shards are removed after that.

Where Ray runs: with no address the command starts a local Ray itself (``ray.init`` with ``num_cpus`` from
the machine, quiet logs, no dashboard) and shuts it down after; ``address="auto"`` joins the cluster this
machine belongs to and ``"ray://host:10001"`` any cluster through Ray Client. Ray pickles the actor class by
reference, so a cluster's nodes need this project installed (``pip install '.[scale]'``), and the local
model's package or the OpenAI key in their environment: the OpenAI provider in an actor reads
``OPENAI_API_KEY`` from that actor's environment (a local Ray's workers inherit the driver's); the key is
never passed to Ray, serialised or logged.

**Distributed evaluation** (:func:`rank_prompts`, ``core.evaluate.evaluate_model(..., workers=N)``). The
prompts are cut into the same batches of ``batch_size`` the single-process loop ranks, and the batches are
ranked by ``workers`` processes (``engine="process"``: ``concurrent.futures`` with the forkserver context
where the platform has it, else spawn) or Ray actors (``engine="ray"``), each on one torch/BLAS thread, and put
back in order: the top-K lists are identical to the single-process path's (tests compare them). The fitted
model travels to the workers pickled in memory (our own object, never a file; nothing here unpickles a file).
A generative model's per-session name counts (``Recommender.generation_counts``) come back from the workers
with each batch and are returned in prompt order (the caller's model object does not record them);
LLMSeqPrompt seeds its sampling per session (from the prompt alone), so the names drawn do not depend on which
worker ranks a session. A script that ranks with ``engine="process"`` needs Python's usual
``if __name__ == "__main__":`` guard (forkserver/spawn workers import the main module; ``python -m core`` is
safe). Worth it when ranking takes well over a worker's start (~2-3 s: importing torch, unpickling the model):
on this 2-core machine Beauty's 4,469 prompts rank in 0.6 s (SASRec) to 2 s (VSKNN) in one process, and
slower in two workers (2.6 s and 3.7 s with the start; Ray: 3.2 s and 5.2 s after its ~4 s ``ray.init``).

Ray is an optional extra (``make scale`` / ``pip install '.[scale]'``); without it every Ray function raises
:class:`RayMissing` (one sentence), and the process pool works as it is.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import pickle
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Literal, Sequence

import numpy as np

from core.common import ConfigError, Progress, UserError
from core.embeddings import EmbeddingError, EmbeddingSpec
from core.storage import CACHE_DIR, atomic_save_npy, load_npy

if TYPE_CHECKING:
    from core.data import Catalog
    from core.models.base import Recommender, SessionLike

RAY_MISSING = "Ray is not installed: `make scale` (or pip install '.[scale]')"
SHARD_ROWS = 1024  # texts per shard: ~1.5 MB of 384-d float32, ~1,000 files for a million items
EVALUATION_ENGINES = ("process", "ray")


class RayMissing(EmbeddingError):
    """Ray is not installed (an :class:`EmbeddingError`, so callers of the embedding paths see it as such)."""


class DistributedError(UserError, RuntimeError):
    """A worker, an actor or the cluster failed in a way a user can act on (one sentence)."""


def import_ray() -> Any:
    """The ``ray`` module; raises :class:`RayMissing` when it is not installed."""
    try:
        import ray
        import ray.data  # noqa: F401 (the extra is ray[data]: a bare ray lacks its dependencies)
    except ImportError:
        raise RayMissing(RAY_MISSING) from None
    return ray


def cpu_count() -> int:
    """The cores this process may use (its CPU affinity), at least 1."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# --------------------------------------------------------------------------------------------- Ray sessions
@dataclass
class RaySession:
    started: bool  # True: this process started a local Ray (and shuts it down at the end)
    startup_seconds: float  # ray.init's wall time (0 when joining a connection already open)


@contextlib.contextmanager
def ray_session(address: str | None = None, min_cpus: int = 1) -> Iterator[RaySession]:
    """A Ray connection for the block: one already open in this process is used as it is; else ``address``
    ("auto", "ray://host:port") is joined, or, without one, a local Ray is started with ``num_cpus`` = the
    machine's cores (at least ``min_cpus``, so that the actors asked for can all be placed) and shut down
    after. Ray's own logs and progress bars are kept quiet (our Progress reports instead).

    Raises :class:`RayMissing` without Ray, :class:`DistributedError` when the cluster cannot be reached."""
    ray = import_ray()
    quiet = {name: logging.getLogger(name).level for name in ("ray", "ray.data")}
    for name in quiet:
        logging.getLogger(name).setLevel(logging.ERROR)
    context = ray.data.DataContext.get_current()
    shown = (context.enable_progress_bars, context.print_on_execution_start, context.enable_auto_log_stats)
    context.enable_progress_bars = context.print_on_execution_start = context.enable_auto_log_stats = False
    started = False
    start = time.perf_counter()
    try:
        if not ray.is_initialized():
            options: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False,
                                       "include_dashboard": False}
            if address is None:
                options["num_cpus"] = max(cpu_count(), min_cpus)
            try:
                ray.init(address=address, **options)
            except (ConnectionError, TimeoutError, ValueError, RuntimeError) as err:
                where = address or "a local Ray"
                first = str(err).splitlines()[0] if str(err) else type(err).__name__
                raise DistributedError(f"cannot start or reach {where}: {first}") from None
            started = True
        yield RaySession(started, time.perf_counter() - start if started else 0.0)
    finally:
        if started:
            ray.shutdown()
        context.enable_progress_bars, context.print_on_execution_start, context.enable_auto_log_stats = shown
        for name, level in quiet.items():
            logging.getLogger(name).setLevel(level)


def check_cpus(ray: Any, wanted: int, what: str) -> None:
    """Raises :class:`DistributedError` when the Ray cluster has fewer CPUs than ``wanted`` (its actors would
    wait for them for good)."""
    total = int(ray.cluster_resources().get("CPU", 0))
    if total < wanted:
        raise DistributedError(f"the Ray cluster has {total} CPU(s), {what} need {wanted}: ask for fewer")


def _user_error(err: BaseException) -> UserError | None:
    """The :class:`UserError` a Ray error carries (an actor's EmbeddingError, ...), found along its causes."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [err]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, UserError):
            return current
        stack += [getattr(current, "cause", None), current.__cause__, current.__context__]
    return None


# --------------------------------------------------------------------------------------------- embedding
def shard_dir(catalog: Catalog, spec: EmbeddingSpec = EmbeddingSpec()) -> Path:
    """Where a Ray run keeps the catalog's finished shards for ``spec`` until they are assembled:
    ``cache/embeddings/<cache_key>.shards`` (named by every text and the model, as the cache's file)."""
    from core.embeddings import cache_key

    return CACHE_DIR / "embeddings" / f"{cache_key(catalog, spec)}.shards"


def _shard_path(folder: Path, start: int, end: int) -> Path:
    return folder / f"rows-{start:010d}-{end:010d}.npy"


def _read_shard(path: Path, rows: int) -> np.ndarray | None:
    """A finished shard, or None when it is missing or damaged (computed again)."""
    vectors = load_npy(path)
    if vectors is None or vectors.ndim != 2 or vectors.shape[0] != rows or vectors.shape[1] == 0 \
            or vectors.dtype != np.float32 or not np.isfinite(vectors).all():
        return None
    return vectors


class _EncodeBatch:
    """The Ray Data callable class: one embedding provider per actor, built in the actor (a local model loads
    there; the OpenAI client reads its key from the actor's environment).

    A problem the user can fix (no key in the actor's environment, a rejected key, a model folder missing on
    its node) comes back as the batch's ``problem`` text, which the driver raises as one sentence: Ray Data
    passes an exception raised here to the driver only as text inside its own, and restarts an actor whose
    constructor failed."""

    def __init__(self, spec: EmbeddingSpec, threads: int) -> None:
        from core.embeddings import Provider, provider

        if spec.provider == "local":
            import torch

            torch.set_num_threads(max(1, threads))
        self.encoder: Provider | None = None
        self.problem = ""
        try:
            self.encoder = provider(spec)
        except UserError as err:
            self.problem = str(err)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = np.asarray(batch["row"], dtype=np.int64)
        problem = self.problem
        if self.encoder is not None:
            try:
                vectors = np.asarray(self.encoder.encode([str(text) for text in batch["text"]]), dtype=np.float32)
            except UserError as err:
                problem = str(err)
        if problem:
            vectors = np.zeros((len(rows), 1), dtype=np.float32)
        return {"row": rows, "vector": vectors, "problem": np.full(len(rows), problem, dtype=object)}


def encode_on_ray(texts: Sequence[str], spec: EmbeddingSpec = EmbeddingSpec(), actors: int = 2,
                  address: str | None = None, shards: Path | None = None, shard_rows: int = SHARD_ROWS,
                  progress: Progress | None = None, cpus_per_actor: int | None = None) -> np.ndarray:
    """``texts`` embedded by ``actors`` Ray actors, each holding one provider for ``spec``: (len(texts), d)
    float32, L2-normalised rows, in the order of ``texts`` — the vectors ``provider(spec).encode(texts)`` gives
    in one process (cosine >= 0.9999: batches are padded differently).

    Shards of ``shard_rows`` texts are written atomically under ``shards`` (a temporary folder when None) as
    they finish; a shard already there (same rows, readable) is not computed again, so a run that was killed
    resumes. ``shards`` must belong to exactly these texts and spec (:func:`shard_dir` names it so).
    ``cpus_per_actor`` (torch threads and Ray CPUs of each actor): by default the cluster's CPUs shared out
    among the actors (at least 1, at most one node's). Raises :class:`RayMissing`, :class:`ConfigError` for
    bad numbers, :class:`EmbeddingError`/:class:`DistributedError` (one sentence) when an actor fails."""
    if actors < 1:
        raise ConfigError(f"actors must be at least 1, got {actors}")
    if shard_rows < 1:
        raise ConfigError(f"shard_rows must be at least 1, got {shard_rows}")
    if cpus_per_actor is not None and cpus_per_actor < 1:
        raise ConfigError(f"cpus_per_actor must be at least 1, got {cpus_per_actor}")
    import_ray()
    texts = list(texts)
    if not texts:
        raise EmbeddingError("no text to embed.")
    with contextlib.ExitStack() as stack:
        folder = Path(shards) if shards is not None else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        folder.mkdir(parents=True, exist_ok=True)
        bounds = [(start, min(start + shard_rows, len(texts))) for start in range(0, len(texts), shard_rows)]
        done = {bound: vectors for bound in bounds
                if (vectors := _read_shard(_shard_path(folder, *bound), bound[1] - bound[0])) is not None}
        todo = [bound for bound in bounds if bound not in done]
        finished = sum(end - start for start, end in done)
        message = f"embedding titles on Ray ({actors} actor{'s' if actors > 1 else ''})"
        if progress:
            progress(finished, len(texts), message)
        if todo:
            stack.enter_context(ray_session(address, min_cpus=actors * (cpus_per_actor or 1)))

            def on_rows(rows: int) -> None:
                if progress:
                    progress(finished + rows, len(texts), message)

            for bound, vectors in _run_actor_pool(texts, todo, spec, actors, cpus_per_actor, folder, on_rows):
                done[bound] = vectors
        widths = {vectors.shape[1] for vectors in done.values()}
        if len(widths) != 1:
            raise EmbeddingError(f"the shards in {folder} hold vectors of widths {sorted(widths)}: remove the "
                                 "folder and embed again.")
        return np.concatenate([done[bound] for bound in bounds])


def _run_actor_pool(texts: list[str], todo: list[tuple[int, int]], spec: EmbeddingSpec, actors: int,
                    cpus_per_actor: int | None, folder: Path,
                    on_rows: Callable[[int], None]) -> Iterator[tuple[tuple[int, int], np.ndarray]]:
    """Embed the shards ``todo`` on the Ray connection open now; yields (bounds, vectors) as each shard is
    written to ``folder``."""
    import pandas as pd

    ray = import_ray()
    actors = min(actors, len(todo))  # an actor beyond one per shard would only load its model
    if cpus_per_actor is None:
        nodes = [node.get("Resources", {}).get("CPU", 0) for node in ray.nodes() if node.get("Alive")]
        total = sum(nodes) or cpu_count()
        cpus_per_actor = int(max(1, min(total // actors, max(nodes, default=1))))
    check_cpus(ray, actors * cpus_per_actor, f"{actors} actor(s) of {cpus_per_actor} CPU(s)")
    frames = [pd.DataFrame({"row": np.arange(start, end, dtype=np.int64), "text": texts[start:end]})
              for start, end in todo]
    dataset = ray.data.from_pandas(frames).map_batches(
        _EncodeBatch, batch_size=max(end - start for start, end in todo), batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=cpus_per_actor,
        fn_constructor_kwargs={"spec": spec, "threads": cpus_per_actor})
    starts = np.array([start for start, _ in todo])
    buffers: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}  # bounds -> (vectors, rows filled)
    received = 0
    try:
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            problems = [str(p) for p in batch["problem"] if p]
            if problems:
                raise EmbeddingError(problems[0])
            rows, vectors = np.asarray(batch["row"]), np.asarray(batch["vector"], dtype=np.float32)
            for position in range(len(rows)):
                row = int(rows[position])
                bound = todo[int(np.searchsorted(starts, row, "right")) - 1]  # the shard holding this row
                if bound not in buffers:
                    buffers[bound] = (np.empty((bound[1] - bound[0], vectors.shape[1]), dtype=np.float32),
                                      np.zeros(bound[1] - bound[0], dtype=bool))
                into, filled = buffers[bound]
                into[row - bound[0]] = vectors[position]
                filled[row - bound[0]] = True
                if filled.all():
                    atomic_save_npy(_shard_path(folder, *bound), into)
                    del buffers[bound]
                    yield bound, into
            received += len(rows)
            on_rows(received)
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 (a failure arrives wrapped by Ray: say its cause when it is ours)
        found = _user_error(err)
        if found is not None:
            raise EmbeddingError(str(found)) from None
        raise
    if buffers:
        raise DistributedError(f"Ray returned {len(buffers)} shard(s) incomplete; run again (finished shards "
                               "are kept).")


def ray_item_embeddings(catalog: Catalog, spec: EmbeddingSpec = EmbeddingSpec(), actors: int = 2,
                        address: str | None = None, progress: Progress | None = None,
                        shard_rows: int = SHARD_ROWS, cpus_per_actor: int | None = None) -> np.ndarray:
    """One L2-normalised vector per catalog item, (n_items, d) float32, embedded on Ray (module docstring):
    the same vectors as :func:`core.embeddings.item_embeddings` (cosine >= 0.9999 per item), written to the
    same cache file with the same record, so everything else reads them unchanged. From the cache (or the
    shipped vectors) when they are there already; resumable through :func:`shard_dir`.

    Raises :class:`RayMissing`, :class:`EmbeddingError` (no title, provider unusable, an actor failed)."""
    import shutil

    from core.embeddings import cached_vectors, catalog_texts, save_item_vectors

    vectors = cached_vectors(catalog, spec)
    if vectors is not None:
        return vectors
    import_ray()  # before loading the model for the tokenizer
    read = catalog_texts(catalog, spec)
    folder = shard_dir(catalog, spec)
    encoded = encode_on_ray(read.texts, spec, actors, address, folder, shard_rows, progress, cpus_per_actor)
    vectors = save_item_vectors(catalog, spec, read, encoded)
    shutil.rmtree(folder, ignore_errors=True)  # assembled: the cache's file is what is read from now on
    return vectors


@dataclass(frozen=True)
class Throughput:
    titles_per_second: float  # texts / seconds
    seconds: float  # from the call to the last vector: model loading included, Ray's startup not
    startup_seconds: float  # ray.init (0 for the single-process engine)
    texts: int


def embedding_throughput(texts: Sequence[str], engine: Literal["single", "ray"] = "single", actors: int = 1,
                         spec: EmbeddingSpec = EmbeddingSpec(), address: str | None = None) -> Throughput:
    """How fast ``texts`` are embedded (for bench/scale.py): ``engine="single"`` with a fresh provider in this
    process, ``"ray"`` with ``actors`` actors (:func:`encode_on_ray`, shards in a temporary folder). Both
    load their model inside the timing (cold, as a run does); Ray's startup is timed apart. Nothing is cached."""
    from core.embeddings import LocalProvider, local_model_folder, provider

    texts = list(texts)
    if engine == "single":
        start = time.perf_counter()
        encoder = LocalProvider(local_model_folder(spec.model)) if spec.provider == "local" else provider(spec)
        encoder.encode(texts)
        seconds = time.perf_counter() - start
        return Throughput(len(texts) / seconds, seconds, 0.0, len(texts))
    if engine != "ray":
        raise ConfigError(f"engine must be 'single' or 'ray', got {engine!r}")
    with ray_session(address, min_cpus=actors) as session:
        start = time.perf_counter()
        encode_on_ray(texts, spec, actors)
        seconds = time.perf_counter() - start
    return Throughput(len(texts) / seconds, seconds, session.startup_seconds, len(texts))


# --------------------------------------------------------------------------------------------- evaluation
def check_engine(workers: int, engine: str) -> None:
    """Raises :class:`ConfigError` for a worker count under 1 or an unknown engine."""
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ConfigError(f"workers must be a whole number of at least 1, got {workers!r}")
    if engine not in EVALUATION_ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(EVALUATION_ENGINES)}; got {engine!r}")


def _rank(model: Recommender, prompts: Sequence[SessionLike], k: int,
          exclude_seen: bool) -> tuple[np.ndarray, list[dict[str, int]]]:
    """One batch ranked as the single-process loop ranks it, with the generation counts it added."""
    before = len(model.generation_counts())
    items, _ = model.recommend(prompts, k, exclude_seen=exclude_seen)
    return items, [dict(counts) for counts in model.generation_counts()[before:]]


def _one_thread() -> Any:
    """Limit this worker to one thread: torch's intra-/inter-op pools, BLAS/OpenMP (threadpoolctl), faiss."""
    os.environ["LLMSEQ_TORCH_THREADS"] = "1"  # core.train.configure_torch reads it
    import torch

    torch.set_num_threads(1)
    with contextlib.suppress(RuntimeError):  # only settable before any parallel work
        torch.set_num_interop_threads(1)
    limits = None
    with contextlib.suppress(ImportError):
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(1)  # kept alive by the caller: the limits hold while it lives
    return limits


_WORKER: dict[str, Any] = {}  # in a pool process: the model and the thread limits


def _start_worker(payload: bytes) -> None:
    _WORKER["limits"] = _one_thread()
    _WORKER["model"] = pickle.loads(payload)  # the parent's own fitted model, pickled in memory (never a file)
    if "faiss" in sys.modules:
        sys.modules["faiss"].omp_set_num_threads(1)


def _rank_in_worker(prompts: list[np.ndarray], k: int,
                    exclude_seen: bool) -> tuple[np.ndarray, list[dict[str, int]]]:
    return _rank(_WORKER["model"], prompts, k, exclude_seen)


def _pool_context() -> multiprocessing.context.BaseContext:
    """forkserver where the platform has it (a clean process, forked cheaply), else spawn; never plain fork,
    which would copy this process's torch/OpenMP threads' state."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def rank_prompts(model: Recommender, prompts: Sequence[SessionLike], k: int, exclude_seen: bool = True,
                 workers: int = 2, engine: str = "process", batch_size: int = 256,
                 address: str | None = None, progress: Progress | None = None,
                 message: str = "predicting") -> tuple[np.ndarray, list[dict[str, int]]]:
    """Top-``k`` lists for every prompt, ranked in parallel shards: ``(items, counts)``, ``items`` of shape
    (n_prompts, min(k, n_items)) int64 (``NO_ITEM`` where a list is short), ``counts`` the generation counts of
    a generative model, one per prompt in prompt order (empty for the others).

    The shards are the single-process loop's batches (``batch_size`` prompts each, from the first), each ranked
    by ``model.recommend`` on one thread in one of ``workers`` processes (``engine="process"``) or Ray actors
    (``"ray"``: a local Ray started for the call, the connection open now, or ``address``), so the lists are
    those the single-process path gives. ``workers=1`` ranks in this process. The model is pickled in memory.

    Raises :class:`ConfigError` (bad workers/engine), :class:`RayMissing`, :class:`DistributedError` (a model
    that cannot be pickled, a worker that died), or the model's own errors."""
    check_engine(workers, engine)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    n = len(prompts)
    bounds = [(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]
    parts: list[tuple[np.ndarray, list[dict[str, int]]] | None] = [None] * len(bounds)
    if workers == 1 or len(bounds) <= 1:
        for i, (start, end) in enumerate(bounds):
            parts[i] = _rank(model, prompts[start:end], k, exclude_seen)
            if progress:
                progress(end, n, message)
    else:
        try:
            payload = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as err:
            raise DistributedError(f"{model.name} cannot be sent to worker processes ({err}); evaluate it with "
                                   "workers=1") from None
        shards = [[np.asarray(p, dtype=np.int64) for p in prompts[start:end]] for start, end in bounds]
        ranked = _rank_on_ray if engine == "ray" else _rank_in_pool
        done = 0
        for i, part in ranked(payload, shards, k, exclude_seen, min(workers, len(bounds)), address):
            parts[i] = part
            done += len(shards[i])
            if progress:
                progress(done, n, message)
    if not bounds:
        return np.zeros((0, k), dtype=np.int64), []
    items = np.concatenate([part[0] for part in parts if part is not None])
    counts = [c for part in parts if part is not None for c in part[1]]
    return items, counts


def _rank_in_pool(payload: bytes, shards: list[list[np.ndarray]], k: int, exclude_seen: bool, workers: int,
                  address: str | None) -> Iterator[tuple[int, tuple[np.ndarray, list[dict[str, int]]]]]:
    from concurrent.futures import as_completed
    from concurrent.futures.process import BrokenProcessPool

    pool = ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context(), initializer=_start_worker,
                               initargs=(payload,))
    try:
        futures = {pool.submit(_rank_in_worker, shard, k, exclude_seen): i for i, shard in enumerate(shards)}
        for future in as_completed(futures):
            yield futures[future], future.result()
    except BrokenProcessPool:
        raise DistributedError("a worker process died while ranking (out of memory?); try fewer workers") from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # after an error: the shards not started are dropped


class _Ranker:
    """A Ray actor holding the fitted model (made remote in :func:`_rank_on_ray`: Ray is optional)."""

    def __init__(self, payload: bytes) -> None:
        self.limits = _one_thread()
        self.model = pickle.loads(payload)  # the driver's own fitted model (never a file)

    def rank(self, prompts: list[np.ndarray], k: int,
             exclude_seen: bool) -> tuple[np.ndarray, list[dict[str, int]]]:
        return _rank(self.model, prompts, k, exclude_seen)


def _rank_on_ray(payload: bytes, shards: list[list[np.ndarray]], k: int, exclude_seen: bool, workers: int,
                 address: str | None) -> Iterator[tuple[int, tuple[np.ndarray, list[dict[str, int]]]]]:
    ray = import_ray()
    from ray.util import ActorPool

    with ray_session(address, min_cpus=workers):
        check_cpus(ray, workers, f"{workers} workers of 1 CPU")
        model_ref = ray.put(payload)
        actors = [ray.remote(num_cpus=1)(_Ranker).remote(model_ref) for _ in range(workers)]
        try:
            pool = ActorPool(actors)
            ranked = pool.map(lambda actor, shard: actor.rank.remote(shard, k, exclude_seen), shards)
            for i, part in enumerate(ranked):  # in submission order
                yield i, part
        except Exception as err:  # noqa: BLE001 (a worker's error arrives wrapped by Ray)
            found = _user_error(err)
            if found is not None:
                raise found from None
            raise
        finally:
            for actor in actors:
                ray.kill(actor)
