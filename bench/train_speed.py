"""Training speed of the sequential models on Beauty, against the code as it was before issue 12.

    flock /tmp/heavy.lock .venv/bin/python bench/train_speed.py                        # epochs, both codes
    flock /tmp/heavy.lock .venv/bin/python bench/train_speed.py --models sasrec --rounds 3
    flock /tmp/heavy.lock .venv/bin/python bench/train_speed.py --to-stop --models sasrec,gru4rec,bert4rec

Per model, the same settings (the model's Beauty defaults, ``--set`` to change them) train on the 17,890 Beauty
train sessions in two codes, alternating (before, now, before, now, ... ``--rounds`` times), each run in its own
process so its peak memory is its own: the commit before issue 12 (``--before``, extracted from git into a
temporary folder) and the working tree. Printed per model: seconds per epoch (training steps only; no
validation) in each, the ratio, and peak memory (max RSS of the process). A BERT4Rec epoch is the authors'
(every session once as a next-item copy and ``masked_copies`` times randomly masked); now it trains in passes of
one copy each, so its epoch is ``1 + masked_copies`` passes: ``--passes-timed`` (3) of them are timed and
scaled to the epoch (each pass is a random 1/11 of it). The old code's epochs are long (BERT4Rec: 439 s on
one thread), so ``--before-batches`` (60) of its batches are timed and scaled to the epoch (its batches are in
random order, so a prefix is a fair sample; 0 = the whole epoch).

``--to-stop`` instead fits each model to its own early stop with the working tree's code (through the store,
so the fitted models are reused by ``python -m core evaluate``/``reproduce``) and prints seconds to early stop,
epochs, the best epoch and peak memory.
"""

import argparse
import json
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BEFORE = "5f698e0"  # the last commit before issue 12
PAPER_SASREC = "embedding_dim=64 heads=2 layers=2 ff_multiplier=4 dropout=0.2 learning_rate=0.001 batch_size=128 " \
               "max_length=50"  # the settings of the issue's and the peer's measurement (bench/peer_recbole.py)
MODELS = "sasrec,gru4rec,bert4rec"


