"""Evaluation ranked in parallel shards (core.distributed.rank_prompts) gives the single-process lists; what
happens without Ray. The Ray tests themselves are in test_scale_ray.py (marker ``scale``)."""

import json
import sys

import numpy as np
import pytest

from core import cli, distributed
from core.common import ConfigError
from core.evaluate import EvaluationOptions, evaluate_model
from core.models import create
from core.models.popularity import Popularity

FAST = EvaluationOptions(bootstrap_resamples=10)
TINY_SASREC = {"embedding_dim": 16, "heads": 2, "layers": 1, "max_epochs": 1, "max_length": 20}


@pytest.fixture(scope="module")
def fitted(ml100k):
    """One fitted model of each kind: counts, session neighbours, text embeddings, a tiny transformer."""
    return {name: create(name, **options).fit(ml100k.split) for name, options in (
        ("popularity", {}), ("vsknn", {"k": 50, "sample_size": 200}), ("llmseqsim", {}),
        ("sasrec", TINY_SASREC))}


@pytest.mark.parametrize("name", ["popularity", "vsknn", "llmseqsim", "sasrec"])
def test_a_process_pool_ranks_exactly_as_one_process(fitted, ml100k, name):
    model = fitted[name]
    one = evaluate_model(model, ml100k.split, FAST, batch_size=32)
    pooled = evaluate_model(model, ml100k.split, FAST, batch_size=32, workers=2, engine="process")
    assert ml100k.split.n_test > 4 * 32  # several shards for each worker
    assert np.array_equal(one["recommendations"], pooled["recommendations"])
    assert one["metrics"] == pooled["metrics"]


class Generative(Popularity):
    """A stand-in for a generative model: per ranked session, made-up name counts that depend on the session
    alone (as LLMSeqPrompt's per-session seeded sampling), kept in call order."""

    def __init__(self, config=None, **overrides) -> None:
        super().__init__(config, **overrides)
        self.generated: list[dict[str, int]] = []

    def recommend(self, sessions, k, exclude_seen=True, batch_size=512):
        for session in sessions:
            items = np.asarray(session)
            self.generated.append({"exact": int(len(items)), "duplicated": int(items[0]) % 3,
                                "hallucinated": int(items[-1]) % 5})
        return super().recommend(sessions, k, exclude_seen, batch_size)

    def generation_counts(self):
        return self.generated


def test_a_generative_models_counts_come_back_in_prompt_order(ml100k):
    model = Generative().fit(ml100k.split)
    one = evaluate_model(model, ml100k.split, FAST, batch_size=16)
    pooled = evaluate_model(model, ml100k.split, FAST, batch_size=16, workers=3)
    assert pooled["generation_per_session"]["exact"] == [len(p) for p in ml100k.split.prompts]
    assert pooled["generation_per_session"] == one["generation_per_session"]
    assert pooled["metrics"]["hallucination_rate"] == one["metrics"]["hallucination_rate"] > 0
    assert len(model.generated) == ml100k.split.n_test  # the workers counted on their own copies


def test_rank_prompts_on_few_or_no_prompts(fitted, ml100k):
    model = fitted["popularity"]
    prompts = ml100k.split.prompts[:3]
    items, counts = distributed.rank_prompts(model, prompts, 5, workers=2, batch_size=1)
    assert np.array_equal(items, model.recommend(prompts, 5)[0]) and counts == []
    empty, _ = distributed.rank_prompts(model, [], 5, workers=2)
    assert empty.shape == (0, 5)


def test_a_workers_error_reaches_the_caller_as_itself(fitted):
    with pytest.raises(ValueError, match="outside 0..1681"):
        distributed.rank_prompts(fitted["vsknn"], [[1], [1, 10**6]], 5, workers=2, batch_size=1)


@pytest.mark.parametrize("workers, engine, problem", [(0, "process", "workers"), (2, "spark", "engine"),
                                                      (2.5, "process", "workers")])
def test_bad_workers_or_engine_are_refused(fitted, ml100k, workers, engine, problem):
    with pytest.raises(ConfigError, match=problem):
        evaluate_model(fitted["popularity"], ml100k.split, FAST, workers=workers, engine=engine)


def test_without_ray_the_error_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(distributed.RayMissing, match=r"make scale.*pip install '\.\[scale\]'"):
        distributed.import_ray()
    assert cli.main(["embed", "--dataset", "ml-100k", "--engine", "ray"]) == 2
    assert "error: Ray is not installed: `make scale`" in capsys.readouterr().err
    assert cli.main(["evaluate", "--dataset", "ml-100k", "--models", "popularity", "--workers", "2",
                     "--engine", "ray"]) == 2
    assert "Ray is not installed" in capsys.readouterr().err


def test_cli_refuses_ray_options_without_ray_engine(capsys):
    assert cli.main(["embed", "--dataset", "ml-100k", "--actors", "2"]) == 2
    assert "--engine ray" in capsys.readouterr().err
    assert cli.main(["evaluate", "--dataset", "ml-100k", "--models", "popularity", "--workers", "0"]) == 2
    assert "--workers must be 1 or more" in capsys.readouterr().err


def test_cli_evaluate_with_workers_gives_the_single_process_figures(tmp_path):
    figures = {}
    for workers in ("2", "1"):  # the second run loads the model the first one fitted
        output = tmp_path / f"results-{workers}.json"
        assert cli.main(["evaluate", "--dataset", "ml-100k", "--models", "vsknn", "--set", "sample_size=200",
                         "--workers", workers, "--output", str(output)]) == 0
        (figures[workers],) = json.loads(output.read_text())["models"].values()
    assert figures["1"]["status"] == "loaded" and figures["1"]["NDCG@20"] > 0
    for key in ("fit_seconds", "predict_seconds", "status"):
        del figures["1"][key], figures["2"][key]
    assert figures["2"] == figures["1"]
