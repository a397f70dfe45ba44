"""Seconds to evaluate V-SKNN on all Beauty test sessions (goal: under 10 s on 2 cores).

    python bench/evaluate_speed.py
"""

import time

from core import data
from core.evaluate import EvaluationOptions, evaluate_model
from core.models import create

start = time.perf_counter()
dataset = data.load("beauty")
load_seconds = time.perf_counter() - start
model = create("vsknn")
start = time.perf_counter()
model.fit(dataset.split)
fit_seconds = time.perf_counter() - start
start = time.perf_counter()
result = evaluate_model(model, dataset.split, EvaluationOptions())
total = time.perf_counter() - start
print(f"beauty: {dataset.split.n_test} test sessions, {dataset.catalog.n_items} items")
print(f"load + split: {load_seconds:.1f} s, vsknn fit: {fit_seconds:.1f} s")
print(f"vsknn predict (full-catalog ranking): {result['predict_seconds']:.1f} s; "
      f"with all metrics and bootstrap intervals: {total:.1f} s")
print(f"NDCG@20 {result['metrics']['NDCG@20']:.4f}, HR@20 {result['metrics']['HR@20']:.4f}")
