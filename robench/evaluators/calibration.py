"""Calibration under shift: ECE (and MCE, Brier, NLL) before and after temperature scaling.

Two protocols (``protocol``; the CLI's ``--calibration``):

- ``robench`` (default): the temperature minimises NLL continuously (Guo et al., ICML 2017) on the
  task's ``calibration`` split, which is carved from the training data (``tasks/sentiment.yaml``
  takes it from the movie source's training part, after the examples the model trains on), so it
  is disjoint from the validation examples that pick the tuning setting and the epoch. A task
  without a ``calibration`` set falls back to ``validation`` with a warning. Headline ``ece`` =
  the mean, one weight per set, of the ECE after scaling over the in-distribution test set, each
  shift set and each labelled adversarial set.
- ``paper``: the paper's protocol: the temperature from the grid {0.25, 0.5, 1, 2, 4, 8} (arg-min
  of validation NLL; the temperature *value*, not its index as in the reference code), fitted on
  ``validation``; headline ``ece`` = the mean over the shift and adversarial sets only.

Both fits are recorded whichever is used (``details.temperature``); ``temperature`` and
``fit_set`` override the protocol's choice one at a time. ``ece_id``, ``ece_shift`` and
``ece_adversarial`` are the parts; ``sets.<set>`` and ``id`` hold every set's metrics.

Per-example data: ``details.examples`` holds, per set the headline averages, in its order, each
example's top-label confidence after temperature scaling (full float precision) and whether the
prediction is correct (a '0110' string): ``{"bins": B, "temperature": T, "sets": {set:
{"confidence": [...], "correct": "..."}}, "id": {...}}``. ``sets`` are exactly the sets the
headline averages (the in-distribution test set under the key ``id`` in the robench protocol), so
the board can bootstrap the headline ECE itself, examples paired across methods by index within
each set; ``id`` repeats the in-distribution test set's data.
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
FIT_SETS = ("calibration", "validation")
# protocol -> (temperature fit, the set it is fitted on, whether the headline averages in-distribution ECE)
PROTOCOLS = {"robench": ("continuous", "calibration", True), "paper": ("grid", "validation", False)}


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
    description = ("ECE (10 bins, top label) after temperature scaling fitted on a calibration split carved from "
                   "train, on the in-distribution, shift and adversarial sets")
    aspect = "calibration"
    version = 3  # 2: per-example data (details.examples); 3: protocols, calibration split, headline with id
    metrics = (
        MetricSpec("ece", "lower", aspect, headline=True, column="ece", label="ECE", short="ECE",
                   per_example="examples", statistic="ece"),
        *(MetricSpec(pattern, "lower", "calibration") for pattern in ("ece_*", "*.ece", "*.ece_raw", "*.mce", "*.mce_raw",
                                                               "*.brier", "*.brier_raw", "*.nll", "*.nll_raw")),
        MetricSpec("*.accuracy", "higher", aspect),
        MetricSpec("fits.*.ece", "lower", aspect),
        *(MetricSpec(pattern, "none", "calibration") for pattern in ("temperature", "*.confidence", "*.confidence_raw",
                                                              "*.n", "temperature_*", "fits.*.temperature")),
    )

    @dataclass
    class Config:
        protocol: str = field(default="robench", metadata=option("robench or paper", _is_str, "protocol: robench"))
        temperature: str | None = field(default=None, metadata=option("grid or continuous (default: the protocol's)",
                                                                      lambda v: v is None or _is_str(v),
                                                                      "temperature: continuous"))
        fit_set: str | None = field(default=None, metadata=option("calibration or validation (default: the "
                                                                  "protocol's)", lambda v: v is None or _is_str(v),
                                                                  "fit_set: calibration"))
        bins: int = field(default=M.DEFAULT_BINS, metadata=option("a positive integer", whole(1), "bins: 10"))
        grid_criterion: str = field(default="nll", metadata=option("nll or ece", _is_str, "grid_criterion: nll"))

        def __post_init__(self) -> None:
            if self.protocol not in PROTOCOLS:
                raise ConfigError(f"calibration: protocol must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")
            if self.temperature is not None and self.temperature not in TEMPERATURE_METHODS:
                raise ConfigError(f"calibration: temperature must be one of {', '.join(TEMPERATURE_METHODS)}, "
                                  f"got {self.temperature!r}")
            if self.fit_set is not None and self.fit_set not in FIT_SETS:
                raise ConfigError(f"calibration: fit_set must be one of {', '.join(FIT_SETS)}, got {self.fit_set!r}")
            if not whole(1)(self.bins):
                raise ConfigError(f"calibration: bins must be a positive integer, got {self.bins!r}")
            if self.grid_criterion not in {"nll", "ece"}:
                raise ConfigError(f"calibration: grid_criterion must be nll or ece, got {self.grid_criterion!r}")

    def __init__(self, config: Config | None = None, **options) -> None:
        super().__init__(config, **options)
        cfg = self.config
        method, fit_set, self.with_id = PROTOCOLS[cfg.protocol]
        self.method = cfg.temperature or method
        self.fit_set = cfg.fit_set or fit_set
        self.protocol, self.bins, self.criterion = cfg.protocol, cfg.bins, cfg.grid_criterion

    def _rescored(self, ctx, scored: list[str], temperature: float) -> list[dict[str, float]]:
        """The headline's sets' ECE at another temperature (``{"ece": value}`` per set)."""
        keys = ["test", *scored] if self.with_id else list(scored)
        return [{"ece": M.ece(M.softmax(p.logits, temperature), y, self.bins)}
                for p, y in (labelled_predictions(ctx, key) for key in keys)]

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

        # ---- fit the temperature on held-out data: the calibration split, or validation
        fit_key = self.fit_set
        if fit_key == "calibration" and "calibration" not in ctx.task.sets:
            fit_key = "validation"
            warnings.append(f"task {ctx.task.name!r} has no calibration set: the temperature is fitted on validation, "
                            "the examples that also chose the epoch and the tuned setting (add a calibration set "
                            "carved from the training data, see tasks/sentiment.yaml)")
        fit_preds, fit_labels = labelled_predictions(ctx, fit_key)
        fit_fp = ctx.data.fingerprint(fit_key)
        for key in ["test", *scored]:
            if ctx.data.fingerprint(key) == fit_fp:
                raise ConfigError(f"task {ctx.task.name!r}: the {fit_key} split is identical to scored set {key!r}; "
                                  "temperature scaling must be fitted on held-out data, give a separate "
                                  f"{fit_key} split")
        if fit_key == "calibration" and ctx.data.fingerprint("validation") == fit_fp:
            raise ConfigError(f"task {ctx.task.name!r}: the calibration split is identical to validation; carve it "
                              "from the training data so the temperature is not fitted on the examples that chose "
                              "the epoch")
        grid_fit = M.fit_temperature_grid(fit_preds.logits, fit_labels, M.PAPER_TEMPERATURES, self.criterion, self.bins)
        cont_fit = M.fit_temperature_nll(fit_preds.logits, fit_labels)
        t = grid_fit["temperature"] if self.method == "grid" else cont_fit["temperature"]
        if self.method == "grid" and grid_fit["temperature"] in (M.PAPER_TEMPERATURES[0], M.PAPER_TEMPERATURES[-1]):
            warnings.append(f"grid temperature {grid_fit['temperature']} is at the edge of the paper's grid "
                            f"(continuous fit: {cont_fit['temperature']:.3g})")
        if cont_fit["at_bound"]:
            warnings.append(f"continuous temperature fit stopped at its bound ({cont_fit['temperature']:.3g}); "
                            f"the {fit_key} predictions are barely better than chance")
        if len(fit_labels) < 100:
            warnings.append(f"temperature fitted on only {len(fit_labels)} {fit_key} examples")

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

        def mean(blocks: list[dict[str, float]], metric: str) -> float | None:
            return float(np.mean([b[metric] for b in blocks])) if blocks else None

        headline = [id_metrics, *sets.values()] if self.with_id else list(sets.values())
        metrics = {
            "ece": mean(headline, "ece"),
            "ece_raw": mean(headline, "ece_raw"),
            "ece_id": id_metrics["ece"],
            "ece_shift": mean([sets[n] for n in names_shift], "ece"),
            "ece_adversarial": mean([sets[n] for n in names_adv], "ece"),
            "temperature": float(t),
            "id": id_metrics,
            "sets": sets,
        }
        # the headline under each temperature fit (same split, same sets): a verdict must not hinge on the fit
        fits = {}
        for fit, value in (("grid", grid_fit["temperature"]), ("continuous", cont_fit["temperature"])):
            same = float(value) == float(t)
            fits[fit] = {"temperature": float(value),
                         "ece": metrics["ece"] if same else mean(self._rescored(ctx, scored, value), "ece")}
        metrics["fits"] = fits
        headline_curves = {("id" if n == "test (id)" else n): c for n, c in curves_scaled.items()
                           if n != "test (id)" or self.with_id}
        described = ("the in-distribution test set, the shift sets and the adversarial sets" if self.with_id
                     else "the shift sets and the adversarial sets (in-distribution ECE left out, as in the paper)")

        rel = ctx.artifact("calibration_reliability.png")
        from robench.plots import reliability_diagram

        reliability_diagram({}, rel, bins=bins, panels={"before temperature scaling": curves_raw,
                                                        f"after scaling (T = {t:.3g})": curves_scaled})
        return EvalOutput(
            metrics=metrics,
            details={
                "temperature": {
                    "used": self.method, "value": float(t), "fit_set": fit_key, "protocol": self.protocol,
                    "grid": {"temperature": grid_fit["temperature"], "criterion": grid_fit["criterion"],
                             "values": {str(k): v for k, v in grid_fit["values"].items()}},
                    "continuous": cont_fit,
                    "fit_nll_raw": M.nll_from_logits(fit_preds.logits, fit_labels, 1.0), "fit_n": int(len(fit_labels)),
                },
                "reliability": {"id": M.reliability_bins(M.softmax(test_preds.logits, t), test_labels, bins),
                                **{n: M.reliability_bins(*curves_scaled[n], bins) for n in sets}},
                "examples": {"bins": bins, "temperature": float(t),
                             "sets": {n: _examples(*c) for n, c in headline_curves.items()},
                             "id": _examples(*curves_scaled["test (id)"])},
            },
            data=ctx.data_info([fit_key, "test", *scored]),
            settings={"protocol": self.protocol, "temperature_method": self.method,
                      "temperature_grid": list(M.PAPER_TEMPERATURES), "grid_criterion": self.criterion,
                      "temperature_fit_set": fit_key, "bins": bins, "headline_includes_id": self.with_id,
                      "ece": "netcal ECE, equal-width bins, top-label confidence",
                      "brier": "sum over classes of squared error, mean over examples",
                      "headline": f"mean ECE after temperature scaling over {described}, one weight per set"},
            warnings=warnings,
            artifacts=[str(rel.relative_to(ctx.run_dir))],
        )
