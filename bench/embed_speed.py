"""Local embedding speed: titles/second, and the Beauty catalog cold vs from cache.

    python bench/embed_speed.py

"Cold" embeds into a fresh temporary cache (the model is loaded first and not timed); "cached" is the
second call, which reads the .npy file.
"""

import os
import tempfile
import time

os.environ["LLMSEQ_CACHE"] = tempfile.mkdtemp(prefix="embed-bench-")

from core import data
from core.embeddings import EmbeddingSpec, item_embeddings, provider

catalog = data.load("beauty").catalog
spec = EmbeddingSpec("local")
start = time.perf_counter()
provider(spec).encode(["warm-up"])
print(f"model load: {time.perf_counter() - start:.1f} s")

start = time.perf_counter()
vectors = item_embeddings(catalog, spec)
cold = time.perf_counter() - start
start = time.perf_counter()
item_embeddings(catalog, spec)
cached = time.perf_counter() - start
n_titled = sum(bool(t) for t in catalog.titles)
print(f"beauty: {n_titled:,} titles -> {vectors.shape[1]} dims")
print(f"cold: {cold:.1f} s ({n_titled / cold:.0f} titles/s); from cache: {cached * 1000:.1f} ms")
