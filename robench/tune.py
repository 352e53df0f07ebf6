"""``robench tune``: a small hyper-parameter search on the validation split, and applying its choice.

The grid of a method is its class attribute ``tune_grid`` (the learning rate times one knob of the
method: FreeLB's ``adv_lr``, SMART's ``lambda_s``, R3F's ``r3f_lambda``, ALUM's ``alpha``; vanilla
tunes ``lr`` only; RAM tunes its mask, ``selective_alpha`` 0.6, 0.9 x ``selective_beta`` 1, 10,
which holds RoAST's two presets, sentiment 0.9/10 and entailment 0.6/1, and their two crosses). A
task file's ``tuning:`` key replaces the values of the hyper-parameters it names (per method), and
the command line's ``--grid`` replaces them again.

Each trial (one setting x one seed) is an ordinary training run (``robench.train.train``) written to
``<runs>/tune/<task>/<model>/<method>/<trial id>/seed<N>``; a finished trial (its run.json exists)
is read, not trained again, and a killed one resumes from the trainer's checkpoint. The setting
chosen for a method is the one with the best mean, over the tuning seeds, of the runs'
``training.best_val_accuracy`` (validation accuracy of the epoch kept); ties go to the smaller
learning rate, then to the earlier setting in grid order.

Successive halving (``halving``; the default for a grid of more than 3 settings when the trials
train more than ``rung_epochs`` epochs): rung 0 trains every setting x seed to the end of epoch
``rung_epochs`` (default 1) of its full schedule (``TrainConfig.stop_after_epoch``: the trial keeps
its checkpoint and writes no run folder). Settings are ranked by the mean over seeds of their best
validation accuracy up to that epoch (what ``best_val_accuracy`` would be, were training to stop
there), with the selection's tie-break; the best ``ceil(n / 3)`` go on, and any setting tied with
the last of them. Those resume to the full epochs (ending exactly as trials never stopped) and the
choice is the usual selection among them. The full grid (``halving=False``) trains every trial to
the end, and records what halving would have chosen from the same runs' epoch histories.

``tuned.json`` holds, per method: the mode (``halving`` or ``grid``), the grid, every trial's
setting, rung-0 and final validation accuracies and the rung it was dropped at, the halving
summary (kept, dropped), the chosen setting with its ``margin`` (its mean validation accuracy minus
the best other trial's among those finished at full length; null when there is none; negative only
when a setting dropped at rung 0 but finished earlier beats the choice), ``runner_up`` and ``ties``
(other finished trials with the same mean), the selection rule and the fixed trainer settings.
``robench run --tuned FILE`` and ``robench train --tuned FILE`` apply the chosen lr and knob
(explicit ``--lr`` / ``--set`` win) and record it in run.json (``config.tuned``). Tuned files
written before halving (no mode, margin or rung-0 accuracies) load and apply as before.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robench.configs import name_list
from robench.errors import ConfigError
from robench.identity import RunIdentity, method_label, model_label
from robench.methods.base import _field_types, check_grid
from robench.outputs import guard_file_out, run_lock, schema_of
from robench.progress import console
from robench.records import RUN_FILE, TUNED_SCHEMA, TunedFile, load_record, load_run, parse, to_json
from robench.runspec import (
    _show,
    parse_seeds,
    setting_label,
)
from robench.storage import PROVENANCE_KEYS, as_written, atomic_write_json, file_sha256, provenance

TUNED_FILE = "tuned.json"
TUNE_SUBDIR = "tune"
DEFAULT_SEEDS = (0,)
SELECTION = {
    "split": "validation",
    "metric": "training.best_val_accuracy",
    "aggregate": "mean over the tuning seeds",
    "tie_break": "the smaller lr, then the earlier setting in grid order",
}
DEFAULT_RUNG_EPOCHS = 1
HALVING_FROM = 4  # successive halving by default for a grid of this many settings or more
HALVING_RULE = {
    "rung_0": "every setting x seed trains to the end of epoch rung_epochs of its full schedule",
    "rank": "mean over the tuning seeds of the best validation accuracy up to that epoch; ties: the selection's "
            "tie_break",
    "keep": "the best ceil(n/3) settings, and any tied with the last one kept",
    "then": "the kept settings resume to the full epochs; the choice is the selection among them",
}


# --------------------------------------------------------------------------------------------- grids


def method_class(name: str):
    from robench.methods import METHODS

    return METHODS.get(name)


def default_grid(cls) -> dict[str, list[Any]]:
    """The method's ``tune_grid`` (a method without one: the trainer's lr alone)."""
    from robench.runspec import TrainConfig

    grid = check_grid(cls, dict(getattr(cls, "tune_grid", None) or {}), f"method {cls.name!r} tune_grid")
    return {"lr": grid.pop("lr", [TrainConfig.lr]), **grid}


def parse_grid_options(options: Sequence[str] | None) -> list[tuple[str | None, str, list[str]]]:
    """``--grid lr=1e-4,2e-4`` / ``--grid ram.selective_alpha=0.6,0.9`` -> [(method or None, name, values)]."""
    out = []
    for option in options or []:
        key, sep, values = option.partition("=")
        key = key.strip()
        items = name_list(values)
        if not sep or not key or not items:
            raise ConfigError(f"--grid expects name=v1,v2 or method.name=v1,v2 (e.g. --grid lr=1e-4,2e-4), got {option!r}")
        method, dot, name = key.rpartition(".")
        out.append((method if dot else None, name, items))
    return out


def resolve_grid(cls, task_grids: dict[str, dict[str, list[Any]]],
                 cli: Sequence[tuple[str | None, str, list[str]]]) -> dict[str, list[Any]]:
    """The method's grid, the task's ``tuning.<method>`` on top, the command line's ``--grid`` on top
    (each replaces the values of the names it gives; a new name adds a dimension)."""
    grid = default_grid(cls)
    grid.update(task_grids.get(cls.name, {}))
    fields = {"lr", *_field_types(cls)}
    for method, name, values in cli:
        if method is not None and method_class(method).name != cls.name:
            continue
        if method is None and name not in fields:
            continue  # a knob of another tuned method
        grid.update(check_grid(cls, {name: values}, f"--grid {(method + '.') if method else ''}{name}"))
    return grid


def check_cli_grid(cli: Sequence[tuple[str | None, str, list[str]]], classes: Sequence[Any]) -> None:
    """Every ``--grid`` must reach a method being tuned."""
    names = {c.name for c in classes}
    for method, name, _ in cli:
        if method is not None:
            if method_class(method).name not in names:
                raise ConfigError(f"--grid {method}.{name}: method {method!r} is not being tuned (--method "
                                  f"{','.join(sorted(names))})")
            continue
        if name != "lr" and not any(name in _field_types(c) for c in classes):
            raise ConfigError(f"--grid {name}: none of the tuned methods ({', '.join(sorted(names))}) has a "
                              f"hyper-parameter {name!r}; see robench list methods")


def settings(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every setting of a grid, in grid order (the first name varies slowest)."""
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(grid[k] for k in keys))]


