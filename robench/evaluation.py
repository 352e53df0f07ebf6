"""Run evaluators on a finished run: shared cached predictions, one atomic result JSON each."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robench import distributed
from robench.errors import ConfigError
from robench.evaluators import EVALUATORS, EvalOutput, resolve_suite
from robench.hardware import resolve_precision
from robench.identity import result_path
from robench.models import load_trained, resolve_device
from robench.predict import Predictions, predict
from robench.progress import console
from robench.records import RunRecord, RunTask, load_run
from robench.results import make_result, undeclared
from robench.runspec import EVAL_PRECISION
from robench.storage import atomic_write, atomic_write_json, file_sha256
from robench.tasks import TaskData, load_task, set_items

CACHE_SUBDIR = "cache"


@dataclass
class EvalContext:
    """What an evaluator sees: the run, its task data, its model and a shared prediction pass."""

    run_dir: Path
    run: RunRecord
    task: Any  # TaskSpec
    data: TaskData
    device: str = "cpu"
    precision: str = "fp32"
    batch_size: int = 128
    # Capture penultimate features on every fresh pass (a forward hook, nearly free) so that a set
    # scored first without features (accuracy) is not predicted again for feature-based scores.
    always_features: bool = True
    weights: str = "unknown"  # sha256 prefix of model.safetensors as found on disk
    eval_limit: int | None = None  # an evaluation --limit below the run's own: results and artefacts get own names
    _model: Any = None
    _tokenizer: Any = None
    _memo: dict[tuple[str, bool], Predictions] = field(default_factory=dict)

    @property
    def model(self):
        if self._model is None:
            if self.run.external:  # a checkpoint trained outside robench (robench.external)
                from robench.external import load as load_external

                self._model, self._tokenizer = load_external(self.run)
            else:
                self._model, self._tokenizer = load_trained(self.run_dir)
            self._model.to(self.device)
            self._model.eval()
        return self._model

    @property
    def tokenizer(self):
        self.model  # noqa: B018 - loads both
        return self._tokenizer

    def artifact(self, name: str) -> Path:
        """``<run>/artifacts/<name>``, with ``.limit<N>`` before the suffix under an evaluation limit, so a
        limited evaluation never overwrites the full one's logs and figures."""
        from robench.evaluators.base import artifact_dir

        path = Path(name)
        if self.eval_limit is not None:
            path = path.with_name(f"{path.stem}.limit{self.eval_limit}{path.suffix}")
        return artifact_dir(self.run_dir) / path

    @property
    def max_length(self) -> int:
        return int(self.run.config.get("max_length", 128))

    def texts(self, key: str) -> list[Any]:
        """A set's examples as the model reads them: texts, or (text, text_pair) tuples for sentence pairs."""
        return set_items(self.data.get(key))

    def is_pairs(self, key: str) -> bool:
        return "text_pair" in self.data.get(key).column_names

    def correct(self, key: str, logits: np.ndarray) -> np.ndarray:
        """Per-example correctness of a set's predictions (argmax), a prediction the set merges
        (``merge_predictions``: RoAST's two-class NLI sets) counted as the label it merges into."""
        preds = logits.argmax(-1)
        merge = self.task.sets[key].merge_predictions if key in self.task.sets else None
        if merge:
            index = {name: i for i, name in enumerate(self.task.labels)}
            preds = preds.copy()
            for frm, to in merge:
                preds[preds == index[frm]] = index[to]
        return preds == self.labels(key)

    def labels(self, key: str) -> np.ndarray:
        return np.asarray(self.data.get(key)["label"], dtype=np.int64)

    def data_info(self, keys: list[str]) -> dict[str, Any]:
        return {k: {"size": len(self.data.get(k)), "fingerprint": self.data.fingerprint(k)} for k in keys}

    def predict(self, key: str, features: bool = False) -> Predictions:
        """Logits (and penultimate features) of a set, computed once per (weights, data) and cached on disk."""
        memo_key = (key, features)
        if memo_key in self._memo:
            return self._memo[memo_key]
        if not features and (key, True) in self._memo:
            return self._memo[(key, True)]
        data_fp = self.data.fingerprint(key)
        # keyed on the weights file as it is now (checked against run.json in make_context), not on the record
        cache = self.run_dir / CACHE_SUBDIR / f"{self.weights}-{data_fp}-{self.precision}-{self.max_length}.npz"
        preds = _read_cache(cache, features, len(self.data.get(key)))
        if preds is None:
            want_features = features or self.always_features
            try:
                preds = predict(self.model, self.tokenizer, self.texts(key), batch_size=self.batch_size,
                                max_length=self.max_length, device=self.device, precision=self.precision,
                                features=want_features, description=f"predict {key}")
            except ValueError:
                if not want_features:
                    raise
                # no recognisable classifier head to hook (e.g. a head named otherwise): logits only; what needs
                # features (the Mahalanobis score) sees none and says it is skipped
                preds = predict(self.model, self.tokenizer, self.texts(key), batch_size=self.batch_size,
                                max_length=self.max_length, device=self.device, precision=self.precision,
                                features=False, description=f"predict {key}")
            arrays = {"logits": preds.logits}
            if preds.features is not None:
                arrays["features"] = preds.features
            _write_cache(cache, arrays)
        self._memo[memo_key] = preds
        if preds.features is not None:
            self._memo[(key, True)] = preds
        return preds


