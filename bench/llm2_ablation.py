"""Where does LLM2X's gain come from? Item-table inits compared on a validation fold (never the test set).

    .venv/bin/python bench/llm2_ablation.py --inits "random,llm,llm shuffled,llm @init_std"   # the README's table
    .venv/bin/python bench/llm2_ablation.py --models sasrec --seeds 0,1,2 --jsonl runs.jsonl     # all six inits

Defaults: SASRec and GRU4Rec, seeds 0 and 1, the last fold. One run takes 2-4 minutes on one thread.

For each model, six item-table inits, each trained from scratch and scored on the fold's later sessions:

    random           the vanilla model (normal, std = init_std)
    llm              LLM2X as the authors: the reduced title embeddings as they come (PCA coordinates)
    llm shuffled     the same vectors given to the wrong items (the authors' ablation): scale, no content
    llm @init_std    LLM2X with the vectors rescaled to the random init's std: content, no scale change
    shuffled @init   both: the random init's scale and the vectors' distribution, but no content
    random @llm std  the vanilla model with init_std = the reduced vectors' std: scale only, isotropic

With the local MiniLM the PCA coordinates have std 0.06-0.1 at widths 192-48, three to five times the random
init's 0.02 (the authors' ada-002 vectors are more anisotropic, so likely smaller; not measurable offline),
so "llm" mixes a bigger init with the titles' content; the shuffled and rescaled rows separate the two.
Prints one line per run and a mean over seeds per init; ``--jsonl`` appends every run there too, so a long
sweep keeps what it finished.
"""

import argparse
import json
import time
from typing import Any

import numpy as np

from core import data
from core.evaluate import EvaluationOptions, evaluate_model
from core.models import create
from core.models.sequential import SequentialRecommender

INITS: dict[str, dict[str, Any]] = {
    "random": {},
    "llm": {"item_init": "llm"},
    "llm shuffled": {"item_init": "llm", "shuffle_llm_vectors": True},
    "llm @init_std": {"item_init": "llm", "llm_std": "init"},
    "shuffled @init": {"item_init": "llm", "llm_std": "init", "shuffle_llm_vectors": True},
    "random @llm std": {"init_std": "llm"},
}


def sequential(name: str, **options: Any) -> SequentialRecommender:
    model = create(name, **options)
    assert isinstance(model, SequentialRecommender), f"{name} is not a sequential model"
    return model


def options_for(name: str, init: str, seed: int, extra: dict, split) -> dict:
    options = {"seed": seed, **extra, **INITS[init]}
    if options.get("llm_std") == "init":
        options["llm_std"] = sequential(name, **extra).config.init_std
    if options.get("init_std") == "llm":
        # the std of the vectors LLM2X would copy in (as reduced: no llm_std, not shuffled)
        options["init_std"] = round(float(sequential(name, **extra).llm_vectors(split).std()), 4)
    return options


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--models", default="sasrec,gru4rec")
    parser.add_argument("--inits", default=",".join(INITS))
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--fold", type=int, default=-1, help="validation fold (default: the last, the largest)")
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE for every run, e.g. max_epochs=3")
    parser.add_argument("--jsonl", help="append one JSON line per run to this file")
    args = parser.parse_args()

    dataset = data.load(args.dataset)
    fold = dataset.folds[args.fold]
    extra = dict(s.split("=", 1) for s in args.set)
    print(f"{args.dataset}: validation fold {args.fold % len(dataset.folds) + 1}/{len(dataset.folds)} "
          f"({len(fold.train)} train sessions, {fold.n_test} prompts)", flush=True)
    evaluation = EvaluationOptions(ks=(20,), bootstrap_resamples=1)
    rows = []
    for name in args.models.split(","):
        for init in args.inits.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                options = options_for(name, init, seed, extra, fold)
                model = sequential(name, **options)
                start = time.perf_counter()
                model.fit(fold)
                seconds = time.perf_counter() - start
                metrics = evaluate_model(model, fold, evaluation)["metrics"]
                row = {"model": name, "init": init, "seed": seed, "options": options,
                       "ndcg20": metrics["NDCG@20"], "hr20": metrics["HR@20"], "cov20": metrics["Coverage@20"],
                       "epochs": len(model.history.seconds), "best_epoch": model.history.best_epoch + 1,
                       "seconds": seconds, "validation_ndcg": model.history.validation}
                rows.append(row)
                print(f"{name:<9}{init:<16}seed {seed}  NDCG@20 {row['ndcg20']:.4f}  HR@20 {row['hr20']:.4f}  "
                      f"Cov@20 {row['cov20']:.3f}  epochs {row['epochs']} (best {row['best_epoch']})  "
                      f"{seconds:.0f} s", flush=True)
                if args.jsonl:
                    with open(args.jsonl, "a") as out:
                        out.write(json.dumps(row) + "\n")
    print("\nmean over seeds (sd):")
    for name in args.models.split(","):
        for init in args.inits.split(","):
            picked = [r for r in rows if r["model"] == name and r["init"] == init]
            ndcg, hr = np.array([r["ndcg20"] for r in picked]), np.array([r["hr20"] for r in picked])
            print(f"{name:<9}{init:<16}NDCG@20 {ndcg.mean():.4f} ({ndcg.std():.4f})  "
                  f"HR@20 {hr.mean():.4f} ({hr.std():.4f})  n={len(picked)}")


if __name__ == "__main__":
    main()
