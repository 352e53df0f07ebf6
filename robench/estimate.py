"""What a ``robench run`` will cost, stated before it starts: the planned runs times the per-run costs
measured by earlier runs of the same task (profile, data limit) and model.

The history is read from the files robench already writes, never from a probe:

- a run folder's ``run.json`` (``training.wall_seconds`` over ``training.epochs``): training seconds per
  epoch of that method;
- a result file's ``wall_time_s`` (each evaluator's time for one run) and its ``run`` block
  (``train_wall_seconds`` over the epochs of ``training_diagnostics``, one entry per epoch), read in the
  runs folder (``<runs>/<task>/<model>/<method>/seed<N>``) and anywhere under the results folder (a board's
  ``files/`` copies), each (run, evaluator) counted once.

A planned run costs ``epochs x`` its method's mean training seconds per epoch, plus each missing
evaluator's mean seconds for that method. A method with no training history of its own takes the
measured methods' mean cost per forward/backward-pass unit times its own pass count (``Method.passes``,
``"3F+2B"``: F counts 1, B counts 2); an evaluator with no history for that method takes its mean over
the other methods (evaluation is inference: the method does not change its passes). A run already
trained, and a result already written, cost 0 and are counted apart. With nothing measured the estimate
says so in one line instead of guessing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean
from typing import Any

from robench.identity import RunIdentity, method_label, model_label, parse_method_label, result_path
from robench.records import RUN_FILE, is_number, read_json

NO_HISTORY = ("no earlier runs of this task and model: no estimate (run one seed first, e.g. --seeds 0, "
              "and the next call states the cost)")
PASS_WEIGHTS = {"F": 1.0, "B": 2.0}  # a backward pass costs about two forward passes


def pass_weight(passes: str | int | float | None) -> float | None:
    """``"3F+2B"`` -> 7.0 (F=1, B=2; ``"3F+2B+1F(teacher)"`` -> 8.0); a number is taken as it is; None when
    the count cannot be read."""
    if is_number(passes, finite=True):
        return float(passes) if passes > 0 else None  # type: ignore[operator]
    if not isinstance(passes, str):
        return None
    terms = re.findall(r"(\d*)\s*([FB])", passes.upper())
    total = sum((int(n) if n else 1) * PASS_WEIGHTS[kind] for n, kind in terms)
    return total or None


def method_passes(label: str) -> str | None:
    """A method label's (``ram``, ``r3f+selective``) registered pass count, or None for an unknown method."""
    from robench.methods import METHODS

    name, _selective = parse_method_label(label)
    if name not in METHODS:
        return None
    return getattr(METHODS.get(name), "passes", None)


# ------------------------------------------------------------------------------------------ the history


@dataclass
class History:
    """Measured costs of earlier runs of one (task, profile, limit, model)."""

    train_per_epoch: dict[str, list[float]] = field(default_factory=dict)  # method label -> seconds per epoch
    eval_seconds: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # label -> evaluator -> s
    passes: dict[str, str | int] = field(default_factory=dict)  # label -> pass count recorded in run.json
    runs: set[tuple[str, int, str | None]] = field(default_factory=set)  # (label, seed, weights) measured
    devices: set[str] = field(default_factory=set)  # training devices recorded in run.json

    @property
    def empty(self) -> bool:
        return not self.train_per_epoch and not self.eval_seconds


@dataclass(frozen=True)
class _Target:
    """What an earlier run must match to count: the task's name, profile and data limit, and the model."""

    task: str
    profile: str
    limit: int | None
    model: str

    def matches(self, task: Any, profile: Any, limit: Any, model: Any) -> bool:
        if task != self.task or (profile or "default") != self.profile or limit != self.limit:
            return False
        return isinstance(model, str) and (model == self.model or model_label(model) == model_label(self.model))


def _target(cfg: Any) -> _Target:
    return _Target(RunIdentity(task=cfg.task, model=cfg.model, method=cfg.method).task_name,
                   cfg.profile or "default", cfg.limit, cfg.model)


