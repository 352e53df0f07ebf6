"""The one-command benchmark: train every method x seed, evaluate each run, render the leaderboard.

Resumable: a run whose ``run.json`` exists is not trained again, and ``evaluate_run`` skips
results already written with the same settings, so re-running the same command after an
interruption (or to add a seed or a method) only does the missing work.

Sharded (``shard=(K, N)``, ``robench run --shard K/N``): the call does only the K-th of N disjoint
slices of the (method, seed) jobs (:func:`shard_jobs`), so N scheduler jobs given the same command
and the same runs folder cover the matrix exactly once. A sharded call writes no leaderboard (it
holds part of the runs); ``robench leaderboard --results <runs>/<task>`` merges them afterwards.
While a process trains and evaluates a run it holds ``<run>.lock`` (an ``fcntl`` lock beside the run
folder), so two processes never work on the same run at once; the second waits, then skips it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robench.errors import ConfigError
from robench.identity import method_label, result_path
from robench.methods import resolve_methods
from robench.metrics import N_BOOT
from robench.outputs import guard_board_out, run_lock
from robench.progress import console, progress_enabled
from robench.records import RUN_FILE
from robench.runspec import DEFAULT_SEEDS, parse_seeds

SHARD_FORMAT = "give K/N with 1 <= K <= N, e.g. --shard 2/6 (Slurm: --array=1-N with --shard ${SLURM_ARRAY_TASK_ID}/N)"


@dataclass
class BenchResult:
    run_dirs: list[Path] = field(default_factory=list)
    trained: list[Path] = field(default_factory=list)  # runs trained by this call
    evaluated: list[Path] = field(default_factory=list)  # result files (re)written by this call
    skipped_train: list[Path] = field(default_factory=list)
    leaderboard: dict[str, Path] = field(default_factory=dict)
    board: Any = None  # the robench.report.Board written (printed by the CLI without rebuilding it)
    merge_command: str = ""  # the command that builds the leaderboard of the whole matrix (after sharded runs)


def split_overrides(overrides: dict[str, Any], methods: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``robench run --set``: each key goes to every planned method whose config has it; a key that no
    planned method has is an error (as ``train --set`` gives for its one method)."""
    import dataclasses

    from robench.methods import METHODS

    fields = {m: {f.name for f in dataclasses.fields(METHODS.get(m).Config)} for m in methods}
    unknown = [k for k in overrides if not any(k in names for names in fields.values())]
    if unknown:
        raise ConfigError(f"--set {unknown[0]}: none of the methods {', '.join(methods)} has that hyper-parameter; "
                          "see 'robench list methods'")
    return {m: {k: v for k, v in overrides.items() if k in fields[m]} for m in methods}


def parse_shard(value: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """``"K/N"`` (1-based: 1 <= K <= N) -> ``(K, N)``; None stays None."""
    if value is None:
        return None
    if isinstance(value, tuple):
        k, n = value
    else:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(value))
        if not match:
            raise ConfigError(f"bad --shard {value!r}: {SHARD_FORMAT}")
        k, n = int(match.group(1)), int(match.group(2))
    if n < 1:
        raise ConfigError(f"bad --shard {k}/{n}: the number of shards N must be >= 1")
    if not 1 <= k <= n:
        raise ConfigError(f"bad --shard {k}/{n}: K counts from 1 to {n} (a 0-based array index needs "
                          f"--shard $((SLURM_ARRAY_TASK_ID+1))/{n})")
    return k, n


def job_key(method: str, selective: bool, seed: int) -> tuple[str, int]:
    return method_label(method, selective), seed


def shard_jobs(jobs: Sequence[tuple[str, bool, int]], k: int, n: int) -> list[tuple[str, bool, int]]:
    """The jobs (method, selective, seed) of shard ``k`` of ``n`` (1-based), in the order given.

    Round-robin over the jobs sorted by (method label, seed): a function of the *set* of jobs only (not of
    the order the methods or seeds were listed in); the N slices are disjoint, cover every job, and differ
    in size by at most one."""
    k, n = parse_shard((k, n))
    canonical = sorted(dict.fromkeys(jobs), key=lambda j: job_key(*j))
    mine = set(canonical[k - 1::n])
    return [j for j in dict.fromkeys(jobs) if j in mine]


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


