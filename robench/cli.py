"""The ``robench`` command line (Typer). User errors print one line and exit 2, without a traceback."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from robench.errors import RobenchError

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Robustness benchmark suite and leaderboard for fine-tuned language models.")
out = Console()
err = Console(stderr=True)


def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


@app.command()
def train(
    method: str = typer.Option("vanilla", help="fine-tuning method (robench list methods)"),
    task: str = typer.Option("sentiment", help="task name in tasks/ or a path to a task YAML"),
    model: str = typer.Option("minilm", help="'minilm' (packaged), 'tiny-bert' (random, tests), an HF id or a folder"),
    seed: int = typer.Option(0, help="random seed (data order, head init, dropout, perturbations)"),
    epochs: int = typer.Option(2, help="training epochs"),
    batch_size: int = typer.Option(16, help="training batch size"),
    lr: float = typer.Option(5e-5, help="peak learning rate (linear decay, 6% warm-up)"),
    max_length: int = typer.Option(128, help="truncate inputs to this many tokens"),
    set_: list[str] = typer.Option(None, "--set", help="method hyper-parameter, key=value (repeatable)"),
    preset: str = typer.Option(None, help="method preset, e.g. 'paper' for the RoBERTa-large settings"),
    selective: bool = typer.Option(False, "--selective", help="apply RAM's selective-training gradient mask"),
    selective_alpha: float = typer.Option(None, help="selective training: rank threshold alpha"),
    selective_beta: float = typer.Option(None, help="selective training: sharpness beta"),
    profile: str = typer.Option(None, help="task size profile (e.g. quick, full)"),
    limit: int = typer.Option(None, help="cap every data set at this many examples"),
    precision: str = typer.Option("fp32", help="fp32 or bf16"),
    device: str = typer.Option("auto", help="auto, cpu or cuda"),
    out_dir: str = typer.Option(None, "--out", help="run directory (default runs/<task>/<model>/<method>/seed<N>)"),
    force: bool = typer.Option(False, help="overwrite an existing run directory"),
) -> None:
    """Fine-tune a model with a method and write a run directory (weights, tokenizer, run.json)."""
    from robench.methods.base import parse_overrides
    from robench.train import TrainConfig
    from robench.train import train as run_train

    selective_overrides = {k: v for k, v in (("alpha", selective_alpha), ("beta", selective_beta)) if v is not None}
    cfg = TrainConfig(task=task, model=model, method=method, method_overrides=parse_overrides(set_), preset=preset,
                      selective=selective, selective_overrides=selective_overrides, seed=seed, epochs=epochs,
                      batch_size=batch_size, lr=lr, max_length=max_length, precision=precision, device=device,
                      profile=profile, limit=limit, out=out_dir, force=force)
    run_dir = run_train(cfg)
    record = json.loads((run_dir / "run.json").read_text())
    tr = record["training"]
    out.print(f"[green]run written:[/green] {run_dir}  (best val acc {tr['best_val_accuracy']:.4f} at epoch "
              f"{tr['best_epoch']}, {tr['examples_per_second']:.1f} train ex/s, {tr['wall_seconds']:.1f}s)")


@app.command("eval")
def eval_(
    run: Path = typer.Option(..., "--run", help="run directory written by 'robench train'"),
    suite: str = typer.Option("quick", help="'all', 'quick' or evaluator names separated by commas"),
    force: bool = typer.Option(False, help="recompute results that already exist"),
    limit: int = typer.Option(None, help="cap every evaluation set at this many examples"),
    precision: str = typer.Option("fp32", help="fp32 or bf16"),
    device: str = typer.Option("auto", help="auto, cpu or cuda"),
    recipe: str = typer.Option(None, help="adversarial: attack recipes, comma-separated"),
    n: int = typer.Option(None, help="adversarial: number of examples to attack"),
    query_budget: int = typer.Option(None, help="adversarial: model queries per example"),
    attack_seed: int = typer.Option(None, "--seed", help="adversarial / perturb: sampling seed"),
) -> None:
    """Evaluate a run with a suite of evaluators; writes one result JSON per evaluator."""
    from robench.evaluate import evaluate_run

    options: dict[str, dict] = {}
    adv = {k: v for k, v in (("recipes", _csv(recipe) or None), ("n", n), ("query_budget", query_budget),
                              ("seed", attack_seed)) if v is not None}
    if adv:
        options["adversarial"] = adv
    if attack_seed is not None:
        options["perturb"] = {"seed": attack_seed}
    written = evaluate_run(run, suite, force=force, device=device, precision=precision, limit=limit, options=options)
    table = Table(title=f"results for {run}")
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
        for col in ("name", "aliases", "passes per step", "hyper-parameters (defaults)"):
            table.add_column(col)
        for name in METHODS.names():
            cls = METHODS.get(name)
            params = ", ".join(f"{f.name}={f.default}" for f in dataclasses.fields(cls.Config))
            table.add_row(name, ", ".join(METHODS.aliases_of(name)), cls.passes, params or "-")
    elif what == "tasks":
        from robench.tasks import list_tasks, load_task

        table = Table(title="tasks (tasks/*.yaml)")
        for col in ("name", "labels", "shift sets", "ood sets", "description"):
            table.add_column(col)
        for name in list_tasks():
            spec = load_task(name)
            table.add_row(name, ", ".join(spec.labels), ", ".join(spec.set_names("shift")) or "-",
                          ", ".join(spec.set_names("ood")) or "-", spec.description)
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


@app.command()
def assets() -> None:
    """Check that the packaged assets (model, data, vectors, WordNet) are installed."""
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
            missing += 1
            table.add_row(name, "[red]missing[/red]", str(exc))
    out.print(table)
    if missing:
        raise typer.Exit(1)


def main() -> None:
    try:
        app()
    except RobenchError as exc:
        err.print(f"[bold red]error:[/bold red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("[bold red]interrupted[/bold red]: nothing half-written was kept")
        sys.exit(130)


if __name__ == "__main__":
    main()