def _read_cache(cache: Path, features: bool, n: int) -> Predictions | None:
    """Cached predictions, or None when absent, unreadable (truncated, empty) or of the wrong size:
    a damaged cache is recomputed, never trusted."""
    if not cache.exists():
        return None
    try:
        with np.load(cache, allow_pickle=False) as z:
            if features and "features" not in z:
                return None
            preds = Predictions(z["logits"], z["features"] if "features" in z else None)
    except Exception:  # noqa: BLE001 - any unreadable cache file is simply recomputed
        return None
    if preds.logits.ndim != 2 or len(preds.logits) != n or (preds.features is not None and len(preds.features) != n):
        return None
    return preds


def _write_cache(cache: Path, arrays: dict[str, np.ndarray]) -> None:
    atomic_write(cache, lambda fh: np.savez(fh, **arrays))


def make_context(run_dir: Path, device: str = "auto", precision: str = EVAL_PRECISION, limit: int | None = None,
                 batch_size: int = 128, allow_changed_data: bool = False) -> EvalContext:
    run_dir = Path(run_dir)
    if distributed.requested_world_size() > 1:  # under a launcher: join its group (gloo on CPU) or refuse
        distributed.state(resolve_device(device))  # a lone process; predictions and attacks shard over it
    run = load_run(run_dir)
    recorded = run.weights_fingerprint
    if run.external:  # trained outside robench: the weights stay where they were registered from
        from robench.external import weights_fingerprint

        folder = Path(run.external.get("folder", ""))
        if not folder.is_dir():
            raise ConfigError(f"checkpoint folder {folder} (registered in {run_dir / 'run.json'}) is gone; register "
                              "the model again with 'robench eval --model ... --force'")
        weights = weights_fingerprint(folder)
        changed = (f"the weights in {folder} changed since they were registered (fingerprint {weights}, run.json has "
                   f"{recorded}); register them again with 'robench eval --model {run.external.get('source')} "
                   "--force' (other --out for a new row)")
    else:
        weights_file = run_dir / "model.safetensors"
        if not weights_file.exists():
            raise ConfigError(f"run directory {run_dir} has no model.safetensors; re-train it with 'robench train'")
        weights = file_sha256(weights_file)
        changed = (f"{weights_file} is not the file this run wrote (sha256 {weights}, run.json records {recorded}): "
                   "it was truncated or replaced; re-train the run ('robench train --force')")
    if recorded and weights != recorded:
        raise ConfigError(changed)
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be a positive number of examples, got {limit}")
    task_info = run.task
    source = task_info.source or task_info.name
    if Path(source).suffix in {".yaml", ".yml"} and not Path(source).is_file():
        raise ConfigError(f"task file {source} (recorded in {run_dir / 'run.json'}) does not exist from here"
                          + ("; runs trained before task paths were recorded whole name it relative to where "
                             "training ran: evaluate from that folder" if not Path(source).is_absolute() else
                             "; put the task file back where the run was trained from"))
    task = load_task(source, task_info.profile, limit if limit is not None else task_info.limit)
    own = task_info.limit
    eval_limit = limit if limit is not None and limit != own else None
    changed = check_task_unchanged(run_dir, task, task_info, allow_changed_data)
    # every set the run recorded is checked as it is built (under another --limit the sets differ by design)
    expected = {} if eval_limit is not None else {
        **task_info.fingerprints, **task_info.set_fingerprints}
    data = TaskData(task, expected=expected, allow_changed=allow_changed_data, pairs=True)
    data.changed.update(changed)
    device = str(resolve_device(device))
    return EvalContext(run_dir=run_dir, run=run, task=task, data=data,
                       device=device, precision=resolve_precision(precision, device),
                       batch_size=batch_size, weights=weights, eval_limit=eval_limit)


