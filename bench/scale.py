"""Scale past one machine, measured on this one: embedding throughput, faiss at 1M items, full vs sampled softmax.

    flock /tmp/heavy.lock .venv/bin/python bench/scale.py              # everything (~40 min on 2 cores)
    flock /tmp/heavy.lock .venv/bin/python bench/scale.py --parts index --index-items 1000000
    .venv/bin/python bench/scale.py --quick                            # every part at toy sizes (~2 min)

Parts (``--parts``, comma-separated):

* ``embed``: titles/s embedding ``--titles`` (100k) synthetic titles (``core.synth``: "Veluna Gentle Matte Serum,
  Travel Edition, 50 ml") with the default MiniLM: single process, then Ray Data with 1 and 2 actors
  (``core.distributed``; skipped with a reason when Ray is not installed: ``make scale``). Model loading is
  inside the timing (as a run does), Ray's own start-up is printed apart. A Ray row's peak memory is the
  driver's alone (each actor is a process of its own, holding its own model: ~0.5 GB).
* ``index``: every faiss index kind (``core.index.benchmark``) over ``--index-items`` (1M) clustered unit vectors
  of 384 dimensions (``core.synth.clustered_vectors``, MiniLM's width; real title embeddings of 1M items would
  take hours to compute here): build seconds (recall measurement included for the approximate kinds), the
  index's memory, the process's memory growth, query latency one at a time and batched, recall@20 vs exact.
* ``train``: SASRec (width 64, 2 blocks, batch 128, max length 50) with the full softmax and with sampled softmax
  (1,024 negatives) at ``--train-items`` (100k and 1M items) on ``--train-sessions`` (2,000) synthetic sessions
  with a Zipf popularity: seconds per epoch, seconds per 1,000 targets, peak memory of the process.

Each measurement runs in its own process, so its peak memory (max RSS) is its own. The last table projects a
cluster of N nodes from the per-node figures measured here (assumptions printed with it). Figures go to
``bench/results/scale.json`` and, as Markdown tables, ``bench/results/scale.md`` (the README quotes them).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------------------------------- one measurement
def synthetic_titles(n: int, seed: int = 0) -> list[str]:
    """``n`` titles from ``core.synth`` (its items file, written to a temporary folder)."""
    import pandas as pd

    from core.synth import generate

    with tempfile.TemporaryDirectory() as folder:
        report = generate(n, 1, seed=seed, out=Path(folder))
        return pd.read_csv(report.items_path, dtype=str, keep_default_na=False)["title"].tolist()


def measure_embed(engine: str, actors: int, n_titles: int) -> dict[str, Any]:
    from core.distributed import embedding_throughput

    titles = synthetic_titles(n_titles)
    result = embedding_throughput(titles, "single" if engine == "single" else "ray", actors=actors)
    return {"engine": engine, "actors": actors, "titles": result.texts, "seconds": round(result.seconds, 1),
            "titles_per_second": round(result.titles_per_second, 1),
            "ray_startup_seconds": round(result.startup_seconds, 1), "peak_rss_mb": round(peak_mb())}


def measure_index(n_items: int, dim: int, queries: int) -> list[dict[str, Any]]:
    from core.index import benchmark
    from core.synth import clustered_vectors

    vectors = clustered_vectors(n_items, dim, seed=0)
    rows = benchmark(vectors, n_queries=queries)
    for row in rows:
        row["peak_rss_mb"] = round(peak_mb())  # cumulative over the kinds (each index is released before the next)
    return rows


def synthetic_split(n_items: int, n_sessions: int, seed: int = 0) -> Any:
    """A train split of ``n_sessions`` sessions over a catalog of ``n_items`` items: Beauty-like lengths
    (2 + log-normal, mean ~9) and Zipf popularity ((rank + 10)^-1), no test prompts. Only what training reads."""
    import numpy as np

    from core.data import Catalog, Split

    rng = np.random.default_rng(seed)
    weights = 1.0 / (rng.permutation(n_items) + 10.0)
    lengths = np.minimum(2 + np.floor(rng.lognormal(np.log(5.0), 1.0, n_sessions)).astype(np.int64), 200)
    items = rng.choice(n_items, size=int(lengths.sum()), p=weights / weights.sum())
    sessions = np.split(items, np.cumsum(lengths)[:-1])
    counts = np.bincount(items, minlength=n_items)
    catalog = Catalog(item_ids=np.array([f"i{i}" for i in range(n_items)]), titles=[""] * n_items,
                      categories=[""] * n_items, popularity=counts)
    return Split(catalog=catalog, train=sessions, train_times=np.arange(n_sessions, dtype=np.float64), prompts=[],
                 targets=np.zeros(0, dtype=np.int64))


TRAIN_SETTINGS = {"embedding_dim": 64, "heads": 2, "layers": 2, "ff_multiplier": 4, "dropout": 0.2,
                  "learning_rate": 1e-3, "batch_size": 128, "max_length": 50, "max_epochs": 1,
                  "max_validation_sessions": 0, "negatives": 1024}


def measure_train(n_items: int, n_sessions: int, loss: str) -> dict[str, Any]:
    from core.models import create

    split = synthetic_split(n_items, n_sessions)
    targets = int(sum(min(len(s), TRAIN_SETTINGS["max_length"] + 1) - 1 for s in split.train))
    model: Any = create("sasrec", **TRAIN_SETTINGS, loss=loss)
    start = time.perf_counter()
    model.fit(split)
    epoch = float(model.history.seconds[0])
    return {"model": "sasrec", "loss": loss, "n_items": n_items, "sessions": n_sessions, "targets": targets,
            "seconds_per_epoch": round(epoch, 1), "seconds_per_1k_targets": round(1000 * epoch / max(targets, 1), 3),
            "fit_seconds": round(time.perf_counter() - start, 1), "peak_rss_mb": round(peak_mb())}


def measure(args: argparse.Namespace) -> None:
    """``--one PART ...``: one measurement in this process; its JSON on stdout's last line."""
    if args.one == "embed":
        out: Any = measure_embed(args.engine, args.actors, args.titles)
    elif args.one == "index":
        out = measure_index(args.index_items, args.dim, args.queries)
    else:
        out = measure_train(args.items, args.train_sessions, args.loss)
    print(json.dumps(out))


