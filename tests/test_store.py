"""The model store: keys hold everything a model is built from; damaged artifacts are reported and rebuilt,
never fatal; option ranges are refused in one line wherever a config is built."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT
from fakes import CountingProvider
from tiny_data import write_tiny_dataset

from core import data, embeddings, evaluate, store
from core.common import ConfigError
from core.models import REGISTRY, create, model_class
from core.models import load as load_saved
from core.models.base import ArtifactError
from core.options import model_options
from core.trained import trained_models


@pytest.fixture
def tiny(tmp_path):
    return data.load(str(write_tiny_dataset(tmp_path / f"store-{tmp_path.name}")))  # its own cache folders


def test_the_key_changes_with_data_config_and_seed_only(tiny, synthetic):
    model = create("vsknn")
    key = store.model_key(tiny, "vsknn", model.config)
    assert key == store.model_key(tiny, "vsknn", create("vsknn").config)
    assert key != store.model_key(tiny, "vsknn", create("vsknn", seed=1).config)
    assert key != store.model_key(tiny, "vsknn", create("vsknn", k=50).config)
    assert key != store.model_key(synthetic, "vsknn", model.config)


def test_an_empty_fit_seconds_file_is_not_fatal(tiny):
    """A kill or a full disk while an older version wrote fit_seconds.txt left it empty: it took 4 pages down."""
    folder = store.fit_or_load(create("popularity"), tiny).folder
    meta = json.loads((folder / "config.json").read_text())
    del meta["fit_seconds"]  # as an older version saved it, beside the weights
    (folder / "config.json").write_text(json.dumps(meta))
    (folder / "fit_seconds.txt").write_text("")
    again = store.fit_or_load(create("popularity"), tiny)
    assert again.status == "loaded" and again.fit_seconds is None
    assert [m.fit_seconds for m in trained_models(tiny)] == [None]
    assert evaluate.run(tiny, [create("popularity")]).results["popularity"].status == "loaded"


@pytest.mark.parametrize("damage", ["truncated weights", "garbage config", "no weights header"])
def test_a_damaged_save_is_reported_and_fitted_again(tiny, damage):
    first = store.fit_or_load(create("vsknn", k=10, sample_size=50), tiny)
    weights, config = first.folder / "state.safetensors", first.folder / "config.json"
    if damage == "truncated weights":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "garbage config":
        config.write_text('{"model": "vsknn", "n_items"')
    else:
        weights.write_bytes(b"\x00" * 16)
    damaged = []
    assert trained_models(tiny, damaged) == [] and damaged == [first.folder.name]
    with pytest.raises(ArtifactError, match="cannot be read|is damaged"):
        load_saved(first.folder)
    again = store.fit_or_load(create("vsknn", k=10, sample_size=50), tiny)
    assert again.status == "fitted" and again.notes and "fitting it again" in again.notes[0]
    assert [m.label for m in trained_models(tiny)] == ["vsknn (k=10, sample_size=50)"]


def test_damaged_cached_vectors_are_computed_again(monkeypatch):
    from core.data import Catalog

    titles = [f"damaged cache test title {i}" for i in range(5)]  # titles no other test embeds
    catalog = Catalog(item_ids=np.array([f"d{i}" for i in range(5)], dtype=object), titles=titles,
                      categories=[""] * 5, popularity=np.ones(5, dtype=np.int64))
    counting = CountingProvider()
    calls = counting.calls
    monkeypatch.setattr(embeddings, "provider", lambda spec: counting)
    first = embeddings.item_embeddings(catalog)
    path = embeddings.cached_path(catalog)
    path.write_bytes(path.read_bytes()[:100])  # cut short
    again = embeddings.item_embeddings(catalog)
    assert len(calls) == 2 and np.array_equal(first, again)
    np.save(path, np.full_like(first, np.nan))  # NaNs never come out of the cache
    assert np.isfinite(embeddings.item_embeddings(catalog)).all() and len(calls) == 3


def test_a_damaged_result_is_skipped_and_variants_keep_their_own_figures(tiny):
    evaluate.run(tiny, [create("vsknn"), create("vsknn", k=100)])
    results = evaluate.load_results(tiny)
    assert set(results) == {"vsknn", "vsknn (k=100)"}  # a variant no longer overwrites the default's figures
    variant = create("vsknn", k=100)
    store.result_path(tiny.name, store.model_key(tiny, "vsknn", variant.config),
                      evaluate.options_tag(evaluate.EvaluationOptions())).write_text("{ not json")
    assert set(evaluate.load_results(tiny)) == {"vsknn"}
    paper = evaluate.EvaluationOptions(paper_popularity=True)
    evaluate.run(tiny, [create("vsknn")], options=paper)
    assert evaluate.load_results(tiny, paper)["vsknn"].popularity_counts == "whole dataset (paper)"
    assert evaluate.load_results(tiny)["vsknn"].popularity_counts == "train only"


# ------------------------------------------------------------------------------------------------ option ranges
def test_every_numeric_option_of_every_model_declares_its_range():
    for name in REGISTRY:
        for option in model_options(model_class(name).Config):
            if option.kind in ("int", "float"):
                assert option.range is not None, f"{name}.{option.name} has no range"
                assert option.range.contains(option.default) if option.default is not None else True


def test_every_option_of_every_model_says_what_it_does():
    # The Train page shows this text next to each field: an option without it is a bare name to the analyst.
    for name in REGISTRY:
        for option in model_options(model_class(name).Config):
            assert option.help and not option.help.startswith("(valid"), f"{name}.{option.name} has no help text"


@pytest.mark.parametrize("name, options, message", [
    ("sasrec", {"max_length": "0"}, "sasrec: option 'max_length' must be in [1, ∞), got 0"),
    ("sasrec", {"batch_size": "0"}, "option 'batch_size' must be in [1, ∞), got 0"),
    ("vsknn", {"k": "0"}, "option 'k' must be in [1, ∞), got 0"),
    ("vsknn", {"k": "-3"}, "option 'k' must be in [1, ∞), got -3"),
    ("sasrec", {"validation_fraction": "1.5"}, "option 'validation_fraction' must be in [0, 1), got 1.5"),
    ("sasrec", {"dropout": "nan"}, "option 'dropout' must be in [0, 1), got nan"),
    ("vsknn", {"k": "2000"}, "option 'k' (2000) must not exceed 'sample_size' (1090)"),
    ("sasrec", {"embedding_dim": "50"}, "option 'embedding_dim' (50) must be a multiple of 'heads' (3)"),
    ("llmseqprompt", {"temperature": "3"}, "option 'temperature' must be in [0, 2], got 3"),
])
def test_out_of_range_options_are_refused_in_one_line(name, options, message):
    with pytest.raises(ConfigError) as caught:
        create(name, **options)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_saved_config_out_of_range_is_refused_on_load():
    with pytest.raises(ConfigError):
        model_class("sasrec").Config(max_length=0)


@pytest.mark.parametrize("pairs, message", [
    (["max_length=0"], "option 'max_length' must be in [1, ∞), got 0"),
    (["batch_size=0"], "option 'batch_size' must be in [1, ∞), got 0"),
    (["validation_fraction=1.5"], "option 'validation_fraction' must be in [0, 1), got 1.5"),
])
def test_the_cli_refuses_out_of_range_options_and_saves_nothing(pairs, message, tmp_path):
    env = {"LLMSEQ_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "core", "evaluate", "--dataset", "ml-100k", "--models", "sasrec",
                             "--set", *pairs], cwd=ROOT, capture_output=True, text=True, env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [f"error: sasrec: {message}"]
    assert not (tmp_path / "models").exists() and not (tmp_path / "results").exists()


def test_set_takes_several_pairs_after_one_flag():
    from core.cli import parser

    args = parser().parse_args(["evaluate", "--models", "sasrec", "--set", "patience=2",
                                "max_validation_sessions=500", "--set", "seed=1"])
    assert args.set == ["patience=2", "max_validation_sessions=500", "seed=1"]


@pytest.mark.parametrize("args, message", [
    (["--models", ""], "--models names no model"),
    (["--models", "vsknn,vsknn"], "--models names vsknn more than once"),
    (["--models", "sasrec", "--set", "learning_rate=inf"], "option 'learning_rate' must be in (0, ∞), got inf"),
    (["--models", "sasrec", "--set", "learning_rate=1e6", "max_epochs=1"], "the loss became nan in epoch 1"),
])
def test_the_cli_refuses_bad_model_lists_and_diverging_options_in_one_line(args, message, tmp_path):
    env = {**os.environ, "LLMSEQ_CACHE": str(tmp_path), "LLMSEQ_TORCH_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "core", "evaluate", "--dataset", "ml-100k", *args], cwd=ROOT,
                            capture_output=True, text=True, env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert message in result.stderr.strip().splitlines()[-1]


def test_evaluate_prints_the_loaders_notes(tmp_path):
    env = {**os.environ, "LLMSEQ_CACHE": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "core", "evaluate", "--dataset",
                             str(ROOT / "tests" / "cases" / "order-only"), "--models", "popularity"],
                            cwd=ROOT, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert "note: " in result.stderr and "no 'timestamp' column" in result.stderr


def test_a_bug_is_one_line_and_its_traceback_is_there_with_verbose(monkeypatch, capsys):
    from core import cli

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(data, "load", broken)
    assert cli.main(["prepare", "--dataset", "ml-100k"]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["error: unexpected ZeroDivisionError: a bug (a bug; run again with --verbose "
                                        "for the traceback)"]
    assert cli.main(["--verbose", "prepare", "--dataset", "ml-100k"]) == 1
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_an_option_added_later_keeps_saved_models_keys_at_its_default() -> None:
    from dataclasses import dataclass

    from core.config import Options, option

    @dataclass(frozen=True)
    class Before(Options):
        k: int = option(10, low=1)

    @dataclass(frozen=True)
    class After(Options):
        k: int = option(10, low=1)
        center: bool = option(False, keyed=False)

    assert store.config_hash(After()) == store.config_hash(Before())  # a model saved before it existed is found
    assert store.config_hash(After(center=True)) != store.config_hash(Before())
    assert store.config_hash(After(k=5)) == store.config_hash(Before(k=5))
