"""Command line: ``python -m core datasets|prepare|embed|train|evaluate|finetune|reproduce|tune|study|synth``.

Bad input (a broken CSV, an unknown or out-of-range option: any ``core.common.UserError``) ends with one line
on stderr and exit code 2, never a traceback. Anything else is a bug: one line and exit code 1, and with
``--verbose`` its full traceback. What validation fixed or dropped, and what the model store repaired, is
printed as ``note:`` lines on stderr.

Every command that reads a data set takes it the same two ways (:func:`add_dataset_arguments`): ``--dataset
NAME|FOLDER|ID`` (a bundled name, a folder holding interactions.csv[.gz] and items.csv[.gz], or the id
``data-<12 hex>`` of files uploaded in the app) or ``--interactions FILE --items FILE``. The same two files are
one data set whichever way they are given (``core.data``: named by their content), and every command prints
that name.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import traceback
from pathlib import Path
from typing import Callable

from core import data, uploads
from core.common import Progress, UserError, describe_bug
from core.models import REGISTRY, model_class
from core.models.base import Recommender
from core.storage import atomic_write_text


class CLIError(UserError):
    """A user-facing problem with the command line itself; printed as one line."""


def tqdm_progress(description: str) -> tuple[Progress, Callable[[], None]]:
    """A Progress callback drawing a tqdm bar, and a function that closes it."""
    from tqdm import tqdm

    bar = tqdm(desc=description, leave=False, dynamic_ncols=True,  # no rate: steps differ in size
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}]")

    def update(done: int, total: int, message: str) -> None:
        if total != bar.total or done < bar.n:
            bar.reset(total=total)
        bar.set_description(message or description, refresh=False)
        bar.n = done
        bar.refresh()

    return update, bar.close


def parse_overrides(pairs: list[str], names: list[str]) -> dict[str, dict[str, str]]:
    """``["k=50", "vsknn.sample_size=900"]`` -> per-model option dicts (unprefixed keys go to every model
    that has that option; a key no selected model has is an error)."""
    out: dict[str, dict[str, str]] = {name: {} for name in names}
    for pair in pairs:
        if "=" not in pair:
            raise CLIError(f"--set expects key=value, got '{pair}'")
        key, value = pair.split("=", 1)
        if "." in key:
            model, option = key.split(".", 1)
            if model not in out:
                raise CLIError(f"--set {pair}: model '{model}' is not among the selected models {names}")
            out[model][option] = value
            continue
        takers = [n for n in names if key in {f.name for f in dataclasses.fields(model_class(n).Config)}]
        if not takers:
            raise CLIError(f"--set {pair}: none of the models {names} has an option '{key}'")
        for name in takers:
            out[name][key] = value
    return out


def build_models(names_csv: str, pairs: list[str], dataset: str | None = None,
                 preset: str = "tuned") -> list[Recommender]:
    """The named models with ``dataset``'s defaults under ``preset`` (``core.models.defaults``), then ``pairs``."""
    from core.models.defaults import default_config

    names = [n.strip() for n in names_csv.split(",") if n.strip()]
    if not names:
        raise CLIError(f"--models names no model; available: {', '.join(REGISTRY)}")
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise CLIError(f"unknown model(s) {unknown}; available: {', '.join(REGISTRY)}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise CLIError(f"--models names {repeated[0]} more than once (a variant: --set {repeated[0]}.OPTION=VALUE)")
    overrides = parse_overrides(pairs, names)
    return [model_class(name)(default_config(name, dataset, preset), **overrides[name]) for name in names]


def cmd_datasets(args: argparse.Namespace) -> None:
    for name, description in data.BUNDLED.items():
        print(f"{name:<10} {description}")


def notes(lines: list[str]) -> None:
    for line in lines:
        print(f"note: {line}", file=sys.stderr)


DEFAULT_DATASET = "beauty"


def add_dataset_arguments(command: argparse.ArgumentParser) -> None:
    """The data set's options, the same on every command: ``--dataset NAME|FOLDER|ID`` or ``--interactions FILE
    --items FILE`` (read by :func:`dataset_name`, :func:`load_dataset` and :func:`dataset_arguments`)."""
    group = command.add_argument_group("data set", "--dataset, or --interactions with --items (default: beauty)")
    group.add_argument("--dataset", metavar="NAME|FOLDER|ID",
                       help=f"a bundled name ({', '.join(data.BUNDLED)}), a folder with interactions.csv[.gz] and "
                            "items.csv[.gz], or the id (data-…) of files uploaded in the app")
    group.add_argument("--interactions", metavar="FILE", help="the interactions CSV file (with --items)")
    group.add_argument("--items", metavar="FILE", help="the items CSV file (with --interactions)")


def _dataset_files(args: argparse.Namespace) -> tuple[Path, Path] | None:
    """The two files when the data set is given as files; None for --dataset. Raises CLIError for a mix."""
    if args.interactions is None and args.items is None:
        return None
    if args.interactions is None or args.items is None:
        raise CLIError("--interactions and --items go together: give both files (or --dataset NAME|FOLDER).")
    if args.dataset is not None:
        raise CLIError("give the data set once: --dataset, or --interactions with --items, not both.")
    return Path(args.interactions), Path(args.items)


def _dataset_key(args: argparse.Namespace) -> str:
    """What ``data.load`` takes for ``--dataset``: an upload's id becomes its folder (or is refused in one line);
    a name or a folder as given (``data.load`` opens or refuses it)."""
    name = args.dataset or DEFAULT_DATASET
    return uploads.resolve(name) if data.is_identity(name) else name


def dataset_name(args: argparse.Namespace) -> str:
    """The name the data set is stored under (``core.data``: a bundled name, else its files' content name
    ``data-<12 hex>``), without loading it. Raises CLIError/DataError (one sentence)."""
    files = _dataset_files(args)
    return data.files_identity(*files) if files else data.dataset_name(_dataset_key(args))


def dataset_arguments(args: argparse.Namespace) -> str:
    """The data set's options as typed, for a command line recorded with a result (quoted for a shell)."""
    files = _dataset_files(args)
    if files:
        return f"--interactions {shlex.quote(str(files[0]))} --items {shlex.quote(str(files[1]))}"
    return f"--dataset {shlex.quote(args.dataset or DEFAULT_DATASET)}"


def load_dataset(args: argparse.Namespace) -> data.Dataset:
    """The data set the arguments name, its loading notes printed (what validation fixed or dropped, how the
    split was ordered). Raises CLIError/DataError (one sentence)."""
    files = _dataset_files(args)
    dataset = data.load_files(*files) if files else data.load(_dataset_key(args))
    notes(dataset.warnings)
    return dataset


def text_notes(dataset: data.Dataset, models: list[Recommender]) -> None:
    """What embedding the titles did (e.g. titles cut by the model's window), once per embedding used."""
    from core.embeddings import embedding_notes

    specs = {spec for spec in (type(m).text_embedding(m.config) for m in models) if spec is not None}
    for spec in sorted(specs, key=lambda s: s.label):
        notes(embedding_notes(dataset.catalog, spec))


def cmd_prepare(args: argparse.Namespace) -> None:
    dataset = load_dataset(args)
    split = dataset.split
    print(f"{dataset.name}: {dataset.catalog.n_items:,} items, {len(split.train):,} train sessions, "
          f"{split.n_test:,} test sessions; validation folds (train/validate): "
          + (", ".join(f"{len(f.train):,}/{f.n_test:,}" for f in dataset.folds) or "none (too few sessions)"))


def cmd_embed(args: argparse.Namespace) -> None:
    import time

    from core.embeddings import (
        EmbeddingSpec,
        cached_path,
        cached_vectors,
        embedding_notes,
        item_embeddings,
        model_table,
    )

    if args.list:
        print(model_table())
        return
    if args.engine == "local" and (args.address is not None or args.actors is not None):
        raise CLIError("--address and --actors go with --engine ray")
    if args.actors is not None and args.actors < 1:
        raise CLIError(f"--actors must be 1 or more, got {args.actors}")
    if args.engine == "ray":
        from core.distributed import import_ray

        import_ray()  # without Ray: one line saying how to install it, before the data set is loaded
    dataset = load_dataset(args)
    spec = EmbeddingSpec(provider=args.provider, model=args.model, long_titles=args.long_titles)
    path = cached_path(dataset.catalog, spec)
    cached = cached_vectors(dataset.catalog, spec) is not None
    progress, close = tqdm_progress(f"embedding {dataset.catalog.n_items:,} titles")
    start = time.perf_counter()
    try:
        if args.engine == "ray":
            from core.distributed import ray_item_embeddings

            vectors = ray_item_embeddings(dataset.catalog, spec, actors=args.actors or 2, address=args.address,
                                          progress=progress)
        else:
            vectors = item_embeddings(dataset.catalog, spec, progress=progress)
    finally:
        close()
    seconds = time.perf_counter() - start
    notes(embedding_notes(dataset.catalog, spec))
    on = f" on Ray ({args.actors or 2} actors)" if args.engine == "ray" else ""
    print(f"{dataset.name}: {vectors.shape[0]:,} items x {vectors.shape[1]} dims ({spec.label}) "
          f"{'from cache' if cached else f'embedded in {seconds:.1f} s{on}'} -> {path}")


def cmd_train(args: argparse.Namespace) -> None:
    """Fit and save models; ``--processes N`` relaunches this command under torchrun (N data-parallel processes,
    :func:`train_data_parallel`), and a command started by torchrun trains data-parallel."""
    import os

    from core.store import fit_or_load

    if args.processes < 1:
        raise CLIError(f"--processes must be 1 or more, got {args.processes}")
    models = build_models(args.models, args.set, dataset_name(args), args.preset)
    distributed = int(os.environ.get("WORLD_SIZE", "1") or 1) > 1
    if args.processes > 1 or distributed:
        serial = [m.name for m in models if not getattr(type(m), "data_parallel", False)]
        if serial:
            raise CLIError(f"{', '.join(serial)} cannot train data-parallel (--processes, torchrun): only the "
                           "sequential models (gru4rec, sasrec, bert4rec and their llm2 twins) can")
    dataset = load_dataset(args)  # with --processes: a bad data set is one line here, not a traceback a process
    if args.processes > 1 and not distributed:
        from core.store import model_folder

        if args.retrain or not all((model_folder(dataset, m) / "state.safetensors").exists() for m in models):
            launch_torchrun(args)
            return
        # every model is saved already: loaded below, as without --processes
    if distributed:
        train_data_parallel(models, dataset, args.retrain)
        return
    for model in models:
        progress, close = tqdm_progress(f"training {model.name}")
        try:
            fitted = fit_or_load(model, dataset, progress=progress, retrain=args.retrain)
        finally:
            close()
        notes(fitted.notes)
        text_notes(dataset, [model])
        done = "already trained" if fitted.status == "loaded" else f"trained in {fitted.fit_seconds:.1f} s"
        print(f"{model.name} on {dataset.name}: {done} -> {fitted.folder}")


def torchrun_command(args: argparse.Namespace) -> list[str]:
    """The torchrun command line (``python -m torch.distributed.run``) of ``train`` with ``--processes N``: N
    processes on this machine (``--standalone``: a free port on localhost), each running the same ``train``
    command without ``--processes``."""
    train = ["train", *shlex.split(dataset_arguments(args)), "--models", args.models, "--preset", args.preset]
    train += (["--set", *args.set] if args.set else []) + (["--retrain"] if args.retrain else [])
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(args.processes),
            "-m", "core", *(["--verbose"] if args.verbose else []), *train]