def extract(commit: str, into: Path) -> None:
    """``core/`` as of ``commit`` into ``into`` (with a link to this checkout's data/)."""
    archive = subprocess.run(["git", "archive", "--format=tar", commit, "core"], cwd=ROOT, check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    (into / "data").symlink_to(ROOT / "data")


def time_epochs(name: str, sets: list[str], epochs: int, max_batches: int | None, passes_timed: int) -> dict:
    """In this process: train ``epochs`` epochs of ``name`` with the code on sys.path; seconds per epoch."""
    import numpy as np
    import torch

    from core import data
    from core.cli import parse_overrides
    from core.models import create
    from core.train import configure_torch

    threads = configure_torch()
    dataset = data.load("beauty")
    model: Any = create(name, **parse_overrides(sets, [name])[name])  # either code's SequentialRecommender
    config = model.config
    model.n_items = dataset.catalog.n_items
    torch.manual_seed(0)
    model.module = model.build(model.n_items)
    params = [p for p in model.module.parameters() if p.requires_grad]
    try:
        optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay, fused=True)
    except (RuntimeError, TypeError):
        optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    sessions = [s for s in dataset.split.train if len(s) >= 2]
    rng = np.random.default_rng(0)
    passes = 1 + config.masked_copies if getattr(model, "epoch_name", "epoch") == "pass" else 1
    timed_passes = min(passes, passes_timed)  # passes are alike (each a random 1/passes of an epoch): scale up
    model.module.train()
    seconds = []
    for _ in range(epochs):
        total, done, planned = 0.0, 0, 0
        for _ in range(timed_passes):
            start = time.perf_counter()
            batches = model.epoch_batches(sessions, rng)
            planned += len(batches)
            for batch in batches[:max_batches] if max_batches else batches:
                optimizer.zero_grad(set_to_none=True)
                loss = model.batch_loss(batch)
                loss.backward()
                if config.clip_norm:
                    torch.nn.utils.clip_grad_norm_(params, config.clip_norm)
                optimizer.step()
                done += 1
            total += time.perf_counter() - start
        seconds.append(total * planned / max(done, 1) * passes / timed_passes)
    import core

    return {"seconds_per_epoch": seconds, "threads": threads, "batches_timed": done, "batches": planned,
            "code": str(Path(core.__file__).parent.parent),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def to_stop(name: str, sets: list[str], retrain: bool) -> dict:
    from core import data
    from core.cli import build_models
    from core.models.sequential import SequentialRecommender
    from core.store import fit_or_load

    dataset = data.load("beauty")
    model = build_models(name, sets, "beauty")[0]
    start = time.perf_counter()
    fitted = fit_or_load(model, dataset, retrain=retrain)
    assert isinstance(fitted.model, SequentialRecommender), f"{name} is not a sequential model"
    history = fitted.model.history
    return {"cached": fitted.status == "loaded", "fit_seconds": fitted.fit_seconds,
            "wall_seconds": time.perf_counter() - start, "epochs": len(history.seconds),
            "best_epoch": history.best_epoch + 1, "unit": fitted.model.epoch_name,
            "seconds_per_epoch": sum(history.seconds) / max(len(history.seconds), 1),
            "validation_ndcg": history.validation,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def child(code: Path, args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, cwd=code)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=MODELS)
    parser.add_argument("--set", action="append", default=[], help="MODEL.KEY=VALUE or KEY=VALUE, both codes")
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs of each code")
    parser.add_argument("--epochs", type=int, default=1, help="epochs timed per run")
    parser.add_argument("--before", default=BEFORE, help="the commit to compare with (default: before issue 12)")
    parser.add_argument("--before-batches", type=int, default=60, help="BERT4Rec before: batches timed per epoch")
    parser.add_argument("--passes-timed", type=int, default=3, help="BERT4Rec now: passes timed per epoch")
    parser.add_argument("--to-stop", action="store_true", help="fit each model to early stop (working tree)")
    parser.add_argument("--retrain", action="store_true", help="with --to-stop: fit again even if saved")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, str(Path.cwd()))  # the code under test: the extracted commit or the working tree
        if args.mode == "stop":
            print(json.dumps(to_stop(args.child, args.set, args.retrain)))
        else:
            print(json.dumps(time_epochs(args.child, args.set, args.epochs, args.before_batches or None,
                                         args.passes_timed)))
        return
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    if args.to_stop:
        print(f"{'model':<14}{'s/unit':>8}{'units':>7}{'best':>6}{'to stop s':>11}{'peak MB':>9}  validation NDCG@20")
        for name in names:
            r = child(ROOT, ["--child", name, "--mode", "stop", *(["--retrain"] if args.retrain else []),
                             *[x for s in args.set for x in ("--set", s)]])
            curve = " ".join(f"{x:.4f}" for x in r["validation_ndcg"])
            print(f"{name:<14}{r['seconds_per_epoch']:>8.1f}{r['epochs']:>5} {r['unit'][0]}{r['best_epoch']:>6}"
                  f"{r['fit_seconds']:>11.0f}{'-' if r['cached'] else format(r['peak_rss_mb'], '.0f'):>9}  {curve}"
                  f"{'  (saved: --retrain to time it)' if r['cached'] else ''}", flush=True)
        return
    with tempfile.TemporaryDirectory(prefix="llmseq-before-") as folder:
        old = Path(folder)
        extract(args.before, old)
        print(f"seconds per epoch, training steps only, {args.rounds} alternating rounds x {args.epochs} epoch(s); "
              f"before = {args.before}, now = working tree", flush=True)
        for name in names:
            sets = [s.split(".", 1)[1] if s.startswith(f"{name}.") else s for s in args.set
                    if "." not in s.split("=", 1)[0] or s.startswith(f"{name}.")]
            if name == "sasrec" and not sets:
                sets = PAPER_SASREC.split()
            common = ["--epochs", str(args.epochs), *[x for s in sets for x in ("--set", s)]]
            before, now = [], []
            for _ in range(args.rounds):
                before.append(child(old, ["--child", name, "--before-batches", str(args.before_batches), *common]))
                now.append(child(ROOT, ["--child", name, "--before-batches", "0", "--passes-timed",
                                        str(args.passes_timed), *common]))
            b = [s for r in before for s in r["seconds_per_epoch"]]
            n = [s for r in now for s in r["seconds_per_epoch"]]
            mean_b, mean_n = sum(b) / len(b), sum(n) / len(n)
            assert before[0]["code"] != now[0]["code"], "both runs imported the same code"
            print(f"{name:<10} settings: {' '.join(sets) or 'the Beauty paper defaults'}")
            print(f"  before  {mean_b:8.1f} s/epoch  ({', '.join(f'{x:.1f}' for x in b)}; "
                  f"{before[0]['batches_timed']}/{before[0]['batches']} batches timed)  peak "
                  f"{max(r['peak_rss_mb'] for r in before):.0f} MB")
            print(f"  now     {mean_n:8.1f} s/epoch  ({', '.join(f'{x:.1f}' for x in n)})  peak "
                  f"{max(r['peak_rss_mb'] for r in now):.0f} MB   {now[0]['threads']} threads")
            print(f"  ratio   {mean_b / mean_n:8.2f}x faster", flush=True)


if __name__ == "__main__":
    main()