# ------------------------------------------------------------------------------------------- the runs
def child(*flags: str) -> Any:
    """Run one measurement in a fresh process; its JSON, or {"error": ...}."""
    command = [sys.executable, __file__, *flags]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines = done.stdout.strip().splitlines()
    if done.returncode or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"error": " | ".join(tail) or f"exit {done.returncode}"}
    return json.loads(lines[-1])


def ray_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    return head + "".join("| " + " | ".join(f"{row.get(c, '')}" for c in columns) + " |\n" for row in rows)


def cluster_projection(embed_rows: list[dict[str, Any]], nodes: tuple[int, ...] = (1, 2, 4, 8, 16)) \
        -> tuple[list[dict[str, Any]], str]:
    """Titles/s and hours to embed 1M and 10M titles on N nodes like this one, from the best per-node rate."""
    rates = [r for r in embed_rows if "titles_per_second" in r]
    if not rates:
        return [], "no embedding figures to project from"
    best = max(rates, key=lambda r: r["titles_per_second"])
    startup = max((r.get("ray_startup_seconds", 0.0) for r in rates), default=0.0)
    rows = []
    for n in nodes:
        rate = best["titles_per_second"] * n
        rows.append({"nodes": n, "titles/s": round(rate), "1M titles (h)": round(1e6 / rate / 3600, 2),
                     "10M titles (h)": round(1e7 / rate / 3600, 1)})
    note = (f"Assumptions: each node is this 2-core machine running {best['engine']} with {best['actors']} "
            f"actor(s) ({best['titles_per_second']} titles/s measured here); throughput adds up linearly over "
            "nodes because actors share nothing but the input table and write their own shards; the driver only "
            f"hands out row ranges (Ray's start-up, {startup:.0f} s here, is paid once). Not measured: network "
            "reads of the item table and a head node's scheduling limits.")
    return rows, note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="embed,index,train")
    parser.add_argument("--quick", action="store_true", help="toy sizes: checks the script, not the machine")
    parser.add_argument("--titles", type=int, default=100_000)
    parser.add_argument("--index-items", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--train-items", default="100000,1000000")
    parser.add_argument("--train-sessions", type=int, default=2000)
    parser.add_argument("--one", choices=["embed", "index", "train"], help=argparse.SUPPRESS)
    parser.add_argument("--engine", default="single", help=argparse.SUPPRESS)
    parser.add_argument("--actors", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--items", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--loss", default="full", help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, default=RESULTS / "scale.json")
    args = parser.parse_args()
    if args.one:
        measure(args)
        return
    if args.quick:
        args.titles, args.index_items, args.queries = 500, 20_000, 200
        args.train_items, args.train_sessions = "5000,20000", 200
        if args.output == RESULTS / "scale.json":
            args.output = Path(tempfile.gettempdir()) / "scale-quick.json"
    parts = set(args.parts.split(","))
    figures: dict[str, Any] = {"machine": f"{os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d")}
    report = []
    if "embed" in parts:
        engines = [("single", 1)] + ([("ray", 1), ("ray", 2)] if ray_installed() else [])
        rows = []
        for engine, actors in engines:
            print(f"embedding {args.titles:,} titles: {engine}, {actors} actor(s) ...", flush=True)
            rows.append({"engine": engine, "actors": actors,
                         **child("--one", "embed", "--engine", engine, "--actors", str(actors), "--titles",
                                 str(args.titles))})
        figures["embed"] = rows
        report.append(f"### Embedding {args.titles:,} synthetic titles (all-MiniLM-L6-v2)\n\n" + table(
            rows, ["engine", "actors", "titles", "seconds", "titles_per_second", "ray_startup_seconds",
                   "peak_rss_mb"])
            + ("" if ray_installed() else "\nRay is not installed (`make scale`): the Ray rows are missing.\n"))
        projection, note = cluster_projection(rows)
        figures["cluster"] = {"rows": projection, "assumptions": note}
        if projection:
            report.append("### On paper: N nodes like this one\n\n"
                          + table(projection, ["nodes", "titles/s", "1M titles (h)", "10M titles (h)"]) + "\n" + note)
    if "index" in parts:
        print(f"faiss indexes over {args.index_items:,} vectors ...", flush=True)
        rows = child("--one", "index", "--index-items", str(args.index_items), "--dim", str(args.dim), "--queries",
                     str(args.queries))
        rows = rows if isinstance(rows, list) else [rows]
        figures["index"] = rows
        report.append(f"### faiss over {args.index_items:,} clustered unit vectors of {args.dim} dimensions\n\n"
                      + table(rows, ["kind", "build_seconds", "memory_mb", "rss_growth_mb", "ms_per_query_single",
                                     "ms_per_query_batched", "recall_at_20", "error"]))
    if "train" in parts:
        rows = []
        for items in (int(n) for n in args.train_items.split(",")):
            for loss in ("full", "sampled"):
                print(f"SASRec, {items:,} items, {loss} softmax ...", flush=True)
                rows.append({"loss": loss, "n_items": items,
                             **child("--one", "train", "--items", str(items), "--loss", loss, "--train-sessions",
                                     str(args.train_sessions))})
        figures["train"] = rows
        report.append(f"### SASRec, one epoch of {args.train_sessions:,} synthetic sessions\n\n" + table(
            rows, ["n_items", "loss", "targets", "seconds_per_epoch", "seconds_per_1k_targets", "peak_rss_mb",
                   "error"]))
    text = "\n\n".join(report)
    print("\n" + text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(figures, indent=1) + "\n")
    args.output.with_suffix(".md").write_text(f"Measured {figures['date']} on {figures['machine']} "
                                              f"(`python bench/scale.py`)\n\n{text}\n")
    print(f"\n-> {args.output} and {args.output.with_suffix('.md')}")


if __name__ == "__main__":
    main()
