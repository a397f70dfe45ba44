"""LLMSeqPrompt with the local backend on Amazon Beauty: fine-tuning time, generation time, accuracy.

    flock /tmp/heavy.lock .venv/bin/python bench/llmseqprompt_beauty.py --sample 1000 --threads 1
    flock /tmp/heavy.lock .venv/bin/python bench/llmseqprompt_beauty.py --sample 1000 --set task=rank
    flock /tmp/heavy.lock .venv/bin/python bench/llmseqprompt_beauty.py --load cache/models/beauty/FOLDER \
        --set rank_decoding=score            # a saved model, its inference options changed

Fits (or loads from cache/models) the model, generates for a seeded sample of the test prompts (``--sample
0`` = all 4,469), projects the time for all of them, and prints NDCG@20, HR@20, Coverage@20 and the rates
of exact / duplicated / hallucinated names and of answers parsed only with a fallback or not at all, next to
the paper's LLMSeqPrompt figures (fine-tuned OpenAI ada) and, on the same sample, LLMSeqSim (Beauty's default
config: the list tasks' candidates) and V-SKNN. Coverage@20 over a sample is lower than over all prompts (fewer
lists); every figure is printed with the sample size. The result JSON goes to
cache/results/beauty/llmseqprompt.json with ``n_test_sessions`` = the sample size.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
from safetensors.numpy import load_file

from core import data
from core.config import config_dict
from core.evaluate import GENERATION_KINDS, generation_rates, score_lists
from core.models import create, model_class
from core.models.defaults import default_config
from core.models.llmseqprompt import LLMSeqPrompt
from core.paper import PAPER_BEAUTY
from core.storage import CACHE_DIR, atomic_write_text
from core.store import fit_or_load, model_key

PAPER = PAPER_BEAUTY["llmseqprompt"]  # the paper's LLMSeqPrompt (fine-tuned OpenAI ada)


def printer(every: float = 30.0):
    last = [0.0]

    def progress(done: int, total: int, message: str) -> None:
        now = time.perf_counter()
        if now - last[0] >= every or done == total:
            last[0] = now
            print(f"  [{done}/{total}] {message}", flush=True)

    return progress


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sample", type=int, default=1000, help="test prompts to evaluate (0 = all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is faster on a busy 2-core box)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--load", metavar="FOLDER", help="a saved model (cache/models/beauty/...); --set then "
                                                         "changes its inference options, e.g. rank_decoding=score")
    args = parser.parse_args()
    os.environ["LLMSEQ_TORCH_THREADS"] = str(args.threads)  # read by core.train.configure_torch
    torch.set_num_threads(args.threads)

    dataset = data.load("beauty")
    split = dataset.split
    overrides = dict(pair.split("=", 1) for pair in args.set)
    if args.load:
        # The saved options with --set applied (e.g. an option's range changed since it was saved), its arrays.
        meta = LLMSeqPrompt.read_meta(Path(args.load))
        fitted = create("llmseqprompt", **{**meta["config"], **overrides})
        assert isinstance(fitted, LLMSeqPrompt)
        fitted.set_state(load_file(str(Path(args.load) / "state.safetensors")))
        fitted.n_items = int(meta["n_items"])
        fit_seconds, cached = float(meta.get("fit_seconds", "nan")), True
    else:
        model = create("llmseqprompt", **overrides)
        assert isinstance(model, LLMSeqPrompt)
        print(f"model: {model.label}", flush=True)
        outcome = fit_or_load(model, dataset, progress=printer())
        loaded, cached = outcome.model, outcome.status == "loaded"
        assert isinstance(loaded, LLMSeqPrompt)
        fitted = loaded
        fit_seconds = outcome.fit_seconds if outcome.fit_seconds is not None else float("nan")
    print(f"task: {fitted.config.task}, rank_decoding: {fitted.config.rank_decoding}", flush=True)
    if cached:
        print("fine-tuned model loaded from cache/models; fine-tuning time is the first run's")
    history = getattr(fitted.generator, "history", {"train_loss": [], "validation_loss": []})  # local backend
    print(f"fine-tuning: {fit_seconds:.0f} s; epochs run: {len(history['train_loss'])}; "
          f"validation loss per epoch: {[round(v, 3) for v in history['validation_loss']]}", flush=True)

    rng = np.random.default_rng(args.seed)
    chosen = np.sort(rng.permutation(split.n_test)[:args.sample]) if args.sample else np.arange(split.n_test)
    sub = dataclasses.replace(split, prompts=[split.prompts[i] for i in chosen], targets=split.targets[chosen])
    start = time.perf_counter()
    lists = []
    for begin in range(0, sub.n_test, 100):
        items, _ = fitted.recommend(sub.prompts[begin:begin + 100], k=20)
        lists.append(items)
        elapsed = time.perf_counter() - start
        done = begin + len(items)
        print(f"  generated {done}/{sub.n_test} in {elapsed:.0f} s "
              f"(projected for all {split.n_test:,}: {elapsed / done * split.n_test / 60:.1f} min)", flush=True)
    generate_seconds = time.perf_counter() - start
    recommendations = np.concatenate(lists)
    result = score_lists(recommendations, sub, split.train_popularity)
    counts = fitted.generation_counts()[-sub.n_test:]  # this run's sessions
    values = result["metrics"]

    references = {}
    for name in ("llmseqsim", "vsknn"):
        other = model_class(name)(default_config(name, "beauty")).fit(split)
        other_lists, _ = other.recommend(sub.prompts, k=20)
        references[name] = score_lists(other_lists, sub, split.train_popularity)["metrics"]

    n = sub.n_test
    print(f"\nLLMSeqPrompt (local: {fitted.label}) on Beauty, {n:,} of {split.n_test:,} test sessions "
          f"(seed {args.seed})")
    print(f"  fine-tuning {fit_seconds:.0f} s; generation {generate_seconds:.0f} s for {n:,} prompts "
          f"({generate_seconds / n:.3f} s each; all {split.n_test:,}: "
          f"~{generate_seconds / n * split.n_test / 60:.0f} min)")
    for key in ("NDCG@20", "HR@20", "Coverage@20"):
        print(f"  {key:<12} {values[key]:.4f}   paper {PAPER[key]}   on the same {n:,}: LLMSeqSim "
              f"{references['llmseqsim'][key]:.4f}, V-SKNN {references['vsknn'][key]:.4f}")
    rates = generation_rates(counts)
    total = sum(sum(c[kind] for kind in GENERATION_KINDS) for c in counts)
    print(f"  names: exact {rates['exact_rate']:.3f}, duplicated {rates['duplicate_rate']:.3f}, "
          f"hallucinated {rates['hallucination_rate']:.3f} (of {total:,} names); answers parsed with a "
          f"fallback {rates.get('parse_fallback_rate', 0):.3f}, not parsed {rates.get('parse_failure_rate', 0):.3f}")

    saved = {"dataset": "beauty", "model": "llmseqprompt", "n_test_sessions": n, "sampled_from": split.n_test,
             "sample_seed": args.seed, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
             "config": config_dict(fitted.config), "backend": fitted.label,
             "popularity_counts": "train only", **result, **values, **rates,
             "generation_per_session": {kind: [c.get(kind, 0) for c in counts] for kind in GENERATION_KINDS},
             "fit_seconds": fit_seconds,
             "predict_seconds": generate_seconds, "loaded_from_cache": cached,
             **{f"{name}_same_sample": {k: ref[k] for k in ("NDCG@20", "HR@20", "Coverage@20")}
               for name, ref in references.items()}}
    # A benchmark's own file, never the dashboards' results (a sample is not the test split).
    path = CACHE_DIR / "bench" / f"llmseqprompt_beauty-{model_key(dataset, 'llmseqprompt', fitted.config)}-" \
        f"sample{n}-seed{args.seed}.json"
    atomic_write_text(path, json.dumps(saved, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
