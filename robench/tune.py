"""``robench tune``: a small hyper-parameter search on the validation split, and applying its choice.

The grid of a method is its class attribute ``tune_grid`` (the learning rate times one knob of the
method: RAM's ``selective_alpha``, FreeLB's ``adv_lr``, SMART's ``lambda_s``, R3F's ``r3f_lambda``,
ALUM's ``alpha``; vanilla tunes ``lr`` only). A task file's ``tuning:`` key replaces the values of
the hyper-parameters it names (per method), and the command line's ``--grid`` replaces them again.

Each trial (one setting x one seed) is an ordinary training run (``robench.train.train``) written to
``<runs>/tune/<task>/<model>/<method>/<trial id>/seed<N>``; a finished trial (its run.json exists)
is read, not trained again, and a killed one resumes from the trainer's checkpoint. The setting
chosen for a method is the one with the best mean, over the tuning seeds, of the runs'
``training.best_val_accuracy`` (validation accuracy of the epoch kept); ties go to the smaller
learning rate, then to the earlier setting in grid order.

``tuned.json`` holds, per method: the grid, every trial's setting and validation accuracies, the
chosen setting, the selection rule and the fixed trainer settings. ``robench run --tuned FILE``
and ``robench train --tuned FILE`` apply the chosen lr and knob (explicit ``--lr`` / ``--set``
win) and record it in run.json (``config.tuned``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
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
from robench.storage import atomic_write_json, file_sha256, provenance

TUNED_FILE = "tuned.json"
TUNE_SUBDIR = "tune"
DEFAULT_SEEDS = (0,)
SELECTION = {
    "split": "validation",
    "metric": "training.best_val_accuracy",
    "aggregate": "mean over the tuning seeds",
    "tie_break": "the smaller lr, then the earlier setting in grid order",
}
# run.json config keys that must agree for a finished trial to be reused (where it goes, --force,
# checkpoint frequency, the device and a tuned file do not change what it trained)


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


def select(trials: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The trial with the best mean validation accuracy; ties: the smaller lr, then grid order."""
    if not trials:
        raise ConfigError("no trials to choose from")
    order = sorted(range(len(trials)), key=lambda i: (-round(trials[i]["mean_val_accuracy"], 12),
                                                     trials[i]["setting"]["lr"], i))
    return trials[order[0]]


# --------------------------------------------------------------------------------------------- the search


@dataclass
class TuneResult:
    path: Path
    data: dict[str, Any]
    methods: list[str] = field(default_factory=list)  # the method labels tuned by this call
    trained: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)


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
         checkpoint_steps: int = 0) -> TuneResult:
    """Train every setting x seed of each method's grid (where not done yet), choose by validation
    accuracy, and write (merge into) ``tuned.json``."""
    from robench import train as training
    from robench.methods import resolve_methods
    from robench.tasks import load_task

    spec = load_task(task, profile, limit)
    plan = resolve_methods(methods)
    classes = [method_class(m) for m, _ in plan]
    cli = parse_grid_options(grid)
    check_cli_grid(cli, classes)
    grids = {method_label(m, s): resolve_grid(cls, spec.tuning["grids"], cli) for (m, s), cls in zip(plan, classes, strict=True)}
    seed_list = parse_seeds(seeds) if seeds is not None else list(spec.tuning["seeds"] or DEFAULT_SEEDS)
    fixed_kw = {k: v for k, v in (("epochs", epochs), ("batch_size", batch_size), ("max_length", max_length))
                if v is not None}
    base = training.TrainConfig(task=task, model=model, profile=profile, limit=limit, device=device,
                                precision=precision, checkpoint_steps=checkpoint_steps, force=force, **fixed_kw)
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
    console.print(f"[bold]robench tune[/bold]: task {spec.name}, model {model}, {len(plan)} method(s), "
                  f"{n_trials} trial run(s) ({', '.join(f'{k} {len(v)}' for k, v in jobs.items())} "
                  f"setting(s) x {len(seed_list)} seed(s)); {path}", highlight=False, soft_wrap=True)
    result = TuneResult(path=path, data={})
    done = 0
    for (method, selective), cls in zip(plan, classes, strict=True):
        label = method_label(method, selective)
        trials = []
        for setting, tid, cfgs in jobs[label]:
            accs: dict[str, float] = {}
            for cfg in cfgs:
                run_dir = Path(cfg.out)
                done += 1
                name = f"[{done}/{n_trials}] {label} {setting_label(setting)} seed {cfg.seed}"
                with run_lock(run_dir):
                    if (run_dir / RUN_FILE).exists() and not force:
                        what = "trained already"
                        result.skipped.append(run_dir)
                    else:
                        t0 = time.perf_counter()
                        training.train(cfg)
                        what = f"trained in {time.perf_counter() - t0:.0f}s"
                        result.trained.append(run_dir)
                    accs[str(cfg.seed)] = _finished_trial(run_dir, cfg)
                console.print(f"{name}: {what}, val acc {accs[str(cfg.seed)]:.4f}", highlight=False, soft_wrap=True)
            trials.append({"id": tid, "setting": setting, "val_accuracy": accs,
                           "mean_val_accuracy": sum(accs.values()) / len(accs),
                           "runs": [Path(c.out).as_posix() for c in cfgs]})
        chosen = select(trials)
        preset = training.resolve_preset(dataclasses.replace(base, method=method))
        entry = {
            "method": cls.name, "selective": selective, "grid": grids[label], "seeds": seed_list,
            "trials": trials,
            "chosen": {"id": chosen["id"], "setting": chosen["setting"],
                       "mean_val_accuracy": chosen["mean_val_accuracy"]},
            "selection": SELECTION,
            "fixed": {k: v for k, v in dataclasses.asdict(base).items()
                      if k in ("epochs", "batch_size", "max_length", "weight_decay", "warmup_ratio", "adam_betas",
                               "adam_eps", "max_grad_norm", "precision", "profile", "limit")}
                     | {"preset": dict(zip(("name", "source"), preset, strict=True))},
            "task_spec_hash": spec.spec_hash,
            **provenance(),
        }
        console.print(f"{label}: chose {setting_label(chosen['setting'])} (mean val acc "
                      f"{chosen['mean_val_accuracy']:.4f} over {len(seed_list)} seed(s))", highlight=False,
                      soft_wrap=True)
        with run_lock(path):  # tune calls for other methods may merge into the same file at the same time
            existing = to_json(load_tuned(path))["methods"] if path.exists() else {}
            data = {"schema": TUNED_SCHEMA, "task": task_block, "model": model, "selection": SELECTION,
                    "methods": {**existing, label: entry}, **provenance()}
            atomic_write_json(path, to_json(parse(TunedFile, data)))  # after every method: a later kill keeps the methods already chosen
        result.data = data
        result.methods.append(label)
    return result


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
