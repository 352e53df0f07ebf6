"""Anomaly (OOD) detection: the task's ``ood:*`` sets vs the in-distribution test set.

OOD is the positive class and every score is "higher = more anomalous":
- ``msp``: -max softmax probability (the paper's headline score);
- ``max_logit``: -max logit;
- ``energy``: -logsumexp(logits);
- ``mahalanobis``: min over classes of the squared Mahalanobis distance of the penultimate
  features, class means and a shared (tied) covariance fitted on the ``train`` split, with a
  relative ridge ``mahalanobis_ridge * mean(diag(cov))``.
Per score and OOD set: AUROC, AUPR (OOD positive), FPR at 95% TPR; plus their means over sets.
OOD texts that also occur in the test set (exact text) are dropped with a warning; an OOD set
that lies entirely inside the test set is a ConfigError.

Per-example data (version 2): ``details.examples`` holds the headline detector's score (MSP) of every
example the headline AUROC is computed on, full float precision, in set order: ``{"score": "msp",
"in": [test scores], "out": {ood set: [scores of the kept texts]}}``. The headline is the mean over
OOD sets of the AUROC of ``out[set]`` against ``in``, so the board can bootstrap it, examples paired
across methods by index within each set.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from robench import metrics as M
from robench.configs import name_list, names, number, option
from robench.errors import ConfigError
from robench.evaluators.base import EvalOutput, Evaluator, register_evaluator
from robench.evaluators.shift import checked_logits, group_keys, labelled_predictions
from robench.results import MetricSpec

SCORES = ("msp", "max_logit", "energy", "mahalanobis")
HEADLINE_SCORE = "msp"
LOGIT_SCORES = {"msp": M.msp_score, "max_logit": M.max_logit_score, "energy": M.energy_score}


@register_evaluator("anomaly", aliases=("ood", "ood-detection"))
class Anomaly(Evaluator):
    description = "OOD detection vs the in-distribution test set: AUROC/AUPR/FPR95 of MSP, max logit, energy, Mahalanobis"
    aspect = "anomaly"
    version = 2  # 2: per-example scores of the headline detector (details.examples)
    headline_score = HEADLINE_SCORE
    metrics = (
        MetricSpec("auroc", "higher", aspect, headline=True, column="auroc", label="AUROC", short="AUROC",
                   per_example="examples", statistic="auroc"),
        MetricSpec("aupr", "higher", aspect),
        MetricSpec("fpr95", "lower", aspect),
        MetricSpec("scores.*.auroc", "higher", aspect),
        MetricSpec("scores.*.aupr", "higher", aspect),
        MetricSpec("scores.*.fpr95", "lower", aspect),
    )

    @dataclass
    class Config:
        scores: list[str] = field(default_factory=lambda: list(SCORES), metadata=option(
            "a score name or a list of them", names, "scores: [msp, energy]"))
        mahalanobis_ridge: float = field(default=1e-3, metadata=option(
            "a positive number", lambda v: number(v) and v > 0, "mahalanobis_ridge: 0.001"))

        def __post_init__(self) -> None:
            scores = name_list(self.scores)
            unknown = [s for s in scores if s not in SCORES]
            if unknown or not scores:
                raise ConfigError(f"anomaly: unknown score {unknown[0] if unknown else '(none)'}; choose from "
                                  f"{', '.join(SCORES)}")
            if HEADLINE_SCORE not in scores:
                scores.insert(0, HEADLINE_SCORE)
            if not (number(self.mahalanobis_ridge) and self.mahalanobis_ridge > 0):
                raise ConfigError(f"anomaly: mahalanobis_ridge must be positive, got {self.mahalanobis_ridge}")
            self.scores, self.mahalanobis_ridge = scores, float(self.mahalanobis_ridge)

    def __init__(self, config: Config | None = None, **options) -> None:
        super().__init__(config, **options)
        self.scores, self.ridge = self.config.scores, self.config.mahalanobis_ridge

    def evaluate(self, ctx) -> EvalOutput:
        keys = group_keys(ctx, "ood", self.name)
        warnings: list[str] = []
        use_maha = "mahalanobis" in self.scores
        test_preds, _ = labelled_predictions(ctx, "test", features=use_maha)
        test_texts = set(ctx.texts("test"))

        # ---- OOD sets, minus any text that is also in the in-distribution test set
        ood: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
        dropped: dict[str, int] = {}
        for key in keys:
            name = key.split(":", 1)[1]
            texts = ctx.texts(key)
            if not texts:
                raise ConfigError(f"task {ctx.task.name!r}: OOD set {key!r} is empty; check its source and limit")
            keep = np.array([t not in test_texts for t in texts], dtype=bool)
            if not keep.any():
                raise ConfigError(f"task {ctx.task.name!r}: every text of OOD set {key!r} also occurs in the "
                                  "in-distribution test set; it is not out-of-distribution, fix the task's sources")
            dropped[name] = int((~keep).sum())
            if dropped[name]:
                warnings.append(f"OOD set {name!r}: dropped {dropped[name]} of {len(texts)} texts that also occur "
                                "in the in-distribution test set")
            preds = checked_logits(ctx, key, len(texts), features=use_maha)
            feats = preds.features[keep] if preds.features is not None else None
            ood[name] = (preds.logits[keep], feats)

        # ---- scores (higher = more anomalous)
        in_scores: dict[str, np.ndarray] = {}
        out_scores: dict[str, dict[str, np.ndarray]] = {}
        for score in self.scores:
            if score in LOGIT_SCORES:
                fn = LOGIT_SCORES[score]
                in_scores[score] = fn(test_preds.logits)
                out_scores[score] = {n: fn(lg) for n, (lg, _) in ood.items()}
        maha_info = None
        if use_maha:
            maha_info = self._mahalanobis(ctx, test_preds, ood, in_scores, out_scores, warnings)

        # ---- metrics
        table: dict[str, dict[str, dict[str, float]]] = {}
        curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
        aurocs: dict[str, float] = {}
        for score in in_scores:
            table[score] = {}
            curves[score] = {}
            for name, s_out in out_scores[score].items():
                table[score][name] = M.ood_metrics(in_scores[score], s_out)
                curves[score][name] = M.roc(in_scores[score], s_out)
                aurocs[f"{score}/{name}"] = table[score][name]["auroc"]
            table[score]["mean"] = {m: float(np.mean([table[score][n][m] for n in ood])) for m in ("auroc", "aupr", "fpr95")}

        roc_path = ctx.artifact("anomaly_roc.png")
        from robench.plots import roc_plot

        roc_plot({}, roc_path, panels=curves, aurocs=aurocs)
        data = ctx.data_info(["test", *keys] + (["train"] if maha_info else []))
        for name, n in dropped.items():
            data[f"ood:{name}"]["used"] = data[f"ood:{name}"]["size"] - n
        headline = self.headline_score
        head = table[headline]["mean"]
        examples = {"score": headline, "in": in_scores[headline].tolist(),
                    "out": {n: s.tolist() for n, s in out_scores[headline].items()}}
        return EvalOutput(
            metrics={"auroc": head["auroc"], "aupr": head["aupr"], "fpr95": head["fpr95"], "scores": table},
            details={"dropped_overlap": dropped, "mahalanobis": maha_info,
                     "n_in": int(len(test_preds.logits)), "n_out": {n: int(len(lg)) for n, (lg, _) in ood.items()},
                     "examples": examples},
            data=data,
            settings={"scores_computed": list(in_scores), "headline": "mean MSP AUROC over OOD sets (OOD positive)",
                      "in_distribution": "test", "mahalanobis_fit_set": "train", "mahalanobis_ridge": self.ridge,
                      "mahalanobis_covariance": "tied (shared) across classes, relative ridge on the diagonal",
                      "fpr95": "FPR at the first threshold reaching TPR >= 0.95"},
            warnings=warnings,
            artifacts=[str(roc_path.relative_to(ctx.run_dir))],
        )

    def _mahalanobis(self, ctx, test_preds, ood, in_scores, out_scores, warnings) -> dict | None:
        if test_preds.features is None or any(f is None for _, f in ood.values()):
            warnings.append("mahalanobis score skipped: the model exposes no penultimate features")
            return None
        train_preds, train_labels = labelled_predictions(ctx, "train", features=True)
        if train_preds.features is None:
            warnings.append("mahalanobis score skipped: the model exposes no penultimate features")
            return None
        k = len(ctx.task.labels)
        det = M.Mahalanobis(self.ridge).fit(train_preds.features, train_labels, k)
        missing = [ctx.task.labels[c] for c in range(k) if c not in det.classes]
        if missing:
            warnings.append(f"mahalanobis: no training examples of class(es) {missing}; their means are left out")
        dim = int(train_preds.features.shape[1])
        if len(train_labels) <= dim:
            warnings.append(f"mahalanobis: {len(train_labels)} training examples for {dim} feature dimensions; "
                            "the covariance rests on the ridge")
        in_scores["mahalanobis"] = det.score(test_preds.features)
        out_scores["mahalanobis"] = {n: det.score(f) for n, (_, f) in ood.items()}
        return {"n_train": int(len(train_labels)), "dim": dim, "classes": [ctx.task.labels[c] for c in det.classes]}
