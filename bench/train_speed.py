"""Training speed of the sequential models on Beauty: seconds per epoch, seconds to early stop, peak memory.

    flock /tmp/heavy.lock .venv/bin/python bench/train_speed.py                      # all six, paper configs
    flock /tmp/heavy.lock .venv/bin/python bench/train_speed.py --models sasrec --max-epochs 2   # a quick look

Each model trains in its own process (so peak memory is that model's alone) through ``fit_or_load``, so a
full run also leaves the fitted models in cache/models for ``python -m core evaluate`` to reuse; a model
already there is reported from its saved history (``--retrain`` to time it again). Goal: SASRec to early
stop in under 5 minutes on 2 cores.
"""

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MODELS = "sasrec,llm2sasrec,gru4rec,llm2gru4rec,bert4rec,llm2bert4rec"


def one(name: str, max_epochs: int | None, retrain: bool, sets: list[str]) -> dict:
    from core import data
    from core.cli import build_models
    from core.models.sequential import SequentialRecommender
    from core.store import fit_or_load

    dataset = data.load("beauty")
    if max_epochs:
        sets = sets + [f"max_epochs={max_epochs}"]
    model = build_models(name, sets)[0]
    start = time.perf_counter()
    fitted = fit_or_load(model, dataset, retrain=retrain)
    wall = time.perf_counter() - start
    cached = fitted.status == "loaded"
    seconds = fitted.fit_seconds if fitted.fit_seconds is not None else float("nan")
    assert isinstance(fitted.model, SequentialRecommender), f"{name} is not a sequential model"
    history = fitted.model.history
    import torch

    return {"model": name, "cached": cached, "fit_seconds": seconds, "wall_seconds": wall,
            "epochs": len(history.seconds), "best_epoch": history.best_epoch + 1,
            "seconds_per_epoch": sum(history.seconds) / max(len(history.seconds), 1),
            "validation_ndcg": history.validation, "threads": torch.get_num_threads(),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default=MODELS)
    parser.add_argument("--max-epochs", type=int)
    parser.add_argument("--retrain", action="store_true")
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one model in this process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.max_epochs, args.retrain, args.set)))
        return
    print(f"{'model':<14}{'s/epoch':>9}{'epochs':>8}{'best':>6}{'fit s':>9}{'peak MB':>9}"
          "  validation NDCG@20 per epoch")
    for name in args.models.split(","):
        command = [sys.executable, __file__, "--one", name] + (["--retrain"] if args.retrain else []) \
            + (["--max-epochs", str(args.max_epochs)] if args.max_epochs else []) \
            + [x for s in args.set for x in ("--set", s)]
        out = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        if out.returncode:
            print(f"{name}: failed\n{out.stderr[-2000:]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        curve = " ".join(f"{x:.4f}" for x in r["validation_ndcg"])
        print(f"{name:<14}{r['seconds_per_epoch']:>9.1f}{r['epochs']:>8}{r['best_epoch']:>6}{r['fit_seconds']:>9.1f}"
              f"{'-' if r['cached'] else format(r['peak_rss_mb'], '.0f'):>9}  {curve}"
              f"{'  (from cache: peak memory needs --retrain)' if r['cached'] else ''}", flush=True)


if __name__ == "__main__":
    main()