def _result_files(root: Path) -> Iterable[Path]:
    """Robench result files under ``root`` (the schema is read from the file's head; other JSON is skipped)."""
    for path in sorted(root.rglob("*.json")):
        if path.name.startswith(".") or path.name == RUN_FILE:
            continue
        try:
            with open(path, "rb") as fh:
                head = fh.read(256)
        except OSError:
            continue
        if b'"robench.result/' in head:
            yield path


def read_history(target: _Target, run_folders: Iterable[Path], results_dirs: Iterable[Path]) -> History:
    """Every earlier run of ``target`` found in ``run_folders`` (``<runs>/<task>/<model>``: their
    ``*/seed*/run.json`` and ``*/seed*/results/*.json``) and under ``results_dirs`` (result files at any
    depth). Unreadable or damaged files are skipped: an estimate never stops a run."""
    history = History()
    train: dict[tuple[str, int, str | None], tuple[float, float]] = {}  # run -> (wall seconds, epochs)
    evals: dict[tuple[str, int, str | None, str], tuple[str, float]] = {}  # (run, evaluator) -> (created, s)
    result_paths: list[Path] = []
    for folder in dict.fromkeys(Path(f) for f in run_folders):
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob(f"*/seed*/{RUN_FILE}")):
            data = read_json(path)
            if isinstance(data, dict):
                _add_run(history, target, data, train)
        result_paths += sorted(folder.glob("*/seed*/results/*.json"))
    for root in dict.fromkeys(Path(r) for r in results_dirs):
        if root.is_dir():
            result_paths += _result_files(root)
    for path in dict.fromkeys(result_paths):
        data = read_json(path)
        if isinstance(data, dict) and str(data.get("schema", "")).startswith("robench.result/"):
            _add_result(target, data, train, evals)
    for (label, seed, weights), (wall, epochs) in train.items():
        history.train_per_epoch.setdefault(label, []).append(wall / epochs)
        history.runs.add((label, seed, weights))
    for (label, seed, weights, evaluator), (_created, seconds) in evals.items():
        history.eval_seconds.setdefault(label, {}).setdefault(evaluator, []).append(seconds)
        history.runs.add((label, seed, weights))
    return history


def _section(data: dict, key: str) -> dict:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _fingerprint(value: Any) -> str | None:
    """A weights fingerprint as a key part: a string, else None (an odd run.json never stops an estimate)."""
    return value if isinstance(value, str) else None


def _add_run(history: History, target: _Target, data: dict, train: dict) -> None:
    task, model, method, training = (_section(data, k) for k in ("task", "model", "method", "training"))
    if not method.get("name") or method.get("name") == "external" or not isinstance(data.get("seed"), int):
        return
    if not target.matches(task.get("name"), task.get("profile"), task.get("limit"), model.get("name")):
        return
    label = method_label(str(method["name"]), bool(method.get("selective")))
    if method.get("passes") is not None:
        history.passes.setdefault(label, method["passes"])
    if isinstance(training.get("device"), str):
        history.devices.add(training["device"].split(":")[0])
    wall, epochs = training.get("wall_seconds"), training.get("epochs")
    if is_number(wall, finite=True) and wall > 0 and isinstance(epochs, int) and epochs >= 1:
        train[(label, data["seed"], _fingerprint(data.get("weights_fingerprint")))] = (float(wall), float(epochs))


def _add_result(target: _Target, data: dict, train: dict, evals: dict) -> None:
    run = _section(data, "run")
    if not run.get("method") or run.get("method") == "external" or not isinstance(run.get("seed"), int):
        return
    if not target.matches(run.get("task"), run.get("profile"), run.get("train_limit"), run.get("model")):
        return
    key = (method_label(str(run["method"]), bool(run.get("selective"))), run["seed"],
           _fingerprint(run.get("weights_fingerprint")))
    wall, diagnostics = run.get("train_wall_seconds"), run.get("training_diagnostics")
    if key not in train and is_number(wall, finite=True) and wall > 0 and isinstance(diagnostics, list) \
            and diagnostics:  # one entry per epoch trained
        train[key] = (float(wall), float(len(diagnostics)))
    seconds, evaluator = data.get("wall_time_s"), data.get("evaluator")
    # a result under an evaluation --limit other than the run's is not what `robench run` computes
    if run.get("limit") != target.limit or not isinstance(evaluator, str) or not is_number(seconds, finite=True):
        return
    created = str(data.get("created") or "")
    if evals.get((*key, evaluator), ("", 0.0))[0] <= created:  # a run's newest result of each evaluator
        evals[(*key, evaluator)] = (created, float(seconds))