def run_benchmark(task: str = "sentiment", methods: str | Sequence[str] = "all", seeds: str | Sequence[int] = DEFAULT_SEEDS,
                  suite: str = "all", profile: str | None = "quick", *, model: str = "minilm",
                  runs_dir: Path | str = "runs", results_dir: Path | str | None = "results", limit: int | None = None,
                  epochs: int | None = None, batch_size: int | None = None, lr: float | None = None,
                  device: str = "auto", precision: str = "auto", eval_options: dict[str, dict[str, Any]] | None = None,
                  train_options: dict[str, Any] | None = None, plots: bool = True, n_boot: int = N_BOOT,
                  shard: str | tuple[int, int] | None = None, tuned: Path | str | None = None,
                  method_overrides: dict[str, Any] | None = None, dry_run: bool = False) -> BenchResult:
    """Train (where missing) and evaluate every method x seed, then write the leaderboard to ``results_dir``.

    With ``shard=(K, N)`` (or ``"K/N"``) only the K-th of N slices of the jobs is done and no leaderboard is
    written: ``BenchResult.merge_command`` is the command that builds it once every shard has finished.

    With ``tuned`` (a tuned.json from ``robench tune``) every run trains with its method's chosen lr and
    hyper-parameter (an explicit ``lr`` wins) and records it in run.json; a finished run trained with
    other tuned settings (or none) is an error, never reused.

    Before any work it prints the plan's cost estimate (:mod:`robench.estimate`, from earlier runs of the
    same task and model); with ``dry_run`` it stops there: nothing is trained, evaluated or written."""
    from robench.distributed import requested_world_size
    from robench.evaluation import evaluate_run
    from robench.evaluators import resolve_suite
    from robench.train import TrainConfig, check_finished_run, default_run_dir, train

    plan_methods = resolve_methods(methods)
    plan_seeds = parse_seeds(seeds)
    shard = parse_shard(shard)
    evaluators = resolve_suite(suite)  # validate before any work
    if results_dir is not None and not shard:
        guard_board_out(Path(results_dir), "--results-dir")  # before hours of training, not after
    overrides = {k: v for k, v in (("epochs", epochs), ("batch_size", batch_size), ("lr", lr)) if v is not None}
    overrides.update(train_options or {})
    per_method = split_overrides(method_overrides or {}, [m for m, _ in plan_methods])
    jobs = [(method, selective, seed) for method, selective in plan_methods for seed in plan_seeds]
    mine = shard_jobs(jobs, *shard) if shard else jobs
    tuned_data = None
    if tuned is not None:
        from robench.tune import load_tuned

        tuned_data = load_tuned(tuned)
    configs, all_dirs = [], []
    for method, selective, seed in jobs:
        cfg = TrainConfig(task=task, model=model, method=method, selective=selective, seed=seed, profile=profile,
                          limit=limit, device=device, precision=precision, method_overrides=dict(per_method[method]),
                          **overrides)
        if tuned is not None:
            from robench.tune import apply_tuned

            apply_tuned(cfg, tuned, tuned_data, explicit_lr=lr, explicit_overrides=per_method[method])  # --set wins
        cfg.out = str(default_run_dir(cfg, runs_dir))
        all_dirs.append(Path(cfg.out))
        if (method, selective, seed) in mine:
            _check_tuned_matches(cfg)
            if (Path(cfg.out) / RUN_FILE).exists():  # a finished run stands for this job only if trained as asked
                check_finished_run(Path(cfg.out), cfg, "pass --runs-dir for a separate folder of runs, or retrain it "
                                                       f"with 'robench train --force --out {cfg.out}' and the same "
                                                       "settings")
            configs.append(cfg)

    result = BenchResult()
    # the folder holding every run of the matrix (runs/<task>/<model>...): the leaderboard of all the shards
    result.merge_command = f"robench leaderboard --results {_common_folder(all_dirs).as_posix()}" + (
        f" --out {Path(results_dir).as_posix()}" if results_dir is not None else "")
    show = progress_enabled()
    total = 2 * len(configs)
    of = f"shard {shard[0]}/{shard[1]}: {len(configs)} of " if shard else ""
    console.print(f"[bold]robench run[/bold]: task {task}, model {model}, {len(plan_methods)} method(s) x "
                  f"{len(plan_seeds)} seed(s) = {of}{len(jobs)} runs, suite {suite} ({', '.join(evaluators)})")
    from robench.estimate import estimate_plan

    console.print(estimate_plan(configs, evaluators, [results_dir] if results_dir is not None else []).text(),
                  markup=False, highlight=False, soft_wrap=True)
    if dry_run:
        console.print("dry run: nothing trained, evaluated or written", markup=False, highlight=False)
        return result
    # one lock per run; a group of processes (torchrun) shares its runs, so its members never lock one another out
    locking = requested_world_size() == 1

    def work(step) -> None:
        for i, cfg in enumerate(configs, 1):
            run_dir = Path(cfg.out)
            result.run_dirs.append(run_dir)
            with run_lock(run_dir) if locking else nullcontext():
                do_run(step, f"[{i}/{len(configs)}] {method_label(cfg.method, cfg.selective)} seed {cfg.seed}",
                       cfg, run_dir)

    def do_run(step, name: str, cfg, run_dir: Path) -> None:
        if (run_dir / RUN_FILE).exists():
            result.skipped_train.append(run_dir)
            step(f"{name}: trained already ({run_dir})")
        else:
            step(f"{name}: training", advance=0)
            train(cfg)
            result.trained.append(run_dir)
            step(f"{name}: trained")
        before = {n: _mtime(result_path(run_dir, n)) for n in evaluators}
        step(f"{name}: evaluating", advance=0)
        written = evaluate_run(run_dir, suite, device=device, precision="fp32" if precision == "auto" else precision,
                               options=eval_options)
        result.evaluated += [p for n, p in written.items() if _mtime(p) != before.get(n)]
        step(f"{name}: evaluated")

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
    if shard:
        console.print(f"shard {shard[0]}/{shard[1]} done; no leaderboard (it holds part of the runs). When every "
                      f"shard has finished, merge them: {result.merge_command}", highlight=False, soft_wrap=True)
    elif results_dir is not None:
        from robench.report import write_leaderboard

        result.board, result.leaderboard = write_leaderboard(result.run_dirs, results_dir, plots=plots, n_boot=n_boot)
        console.print(f"leaderboard: {result.leaderboard['markdown']}")
    return result


def _check_tuned_matches(cfg) -> None:
    """A finished run is reused only if it was trained with the same tuned setting as planned (or, both,
    with none): a run trained before ``--tuned`` (or with another tuned file) must not pass for a tuned one."""
    import json

    from robench.runspec import setting_label, tuned_signature

    path = Path(cfg.out) / RUN_FILE
    if not path.exists():
        return
    try:
        had = (json.loads(path.read_text(encoding="utf-8")).get("config") or {}).get("tuned")
    except (OSError, ValueError, AttributeError):
        return  # a damaged record is reported where the run is read
    if tuned_signature(had) == tuned_signature(cfg.tuned):
        return
    was, now = (f"the tuned setting {setting_label(t['setting'])}" if t else "no tuned settings" for t in (had, cfg.tuned))
    raise ConfigError(f"run {cfg.out} was trained with {was}, but this command asks for {now}; pass --runs-dir for "
                      "a separate folder of runs, or delete that run to retrain it")


def _common_folder(dirs: Sequence[Path]) -> Path:
    """The deepest folder holding all of ``dirs`` (a run's own folder when there is one)."""
    return Path(os.path.commonpath([str(d) for d in dirs])) if dirs else Path(".")


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None
