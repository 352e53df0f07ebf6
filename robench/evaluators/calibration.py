"""Calibration under shift: ECE (and MCE, Brier, NLL) before and after temperature scaling.

The temperature is fitted on the task's ``validation`` split only, never on a scored set. Two
fits are recorded: the paper's grid {0.25, 0.5, 1, 2, 4, 8} (arg-min of validation NLL; the
temperature *value*, not its index as in the reference code) and a continuous NLL minimisation.
The grid fit is used by default (``temperature="grid"``), so numbers follow the paper's
protocol; ``temperature="continuous"`` uses the other fit. Headline ``ece`` = mean ECE after
scaling over the shift sets and the task's labelled adversarial sets.

Per-example data (version 2): ``details.examples`` holds, per scored set in its order, each example's
top-label confidence after temperature scaling (full float precision) and whether the prediction is
correct (a '0110' string): ``{"bins": B, "temperature": T, "sets": {set: {"confidence": [...],
"correct": "..."}}, "id": {...}}``. ``sets`` are exactly the sets the headline averages (so the
board can bootstrap the headline ECE itself, examples paired across methods by index within each
set); ``id`` is the in-distribution test set (``metrics.id``), not part of the headline.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from robench import metrics as M
from robench.configs import option, whole
from robench.errors import ConfigError
from robench.evaluators.base import EvalOutput, Evaluator, register_evaluator
from robench.evaluators.shift import correct_string, group_keys, labelled_predictions
from robench.results import MetricSpec

TEMPERATURE_METHODS = ("grid", "continuous")


def _is_str(v) -> bool:
    return isinstance(v, str)


def _set_metrics(logits: np.ndarray, labels: np.ndarray, temperature: float, bins: int) -> dict[str, float]:
    scaled = M.calibration_metrics(logits, labels, temperature, bins)
    raw = M.calibration_metrics(logits, labels, 1.0, bins)
    out = {k: scaled[k] for k in ("ece", "mce", "brier", "nll", "confidence")}
    out.update({f"{k}_raw": raw[k] for k in ("ece", "mce", "brier", "nll", "confidence")})
    out["accuracy"] = raw["accuracy"]
    out["n"] = raw["n"]
    return out


def _examples(probs: np.ndarray, labels: np.ndarray) -> dict[str, object]:
    """Per example, in set order: the top-label confidence and whether the top label is correct, as
    :func:`robench.metrics.ece` reads them (so they reproduce the set's ECE exactly)."""
    return {"confidence": probs.max(axis=1).tolist(), "correct": correct_string(probs.argmax(axis=1) == labels)}


@register_evaluator("calibration", aliases=("ece",))
class Calibration(Evaluator):
    description = "ECE (10 bins, top label) after temperature scaling fitted on validation, on shift/adversarial sets"
    aspect = "calibration"
    version = 2  # 2: per-example confidence and correctness per scored set (details.examples)
    metrics = (
        MetricSpec("ece", "lower", aspect, headline=True, column="ece", label="ECE", short="ECE",
                   per_example="examples", statistic="ece"),
        *(MetricSpec(pattern, "lower", "calibration") for pattern in ("ece_*", "*.ece", "*.ece_raw", "*.mce", "*.mce_raw",
                                                               "*.brier", "*.brier_raw", "*.nll", "*.nll_raw")),
        MetricSpec("*.accuracy", "higher", aspect),
        *(MetricSpec(pattern, "none", "calibration") for pattern in ("temperature", "*.confidence", "*.confidence_raw",
                                                              "*.n", "temperature_*")),
    )

    @dataclass
    class Config:
        temperature: str = field(default="grid", metadata=option("a fitting method name", _is_str, "temperature: grid"))
        bins: int = field(default=M.DEFAULT_BINS, metadata=option("a positive integer", whole(1), "bins: 10"))
        grid_criterion: str = field(default="nll", metadata=option("nll or ece", _is_str, "grid_criterion: nll"))

        def __post_init__(self) -> None:
            if self.temperature not in TEMPERATURE_METHODS:
                raise ConfigError(f"calibration: temperature must be one of {', '.join(TEMPERATURE_METHODS)}, "
                                  f"got {self.temperature!r}")
            if not whole(1)(self.bins):
                raise ConfigError(f"calibration: bins must be a positive integer, got {self.bins!r}")
            if self.grid_criterion not in {"nll", "ece"}:
                raise ConfigError(f"calibration: grid_criterion must be nll or ece, got {self.grid_criterion!r}")

    def __init__(self, config: Config | None = None, **options) -> None:
        super().__init__(config, **options)
        self.method, self.bins, self.criterion = self.config.temperature, self.config.bins, self.config.grid_criterion

    def evaluate(self, ctx) -> EvalOutput:
        warnings: list[str] = []
        shift_keys = ctx.task.set_names("shift")
        adv_keys = []
        for name in ctx.task.set_names("adversarial"):
            key = f"adversarial:{name}"
            if np.all(ctx.labels(key) < 0):
                warnings.append(f"adversarial set {name!r} has no labels; left out of the calibration average")
                continue
            adv_keys.append(key)
        scored = [f"shift:{n}" for n in shift_keys] + adv_keys
        if not scored:
            group_keys(ctx, "shift", self.name)  # raises the one-line ConfigError

        # ---- fit the temperature on validation only
        val_preds, val_labels = labelled_predictions(ctx, "validation")
        val_fp = ctx.data.fingerprint("validation")
        for key in ["test", *scored]:
            if ctx.data.fingerprint(key) == val_fp:
                raise ConfigError(f"task {ctx.task.name!r}: the validation split is identical to scored set {key!r}; "
                                  "temperature scaling must be fitted on held-out data, give a separate validation split")
        grid_fit = M.fit_temperature_grid(val_preds.logits, val_labels, M.PAPER_TEMPERATURES, self.criterion, self.bins)
        cont_fit = M.fit_temperature_nll(val_preds.logits, val_labels)
        t = grid_fit["temperature"] if self.method == "grid" else cont_fit["temperature"]
        if self.method == "grid" and grid_fit["temperature"] in (M.PAPER_TEMPERATURES[0], M.PAPER_TEMPERATURES[-1]):
            warnings.append(f"grid temperature {grid_fit['temperature']} is at the edge of the paper's grid "
                            f"(continuous fit: {cont_fit['temperature']:.3g})")
        if cont_fit["at_bound"]:
            warnings.append(f"continuous temperature fit stopped at its bound ({cont_fit['temperature']:.3g}); "
                            "the validation predictions are barely better than chance")
        if len(val_labels) < 100:
            warnings.append(f"temperature fitted on only {len(val_labels)} validation examples")

        # ---- score
        bins = self.bins
        test_preds, test_labels = labelled_predictions(ctx, "test")
        id_metrics = _set_metrics(test_preds.logits, test_labels, t, bins)
        sets: dict[str, dict[str, float]] = {}
        curves_raw = {"test (id)": (M.softmax(test_preds.logits), test_labels)}
        curves_scaled = {"test (id)": (M.softmax(test_preds.logits, t), test_labels)}
        for key in scored:
            p, y = labelled_predictions(ctx, key)
            name = key.split(":", 1)[1] if key.startswith("shift:") else key
            sets[name] = _set_metrics(p.logits, y, t, bins)
            curves_raw[name] = (M.softmax(p.logits), y)
            curves_scaled[name] = (M.softmax(p.logits, t), y)
        names_shift = [n for n in sets if not n.startswith("adversarial:")]
        names_adv = [n for n in sets if n.startswith("adversarial:")]

        def mean(names: list[str], metric: str) -> float | None:
            return float(np.mean([sets[n][metric] for n in names])) if names else None

        metrics = {
            "ece": mean(list(sets), "ece"),
            "ece_raw": mean(list(sets), "ece_raw"),
            "ece_shift": mean(names_shift, "ece"),
            "ece_adversarial": mean(names_adv, "ece"),
            "temperature": float(t),
            "id": id_metrics,
            "sets": sets,
        }

        rel = ctx.artifact("calibration_reliability.png")
        from robench.plots import reliability_diagram

        reliability_diagram({}, rel, bins=bins, panels={"before temperature scaling": curves_raw,
                                                        f"after scaling (T = {t:.3g})": curves_scaled})
        return EvalOutput(
            metrics=metrics,
            details={
                "temperature": {
                    "used": self.method, "value": float(t), "fit_set": "validation",
                    "grid": {"temperature": grid_fit["temperature"], "criterion": grid_fit["criterion"],
                             "values": {str(k): v for k, v in grid_fit["values"].items()}},
                    "continuous": cont_fit,
                    "validation_nll_raw": M.nll_from_logits(val_preds.logits, val_labels, 1.0),
                },
                "reliability": {"id": M.reliability_bins(M.softmax(test_preds.logits, t), test_labels, bins),
                                **{n: M.reliability_bins(*curves_scaled[n], bins) for n in sets}},
                "examples": {"bins": bins, "temperature": float(t),
                             "sets": {n: _examples(*curves_scaled[n]) for n in sets},
                             "id": _examples(*curves_scaled["test (id)"])},
            },
            data=ctx.data_info(["validation", "test", *scored]),
            settings={"temperature_method": self.method, "temperature_grid": list(M.PAPER_TEMPERATURES),
                      "grid_criterion": self.criterion, "temperature_fit_set": "validation", "bins": bins,
                      "ece": "netcal ECE, equal-width bins, top-label confidence",
                      "brier": "sum over classes of squared error, mean over examples",
                      "headline": "mean ECE after temperature scaling over shift and adversarial sets"},
            warnings=warnings,
            artifacts=[str(rel.relative_to(ctx.run_dir))],
        )
