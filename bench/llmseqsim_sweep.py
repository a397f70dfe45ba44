"""LLMSeqSim: session-embedding choices compared on the validation folds (never the test set).

    python bench/llmseqsim_sweep.py [--dataset beauty] [--provider local] [--model PATH_OR_NAME]

Prints mean NDCG@20 / HR@20 over the 3 forward-chaining folds for every combination × decay × similarity,
best first. The best row is the default in core/models/llmseqsim.py.
"""

import argparse

import numpy as np

from core import data
from core.decay import DECAYS
from core.evaluate import EvaluationOptions, evaluate_model
from core.models import create

parser = argparse.ArgumentParser()
parser.add_argument("--dataset", default="beauty")
parser.add_argument("--provider", default="local")
parser.add_argument("--model", default=None)
args = parser.parse_args()

dataset = data.load(args.dataset)
options = EvaluationOptions(ks=(20,), bootstrap_resamples=1)
grid = [("last", "none", s) for s in ("cosine", "dot", "euclidean")]
grid += [("mean", d, s) for d in DECAYS for s in ("cosine", "dot", "euclidean")]
rows = []
for combination, decay, similarity in grid:
    model = create("llmseqsim", embedding_provider=args.provider, embedding_model=args.model,
                   combination=combination, decay=decay, similarity=similarity)
    fold_ndcg, fold_hr = [], []
    for fold in dataset.folds:
        result = evaluate_model(model.fit(fold), fold, options)["metrics"]
        fold_ndcg.append(result["NDCG@20"])
        fold_hr.append(result["HR@20"])
    rows.append((float(np.mean(fold_ndcg)), float(np.mean(fold_hr)), combination, decay, similarity))
    print(f"{combination:<5} {decay:<18} {similarity:<10} NDCG@20 {rows[-1][0]:.4f}  HR@20 {rows[-1][1]:.4f}",
          flush=True)
print(f"\n{args.dataset}, {args.provider}:{args.model or 'default'}, mean over {len(dataset.folds)} validation "
      f"folds ({', '.join(str(f.n_test) for f in dataset.folds)} prompts), best first:")
for ndcg, hr, combination, decay, similarity in sorted(rows, reverse=True):
    print(f"{combination:<5} {decay:<18} {similarity:<10} NDCG@20 {ndcg:.4f}  HR@20 {hr:.4f}")