def launch_torchrun(args: argparse.Namespace) -> None:
    """Run :func:`torchrun_command` and exit with its status (each process prints its own errors)."""
    import os
    import subprocess

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    env = {"OMP_NUM_THREADS": str(max(1, cores // args.processes)), **os.environ}  # torchrun's default warns
    print(f"training data-parallel in {args.processes} processes (torchrun)", flush=True)
    status = subprocess.run(torchrun_command(args), env=env).returncode
    if status:
        raise SystemExit(status)


def train_data_parallel(models: list[Recommender], dataset: data.Dataset, retrain: bool) -> None:
    """One process of torchrun's: fit each model together with the other processes (``core.train``); rank 0
    decides whether a saved model is loaded instead (and tells the others), reports progress, and saves."""
    import torch.distributed as dist

    from core.models import load as load_saved
    from core.models.base import ArtifactError
    from core.store import fit_or_load, model_folder
    from core.train import init_distributed

    rank, size = init_distributed()
    try:
        for model in models:
            folder = model_folder(dataset, model)
            saved = [False]
            if rank == 0 and not retrain and (folder / "state.safetensors").exists():
                try:
                    load_saved(folder)
                    saved = [True]
                except ArtifactError:
                    pass  # fit_or_load below reports it and fits again, with every process
            dist.broadcast_object_list(saved, src=0)
            if rank != 0:
                if not saved[0]:
                    model.fit(dataset.split)
                continue
            progress, close = tqdm_progress(f"training {model.name} ({size} processes)")
            try:
                fitted = fit_or_load(model, dataset, progress=progress, retrain=not saved[0])
            finally:
                close()
            notes(fitted.notes)
            text_notes(dataset, [model])
            done = "already trained" if saved[0] else f"trained in {fitted.fit_seconds:.1f} s on {size} processes"
            print(f"{model.name} on {dataset.name}: {done} -> {fitted.folder}", flush=True)
    finally:
        dist.destroy_process_group()


def cmd_evaluate(args: argparse.Namespace) -> None:
    from core.evaluate import EvaluationOptions, format_breakdown, format_table, run
    from core.report import generation_table

    models = build_models(args.models, args.set, dataset_name(args), args.preset)
    if args.workers < 1:
        raise CLIError(f"--workers must be 1 or more, got {args.workers}")
    if args.address is not None and (args.engine != "ray" or args.workers < 2):
        raise CLIError("--address goes with --engine ray and --workers 2 or more")
    if args.engine == "ray" and args.workers > 1:
        from core.distributed import import_ray

        import_ray()  # without Ray: one line saying how to install it, before anything is fitted
    if args.output and not Path(args.output).resolve().parent.is_dir():
        raise CLIError(f"--output {args.output}: the folder {Path(args.output).resolve().parent} does not exist.")
    dataset = load_dataset(args)
    progress, close = tqdm_progress("evaluating")
    try:
        report = run(dataset, models, EvaluationOptions(paper_popularity=args.paper_popularity,
                                                        cold_items=args.cold_items),
                     progress=progress, retrain=args.retrain, workers=args.workers, engine=args.engine,
                     address=args.address)
    finally:
        close()
    for result in report.results.values():
        notes(result.notes)
    text_notes(dataset, models)
    print(f"{dataset.name}: {report.n_test_sessions:,} test sessions"
          + (" whose target is a new item (--cold-items)" if args.cold_items else "") + ", "
          f"popularity for serendipity/novelty: {report.popularity_counts}")
    print(format_table(report))
    generated = generation_table(report.results)
    if len(generated):
        print("\nGenerated names and answers (shares):")
        print(generated.to_string())
    for breakdown in args.breakdown or []:
        print()
        print(format_breakdown(report, "by_" + breakdown.replace("-", "_")))
    if args.output:
        try:
            Path(args.output).write_text(json.dumps(report.to_json(), indent=2))
        except OSError as err:
            raise CLIError(f"--output {args.output}: cannot be written ({err.strerror or type(err).__name__}); "
                           "the results are also kept under cache/results/.") from None
        print(f"wrote {args.output}")


def cmd_reproduce(args: argparse.Namespace) -> None:
    from core import reproduce
    from core.paper import PAPER_BEAUTY

    if args.models is not None and not args.models.strip(",; "):
        raise CLIError("--models names no row; leave it out for every row, or name rows such as sasrec,llm2sasrec")
    rows, seeds = reproduce.parse_rows(args.models), reproduce.parse_seeds(args.seeds)
    output = Path(args.output)
    if output.suffix != ".json":
        raise CLIError(f"--output {args.output}: give a .json file (the markdown table is written beside it, "
                       f"as {output.with_suffix('.md').name})")
    if not output.resolve().parent.is_dir():
        raise CLIError(f"--output {args.output}: the folder {output.resolve().parent} does not exist.")
    models = list(dict.fromkeys(row.model for row in rows))
    overrides = parse_overrides(args.set, models)
    reproduce.plan(rows, seeds, dataset_name(args), args.preset, overrides)  # bad options: before loading
    dataset = load_dataset(args)
    command = f"python -m core reproduce {dataset_arguments(args)} " + " ".join(
        f"--{k} {v}" for k, v in (("seeds", args.seeds), ("models", args.models),
                                  ("preset", args.preset), ("set", " ".join(args.set)), ("output", args.output)) if v)

    def progress_for(row: str, runs: int) -> tuple[Progress, Callable[[], None]]:
        return tqdm_progress(f"{row} ({runs} run{'s' if runs > 1 else ''})")

    summary = reproduce.reproduce(dataset, rows, seeds, args.preset, output, progress_for, command,
                                  PAPER_BEAUTY if dataset.name == "beauty" else None,
                                  overrides)
    table = reproduce.markdown(summary)
    markdown_path = output.with_suffix(".md")
    atomic_write_text(markdown_path, f"{dataset.name}, {dataset.split.n_test:,} test sessions, seeds {seeds}, "
                                     f"preset {args.preset}:\n\n`{command}`\n\n{table}\n")
    print(table)
    print(f"wrote {output} and {markdown_path}")


def cmd_finetune(args: argparse.Namespace) -> None:
    """LLMSeqPrompt's fine-tuning; a paid backend checks the key first and spends only with --yes."""
    from core.store import fit_or_load

    if args.backend == "openai":
        from core.models.llmseqprompt.openai_backend import require_key

        require_key()  # before anything else: no key, nothing sent, nothing spent
    from core.models.llmseqprompt import LLMSeqPrompt

    (model,) = build_models("llmseqprompt", [f"backend={args.backend}", f"task={args.task}", *args.set])
    assert isinstance(model, LLMSeqPrompt)
    dataset = load_dataset(args)
    if args.backend == "openai":  # the estimate reads the task's examples: built with the parts the fit will use
        from core.store import attach_parts

        notes(attach_parts(model, dataset))
    cost = model.spending_estimate(dataset.split)
    if cost:
        print(f"estimate: {cost}")
        if not args.yes:
            raise CLIError("not started: fine-tuning costs money (the estimate above); re-run with --yes to confirm.")
    print(f"model: {model.label}; task: {model.task.name}")
    progress, close = tqdm_progress("fine-tuning")
    try:
        fitted = fit_or_load(model, dataset, progress=progress, retrain=args.retrain, confirm_spending=args.yes)
    finally:
        close()
    notes(fitted.notes)
    done = "already fine-tuned" if fitted.status == "loaded" else f"fine-tuned in {fitted.fit_seconds:.1f} s"
    print(f"llmseqprompt ({model.label}) on {dataset.name}: {done} -> {fitted.folder}")


def cmd_tune(args: argparse.Namespace) -> None:
    from core import tune

    if args.model not in REGISTRY:
        raise CLIError(f"--model {args.model}: unknown; models with a search space: "
                       f"{', '.join(tune.tunable_models())}")
    tune.search_space(args.model)  # refuses a model without one before the data is loaded
    tune.check_numbers(args.trials, args.timeout, args.grace)
    dataset = load_dataset(args)
    print(f"{dataset.name}: {len(dataset.folds)} validation folds; study in {tune.storage_path(dataset.name)} "
          f"(run the same command again to continue it)", flush=True)

    def progress_for(trial: object) -> tuple[Progress, Callable[[], None]]:
        return tqdm_progress(f"trial {getattr(trial, 'number', '?')}")

    fixed = parse_overrides(args.set, [args.model])[args.model]
    from tqdm import tqdm

    study = tune.tune(dataset, args.model, args.trials, timeout=args.timeout, seed=args.seed, fixed=fixed,
                      progress_for=progress_for, grace_seconds=args.grace,
                      heartbeat_seconds=max(1, min(30, args.grace // 3)),
                      on_trial=lambda trial: tqdm.write(tune.trial_line(trial)))
    print(tune.describe(tune.summary(study)))
    if args.apply:
        values = tune.apply_best(study, dataset.name, args.model)
        if values is None:
            print("the best trial is the current defaults: core/models/defaults.toml is left as it is")
            return
        print(f"wrote the best values as {dataset.name}'s defaults of {args.model} in core/models/defaults.toml: "
              + ", ".join(f"{k}={v}" for k, v in values.items()))


def cmd_study(args: argparse.Namespace) -> None:
    from core import findings, reproduce, study

    if args.show:
        name = dataset_name(args)
        saved = study.load(name, args.name)
        if saved is None:
            raise CLIError(f"no saved {args.name} study for {name}: run `python -m core study {args.name} "
                           f"{dataset_arguments(args)}` first")
        table = study.summary(saved)
        print(study.markdown(table) if args.markdown else
              table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        print(f"\n{findings.answer(saved)}\n({saved.source}, {saved.created[:10]}: {saved.command})")
        return
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    unknown = [m for m in models or [] if m not in REGISTRY]
    if unknown:
        raise CLIError(f"unknown model(s) {unknown}; available: {', '.join(REGISTRY)}")
    if args.fractions and args.name != "data-size":
        raise CLIError("--fractions is an option of the data-size study")
    if args.embeddings and args.name != "embedding-size":
        raise CLIError("--embeddings is an option of the embedding-size study")
    try:
        fractions = [float(f) / 100 for f in args.fractions.split(",")] if args.fractions else None
    except ValueError:
        raise CLIError(f"--fractions takes percentages such as 10,25,50,100; got '{args.fractions}'") from None
    seeds = reproduce.parse_seeds(args.seeds)
    dataset = load_dataset(args)
    command = " ".join(["python -m core study", args.name, dataset_arguments(args)]
                       + (["--models", args.models] if args.models else [])
                       + (["--seeds", args.seeds] if args.seeds != "0" else [])
                       + (["--fractions", args.fractions] if args.fractions else [])
                       + (["--embeddings", args.embeddings] if args.embeddings else []))
    progress, close = tqdm_progress(f"study {args.name}")
    try:
        extra = {"fractions": fractions} if args.name == "data-size" else {}
        if args.embeddings:
            extra["embeddings"] = [e.strip() for e in args.embeddings.split(",") if e.strip()]
        result = study.run(args.name, dataset, command, progress=progress, models=models, seeds=seeds, **extra)
    finally:
        close()
    path = study.save(result, Path(args.output) if args.output else None)
    for note in result.notes:
        print(f"note: {note}")
    print(study.summary(result).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"\n{findings.answer(result)}\n")
    print(f"{args.name} on {dataset.name}: {len(result.rows)} measurements in {result.seconds:.0f} s -> {path}")


def cmd_synth(args: argparse.Namespace) -> None:
    """A synthetic data set for benchmarks (``core.synth``), written where ``prepare --dataset`` reads it."""
    from core import synth

    options = {"popularity_exponent": args.exponent, "mean_length": args.mean_length, "compress": args.gzip}
    if args.categories is not None:
        options["n_categories"] = args.categories
    progress, close = tqdm_progress(f"synthetic data: {args.items:,} items, {args.sessions:,} sessions")
    try:
        report = synth.generate(args.items, args.sessions, seed=args.seed,
                                out=Path(args.out) if args.out else None, progress=progress, **options)
    finally:
        close()
    for line in report.lines():
        print(line)
    print(f"load it: python -m core prepare --dataset {shlex.quote(str(report.interactions_path.parent))}")


def parser() -> argparse.ArgumentParser:
    prog = "llmseq" if Path(sys.argv[0]).name == "llmseq" else "python -m core"
    root = argparse.ArgumentParser(prog=prog, description="LLM-enhanced sequential recommendation")
    root.add_argument("--verbose", action="store_true", help="print the full traceback of an unexpected error")
    sub = root.add_subparsers(dest="command", required=True)

    sub.add_parser("datasets", help="list the bundled datasets").set_defaults(run=cmd_datasets)

    prepare = sub.add_parser("prepare", help="load, validate and split a dataset; print its statistics")
    add_dataset_arguments(prepare)
    prepare.set_defaults(run=cmd_prepare)

    embed = sub.add_parser("embed", help="embed every item title (cached under cache/embeddings)")
    add_dataset_arguments(embed)
    embed.add_argument("--provider", default="local", choices=["local", "openai"])
    embed.add_argument("--model", help="local: all-MiniLM-L6-v2 (default), all-mpnet-base-v2, or a "
                                       "sentence-transformers folder; openai: a model name")
    embed.add_argument("--list", action="store_true", help="list the embedding models: size, dimension, state")
    embed.add_argument("--long-titles", default="cut", choices=["cut", "head_tail"],
                       help="titles longer than the model's window: cut their end (the model's way) or keep "
                            "their beginning and end")
    embed.add_argument("--engine", default="local", choices=["local", "ray"],
                       help="local: this process (default); ray: Ray Data with an actor pool, one model per "
                            "actor, shards under cache/embeddings/<key>.shards (a killed run resumes); needs the "
                            "scale extra (make scale)")
    embed.add_argument("--address", metavar="auto|ray://HOST:PORT",
                       help="with --engine ray: the Ray cluster to run on (default: a local Ray started for the "
                            "command, as many CPUs as this machine has)")
    embed.add_argument("--actors", type=int, metavar="N", help="with --engine ray: actors, each holding one "
                                                              "embedding model (default 2)")
    embed.set_defaults(run=cmd_embed)

    for name, fn, text in (("train", cmd_train, "fit models and save them under cache/models"),
                           ("evaluate", cmd_evaluate, "fit (or load) and evaluate models on the test split")):
        command = sub.add_parser(name, help=text)
        add_dataset_arguments(command)
        command.add_argument("--models", default="popularity,vsknn",
                             help=f"comma-separated, from: {', '.join(REGISTRY)}")
        command.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                             help="model options, e.g. --set k=50 vsknn.decay=log (or --set repeated)")
        command.add_argument("--retrain", action="store_true", help="ignore saved models and fit again")
        command.add_argument("--preset", default="tuned", choices=["tuned", "paper"],
                             help="tuned: the dataset's defaults chosen on its validation folds "
                                  "(core/models/defaults.toml); paper: the paper's Beauty values")
        if name == "train":
            command.add_argument("--processes", type=int, default=1, metavar="N",
                                 help="train data-parallel in N processes on this machine (torch DDP through "
                                      "torchrun: gloo on CPU, nccl on GPUs; the global batch stays batch_size); "
                                      "the sequential models only. Several machines: torchrun --nnodes ... -m "
                                      "core train ...")
        if name == "evaluate":
            command.add_argument("--output", help="write the results JSON here too")
            command.add_argument("--paper-popularity", action="store_true",
                                 help="serendipity/novelty from whole-dataset counts (the paper's, leaks test)")
            command.add_argument("--breakdown", action="append", metavar="BY",
                                 choices=["prompt-length", "target-popularity", "target-popularity-quantile"],
                                 help="also print NDCG@20 per bucket: prompt-length, target-popularity (the "
                                      "target's train interactions: 0, 1-4, 5-19, 20+), target-popularity-quantile")
            command.add_argument("--cold-items", action="store_true",
                                 help="score the test sessions whose target is a new item (never in train; the "
                                      "paper's protocol drops them): what content-based models gain")
            command.add_argument("--workers", type=int, default=1, metavar="N",
                                 help="rank the test prompts in N parallel shards (same lists as one process)")
            command.add_argument("--engine", default="process", choices=["process", "ray"],
                                 help="with --workers: a process pool on this machine (default), or Ray actors "
                                      "(needs the scale extra: make scale)")
            command.add_argument("--address", metavar="auto|ray://HOST:PORT",
                                 help="with --engine ray: the Ray cluster (default: a local Ray for the command)")
        command.set_defaults(run=fn)
    finetune = sub.add_parser("finetune", help="fine-tune LLMSeqPrompt's language model (local or OpenAI)")
    add_dataset_arguments(finetune)
    finetune.add_argument("--backend", default="local", choices=["local", "openai"],
                          help="local: offline (default: small GPT-2 trained from scratch, not a pretrained LLM; "
                               "--set model_folder=PATH for your own HF model, LoRA); openai: paid fine-tuning")
    finetune.add_argument("--task", default="genitem", choices=["genitem", "genlist", "classify", "rank"],
                          help="what the model learns to answer: the next item's name (genitem), a list of 20 "
                               "names (genlist), 20 of 200 item clusters (classify), LLMSeqSim's top-20 re-ranked "
                               "(rank)")
    finetune.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                          help="llmseqprompt option, e.g. --set epochs=2 or --set openai_model=gpt-3.5-turbo")
    finetune.add_argument("--yes", action="store_true", help="confirm the OpenAI cost estimate and start the job")
    finetune.add_argument("--retrain", action="store_true", help="ignore a saved model and fine-tune again")
    finetune.set_defaults(run=cmd_finetune)
    reproduce = sub.add_parser("reproduce", help="the paper's Beauty table: every model over seeds, mean ± std, "
                                                 "the paper's figure beside (resumable)")
    add_dataset_arguments(reproduce)
    reproduce.add_argument("--seeds", default="0,1,2", help="comma-separated; models with a random fit run once "
                                                           "per seed, the others once")
    reproduce.add_argument("--models", help="rows, comma-separated (default: every row but llmseqprompt): "
                                            "popularity, sknn, vsknn, llmseqsim, gru4rec, llm2gru4rec, "
                                            "llm2gru4rec-shuffled, sasrec, ..., llmseqprompt")
    reproduce.add_argument("--preset", default="tuned", choices=["tuned", "paper"],
                           help="tuned: the dataset's defaults chosen on its folds; paper: the paper's Beauty values")
    reproduce.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                           help="an option for every row that has it (MODEL.KEY=VALUE for one model)")
    reproduce.add_argument("--output", required=True, help="the summary JSON (FILE.json); the markdown table goes "
                                                           "beside it (FILE.md) and to the terminal")
    reproduce.set_defaults(run=cmd_reproduce)
    study = sub.add_parser("study", help="the paper's open questions: embedding-size, cold-items, data-size, "
                                         "item-text (results under cache/studies; the app's Findings page)")
    study.add_argument("name", choices=["embedding-size", "cold-items", "data-size", "item-text"])
    add_dataset_arguments(study)
    study.add_argument("--models", help="comma-separated (each study has its defaults: see core/study.py)")
    study.add_argument("--seeds", default="0", help="seeds of the models that train with randomness, e.g. 0,1,2")
    study.add_argument("--fractions", help="data-size: percentages of the train sessions (default 10,25,50,100)")
    study.add_argument("--embeddings", help="embedding-size: the embedding models to compare, comma-separated "
                                            "(default: every available one; see embed --list)")
    study.add_argument("--output", help="also write the result JSON here (e.g. bench/results/studies/...)")
    study.add_argument("--show", action="store_true", help="print the saved result and its answer; run nothing")
    study.add_argument("--markdown", action="store_true", help="with --show: the table as markdown")
    study.set_defaults(run=cmd_study)

    synth = sub.add_parser("synth", help="write a synthetic data set (long-tail popularity, generated titles) "
                                         "for benchmarks only")
    synth.add_argument("--items", type=int, required=True, help="items in the catalog, e.g. 1000000")
    synth.add_argument("--sessions", type=int, required=True, help="sessions, e.g. 2000000 (~9 items each)")
    synth.add_argument("--out", metavar="DIR", help="the folder to write interactions.csv and items.csv into "
                                                    "(default: cache/synth/<items>-items-<sessions>-sessions-seed<S>)")
    synth.add_argument("--seed", type=int, default=0, help="the same seed gives the same files")
    synth.add_argument("--exponent", type=float, default=1.0, help="Zipf exponent of item popularity (default 1)")
    synth.add_argument("--mean-length", type=float, default=9.0, help="mean items a session (default 9, as Beauty)")
    synth.add_argument("--categories", type=int, help="item categories (default 2·√items)")
    synth.add_argument("--gzip", action="store_true", help="write .csv.gz (3× smaller; as fast to write and load)")
    synth.set_defaults(run=cmd_synth)

    tune = sub.add_parser("tune", help="search a model's options with Optuna (TPE) on the validation folds; "
                                       "resumable, --apply writes the best as the dataset's defaults")
    add_dataset_arguments(tune)
    tune.add_argument("--model", required=True, help="a model with a search space (its Config.search_space)")
    tune.add_argument("--trials", type=int, default=50, help="finished trials the study should hold (those of "
                                                             "an earlier run count)")
    tune.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    tune.add_argument("--seed", type=int, default=0, help="the TPE sampler's seed")
    tune.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                      help="options fixed for every trial (not searched), e.g. a hybrid's part; a study of their own")
    tune.add_argument("--grace", type=int, default=90, help="seconds without a heartbeat after which a trial of a "
                                                            "killed search counts as failed and is tried again")
    tune.add_argument("--apply", action="store_true", help="write the best trial's values into "
                                                           "core/models/defaults.toml as the dataset's defaults")
    tune.set_defaults(run=cmd_tune)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.run(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 (a bug: one line, and the traceback when asked for)
        if args.verbose:
            traceback.print_exc()
        hint = "the traceback is above" if args.verbose else "run again with --verbose for the traceback"
        print(f"error: {describe_bug(err)} (a bug; {hint})", file=sys.stderr)
        return 1
    return 0


def run() -> None:
    """The ``llmseq`` console script (same as ``python -m core``)."""
    sys.exit(main())
