"""Issue 12's sweep on a GPU machine, in one call: settings chosen on Beauty's last validation fold, then the
chosen ones evaluated on the test split over three seeds. Many small trainings share one GPU (one process
each, one CPU thread each), since one of these models is far too small to keep a GPU busy.

    python bench/device_sweep.py --out $OUT --deadline 540 [--jobs 14]

Phase 1 (fold, seed 0): each variant of ``FOLD_VARIANTS`` through ``bench/tune_sequential.py`` (its own early
stopping inside the fold's train sessions, scored on the fold's later sessions). Phase 2 (test): for each model
family, the variant with the best fold NDCG@20 — chosen by this script, not by a person reading test figures —
goes through ``python -m core reproduce`` for the vanilla model, its LLM2 twin and the shuffled-vector ablation,
seeds 0, 1, 2, one process per run. A family whose best variant is its current default ("tuned") is not run
again on the test split (its figures are in bench/results/). Everything is written, as it finishes, to
``OUT/sweep.json`` (fold rows, test rows, each trained model's epochs and seconds) and ``OUT/sweep.log``; at the
deadline the jobs still running are stopped and what finished is kept.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# family -> [(label, options from the class defaults = the paper's values, fold seeds)]; "tuned" = today's Beauty
# defaults. Round 1 (bench/results/device-sweep-1.json, passed as --prior) ran seed 0 of tuned, tuned-bf16,
# no-weights, random-batches, patience30 (BERT4Rec), tuned, no-weights, patience20, kv23 (SASRec), tuned and
# no-weights (GRU4Rec); BERT4Rec sat on a popularity-level plateau in some runs, hence the warm-up and 3 seeds.
FOLD_VARIANTS: dict[str, list[tuple[str, str, tuple[int, ...]]]] = {
    "bert4rec": [
        ("tuned", "", (1, 2)),
        ("no-weights", "weigh_by_targets=false", (1, 2)),
        ("warmup", "warmup_steps=500", (0, 1, 2)),
        ("warmup-no-weights", "warmup_steps=500 weigh_by_targets=false", (0, 1, 2)),
    ],
    "sasrec": [
        ("tuned", "", (1, 2)),
        ("patience20", "patience=20", (1, 2)),
    ],
}
MAX_PASSES = {"bert4rec": 150}  # a fold run stops here at the latest (BERT4Rec's passes)
TEST_ROWS = {family: [family, f"llm2{family}", f"llm2{family}-shuffled"] for family in FOLD_VARIANTS}


class Runner:
    def __init__(self, out: Path, deadline: float, jobs: int) -> None:
        self.out, self.deadline, self.jobs = out, deadline, jobs
        self.log = (out / "sweep.log").open("a", buffering=1)
        self.results: dict = {"fold": [], "test": [], "trained": [], "failed": []}
        self.work = Path("/tmp/sweep")
        self.work.mkdir(exist_ok=True)

    def say(self, text: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {text}"
        print(line, flush=True)
        self.log.write(line + "\n")

    def save(self) -> None:
        self.results["trained"] = trained_models()
        tmp = self.out / "sweep.json.tmp"
        tmp.write_text(json.dumps(self.results, indent=1))
        tmp.replace(self.out / "sweep.json")

    def run(self, jobs: list[tuple[str, list[str], Path]]) -> None:
        """Run (name, argv, result file) jobs, at most ``self.jobs`` at a time, until done or the deadline."""
        env = {**os.environ, "LLMSEQ_TORCH_THREADS": "1", "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
        waiting: list[tuple[str, list[str], Path]] = list(jobs)
        running: list[tuple[str, subprocess.Popen, Path, float]] = []
        while waiting or running:
            while waiting and len(running) < self.jobs and time.time() < self.deadline:
                name, argv, result = waiting.pop(0)
                err = (self.work / f"{name}.err").open("w")
                running.append((name, subprocess.Popen(argv, stdout=err, stderr=err, env=env), result, time.time()))
                self.say(f"start {name}")
            if time.time() >= self.deadline:
                for name, proc, _, _ in running:
                    proc.kill()
                    self.say(f"deadline: stopped {name}")
                self.results["failed"] += [f"{name} (deadline)" for name, *_ in running]
                self.results["failed"] += [f"{name} (not started)" for name, *_ in waiting]
                self.save()
                return
            for item in list(running):
                name, proc, result, started = item
                if proc.poll() is None:
                    continue
                running.remove(item)
                if proc.returncode == 0 and result.exists():
                    self.collect(name, result)
                    self.say(f"done  {name} in {time.time() - started:.0f} s")
                else:
                    tail = (self.work / f"{name}.err").read_text(errors="replace")[-1500:]
                    self.results["failed"].append(f"{name} (rc {proc.returncode}): {tail}")
                    self.say(f"FAIL  {name} rc {proc.returncode}: {tail[-600:]}")
                self.save()
            time.sleep(1)

    def collect(self, name: str, result: Path) -> None:
        if result.suffix == ".jsonl":
            for line in result.read_text().splitlines():
                if line.strip():
                    self.results["fold"].append({"job": name, **json.loads(line)})
        else:
            self.results["test"].append({"job": name, **json.loads(result.read_text())})


def trained_models() -> list[dict]:
    """Each model trained in this sweep: its options, epochs (passes), best epoch and seconds."""
    from safetensors.numpy import load_file

    rows: list[dict] = []
    from core.storage import CACHE_DIR

    for state in sorted(glob.glob(str(CACHE_DIR / "models" / "*" / "*" / "state.safetensors"))):
        folder = Path(state).parent
        try:
            arrays = load_file(state)
            config = json.loads((folder / "config.json").read_text())
        except Exception as error:  # a model written by an earlier run that this one cannot read
            rows.append({"folder": str(folder), "error": str(error)})
            continue
        if "history.seconds" in arrays:
            rows.append({"folder": str(folder), "config": config, "epochs": int(len(arrays["history.seconds"])),
                         "best_epoch": int(arrays["history.best_epoch"][0]) + 1,
                         "seconds": float(arrays["history.seconds"].sum())})
    return rows


def merged(sweep: dict, command: str) -> dict:
    """The test rows of a sweep (one ``reproduce`` JSON per row and seed) as one ``reproduce`` summary: per row
    and metric the mean, sample std and every run, seeds in order, the gain over the vanilla model."""
    from core.reproduce import ROWS, summarise

    runs: dict[str, list[dict]] = {}
    for job in sweep["test"]:
        for name, row in job["models"].items():
            runs.setdefault(name, []).append(row)
    summary = {"dataset": sweep["test"][0]["dataset"], "test_sessions": sweep["test"][0]["test_sessions"],
               "seeds": sorted({seed for rows in runs.values() for row in rows for seed in row["seeds"]}),
               "preset": "tuned", "command": command, "models": {}}
    for name in sorted(runs, key=list(ROWS).index):
        rows = sorted(runs[name], key=lambda row: row["seeds"])
        out = {"model": rows[0]["model"], "options": rows[0]["options"], "seeds": [r["seeds"][0] for r in rows]}
        for metric, value in rows[0].items():
            if isinstance(value, dict) and "runs" in value:
                out[metric] = {**summarise([r[metric]["runs"][0] for r in rows]),
                               **({"paper": value["paper"]} if "paper" in value else {})}
        baseline = ROWS[name].baseline
        if baseline in summary["models"]:
            base = summary["models"][baseline]["NDCG@20"]["mean"]
            out["vs_baseline"] = {"row": baseline, "NDCG@20_gain": out["NDCG@20"]["mean"] / base - 1}
        summary["models"][name] = out
    return summary


def smoke(runner: Runner, device: str) -> bool:
    """A few seconds on MovieLens-100k: every sequential model trains one epoch on the device and ranks."""
    code = ("import torch; from core import data; from core.models import create; "
            "print('cuda', torch.cuda.is_available(), torch.__version__); d = data.load('ml-100k'); "
            f"[print(n, create(n, device='{device}', max_epochs=1).fit(d.split).recommend([d.split.train[0][:3]], "
            "5)[0]) for n in ('sasrec', 'gru4rec', 'bert4rec')]")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    runner.say(f"smoke rc {done.returncode}: {done.stdout[-800:]} {done.stderr[-1500:]}")
    return done.returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--deadline", type=float, default=540, help="seconds from the start for everything")
    parser.add_argument("--jobs", type=int, default=14, help="trainings at a time")
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--prior", help="an earlier round's sweep.json: its fold rows count in the choice")
    parser.add_argument("--set", default="device=cuda precision=float32",
                        help="options of every run (float32 as on the CPU, so the figures compare; one bf16 "
                             "variant checks bf16); a dry run here: \"device=cpu max_epochs=1\"")
    parser.add_argument("--merge", metavar="SWEEP_JSON",
                        help="only write OUT/NAME.json and .md: the test runs of a finished sweep as one reproduce "
                             "table (NAME = the --out file name without .json)")
    args = parser.parse_args()
    if args.merge:
        from core.reproduce import markdown
        from core.storage import atomic_write_text

        summary = merged(json.loads(Path(args.merge).read_text()), f"python bench/device_sweep.py (on a GPU); "
                                                                   f"python bench/device_sweep.py --merge {args.merge}")
        target = Path(args.out)
        atomic_write_text(target, json.dumps(summary, indent=2))
        table = f"{summary['dataset']}, {summary['test_sessions']:,} test sessions, seeds {summary['seeds']}:\n\n"
        atomic_write_text(target.with_suffix(".md"), table + markdown(summary) + "\n")
        print(table + markdown(summary))
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runner = Runner(out, time.time() + args.deadline, args.jobs)
    device = "cuda" if "device=cuda" in args.set else "cpu"
    if not smoke(runner, device):
        runner.save()
        return
    prior = json.loads(Path(args.prior).read_text())["fold"] if args.prior else []
    fold_jobs = []
    for family, variants in FOLD_VARIANTS.items():
        for label, options, seeds in variants:
            cap = f"max_epochs={MAX_PASSES[family]} " if family in MAX_PASSES else ""
            for seed in seeds:
                name = f"fold-{family}-{label}-{seed}"
                result = runner.work / f"{name}.jsonl"
                fold_jobs.append((name, [
                    sys.executable, "bench/tune_sequential.py", "--dataset", args.dataset, "--model", family,
                    "--seeds", str(seed), "--base", f"{cap}{args.set} {options}".strip(), "--jsonl", str(result)],
                    result))
    runner.run(fold_jobs)
    test_jobs = []
    for family, variants in FOLD_VARIANTS.items():
        fold_of: dict[str, tuple[float, int] | None] = {}
        for label, _, _ in variants:  # round 1's rows are named fold-FAMILY-LABEL (seed 0)
            runs = [row["ndcg20"] for row in prior + runner.results["fold"]
                    if row["job"] == f"fold-{family}-{label}" or row["job"].startswith(f"fold-{family}-{label}-")
                    and row["job"][len(f"fold-{family}-{label}-"):].isdigit()]
            fold_of[label] = (sum(runs) / len(runs), len(runs)) if runs else None
        scored = {label: value[0] for label, value in fold_of.items() if value is not None}
        best = max(scored, key=scored.__getitem__, default=None)
        runner.say(f"{family}: fold NDCG@20 (mean, runs) {fold_of}; chosen: {best}")
        runner.results.setdefault("chosen", {})[family] = {"label": best, "fold": fold_of}
        if best is None or best == "tuned":
            continue
        options = next(options for label, options, _ in variants if label == best)
        for seed in (0, 1, 2):
            for row in TEST_ROWS[family]:
                result = runner.work / f"test-{row}-{seed}.json"
                test_jobs.append((f"test-{row}-{seed}", [
                    sys.executable, "-m", "core", "reproduce", "--dataset", args.dataset, "--seeds", str(seed),
                    "--models", row, "--set", *f"{args.set} {options}".split(), "--output", str(result)], result))
    runner.run(test_jobs)
    runner.save()
    runner.say("finished")


if __name__ == "__main__":
    main()