def check_task_unchanged(run_dir: Path, task, task_info: RunTask, allow: bool) -> dict[str, dict[str, str]]:
    """The task definition against the one the run was trained with: ``data_hash`` (what decides the
    examples), or for runs recorded before it, the whole file's ``spec_hash``. A change is an error, or
    with ``allow`` returned as ``{"task file": {"trained": hash, "now": hash}}`` to mark the results."""
    if task_info.data_hash:
        was, now, what = task_info.data_hash, task.data_hash, "its sources, sets, labels or sizes"
    else:
        was, now, what = task_info.spec_hash, task.spec_hash, "its definition"
    if not was or was == now:
        return {}
    if not allow:
        raise ConfigError(f"task {task.name!r} changed since run {run_dir} was trained ({what} differ: hash {now}, "
                          f"run.json has {was}); restore the task file, retrain, or pass --allow-changed-data to "
                          "evaluate anyway (the result and its board row are marked)")
    return {"task file": {"trained": was, "now": now}}


def evaluate_run(run_dir: Path, suite: str = "quick", *, force: bool = False, device: str = "auto",
                 precision: str = EVAL_PRECISION, limit: int | None = None, options: dict[str, dict[str, Any]] | None = None,
                 ctx: EvalContext | None = None, allow_changed_data: bool = False) -> dict[str, Path]:
    """Evaluate one run with a suite; skips results already present unless ``force``. Returns written paths.
    Data that changed since training is an error unless ``allow_changed_data`` (the results are then marked)."""
    names = resolve_suite(suite)
    ctx = ctx or make_context(run_dir, device, precision, limit, allow_changed_data=allow_changed_data)
    limit = ctx.eval_limit  # None when it is the run's own data limit: the full result
    overlap = {k: v for k, v in ctx.run.task.overlap_with_train.items() if v}
    if overlap and distributed.is_main():  # counted at training; the board footnotes it too
        console.print(f"[yellow]warning: sets that share texts with this run's train set (exact text, counted at "
                      f"training): {', '.join(f'{k} {v}' for k, v in overlap.items())}; their scores are "
                      "inflated[/yellow]", soft_wrap=True)
    written: dict[str, Path] = {}
    for name in names:
        opts = {**ctx.task.evaluator_options.get(name, {}), **(options or {}).get(name, {})}
        evaluator = EVALUATORS.get(name)(**opts)
        # a result on a subset has its own file: it never replaces (or passes for) the full one
        path = result_path(ctx.run_dir, name, limit)
        skip = path.exists() and not force and _same_settings(path, evaluator.settings_key(), limit, ctx.precision,
                                                              evaluator.version)
        if distributed.broadcast_object(skip):  # rank 0 decides, so all ranks run the same evaluators
            if distributed.is_main():
                console.print(f"[dim]{name}: result exists ({path}); skipped (use --force to recompute)[/dim]")
            written[name] = path
            continue
        start = time.perf_counter()
        out: EvalOutput = evaluator.evaluate(ctx)
        missing = undeclared(evaluator.metrics, out.metrics)
        if missing:  # a programming error in the evaluator, not a user error: never write an undeclared metric
            raise RuntimeError(f"evaluator {name!r} wrote undeclared metric(s) {', '.join(missing[:5])}; "
                               "declare them in its `metrics`")
        result = make_result(name, ctx.run, out.metrics, details=out.details, data=out.data,
                             settings={**out.settings, **evaluator.settings_key(), "limit": limit,
                                       "precision": ctx.precision, "device": ctx.device},
                             warnings=out.warnings, wall_time_s=time.perf_counter() - start, artifacts=out.artifacts,
                             specs=evaluator.metrics, evaluator_version=evaluator.version, eval_limit=limit,
                             data_changed=dict(ctx.data.changed))
        if distributed.is_main():  # one result file, written by the first of several processes
            atomic_write_json(path, result)
            for warning in out.warnings:
                console.print(f"[yellow]warning ({name}): {warning}[/yellow]")
        distributed.barrier()  # no process goes on (or exits) before the result is written
        written[name] = path
    return written


def _same_settings(path: Path, settings: dict[str, Any], limit: int | None, precision: str,
                   version: int | str = 1) -> bool:
    """Whether the result at ``path`` answers this request: the same evaluator version, options, data limit and
    precision (a result written before the precision was recorded is fp32, robench's evaluation default then;
    one of an earlier evaluator version is recomputed: its numbers may be computed otherwise)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # unreadable, not UTF-8, not JSON: recompute
        return False
    old = data.get("settings") if isinstance(data, dict) else None
    if not isinstance(old, dict):
        return False
    return all(old.get(k) == v for k, v in {**settings, "limit": limit}.items()) and \
        (old.get("precision") or "fp32") == precision and data.get("evaluator_version", 1) == version