# ------------------------------------------------------------------------------------------ the estimate


@dataclass
class Estimate:
    """The planned work and its estimated wall time (seconds; None: needed but nothing measured)."""

    runs: int = 0
    to_train: int = 0
    to_evaluate: int = 0  # runs with at least one result to write
    results_to_write: int = 0
    trained_already: int = 0
    results_done: int = 0
    done: int = 0  # runs with nothing left to do
    train_seconds: float | None = 0.0
    eval_seconds: dict[str, float | None] = field(default_factory=dict)  # evaluator -> seconds (to write)
    where: str = ""  # "<task folder>/<model folder>", as the runs folder names them
    history_runs: int = 0
    epochs: list[int] = field(default_factory=list)  # the planned runs' epochs (those to train)
    scaled: dict[str, str] = field(default_factory=dict)  # method label -> how its cost was derived
    devices: list[str] = field(default_factory=list)
    device_note: str = ""
    known: bool = True  # False: nothing measured for this task and model

    @property
    def eval_total(self) -> float | None:
        if any(v is None for v in self.eval_seconds.values()):
            return None
        return float(sum(self.eval_seconds.values()))  # type: ignore[arg-type]

    @property
    def total(self) -> float | None:
        """The whole estimate; None when part of the work has no measured cost."""
        parts = [self.train_seconds, self.eval_total]
        return None if any(p is None for p in parts) else float(sum(parts))  # type: ignore[arg-type]

    def lines(self) -> list[str]:
        head = (f"estimate: {self.to_train} run(s) to train, {self.to_evaluate} to evaluate "
                f"({self.results_to_write} result file(s)); already done: {self.done} run(s)")
        if self.trained_already > self.done or self.results_done:
            head += f" ({self.trained_already} trained, {self.results_done} result file(s) written: cost 0)"
        if not self.to_train and not self.to_evaluate:
            return [head + "; nothing to compute"]
        if not self.known:
            return [head, f"  {NO_HISTORY}"]
        known_part = sum(v for v in [self.train_seconds, *self.eval_seconds.values()] if v is not None)
        total = fmt_seconds(self.total) if self.total is not None else f"at least {fmt_seconds(known_part)}"
        train = fmt_seconds(self.train_seconds) if self.train_seconds is not None else "n/a (no training times)"
        epochs = "/".join(str(e) for e in sorted(set(self.epochs)))
        out = [head, f"  estimated wall time {total}: training {train}" + (f" ({epochs} epochs)" if epochs else "")
               + f", evaluation {fmt_seconds(self.eval_total) if self.eval_total is not None else 'n/a'}"]
        if self.eval_seconds:
            out.append("  evaluation by evaluator: " + ", ".join(
                f"{name} {fmt_seconds(s) if s is not None else 'n/a (never measured)'}"
                for name, s in self.eval_seconds.items()))
        out.append(f"  basis: from {self.history_runs} earlier run(s) of {self.where}"
                   + (f" (trained on {', '.join(self.devices)})" if self.devices else "")
                   + ": training seconds per epoch x epochs, each evaluator's seconds per run")
        out += [f"  {m}: {how}" for m, how in self.scaled.items()]
        if self.device_note:
            out.append(f"  {self.device_note}")
        return out

    def text(self) -> str:
        return "\n".join(self.lines())


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def estimate_plan(configs: Sequence[Any], evaluators: Sequence[str], results_dirs: Iterable[Path | str] = (),
                  history: History | None = None) -> Estimate:
    """The estimate for the planned runs ``configs`` (TrainConfigs with ``out`` set, as ``run_benchmark``
    builds them, all of one task and model) evaluated with ``evaluators``. The history is read from the
    runs folder the configs live in and from ``results_dirs`` unless given."""
    est = Estimate(runs=len(configs), eval_seconds={})
    if not configs:
        return est
    first = configs[0]
    model_folder = Path(first.out).parents[1]  # <runs>/<task>[-profile][-limitN]/<model>
    est.where = f"{model_folder.parent.name}/{model_folder.name}"
    if history is None:
        history = read_history(_target(first), {Path(c.out).parents[1] for c in configs},
                               [Path(r) for r in results_dirs if r is not None])
    est.known = not history.empty
    est.devices = sorted(history.devices)
    est.history_runs = len(history.runs)

    train_cost: dict[str, float | None] = {}
    eval_cost: dict[tuple[str, str], float | None] = {}
    for cfg in configs:
        label = method_label(cfg.method, cfg.selective)
        run_dir = Path(cfg.out)
        trained = (run_dir / RUN_FILE).exists()
        missing = [n for n in evaluators if not result_path(run_dir, n).exists()]
        est.trained_already += trained
        est.results_done += len(evaluators) - len(missing)
        est.results_to_write += len(missing)
        est.to_evaluate += bool(missing)
        est.done += trained and not missing
        if not trained:
            est.to_train += 1
            est.epochs.append(int(cfg.epochs))
            if label not in train_cost:
                train_cost[label] = _train_per_epoch(label, history, est.scaled)
            per_epoch = train_cost[label]
            est.train_seconds = None if per_epoch is None or est.train_seconds is None \
                else est.train_seconds + per_epoch * cfg.epochs
        for name in missing:
            if (label, name) not in eval_cost:
                eval_cost[(label, name)] = _eval_seconds(label, name, history)
            seconds, so_far = eval_cost[(label, name)], est.eval_seconds.get(name, 0.0)
            est.eval_seconds[name] = None if seconds is None or so_far is None else so_far + seconds
    est.eval_seconds = dict(sorted(est.eval_seconds.items()))
    est.device_note = _device_note(first, history)
    return est


