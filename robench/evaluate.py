"""Run evaluators on a finished run: shared cached predictions, one atomic result JSON each."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robench.errors import ConfigError
from robench.evaluators import EVALUATORS, EvalOutput, resolve_suite
from robench.models import load_trained, resolve_device, resolve_precision
from robench.predict import Predictions, predict
from robench.progress import console
from robench.results import atomic_write_json, load_run, make_result, result_path, undeclared
from robench.tasks import TaskData, load_task

CACHE_SUBDIR = "cache"


@dataclass
class EvalContext:
    """What an evaluator sees: the run, its task data, its model and a shared prediction pass."""

    run_dir: Path
    run: dict[str, Any]
    task: Any  # TaskSpec
    data: TaskData
    device: str = "cpu"
    precision: str = "fp32"
    batch_size: int = 128
    # Capture penultimate features on every fresh pass (a forward hook, nearly free) so that a set
    # scored first without features (accuracy) is not predicted again for feature-based scores.
    always_features: bool = True
    _model: Any = None
    _tokenizer: Any = None
    _memo: dict[tuple[str, bool], Predictions] = field(default_factory=dict)

    @property
    def model(self):
        if self._model is None:
            self._model, self._tokenizer = load_trained(self.run_dir)
            self._model.to(self.device)
            self._model.eval()
        return self._model

    @property
    def tokenizer(self):
        self.model  # noqa: B018 - loads both
        return self._tokenizer

    @property
    def max_length(self) -> int:
        return int(self.run.get("config", {}).get("max_length", 128))

    def texts(self, key: str) -> list[str]:
        return list(self.data.get(key)["text"])

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
        weights = self.run.get("weights_fingerprint", "unknown")
        data_fp = self.data.fingerprint(key)
        cache = self.run_dir / CACHE_SUBDIR / f"{weights}-{data_fp}-{self.precision}-{self.max_length}.npz"
        preds = None
        if cache.exists():
            with np.load(cache, allow_pickle=False) as z:
                if not features or "features" in z:
                    preds = Predictions(z["logits"], z["features"] if "features" in z else None)
        if preds is None:
            want_features = features or self.always_features
            try:
                preds = predict(self.model, self.tokenizer, self.texts(key), batch_size=self.batch_size,
                                max_length=self.max_length, device=self.device, precision=self.precision,
                                features=want_features, description=f"predict {key}")
            except ValueError:
                if features or not want_features:
                    raise
                # no recognisable classifier head to hook: logits only
                preds = predict(self.model, self.tokenizer, self.texts(key), batch_size=self.batch_size,
                                max_length=self.max_length, device=self.device, precision=self.precision,
                                features=False, description=f"predict {key}")
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(f".{cache.stem}.tmp.npz")
            arrays = {"logits": preds.logits}
            if preds.features is not None:
                arrays["features"] = preds.features
            np.savez(tmp, **arrays)
            tmp.replace(cache)
        self._memo[memo_key] = preds
        if preds.features is not None:
            self._memo[(key, True)] = preds
        return preds


def make_context(run_dir: Path, device: str = "auto", precision: str = "fp32", limit: int | None = None,
                 batch_size: int = 128) -> EvalContext:
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    if not (run_dir / "model.safetensors").exists():
        raise ConfigError(f"run directory {run_dir} has no model.safetensors; re-train it with 'robench train'")
    task_info = run["task"]
    task = load_task(task_info.get("source", task_info["name"]), task_info.get("profile"),
                     limit if limit is not None else task_info.get("limit"))
    return EvalContext(run_dir=run_dir, run=run, task=task, data=TaskData(task),
                       device=str(resolve_device(device)), precision=resolve_precision(precision),
                       batch_size=batch_size)


def evaluate_run(run_dir: Path, suite: str = "quick", *, force: bool = False, device: str = "auto",
                 precision: str = "fp32", limit: int | None = None, options: dict[str, dict[str, Any]] | None = None,
                 ctx: EvalContext | None = None) -> dict[str, Path]:
    """Evaluate one run with a suite; skips results already present unless ``force``. Returns written paths."""
    names = resolve_suite(suite)
    ctx = ctx or make_context(run_dir, device, precision, limit)
    written: dict[str, Path] = {}
    for name in names:
        opts = {**ctx.task.evaluator_options.get(name, {}), **(options or {}).get(name, {})}
        evaluator = EVALUATORS.get(name)(**opts)
        path = result_path(ctx.run_dir, name)
        if path.exists() and not force and _same_settings(path, evaluator.settings_key(), limit):
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
                             specs=evaluator.metrics, evaluator_version=evaluator.version, eval_limit=limit)
        atomic_write_json(path, result)
        for warning in out.warnings:
            console.print(f"[yellow]warning ({name}): {warning}[/yellow]")
        written[name] = path
    return written


def _same_settings(path: Path, settings: dict[str, Any], limit: int | None) -> bool:
    try:
        old = json.loads(path.read_text()).get("settings", {})
    except (OSError, json.JSONDecodeError):
        return False
    return all(old.get(k) == v for k, v in {**settings, "limit": limit}.items())
