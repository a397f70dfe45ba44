"""Shared fixtures. Every test run writes its artifacts to a temporary cache, never the user's cache/."""

import os
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