def trial_id(setting: dict[str, Any]) -> str:
    """A short, stable folder name for a setting: ``lr0.0001-selective_alpha0.6`` (floats written
    exactly), or a hash where that would be long or hold other characters."""
    label = "-".join(f"{k}{_show(v)}" for k, v in setting.items())
    if len(label) <= 60 and re.fullmatch(r"[A-Za-z0-9_.+\-]+", label):
        return label
    return "t" + hashlib.sha256(json.dumps(setting, sort_keys=True).encode()).hexdigest()[:12]


# --------------------------------------------------------------------------------------------- selection


def _ranked(trials: Sequence[dict[str, Any]], score) -> list[int]:
    """Indices of ``trials``, best ``score`` first; ties (to 12 decimals: float noise is a tie): the
    smaller lr, then the earlier trial (grid order)."""
    return sorted(range(len(trials)), key=lambda i: (-round(score(trials[i]), 12), trials[i]["setting"]["lr"], i))


def select(trials: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The trial with the best mean validation accuracy; ties: the smaller lr, then grid order."""
    if not trials:
        raise ConfigError("no trials to choose from")
    return trials[_ranked(trials, lambda t: t["mean_val_accuracy"])[0]]


def best_up_to(history: Sequence[dict[str, Any]], epoch: int) -> float:
    """The best validation accuracy of the epochs up to ``epoch``: a run's ``best_val_accuracy`` had
    it stopped there."""
    accs = [float(h["val_accuracy"]) for h in history if int(h["epoch"]) <= epoch]
    if not accs:
        raise ConfigError(f"a trial's history has no epoch up to {epoch}; delete its folder to redo it")
    return max(accs)


def rung_survivors(trials: Sequence[dict[str, Any]]) -> list[int]:
    """Indices (grid order) of the trials that go on from rung 0: the best ``ceil(n/3)`` by mean rung-0
    validation accuracy in the selection's order, and any tied with the last of them."""
    if not trials:
        return []

    def score(t):
        return t["rung0"]["mean_val_accuracy"]

    order = _ranked(trials, score)
    cut = round(score(trials[order[math.ceil(len(trials) / 3) - 1]]), 12)
    return sorted(i for i in order if round(score(trials[i]), 12) >= cut)


def margin_and_ties(trials: Sequence[dict[str, Any]], chosen: dict[str, Any]) -> tuple[float | None, str | None,
                                                                                      list[str]]:
    """(margin, runner-up id, ties) of the chosen trial among the trials finished at full length
    (``mean_val_accuracy`` not None): its mean minus the best other trial's (the selection's order; 0.0
    for a tie, None when no other trial finished), and the ids of the others with the same mean."""
    others = [t for t in trials if t["id"] != chosen["id"] and t.get("mean_val_accuracy") is not None]
    if not others:
        return None, None, []
    mine = chosen["mean_val_accuracy"]
    runner = select(others)
    same = round(runner["mean_val_accuracy"], 12) == round(mine, 12)
    margin = 0.0 if same else round(mine - runner["mean_val_accuracy"], 12)
    return margin, runner["id"], [t["id"] for t in others if round(t["mean_val_accuracy"], 12) == round(mine, 12)]


# --------------------------------------------------------------------------------------------- the search


@dataclass
class TuneResult:
    path: Path
    data: dict[str, Any]
    methods: list[str] = field(default_factory=list)  # the method labels tuned by this call
    trained: list[Path] = field(default_factory=list)  # trial runs this call trained (to rung 0 or to the end)
    skipped: list[Path] = field(default_factory=list)  # trial runs only read (finished, or at rung 0 already)
    halted: list[Path] = field(default_factory=list)  # trial runs left at rung 0 (dropped; their checkpoint kept)


@dataclass
class TrialRun:
    """One trial run as far as it went: its epochs so far, its ``best_val_accuracy`` once finished."""

    history: list[dict[str, Any]]  # training.history (a stopped run: its checkpoint's)
    best: float | None  # training.best_val_accuracy; None while stopped at a rung
    trained: bool  # whether this call trained it
    what: str  # for the progress line


def train_trial(cfg, upto: int | None) -> TrialRun:
    """Train one trial run to the end of epoch ``upto`` of its schedule (None: to the end) where it is
    not there yet. A finished run is read (after checking it was trained as planned); a stopped or
    killed one resumes from its checkpoint; one already past ``upto`` is left as it is."""
    from robench import train as training

    run_dir = Path(cfg.out)
    if (run_dir / RUN_FILE).exists():
        return TrialRun(_finished_history(run_dir), _finished_trial(run_dir, cfg), False, "trained already")
    budget = upto if upto is not None and upto < cfg.epochs else None
    before = _checkpoint_stamp(run_dir)
    t0 = time.perf_counter()
    training.train(dataclasses.replace(cfg, stop_after_epoch=budget))
    seconds = time.perf_counter() - t0
    if (run_dir / RUN_FILE).exists():
        return TrialRun(_finished_history(run_dir), _finished_trial(run_dir, cfg), True, f"trained in {seconds:.0f}s")
    history = training.halted_history(run_dir)
    if history is None:
        raise ConfigError(f"trial {run_dir} stopped at epoch {budget} but left no checkpoint; delete its folder to "
                          "redo it")
    trained = before is None or _checkpoint_stamp(run_dir) != before
    return TrialRun(history, None, trained, f"trained to epoch {budget} in {seconds:.0f}s" if trained
                    else f"at epoch {budget} already")


def _checkpoint_stamp(run_dir: Path) -> tuple[int, int] | None:
    """Which version of the run's checkpoint is in place (each save replaces the folder)."""
    from robench import checkpoint

    try:
        st = (checkpoint.checkpoint_dir(run_dir) / checkpoint.STATE_FILE).stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def _finished_history(run_dir: Path) -> list[dict[str, Any]]:
    history = load_run(run_dir).training.get("history")
    return list(history) if isinstance(history, list) else []


def _discard_trial(run_dir: Path) -> None:
    """--force: remove a trial's finished run and checkpoint (robench's own files only) so that it is
    trained anew; once per trial and call, before its first training."""
    from robench import checkpoint
    from robench.outputs import guard_checkpoint_dir, guard_run_out

    ckpt = checkpoint.checkpoint_dir(run_dir)
    guard_run_out(run_dir, True)  # refuses a folder robench did not write
    guard_checkpoint_dir(ckpt, checkpoint.STATE_FILE)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    shutil.rmtree(ckpt, ignore_errors=True)


def halving_mode(requested: bool | None, n_settings: int, epochs: int, rung_epochs: int) -> bool:
    """Whether a grid of ``n_settings`` is tuned by successive halving: as requested, else (None) when
    it has more than 3 settings and its trials train longer than the rung."""
    if requested is None:
        return n_settings >= HALVING_FROM and rung_epochs < epochs
    if requested and rung_epochs >= epochs:
        raise ConfigError(f"--halving stops rung 0 after epoch {rung_epochs}, but the trials train {epochs} epoch(s) "
                          "in all: pass --rung-epochs below --epochs, or --no-halving")
    return requested


def tune_root(runs_dir: Path | str) -> Path:
    return Path(runs_dir) / TUNE_SUBDIR


def default_tuned_path(runs_dir: Path | str, task: str, model: str, profile: str | None, limit: int | None) -> Path:
    """``<runs>/tune/<task>[-profile][-limit]/<model>/tuned.json``."""
    ident = RunIdentity(task=task, model=model, method="x", profile=profile, limit=limit)
    return ident.run_dir(tune_root(runs_dir)).parent.parent / TUNED_FILE


def trial_dir(runs_dir: Path | str, cfg, tid: str) -> Path:
    from robench.train import identity

    run_dir = identity(cfg).run_dir(tune_root(runs_dir))
    return run_dir.parent / tid / run_dir.name


def _finished_trial(run_dir: Path, cfg) -> float:
    """The best validation accuracy of a finished trial, after checking it was trained as planned (the
    one rule of robench.runspec, which train and run use too)."""
    from robench.train import check_finished_run

    check_finished_run(run_dir, cfg, "pass --force to retrain the trials, or --runs-dir for a separate tuning "
                                     "folder")
    acc = load_run(run_dir).training.get("best_val_accuracy")
    if not isinstance(acc, int | float) or isinstance(acc, bool):
        raise ConfigError(f"{run_dir / RUN_FILE} has no training.best_val_accuracy; delete the trial folder to redo it")
    return float(acc)


def load_tuned(path: Path | str) -> TunedFile:
    """A tuned.json (:class:`robench.records.TunedFile`), or one line saying what is wrong with it."""
    return load_record(TunedFile, path, "tuned file", "write it again with 'robench tune'")


def is_tuned_file(path: Path) -> bool:
    """Whether ``path`` is a robench tuned file (what ``tune --out`` may update)."""
    return schema_of(path) == TUNED_SCHEMA


def _check_merge(existing: TunedFile, path: Path, task_block: dict[str, Any], model: str) -> None:
    old = existing.task
    same = (old.get("name"), old.get("profile"), old.get("limit"), existing.model) == \
        (task_block["name"], task_block["profile"], task_block["limit"], model)
    if not same:
        raise ConfigError(f"{path} holds settings tuned for task {old.get('name')!r} (profile {old.get('profile')}, "
                          f"limit {old.get('limit')}) and model {existing.model!r}, not task {task_block['name']!r} "
                          f"(profile {task_block['profile']}, limit {task_block['limit']}) and model {model!r}; "
                          "pass --out for another file")


def tune(task: str = "sentiment", methods: str | Sequence[str] = "vanilla", *, model: str = "minilm",
         seeds: str | Sequence[int] | None = None, grid: Sequence[str] | None = None, profile: str | None = None,
         limit: int | None = None, epochs: int | None = None, batch_size: int | None = None,
         max_length: int | None = None, device: str = "auto", precision: str = "auto",
         runs_dir: Path | str = "runs", out: Path | str | None = None, force: bool = False,
         checkpoint_steps: int = 0, halving: bool | None = None,
         rung_epochs: int = DEFAULT_RUNG_EPOCHS) -> TuneResult:
    """Train the trials of each method's grid (where not done yet): every setting x seed to the end
    (``halving=False``), or by successive halving (``True``; ``None``: halving for a grid of more than
    3 settings); choose by validation accuracy, and write (merge into) ``tuned.json``."""
    from robench import train as training
    from robench.methods import resolve_methods
    from robench.tasks import load_task

    if rung_epochs < 1:
        raise ConfigError(f"--rung-epochs must be >= 1, got {rung_epochs}")
    spec = load_task(task, profile, limit)
    plan = resolve_methods(methods)
    classes = [method_class(m) for m, _ in plan]
    cli = parse_grid_options(grid)
    check_cli_grid(cli, classes)
    grids = {method_label(m, s): resolve_grid(cls, spec.tuning["grids"], cli) for (m, s), cls in zip(plan, classes, strict=True)}
    seed_list = parse_seeds(seeds) if seeds is not None else list(spec.tuning["seeds"] or DEFAULT_SEEDS)
    fixed_kw = {k: v for k, v in (("epochs", epochs), ("batch_size", batch_size), ("max_length", max_length))
                if v is not None}
    # --force is applied here (each trial's run and checkpoint removed before its first training in this
    # call), not by the trainer: a trial stopped at rung 0 must resume from its checkpoint
    base = training.TrainConfig(task=task, model=model, profile=profile, limit=limit, device=device,
                                precision=precision, checkpoint_steps=checkpoint_steps, **fixed_kw)
    rung = min(rung_epochs, base.epochs)
    modes = {label: halving_mode(halving, len(settings(g)), base.epochs, rung_epochs) for label, g in grids.items()}
    task_block = {"name": spec.name, "source": str(task), "spec_hash": spec.spec_hash,
                  "profile": profile or "default", "limit": limit}
    path = Path(out) if out else default_tuned_path(runs_dir, task, model, profile, limit)
    guard_file_out(path, "tuned file", is_tuned_file)  # updates a tuned file, never replaces another file
    if path.exists():
        _check_merge(load_tuned(path), path, task_block, model)

    # the plan: per method, per setting, per seed a training config and its folder
    jobs: dict[str, list[tuple[dict[str, Any], str, list[Any]]]] = {}
    for method, selective in plan:
        label = method_label(method, selective)
        for setting in settings(grids[label]):
            tid, cfgs = trial_id(setting), []
            for seed in seed_list:
                cfg = dataclasses.replace(base, method=method, selective=selective, seed=seed, lr=setting["lr"],
                                          method_overrides={k: v for k, v in setting.items() if k != "lr"})
                cfg.out = str(trial_dir(runs_dir, cfg, tid))
                cfgs.append(cfg)
                if not force and (Path(cfg.out) / RUN_FILE).exists():
                    _finished_trial(Path(cfg.out), cfg)  # other settings: an error before any work
            jobs.setdefault(label, []).append((setting, tid, cfgs))
    n_trials = sum(len(cfgs) for trials in jobs.values() for _, _, cfgs in trials)

    def how(label: str) -> str:
        n = len(jobs[label])
        return (f"{label} {n} (halving: all to epoch {rung}, the best {math.ceil(n / 3)} on)" if modes[label]
                else f"{label} {n}")

    console.print(f"[bold]robench tune[/bold]: task {spec.name}, model {model}, {len(plan)} method(s), "
                  f"up to {n_trials} trial run(s) ({', '.join(how(k) for k in jobs)} setting(s) x "
                  f"{len(seed_list)} seed(s), {base.epochs} epoch(s) each); {path}", highlight=False, soft_wrap=True)
    result = TuneResult(path=path, data={})
    touched: dict[Path, bool] = {}  # trial run -> trained by this call
    discarded: set[Path] = set()

    def train_to(label: str, trials: list[dict[str, Any]], indices: Sequence[int], upto: int | None,
                 phase: str) -> None:
        """Every seed of the trials ``indices`` to the end of epoch ``upto`` (None: to the end); their
        rung-0 and (once finished) final validation accuracies go into ``trials``."""
        todo = [(i, cfg) for i in indices for cfg in jobs[label][i][2]]
        for k, (i, cfg) in enumerate(todo, 1):
            run_dir, trial, seed = Path(cfg.out), trials[i], str(cfg.seed)
            with run_lock(run_dir):
                if force and run_dir not in discarded:
                    _discard_trial(run_dir)
                    discarded.add(run_dir)
                run = train_trial(cfg, upto)
            touched[run_dir] = touched.get(run_dir, False) or run.trained
            trial["rung0"]["val_accuracy"][seed] = best_up_to(run.history, rung)
            shown = []
            if upto is not None:
                shown.append(f"val acc up to epoch {rung} {trial['rung0']['val_accuracy'][seed]:.4f}")
            if run.best is not None:
                trial["val_accuracy"][seed] = run.best
                shown.append(f"val acc {run.best:.4f}")
            console.print(f"[{phase} {k}/{len(todo)}] {label} {setting_label(trial['setting'])} seed {seed}: "
                          f"{run.what}, {', '.join(shown)}", highlight=False, soft_wrap=True)

    for (method, selective), cls in zip(plan, classes, strict=True):
        label = method_label(method, selective)
        halve = modes[label]
        trials = [{"id": tid, "setting": setting, "val_accuracy": {}, "mean_val_accuracy": None,
                   "rung0": {"epochs": rung, "val_accuracy": {}, "mean_val_accuracy": None},
                   "dropped_at_rung": None, "runs": [Path(c.out).as_posix() for c in cfgs]}
                  for setting, tid, cfgs in jobs[label]]
        every = range(len(trials))
        train_to(label, trials, every, rung if halve else None, "rung 0" if halve else "grid")
        for t in trials:
            t["rung0"]["mean_val_accuracy"] = _mean(t["rung0"]["val_accuracy"])
        kept = rung_survivors(trials)
        if halve:
            for i in every:
                if i not in kept:
                    trials[i]["dropped_at_rung"] = 0
            train_to(label, trials, kept, None, "rung 1")
        for t in trials:
            if len(t["val_accuracy"]) == len(seed_list):  # finished at full length (every seed)
                t["mean_val_accuracy"] = _mean(t["val_accuracy"])
        chosen = select([t for t in trials if t["dropped_at_rung"] is None])
        margin, runner_up, ties = margin_and_ties(trials, chosen)
        summary: dict[str, Any] = {"rung_epochs": rung, "rule": HALVING_RULE,
                                   "kept": [trials[i]["id"] for i in kept],
                                   "dropped": [t["id"] for i, t in enumerate(trials) if i not in kept],
                                   "simulated": not halve}
        if not halve:  # the same runs' epoch histories say what halving would have chosen
            would = select([trials[i] for i in kept])
            summary.update(would_choose=would["id"], same_choice=would["id"] == chosen["id"],
                           choice_margin=round(chosen["mean_val_accuracy"] - would["mean_val_accuracy"], 12))
        for cfgs in (jobs[label][i][2] for i in every if trials[i]["dropped_at_rung"] is not None):
            result.halted.extend(Path(c.out) for c in cfgs if not (Path(c.out) / RUN_FILE).exists())
        preset = training.resolve_preset(dataclasses.replace(base, method=method))
        entry = {
            "method": cls.name, "selective": selective, "mode": "halving" if halve else "grid",
            "grid": grids[label], "seeds": seed_list, "trials": trials,
            "chosen": {"id": chosen["id"], "setting": chosen["setting"],
                       "mean_val_accuracy": chosen["mean_val_accuracy"], "margin": margin, "runner_up": runner_up,
                       "ties": ties},
            "halving": summary,
            "selection": SELECTION,
            "fixed": {k: v for k, v in dataclasses.asdict(base).items()
                      if k in ("epochs", "batch_size", "max_length", "weight_decay", "warmup_ratio", "adam_betas",
                               "adam_eps", "max_grad_norm", "precision", "profile", "limit")}
                     | {"preset": dict(zip(("name", "source"), preset, strict=True))},
            "task_spec_hash": spec.spec_hash,
            **provenance(),
        }
        console.print(f"{label}: chose {setting_label(chosen['setting'])} (mean val acc "
                      f"{chosen['mean_val_accuracy']:.4f} over {len(seed_list)} seed(s)); {describe_choice(entry)}",
                      highlight=False, soft_wrap=True)
        with run_lock(path):  # tune calls for other methods may merge into the same file at the same time
            before = to_json(load_tuned(path)) if path.exists() else None
            data = {"schema": TUNED_SCHEMA, "task": task_block, "model": model, "selection": SELECTION,
                    "methods": {**(before["methods"] if before else {}), label: entry}, **provenance()}
            data = as_written(to_json(parse(TunedFile, data)))
            if before is not None and _same_but_when(before, data):
                data = before  # nothing new (every trial read back): the file keeps its bytes, so the runs that
                # record its sha256 still match it
            else:
                atomic_write_json(path, data)  # after every method: a later kill keeps the methods already chosen
        result.data = data
        result.methods.append(label)
        result.trained = [d for d, trained in touched.items() if trained]
        result.skipped = [d for d, trained in touched.items() if not trained]
    return result


def _same_but_when(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether two tuned files say the same (every method's trials and choice) apart from their provenance."""
    def strip(record: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in record.items() if k not in PROVENANCE_KEYS}

    def body(file: dict[str, Any]) -> dict[str, Any]:
        return {**strip(file), "methods": {m: strip(e) for m, e in (file.get("methods") or {}).items()}}

    return body(old) == body(new)


def _mean(values: dict[str, float]) -> float | None:
    return sum(values.values()) / len(values) if values else None


def describe_choice(entry: dict[str, Any]) -> str:
    """One line on a method's choice in a tuned file: margin over the runner-up, ties, and what halving
    dropped (or, for the full grid, whether halving would have chosen the same). Older files (no
    margin recorded) read ``margin not recorded``."""
    chosen, trials = entry.get("chosen") or {}, {t.get("id"): t for t in entry.get("trials") or []}

    def name(tid: str | None) -> str:
        trial = trials.get(tid) or {}
        return setting_label(trial["setting"]) if isinstance(trial.get("setting"), dict) else str(tid)

    if "margin" not in chosen:
        return "margin not recorded (a tuned file from before margins)"
    margin = chosen["margin"]
    parts = ["margin: none (no other trial finished)" if margin is None
             else f"margin {margin:+.4f} over {name(chosen.get('runner_up'))}"]
    ties = chosen.get("ties") or []
    parts.append(f"ties: {'; '.join(name(t) for t in ties)}" if ties else "no ties")
    summary = entry.get("halving") or {}
    dropped = summary.get("dropped") or []
    epoch = summary.get("rung_epochs")
    if entry.get("mode") == "halving":
        parts.append(f"dropped at rung 0 (epoch {epoch}): {'; '.join(name(t) for t in dropped) or 'none'}")
    elif "would_choose" in summary:
        same = "the same setting" if summary.get("same_choice") else \
            f"{name(summary['would_choose'])} ({summary.get('choice_margin', 0):.4f} below the choice)"
        parts.append(f"halving at epoch {epoch} would drop {len(dropped)} and choose {same}")
    return "; ".join(parts)


# --------------------------------------------------------------------------------------------- applying


def apply_tuned(cfg, path: Path | str, data: TunedFile | None = None, *, explicit_lr: float | None = None,
                explicit_overrides: dict[str, Any] | None = None):
    """Set ``cfg``'s lr and method hyper-parameters to the setting chosen in a tuned.json; explicit
    values (``--lr``, ``--set``) win. ``cfg.tuned`` records the file, its hash, the setting and what
    was given by hand on top."""
    from robench.tasks import load_task

    path = Path(path)
    data = data if data is not None else load_tuned(path)
    label = method_label(method_class(cfg.method).name, cfg.selective)
    tuned_task = data.task.get("name")
    task = load_task(cfg.task)
    fix = f"run 'robench tune --task {cfg.task} --model {cfg.model} --method {label}'"
    if tuned_task != task.name:
        raise ConfigError(f"{path} was tuned on task {tuned_task!r}, not {task.name!r}; {fix} (or pass the tuned "
                          f"file of task {task.name!r})")
    if model_label(data.model) != model_label(cfg.model):
        raise ConfigError(f"{path} was tuned for model {data.model!r}, not {cfg.model!r}; {fix} (or pass the "
                          f"tuned file of model {cfg.model!r})")
    entry = data.methods.get(label)
    if entry is None:
        have = ", ".join(sorted(data.methods)) or "none"
        raise ConfigError(f"{path} has no tuned setting for method {label!r} (it has: {have}); {fix}")
    tuned_hash = entry.extra.get("task_spec_hash", data.task.get("spec_hash"))
    if tuned_hash != task.spec_hash:
        console.print(f"[yellow]warning: {path} was tuned on another version of task {task.name!r} (spec hash "
                      f"{tuned_hash}, now {task.spec_hash})[/yellow]", soft_wrap=True)
    setting = dict(entry.chosen.setting)
    explicit = dict(explicit_overrides or {})
    overridden = {k: explicit[k] for k in setting if k in explicit}
    if explicit_lr is not None:
        overridden["lr"] = explicit_lr
    cfg.lr = explicit_lr if explicit_lr is not None else float(setting["lr"])
    cfg.method_overrides = {**{k: v for k, v in setting.items() if k != "lr"}, **explicit}
    cfg.tuned = {"file": str(path), "sha256": file_sha256(path), "method": label, "setting": setting,
                 "overridden": overridden}
    return cfg
