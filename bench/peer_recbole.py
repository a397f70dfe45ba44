"""Our SASRec against RecBole's SASRec on Beauty, side by side: seconds per training epoch at equal settings.

    flock /tmp/heavy.lock .venv/bin/python bench/peer_recbole.py                       # 2 rounds x 2 epochs a side
    flock /tmp/heavy.lock .venv/bin/python bench/peer_recbole.py --rounds 1 --epochs 1  # a quick look
    .venv/bin/python bench/peer_recbole.py --setup-only                                 # only the venv and the data

RecBole is a benchmark-only dependency: it never enters requirements.txt. The script makes its own virtual
environment, ``cache/bench/recbole-venv`` (``cache/`` is git-ignored), with RecBole 1.2.1 and torch 2.13.0 (the
CPU wheel on this machine's disk; a plain ``torch`` would fetch a multi-GB CUDA build), and skips that step
when the venv is already complete. Pins for RecBole 1.2.1 (see ``REQUIREMENTS``): numpy<2 (its Config sets
``np.float = np.float_``, gone in numpy 2) and pandas<3 (its chained in-place ``fillna`` is a no-op under pandas
3's copy-on-write). No ``torch.load(weights_only=...)`` shim is needed: RecBole calls ``torch.load`` only to
resume, to load a best checkpoint or a pretrained model, none of which a training epoch does.

Data: exactly the project's Beauty train sessions (``data.load("beauty").split.train``, 17,890 sessions), written
as RecBole atomic files: ``beauty.inter`` (session_id, item_id, timestamp = the item's position in its session)
and ``beauty.item`` (every catalog item, so both sides score the same 12,101-item catalog). RecBole's
SequentialDataset turns each session into every prefix -> next item (``<i1> | i2``, ``<i1, i2> | i3`` ... the
prefix cut to its last 50 items), one training row each: 126,228 rows. Its usual leave-one-out split would
move each session's last two rows to validation and test; here the split is ``RS [1, 0, 0]``, so every row is
trained on and validation/test are empty (evaluation is off). Ours trains on the same sessions, each as one row
of its last 51 items with a target at every position (the causal mask makes each position a prefix -> next
item example): the same (prefix, next item) pairs, except the 49 sessions longer than 51 items, whose
earliest pairs RecBole still trains on (windowed to 50 items) and ours does not (0.7% more pairs for RecBole;
both counts are printed).
Ours runs with ``max_validation_sessions=0``: no sessions held out and no validation pass, so both sides
train on the same sessions and the timed epoch is training only.

Settings, equal on both sides: width (hidden_size / embedding_dim) 64, 2 blocks, 2 heads, feed-forward 256
(ours: ff_multiplier=4), max length 50, batch 128 (RecBole: 128 prefix rows; ours: 128 sessions), dropout 0.2
(RecBole: hidden and attention dropout), learning rate 1e-3 with Adam (ours: AdamW with weight_decay=0, the
same update; RecBole's default weight_decay is 0), full-softmax cross-entropy (RecBole: loss_type CE,
train_neg_sample_args None), 2 torch threads, float32 (``--precision bfloat16``: ours precision=bfloat16,
RecBole enable_amp=True, both bf16 autocast on the CPU; ours' own default, precision=auto, is float32 on a
CPU).

Two things in RecBole cost it time without being settings. (1) Importing ``recbole.model.sequential_recommender``
(as ``from ... import SASRec`` and RecBole's own ``get_model`` do) imports ``sine.py``, which calls
``torch.autograd.set_detect_anomaly(True)`` for the whole process: every forward op records a Python stack
trace and every backward checks for NaN. That debugging mode doubled RecBole's epoch here (273 s against
137 s without it, same loss), so it is turned off by default: a peer should be measured at its best, and
without it RecBole matches the pre-issue figure. ``--recbole-anomaly-detection`` leaves it on, as shipped.
(2) RecBole does not flush denormal floats to zero, which ours does (``core.train.configure_torch``);
``--recbole-flush-denormal`` makes it. The state of both is printed.

What is timed: RecBole, ``Trainer._train_epoch`` (its dataloader iteration, forward, backward and Adam step;
no evaluation); ours, each epoch of ``fit`` (``history.seconds``: building the epoch's padded batches, forward,
backward and AdamW step; with nothing held out there is no validation pass in it). Dataset loading, model
construction and process start-up are not timed. The two alternate (ours, RecBole, ours, RecBole ...), each run
in its own subprocess so memory and threads do not interfere, ``--rounds`` x ``--epochs`` epochs a side, so
that machine noise falls on both.

Before the issue (RecBole 1.2.1, idle 2-core machine): RecBole 129-136 s/epoch, ours ~28 s/epoch (ours' figure
likely came from ``history.seconds`` with its validation pass over <=2,000 held-out sessions, which this
script leaves out), 4.7x. Goal: RecBole/ours >= 10x per epoch at
equal settings.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import venv
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_CACHE = ROOT / "cache" / "bench"
VENV = BENCH_CACHE / "recbole-venv"
DATA_DIR = BENCH_CACHE / "recbole-data"  # RecBole's data_path: DATA_DIR/beauty/beauty.{inter,item}
RUN_DIR = BENCH_CACHE / "recbole-run"  # RecBole's working directory: its saved/ and log_tensorboard/ land here
DATASET = "beauty"
# torch==2.13.0: the CPU wheel on this machine's disk (an unpinned torch resolves to a multi-GB CUDA build).
# numpy<2: RecBole 1.2.1's Config.compatibility_settings() sets ``np.float = np.float_``, which numpy 2 removed,
# so under numpy 2 it fails before loading any data. pandas<3: RecBole fills missing values with chained
# ``feat[field].fillna(..., inplace=True)``, which pandas 3's copy-on-write turns into a no-op (with a warning).
REQUIREMENTS = ["recbole==1.2.1", "torch==2.13.0", "numpy<2", "pandas<3"]
THREADS = 2

# The settings both sides share.
WIDTH, BLOCKS, HEADS, FEED_FORWARD, MAX_LENGTH = 64, 2, 2, 256, 50
BATCH, DROPOUT, LEARNING_RATE, SEED = 128, 0.2, 1e-3, 0


# ------------------------------------------------------------------------------------------------ setup
def venv_python() -> Path:
    return VENV / "bin" / "python"


def ensure_venv() -> None:
    """Create the RecBole venv unless it is already complete (a marker naming the requirements, written last)."""
    marker = VENV / "complete.txt"
    wanted = "\n".join(REQUIREMENTS)
    if marker.exists() and marker.read_text() == wanted and venv_python().exists():
        return
    print(f"creating {VENV.relative_to(ROOT)} with {' '.join(REQUIREMENTS)} (a few minutes, once)", flush=True)
    venv.EnvBuilder(clear=True, with_pip=True).create(VENV)
    subprocess.run([str(venv_python()), "-m", "pip", "install", "--quiet", *REQUIREMENTS], check=True)
    subprocess.run([str(venv_python()), "-c", "import recbole, torch; from recbole.trainer import Trainer"],
                   check=True)
    marker.write_text(wanted)


def write_atomic_files() -> dict[str, int]:
    """Beauty's train sessions as RecBole atomic files (rewritten each run: it takes a second, and the data
    can change); returns the counts both sides train on."""
    import numpy as np

    from core import data

    split = data.load(DATASET).split
    folder = DATA_DIR / DATASET
    folder.mkdir(parents=True, exist_ok=True)
    # timestamp = position in the session: RecBole sorts each session by it, so the items keep their order.
    lines = ["session_id:token\titem_id:token\ttimestamp:float"]
    for number, session in enumerate(split.train):
        lines.extend(f"{number}\t{item}\t{position}" for position, item in enumerate(session.tolist()))
    (folder / f"{DATASET}.inter").write_text("\n".join(lines) + "\n")
    items = ["item_id:token"] + [str(item) for item in range(split.catalog.n_items)]
    (folder / f"{DATASET}.item").write_text("\n".join(items) + "\n")
    lengths = np.array([len(s) for s in split.train])
    return {"sessions": len(lengths), "items": split.catalog.n_items,
            "recbole_rows": int((lengths - 1).clip(0).sum()),  # every prefix -> next item
            "our_targets": int((np.minimum(lengths, MAX_LENGTH + 1) - 1).clip(0).sum())}  # last 51 items a session


# ------------------------------------------------------------------------------------------------ one side
def run_ours(epochs: int, precision: str) -> dict[str, Any]:
    import torch

    from core import data
    from core.models import create
    from core.models.sequential import SequentialRecommender

    split = data.load(DATASET).split
    model = create("sasrec", embedding_dim=WIDTH, heads=HEADS, layers=BLOCKS, ff_multiplier=FEED_FORWARD // WIDTH,
                   dropout=DROPOUT, learning_rate=LEARNING_RATE, weight_decay=0.0, batch_size=BATCH,
                   max_length=MAX_LENGTH, max_epochs=epochs, max_validation_sessions=0, precision=precision,
                   device="cpu", seed=SEED)
    assert isinstance(model, SequentialRecommender)
    model.fit(split)
    return {"seconds": list(model.history.seconds), "loss": list(model.history.loss),
            "threads": torch.get_num_threads(), "torch": torch.__version__}


def run_recbole(epochs: int, precision: str, flush_denormal: bool = False,
                anomaly_detection: bool = False) -> dict[str, Any]:
    import logging

    import recbole
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset
    from recbole.data.utils import create_samplers, get_dataloader
    from recbole.model.sequential_recommender import SASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    torch.set_num_threads(THREADS)
    torch.set_flush_denormal(flush_denormal)
    # switched on for the whole process by RecBole's sine.py, imported with SASRec above (see the docstring)
    torch.autograd.set_detect_anomaly(anomaly_detection)
    logging.getLogger().setLevel(logging.WARNING)
    config = Config(model="SASRec", dataset=DATASET, config_dict={
        "data_path": str(DATA_DIR), "checkpoint_dir": str(RUN_DIR / "saved"), "gpu_id": "", "seed": SEED,
        "USER_ID_FIELD": "session_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["session_id", "item_id", "timestamp"], "item": ["item_id"]},
        "user_inter_num_interval": "[0,inf)", "item_inter_num_interval": "[0,inf)",  # keep every session/item
        "MAX_ITEM_LIST_LENGTH": MAX_LENGTH, "hidden_size": WIDTH, "n_layers": BLOCKS, "n_heads": HEADS,
        "inner_size": FEED_FORWARD, "hidden_dropout_prob": DROPOUT, "attn_dropout_prob": DROPOUT,
        "hidden_act": "gelu", "loss_type": "CE", "train_neg_sample_args": None,
        "train_batch_size": BATCH, "learner": "adam", "learning_rate": LEARNING_RATE, "weight_decay": 0.0,
        "epochs": epochs, "enable_amp": precision == "bfloat16", "show_progress": False,
        # every prefix row is trained on: no leave-one-out rows moved to validation/test
        "eval_args": {"split": {"RS": [1.0, 0.0, 0.0]}, "order": "TO", "group_by": None, "mode": "full"},
    })
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    built = dataset.build()
    train_sampler, _, _ = create_samplers(config, dataset, built)
    train_data = get_dataloader(config, "train")(config, built[0], train_sampler, shuffle=config["shuffle"])
    model = SASRec(config, train_data.dataset).to(config["device"])
    trainer = Trainer(config, model)
    seconds, losses = [], []
    for epoch in range(epochs):
        start = time.perf_counter()
        loss = trainer._train_epoch(train_data, epoch, show_progress=False)
        seconds.append(time.perf_counter() - start)
        losses.append(float(loss) / max(len(train_data), 1))
    return {"seconds": seconds, "loss": losses, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "recbole": recbole.__version__, "rows": len(built[0]), "item_num": dataset.item_num,
            "batches": len(train_data), "anomaly_detection": torch.is_anomaly_enabled(),
            "flush_denormal": flush_denormal}


def subprocess_run(side: str, epochs: int, precision: str, recbole_flags: list[str]) -> dict[str, Any]:
    python = str(venv_python()) if side == "recbole" else sys.executable
    env = {**os.environ, "LLMSEQ_TORCH_THREADS": str(THREADS), "OMP_NUM_THREADS": str(THREADS),
           "MKL_NUM_THREADS": str(THREADS), "PYTHONPATH": str(ROOT)}
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    command = [python, str(Path(__file__).resolve()), "--one", side, "--epochs", str(epochs),
               "--precision", precision] + (recbole_flags if side == "recbole" else [])
    out = subprocess.run(command, capture_output=True, text=True, cwd=RUN_DIR if side == "recbole" else ROOT,
                         env=env)
    if out.returncode:
        raise SystemExit(f"{side} failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# ------------------------------------------------------------------------------------------------ main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=2, help="ours then RecBole, this many times")
    parser.add_argument("--epochs", type=int, default=2, help="epochs a side per round")
    parser.add_argument("--precision", choices=["float32", "bfloat16"], default="float32",
                        help="both sides' training step (bfloat16: ours precision=bfloat16, RecBole enable_amp)")
    parser.add_argument("--recbole-flush-denormal", action="store_true",
                        help="RecBole too flushes denormal floats to zero, as ours always does (not as shipped)")
    parser.add_argument("--recbole-anomaly-detection", action="store_true",
                        help="keep the autograd anomaly detection that RecBole's sine.py turns on at import "
                             "(as shipped: ~2x slower)")
    parser.add_argument("--setup-only", action="store_true", help="create the venv and the data files, then stop")
    parser.add_argument("--one", choices=["ours", "recbole"], help=argparse.SUPPRESS)  # internal: one side
    args = parser.parse_args()
    if args.rounds < 1 or args.epochs < 1 and not args.one:
        parser.error("--rounds and --epochs must be at least 1")
    if args.one:
        result = run_ours(args.epochs, args.precision) if args.one == "ours" \
            else run_recbole(args.epochs, args.precision, args.recbole_flush_denormal, args.recbole_anomaly_detection)
        print(json.dumps(result))
        return

    ensure_venv()
    counts = write_atomic_files()
    print(f"data: Beauty train, {counts['sessions']:,} sessions, {counts['items']:,} items; "
          f"RecBole trains on {counts['recbole_rows']:,} prefix rows, ours on {counts['our_targets']:,} targets "
          f"(atomic files in {(DATA_DIR / DATASET).relative_to(ROOT)})")
    if args.setup_only:
        return
    print(f"settings: width {WIDTH}, {BLOCKS} blocks, {HEADS} heads, feed-forward {FEED_FORWARD}, max length "
          f"{MAX_LENGTH}, batch {BATCH}, dropout {DROPOUT}, lr {LEARNING_RATE} (Adam, no weight decay), "
          f"CE over the full catalog, {THREADS} threads, {args.precision}; {args.rounds} rounds x {args.epochs} "
          "epochs a side", flush=True)
    recbole_flags = (["--recbole-flush-denormal"] if args.recbole_flush_denormal else []) \
        + (["--recbole-anomaly-detection"] if args.recbole_anomaly_detection else [])
    seconds: dict[str, list[float]] = {"ours": [], "recbole": []}
    seen: dict[str, dict[str, Any]] = {}
    for round_number in range(1, args.rounds + 1):
        for side in ("ours", "recbole"):
            result = subprocess_run(side, args.epochs, args.precision, recbole_flags)
            seconds[side] += result["seconds"]
            seen[side] = result
            print(f"round {round_number} {side:<8} " + " ".join(f"{s:.1f}" for s in result["seconds"])
                  + " s/epoch  (loss " + " ".join(f"{x:.3f}" for x in result["loss"]) + ")", flush=True)
    rb = seen["recbole"]
    print(f"versions: RecBole {rb['recbole']} (torch {rb['torch']}), ours torch {seen['ours']['torch']}; threads "
          f"ours {seen['ours']['threads']}, RecBole {rb['threads']}; RecBole: {rb['rows']:,} rows, "
          f"{rb['batches']} batches/epoch, item_num {rb['item_num']:,} (with padding); RecBole autograd anomaly "
          f"detection {'on (as shipped)' if rb['anomaly_detection'] else 'off'}, denormals "
          f"{'flushed (--recbole-flush-denormal)' if rb['flush_denormal'] else 'kept (as shipped)'}")
    means = {side: statistics.mean(values) for side, values in seconds.items()}
    for side, label in (("ours", "ours"), ("recbole", "RecBole")):
        each = " ".join(f"{s:.1f}" for s in seconds[side])
        print(f"{label:<8} {means[side]:7.1f} s/epoch  (each: {each})")
    print(f"ratio RecBole/ours: {means['recbole'] / means['ours']:.1f}x per epoch (goal: >= 10x)")


if __name__ == "__main__":
    main()
