"""Shared fixtures. Every test run writes its artifacts to a temporary cache, never the user's cache/."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("LLMSEQ_CACHE", tempfile.mkdtemp(prefix="llmseq-test-cache-"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Tiny torch models train faster on one thread, and far faster when other jobs share the 2 cores
# (measured: the sequential models' contract tests 14 s on one thread, 200 s on two under load).
os.environ.setdefault("LLMSEQ_TORCH_THREADS", "1")

import pytest  # noqa: E402

from core import data  # noqa: E402


@pytest.fixture(scope="session")
def synthetic():
    return data.synthetic()


@pytest.fixture(scope="session")
def ml100k():
    return data.load("ml-100k")


@pytest.fixture(scope="session")
def beauty():
    return data.load("beauty")


# The app server the browser tests share (one per test run): MovieLens 100K with these models trained (and
# evaluated) into a fresh cache; llmseqsim brings the catalog's MiniLM embeddings with it.
SERVER_MODELS = ("popularity", "vsknn", "llmseqsim")


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    from tools.serve import running_app, wait_until_healthy

    cache = tmp_path_factory.mktemp("browser-cache")
    env = {"LLMSEQ_CACHE": str(cache), "LLMSEQ_DATASET": "ml-100k"}
    subprocess.run([sys.executable, "-m", "core", "train", "--dataset", "ml-100k", "--models",
                    ",".join(SERVER_MODELS)], cwd=ROOT, env={**os.environ, **env}, check=True, capture_output=True)
    with running_app(env) as (url, process):
        wait_until_healthy(url, process)
        yield url
