"""Choose a sequential model's settings on a validation fold (never the test split): one setting at a time.

    flock /tmp/heavy.lock .venv/bin/python bench/tune_sequential.py --model sasrec \\
        --base "embedding_dim=64 heads=2 layers=2 ff_multiplier=4 dropout=0.2 learning_rate=0.001 batch_size=128 \\
                max_length=50" \\
        --vary "max_length=20" --vary "dropout=0.4" --vary "early_stopping_set=random" --jsonl cache/bench/tune.jsonl

Each variant is the base with the listed options changed; it is trained on the fold's train sessions (its own
early stopping inside them, as in a real fit) and scored on the fold's later sessions: NDCG@20 / HR@20 over the
fold's prompts (Beauty's last fold: 13,418 train sessions, 4,449 prompts). ``--base paper`` is the model's
class defaults (the paper's Beauty values). Every run is appended to ``--jsonl``; a run already there (same
model, options, seed, fold) is not trained again, so a killed sweep continues. The chosen values, with the fold
figure that chose each, go to ``core/models/defaults.toml``.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from core import data
from core.cli import parse_overrides, tqdm_progress
from core.evaluate import EvaluationOptions, evaluate_model
from core.models import create


def options_of(text: str, model: str) -> dict[str, str]:
    pairs = text.split() if text and text != "paper" else []
    return {k: str(v) for k, v in parse_overrides(pairs, [model])[model].items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--model", default="sasrec")
    parser.add_argument("--base", default="paper", help='"KEY=VALUE ..." (or "paper": the class defaults)')
    parser.add_argument("--vary", action="append", default=[], help='"KEY=VALUE ..." changed from the base')
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--fold", type=int, default=-1, help="validation fold (default: the last, the largest)")
    parser.add_argument("--jsonl", default="cache/bench/tune.jsonl", help="every run is appended here")
    args = parser.parse_args()

    dataset = data.load(args.dataset)
    fold_index = args.fold % len(dataset.folds)
    fold = dataset.folds[fold_index]
    print(f"{args.dataset}: validation fold {fold_index + 1}/{len(dataset.folds)} ({len(fold.train)} train "
          f"sessions, {fold.n_test} prompts scored)", flush=True)
    out = Path(args.jsonl)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = [json.loads(line) for line in out.read_text().splitlines() if line.strip()] if out.exists() else []
    base = options_of(args.base, args.model)
    variants = [("base", base)] + [(v, {**base, **options_of(v, args.model)}) for v in args.vary]
    evaluation = EvaluationOptions(ks=(20,), bootstrap_resamples=1)
    rows = []
    for label, options in variants:
        for seed in (int(s) for s in args.seeds.split(",")):
            key = {"dataset": args.dataset, "model": args.model, "fold": fold_index, "seed": seed, "options": options}
            row = next((r for r in done if all(r.get(k) == v for k, v in key.items())), None)
            if row is None:
                model = create(args.model, seed=seed, **options)
                progress, close = tqdm_progress(f"{args.model} {label} seed {seed}")
                start = time.perf_counter()
                try:
                    model.fit(fold, progress=progress)
                finally:
                    close()
                seconds = time.perf_counter() - start
                metrics = evaluate_model(model, fold, evaluation)["metrics"]
                history = getattr(model, "history")
                row = {**key, "ndcg20": metrics["NDCG@20"], "hr20": metrics["HR@20"],
                       "coverage20": metrics.get("Coverage@20"), "seconds": seconds,
                       "epochs": len(history.seconds), "best_epoch": history.best_epoch + 1,
                       "validation_ndcg": history.validation}
                with out.open("a") as sink:
                    sink.write(json.dumps(row) + "\n")
            rows.append((label, row))
            print(f"{args.model:<12}{label:<40} seed {seed}  fold NDCG@20 {row['ndcg20']:.4f}  HR@20 "
                  f"{row['hr20']:.4f}  epochs {row['epochs']} (best {row['best_epoch']})  {row['seconds']:.0f} s",
                  flush=True)
    print(f"\nmean over seeds, fold {fold_index + 1}:")
    for label, _ in variants:
        ndcg = np.array([r["ndcg20"] for name, r in rows if name == label])
        print(f"{args.model:<12}{label:<40} NDCG@20 {ndcg.mean():.4f} (sd {ndcg.std():.4f}, n={len(ndcg)})")


if __name__ == "__main__":
    main()