def _train_per_epoch(label: str, history: History, scaled: dict[str, str]) -> float | None:
    own = history.train_per_epoch.get(label)
    if own:
        return mean(own)
    if not history.train_per_epoch:
        return None
    weights = {m: pass_weight(method_passes(m) or history.passes.get(m)) for m in history.train_per_epoch}
    base = parse_method_label(label)[0]  # ram+selective without runs of its own: ram's, if measured
    measured = {m: w for m, w in weights.items() if w and (m == base or base not in history.train_per_epoch)}
    passes = method_passes(label) or history.passes.get(label)
    target = pass_weight(passes)
    if target and measured:
        per_unit = mean(mean(history.train_per_epoch[m]) / w for m, w in measured.items())
        scaled[label] = (f"no earlier runs of its own: the cost per pass of {', '.join(sorted(measured))} x its "
                         f"passes {passes} = {target:g} (F=1, B=2)")
        return per_unit * target
    scaled[label] = "no earlier runs of its own and no pass count: the measured methods' mean"
    return mean(mean(v) for v in history.train_per_epoch.values())


def _eval_seconds(label: str, evaluator: str, history: History) -> float | None:
    own = history.eval_seconds.get(label, {}).get(evaluator)
    if own:
        return mean(own)
    pooled = [s for per in history.eval_seconds.values() for s in per.get(evaluator, [])]
    return mean(pooled) if pooled else None


def _device_note(cfg: Any, history: History) -> str:
    """A warning when the history was trained on another kind of device than the one asked for."""
    asked = str(getattr(cfg, "device", "auto") or "auto").split(":")[0]
    if asked == "auto" or not history.devices or asked in history.devices:
        return ""
    return (f"note: the earlier runs trained on {', '.join(sorted(history.devices))}, this one asks for {asked}: "
            "the figures can be far off")
