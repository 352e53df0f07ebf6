"""robench's Python API: the functions the CLI itself calls, for notebooks and training scripts.

    import robench
    res = robench.evaluate("path/to/checkpoint", task="sentiment", suite="quick")
    res.to_frame()                         # one row per (evaluator, metric)
    board = robench.leaderboard(["runs"])  # the leaderboard as a DataFrame

``evaluate`` takes a robench run folder, a folder saved with ``save_pretrained``, a hub id, or a model
object with its tokenizer (saved first, then evaluated like a folder). ``load_results`` reads result
files; ``leaderboard`` builds the board the CLI prints (rows are methods, or models with
``by="model"``), with the same statistics.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robench.errors import ConfigError
from robench.records import RUN_FILE
from robench.results import ResultRecord, load_results, results_frame
from robench.runspec import EVAL_PRECISION

__all__ = ["Results", "evaluate", "leaderboard", "load_results"]


@dataclass
class Results:
    """What one evaluation wrote: the run folder and one result file per evaluator."""

    run_dir: Path
    paths: dict[str, Path] = field(default_factory=dict)  # evaluator -> result file

    def records(self) -> list[ResultRecord]:
        return load_results(list(self.paths.values())) if self.paths else []

    def to_frame(self):
        """One row per (evaluator, metric): task, model, method, seed, value, direction, file."""
        return results_frame(list(self.paths.values()))

    def headline(self) -> dict[str, float]:
        """The board's headline numbers of this run, by column key (``id``, ``shift``, ``ece``...)."""
        out: dict[str, float] = {}
        for rec in self.records():
            for metric, value in rec.metrics.items():
                spec = rec.spec(metric)
                if spec is not None and spec.headline:
                    out[spec.column or f"{rec.evaluator}.{metric}"] = value
        return out


def _run_folder(model: Any, task: str, out: Path | str | None, tokenizer: Any, limit: int | None = None,
                kind: str = "auto", **register_kw: Any) -> Path:
    from robench import external

    if hasattr(model, "save_pretrained") and not isinstance(model, str | Path):
        if tokenizer is None:
            raise ConfigError("robench.evaluate(model_object) needs its tokenizer: pass tokenizer=...")
        base = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="robench-"))
        _save_object(model, tokenizer, base, task=task, limit=limit, profile=register_kw.get("profile"),
                     label_map=register_kw.get("label_map"), force=bool(register_kw.get("force")))
        # named after its folder (e.g. the callback's step-<N>): each object is its own row, never a namesake's
        return external.register(str(base / "checkpoint"), task, base / "run", limit=limit, name=base.name,
                                 **register_kw)
    path = Path(str(model))
    if kind == "run" or (kind == "auto" and (path / RUN_FILE).is_file()):
        from robench.records import load_run

        load_run(path)  # a robench run folder (or one clear line saying why it is not)
        return path
    return external.register(str(model), task, out, limit=limit, **register_kw)


def _save_object(model: Any, tokenizer: Any, base: Path, *, task: str, limit: int | None, profile: str | None,
                 label_map: Any, force: bool) -> None:
    """Save a model object as ``base/checkpoint`` (its registration is ``base/run``): into a temporary folder
    first, and put in place only once its labels match the task's, so a refused call leaves nothing behind
    and replaces nothing; weights already registered at ``base`` are replaced only when they are the same or
    with ``force``, and a folder robench did not write there is never replaced."""
    from transformers import AutoConfig

    from robench import checkpoint
    from robench.external import label_order, parse_label_map, weights_fingerprint
    from robench.outputs import read_json
    from robench.tasks import load_task

    folder, record = base / "checkpoint", read_json(base / "run" / RUN_FILE)
    registered = isinstance(record, dict) and (record.get("external") or {}).get("folder") == str(folder.resolve())
    if folder.exists() and not registered:
        raise ConfigError(f"{folder} exists and is not a checkpoint robench saved there; pass out= a new folder")
    base.mkdir(parents=True, exist_ok=True)
    tmp = checkpoint.make_temporary(folder)
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        label_order(AutoConfig.from_pretrained(tmp).id2label or {}, load_task(task, profile, limit).labels,
                    parse_label_map(label_map), base.name)  # a mismatch is one line, before anything is replaced
        if registered and record.get("weights_fingerprint") != weights_fingerprint(tmp) and not force:
            raise ConfigError(f"{base} holds another model's checkpoint and results; pass out= elsewhere, or "
                              "force=True to replace them")
        checkpoint.replace_dir(tmp, folder)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)  # our own temporary folder, whatever it holds by now
        raise


def evaluate(model: Any, task: str = "sentiment", suite: str = "all", *, tokenizer: Any = None,
             out: Path | str | None = None, label_map: str | dict[str, int] | None = None, revision: str | None = None,
             runs_dir: Path | str = "runs", force: bool = False, device: str = "auto", precision: str = EVAL_PRECISION,
             limit: int | None = None, options: dict[str, dict[str, Any]] | None = None,
             allow_changed_data: bool = False, profile: str | None = None, kind: str = "auto") -> Results:
    """Evaluate a model on a task's suite; returns the result files as :class:`Results`.

    ``model``: a robench run folder (``task`` is then the run's own), a folder saved with
    ``save_pretrained``, a hub id (``revision`` pins it), or a model object with ``tokenizer`` (saved under
    ``out``, default a new temporary folder, and named after that folder on the board: give ``out`` a
    meaningful name). A model
    robench did not train gets a run folder at ``out`` (default ``<runs_dir>/<task>/<model>/external/seed0``)
    holding its run.json and results; ``label_map`` maps task labels to output indices when the
    checkpoint's label names differ from the task's (``"negative=0,positive=1"``). ``kind`` ("run" or
    "model") says which ``model`` is when a path could be read either way (the CLI's --run / --model)."""
    from robench.evaluation import evaluate_run

    run_dir = _run_folder(model, task, out, tokenizer, label_map=label_map, revision=revision, runs_dir=runs_dir,
                          force=force, profile=profile, limit=limit, kind=kind)
    own_run = run_dir == Path(str(model)) if isinstance(model, str | Path) else False
    # a checkpoint from outside is registered with the data limit (its run's own); a robench run keeps its own
    written = evaluate_run(run_dir, suite, force=force, device=device, precision=precision,
                           limit=limit if own_run else None, options=options, allow_changed_data=allow_changed_data)
    return Results(run_dir, written)


def leaderboard(results: Iterable[ResultRecord] | Path | str | Sequence[Path | str], aspects: str | None = None, *,
                by: str = "method", reference: str | None = None, n_boot: int | None = None,
                significance: str | None = None):
    """The leaderboard as a DataFrame (one row per method, or per model with ``by="model"``, with
    ``reference`` the row that deltas and significance are against)."""
    from robench.report import build_board

    return build_board(results, aspects, by=by, reference=reference, n_boot=n_boot,
                       significance=significance).frame
