"""The one-command benchmark: train every method x seed, evaluate each run, render the leaderboard.

Resumable: a run whose ``run.json`` exists is not trained again, and ``evaluate_run`` skips
results already written with the same settings, so re-running the same command after an
interruption (or to add a seed or a method) only does the missing work.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robench.errors import ConfigError
from robench.progress import console, progress_enabled
from robench.results import RUN_FILE, method_label, parse_method_label, result_path


@dataclass
class BenchResult:
    run_dirs: list[Path] = field(default_factory=list)
    trained: list[Path] = field(default_factory=list)  # runs trained by this call
    evaluated: list[Path] = field(default_factory=list)  # result files (re)written by this call
    skipped_train: list[Path] = field(default_factory=list)
    leaderboard: dict[str, Path] = field(default_factory=dict)
    board: Any = None  # the robench.report.Board written (printed by the CLI without rebuilding it)


def resolve_methods(methods: str | Sequence[str]) -> list[tuple[str, bool]]:
    """``"all"`` or a comma list (``vanilla,ram,r3f+selective``) -> [(method, selective)]."""
    from robench.methods import METHODS

    items = [m.strip() for m in (methods.split(",") if isinstance(methods, str) else methods) if m.strip()]
    if not items:
        raise ConfigError("empty --methods; give 'all' or method names separated by commas")
    out: list[tuple[str, bool]] = []
    for item in items:
        if item.lower() == "all":
            out.extend((name, False) for name in METHODS.names())
            continue
        name, selective = parse_method_label(item)
        out.append((METHODS.canonical(name), selective))
    return list(dict.fromkeys(out))


def parse_seeds(seeds: str | int | Sequence[int]) -> list[int]:
    if isinstance(seeds, int):
        return [seeds]
    if isinstance(seeds, str):
        try:
            parts = [int(s) for s in seeds.split(",") if s.strip()]
        except ValueError:
            raise ConfigError(f"bad --seeds {seeds!r}; give integers separated by commas, e.g. 0,1,2") from None
    else:
        parts = [int(s) for s in seeds]
    if not parts:
        raise ConfigError("empty --seeds; give integers separated by commas, e.g. 0,1,2")
    return list(dict.fromkeys(parts))


@contextmanager
def _quiet_inner_bars(active: bool) -> Iterator[None]:
    """Rich allows one live display: hide the per-epoch bars while the overall bar is shown."""
    if not active:
        yield
        return
    old = os.environ.get("ROBENCH_PROGRESS")
    os.environ["ROBENCH_PROGRESS"] = "0"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("ROBENCH_PROGRESS", None)
        else:
            os.environ["ROBENCH_PROGRESS"] = old


def run_benchmark(task: str = "sentiment", methods: str | Sequence[str] = "all", seeds: str | Sequence[int] = (0, 1, 2),
                  suite: str = "all", profile: str | None = "quick", *, model: str = "minilm",
                  runs_dir: Path | str = "runs", results_dir: Path | str | None = "results", limit: int | None = None,
                  epochs: int | None = None, batch_size: int | None = None, lr: float | None = None,
                  device: str = "auto", precision: str = "fp32", eval_options: dict[str, dict[str, Any]] | None = None,
                  train_options: dict[str, Any] | None = None, plots: bool = True, n_boot: int = 1000) -> BenchResult:
    """Train (where missing) and evaluate every method x seed, then write the leaderboard to ``results_dir``."""
    from robench.evaluate import evaluate_run
    from robench.evaluators import resolve_suite
    from robench.train import TrainConfig, default_run_dir, train

    plan_methods = resolve_methods(methods)
    plan_seeds = parse_seeds(seeds)
    evaluators = resolve_suite(suite)  # validate before any work
    overrides = {k: v for k, v in (("epochs", epochs), ("batch_size", batch_size), ("lr", lr)) if v is not None}
    overrides.update(train_options or {})
    configs = []
    for method, selective in plan_methods:
        for seed in plan_seeds:
            cfg = TrainConfig(task=task, model=model, method=method, selective=selective, seed=seed, profile=profile,
                              limit=limit, device=device, precision=precision, **overrides)
            cfg.out = str(default_run_dir(cfg, runs_dir))
            configs.append(cfg)

    result = BenchResult()
    show = progress_enabled()
    total = 2 * len(configs)
    console.print(f"[bold]robench run[/bold]: task {task}, model {model}, {len(plan_methods)} method(s) x "
                  f"{len(plan_seeds)} seed(s) = {len(configs)} runs, suite {suite} ({', '.join(evaluators)})")

    def work(step) -> None:
        for i, cfg in enumerate(configs, 1):
            run_dir = Path(cfg.out)
            name = f"{method_label(cfg.method, cfg.selective)} seed {cfg.seed}"
            result.run_dirs.append(run_dir)
            if (run_dir / RUN_FILE).exists():
                result.skipped_train.append(run_dir)
                step(f"[{i}/{len(configs)}] {name}: trained already ({run_dir})")
            else:
                step(f"[{i}/{len(configs)}] {name}: training", advance=0)
                train(cfg)
                result.trained.append(run_dir)
                step(f"[{i}/{len(configs)}] {name}: trained")
            before = {n: _mtime(result_path(run_dir, n)) for n in evaluators}
            step(f"[{i}/{len(configs)}] {name}: evaluating", advance=0)
            written = evaluate_run(run_dir, suite, device=device, precision=precision, options=eval_options)
            result.evaluated += [p for n, p in written.items() if _mtime(p) != before.get(n)]
            step(f"[{i}/{len(configs)}] {name}: evaluated")

    if show:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with _quiet_inner_bars(True), Progress(TextColumn("[bold]benchmark"), BarColumn(), MofNCompleteColumn(),
                                               TimeElapsedColumn(), TextColumn("{task.description}"),
                                               console=console) as progress:
            bar = progress.add_task("", total=total)
            work(lambda msg, advance=1: progress.update(bar, advance=advance, description=msg))
    else:
        work(lambda msg, advance=1: console.print(msg) if advance else None)

    console.print(f"trained {len(result.trained)} run(s), skipped {len(result.skipped_train)} finished; "
                  f"wrote {len(result.evaluated)} result file(s)")
    if results_dir is not None:
        from robench.report import write_leaderboard

        result.board, result.leaderboard = write_leaderboard(result.run_dirs, results_dir, plots=plots, n_boot=n_boot)
        console.print(f"leaderboard: {result.leaderboard['markdown']}")
    return result


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None
