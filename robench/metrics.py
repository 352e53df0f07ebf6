"""Metric functions on numpy arrays: calibration (ECE, MCE, Brier, NLL), temperature scaling, OOD detection.

Pure functions (numpy / scikit-learn / netcal, no torch, no file I/O) so that evaluators, reports and
a leaderboard can share them. Inputs are validated: an empty array, mismatched lengths or a label
outside ``[0, K)`` raise ``ValueError`` instead of returning a silently wrong number.

Conventions
- ``probs``: (N, K) class probabilities (rows sum to 1); ``logits``: (N, K); ``labels``: (N,) ints.
- ECE / MCE are top-label (confidence = max probability, correct = argmax == label) with
  equal-width bins over [0, 1], computed by netcal.
- Brier score: mean over examples of ``sum_k (p_k - onehot_k)^2`` (Brier's original multi-class
  form; for two classes it is twice the ``(p_pos - y)^2`` form).
- NLL: mean ``-log p_label`` (natural log).
- Temperature ``T`` divides the logits: ``softmax(logits / T)``; ``T > 1`` softens.
- OOD detection: higher score = more anomalous; OOD is the positive class.
"""

from __future__ import annotations

from typing import Any

import numpy as np

PAPER_TEMPERATURES: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
DEFAULT_BINS = 10


# ---------------------------------------------------------------- validation helpers


# Default bootstrap resamples for significance tests: Holm over a row's ~6 tested columns needs a
# raw p < 0.01/6 for `**`, and B resamples cannot give a p below 2/(B+1): 1,000 could never mark `**`.
N_BOOT = 10_000


def _check_probs_labels(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if probs.ndim != 2:
        raise ValueError(f"probabilities must be a 2-D (N, K) array, got shape {probs.shape}")
    if probs.shape[0] == 0:
        raise ValueError("no examples: cannot compute a metric on an empty set")
    if labels.shape != (probs.shape[0],):
        raise ValueError(f"labels shape {labels.shape} does not match {probs.shape[0]} examples")
    if not np.issubdtype(labels.dtype, np.integer):
        if not np.all(np.equal(np.mod(labels, 1), 0)):
            raise ValueError("labels must be integers")
        labels = labels.astype(np.int64)
    k = probs.shape[1]
    if labels.min() < 0 or labels.max() >= k:
        bad = labels[(labels < 0) | (labels >= k)][0]
        raise ValueError(f"label {int(bad)} is outside the {k} classes")
    if not np.all(np.isfinite(probs)):
        raise ValueError("probabilities contain NaN or infinity")
    return probs, labels.astype(np.int64)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Softmax of ``logits / temperature`` along the last axis (float64, numerically stable)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def log_softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    z = np.asarray(logits, dtype=np.float64) / temperature
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def logsumexp(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    m = z.max(axis=-1)
    return m + np.log(np.exp(z - m[..., None]).sum(axis=-1))


# ---------------------------------------------------------------- accuracy and calibration


def accuracy(logits_or_probs: np.ndarray, labels: np.ndarray) -> float:
    probs, labels = _check_probs_labels(logits_or_probs, labels)
    return float(np.mean(probs.argmax(-1) == labels))


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = DEFAULT_BINS) -> float:
    """Top-label expected calibration error, ``bins`` equal-width bins (netcal)."""
    probs, labels = _check_probs_labels(probs, labels)
    return ece_from_confidence(*_top_label(probs, labels), bins)


def ece_from_confidence(confidence: np.ndarray, correct: np.ndarray, bins: int = DEFAULT_BINS) -> float:
    """ECE from (N,) top-label confidences and (N,) 0/1 correctness (netcal): what :func:`ece` computes,
    so per-example confidences and correctness stored in a result reproduce its ECE exactly."""
    from netcal.metrics import ECE

    conf, hits = _check_confidence(confidence, correct)
    return float(ECE(bins=bins).measure(conf, hits))


def _check_confidence(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    hits = np.asarray(correct).ravel()
    if conf.size == 0:
        raise ValueError("no examples: cannot compute a metric on an empty set")
    if hits.shape != conf.shape:
        raise ValueError(f"{hits.size} correctness values for {conf.size} confidences")
    if not np.all(np.isfinite(conf)) or conf.min() < 0 or conf.max() > 1:
        raise ValueError("confidences must be finite and in [0, 1]")
    if not np.all((hits == 0) | (hits == 1)):
        raise ValueError("correctness must be 0/1")
    return conf, hits.astype(np.int64)


def ece_weighted(confidence: np.ndarray, correct: np.ndarray, bins: int = DEFAULT_BINS,
                 weights: np.ndarray | None = None) -> np.ndarray:
    """ECE of many reweightings of one set at once (numpy): ``weights`` (B, N) example multiplicities,
    e.g. the counts of a bootstrap resample; ``None`` = every example once. Returns (B,) ECEs.

    The binning is netcal's (:func:`ece_from_confidence`): confidences clipped to [eps, 1 - eps],
    ``bins`` equal-width bins, bin i = [i/bins, (i+1)/bins) with linspace edges; ECE = sum over bins of
    |sum(confidence) - sum(correct)| / N, which is netcal's sum of (n_bin / N) |mean conf - accuracy|
    (they agree to float rounding, a test checks).
    """
    conf, hits = _check_confidence(confidence, correct)
    w = np.ones((1, conf.size)) if weights is None else np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if w.shape[1] != conf.size:
        raise ValueError(f"weights for {w.shape[1]} examples, the set has {conf.size}")
    eps = np.finfo(np.float64).eps
    conf = np.clip(conf, eps, 1.0 - eps)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, bins - 1)
    gaps = np.zeros((conf.size, bins))
    gaps[np.arange(conf.size), which] = conf - hits
    return np.abs(w @ gaps).sum(axis=1) / w.sum(axis=1)


def mce(probs: np.ndarray, labels: np.ndarray, bins: int = DEFAULT_BINS) -> float:
    """Top-label maximum calibration error over non-empty equal-width bins (netcal)."""
    from netcal.metrics import MCE

    probs, labels = _check_probs_labels(probs, labels)
    conf, correct = _top_label(probs, labels)
    return float(MCE(bins=bins).measure(conf, correct))


def _top_label(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N,) top-label confidences and (N,) 0/1 correctness, the input form netcal reads as top-label.

    Passing (N, K) probabilities is NOT top-label in netcal 1.4: when the labels hold at most two
    distinct values it switches to binary mode and scores the column-1 probability against the
    label (and raises on K > 2); so the top-label reduction is done here.
    """
    return probs.max(axis=1), (probs.argmax(axis=1) == labels).astype(np.int64)


def brier(probs: np.ndarray, labels: np.ndarray) -> float:
    """Multi-class Brier score: mean of ``sum_k (p_k - onehot_k)^2``."""
    probs, labels = _check_probs_labels(probs, labels)
    onehot = np.zeros_like(probs)
    onehot[np.arange(len(labels)), labels] = 1.0
    return float(np.mean(np.sum((probs - onehot) ** 2, axis=1)))


def nll(probs: np.ndarray, labels: np.ndarray, eps: float = 1e-12) -> float:
    """Mean negative log-likelihood of the true class (probabilities clipped at ``eps``)."""
    probs, labels = _check_probs_labels(probs, labels)
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(labels)), labels], eps, 1.0))))


def nll_from_logits(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """NLL of ``softmax(logits / T)`` computed in log space (exact for very confident logits)."""
    logits, labels = _check_probs_labels(logits, labels)
    logp = log_softmax(logits, temperature)
    return float(-np.mean(logp[np.arange(len(labels)), labels]))


def reliability_bins(probs: np.ndarray, labels: np.ndarray, bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """Per-bin count, mean confidence and accuracy of the top label (for reliability diagrams), binned
    exactly as the ECE bins them (:func:`confidence_bins`): a diagram's bars are the ECE's bins."""
    probs, labels = _check_probs_labels(probs, labels)
    return confidence_bins(probs.max(axis=1), (probs.argmax(axis=1) == labels).astype(np.int64), bins)


def confidence_bins(confidence: np.ndarray, correct: np.ndarray, bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """:func:`reliability_bins` from stored top-label confidences and 0/1 correctness (a result's
    ``details.examples``), binned exactly as the ECE bins them (:func:`ece_weighted`, netcal's binning)."""
    conf, hits = _check_confidence(confidence, correct)
    eps = np.finfo(np.float64).eps
    conf = np.clip(conf, eps, 1.0 - eps)
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, bins - 1)
    count = np.bincount(idx, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, weights=conf, minlength=bins) / count
        acc = np.bincount(idx, weights=hits.astype(np.float64), minlength=bins) / count
    return {"edges": edges.tolist(), "count": count.tolist(),
            "confidence": [None if c == 0 else float(v) for c, v in zip(count, mean_conf, strict=True)],
            "accuracy": [None if c == 0 else float(v) for c, v in zip(count, acc, strict=True)]}


def calibration_metrics(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0,
                        bins: int = DEFAULT_BINS) -> dict[str, float]:
    """ECE, MCE, Brier, NLL and accuracy of ``softmax(logits / T)``; plus mean confidence."""
    probs = softmax(logits, temperature)
    probs, labels = _check_probs_labels(probs, labels)
    return {
        "ece": ece(probs, labels, bins),
        "mce": mce(probs, labels, bins),
        "brier": brier(probs, labels),
        "nll": nll_from_logits(logits, labels, temperature),
        "accuracy": float(np.mean(probs.argmax(1) == labels)),
        "confidence": float(np.mean(probs.max(1))),
        "n": int(len(labels)),
    }


# ---------------------------------------------------------------- temperature scaling


def fit_temperature_grid(logits: np.ndarray, labels: np.ndarray, grid: tuple[float, ...] = PAPER_TEMPERATURES,
                         criterion: str = "nll", bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """Pick T from ``grid`` minimising ``criterion`` (``nll`` or ``ece``) on the given (held-out) set.

    Returns ``{"temperature": T, "criterion": ..., "values": {T: value}}``; the returned
    temperature is the grid *value* (not its index), ties go to the first (smallest) T.
    """
    if criterion not in {"nll", "ece"}:
        raise ValueError(f"unknown temperature criterion {criterion!r}; use nll or ece")
    if not grid or any(t <= 0 for t in grid):
        raise ValueError("temperature grid must be non-empty and positive")
    values = {}
    for t in grid:
        if criterion == "nll":
            values[float(t)] = nll_from_logits(logits, labels, t)
        else:
            values[float(t)] = ece(softmax(logits, t), labels, bins)
    best = min(values, key=lambda t: values[t])
    return {"temperature": best, "criterion": criterion, "values": values}


def fit_temperature_nll(logits: np.ndarray, labels: np.ndarray, t_min: float = 0.01,
                        t_max: float = 100.0) -> dict[str, Any]:
    """Continuous T minimising NLL on the given (held-out) set.

    NLL is convex in ``1/T``, so a bounded scalar search over ``log T`` finds the optimum.
    """
    from scipy.optimize import minimize_scalar

    logits, labels = _check_probs_labels(logits, labels)
    res = minimize_scalar(lambda lt: nll_from_logits(logits, labels, float(np.exp(lt))),
                          bounds=(np.log(t_min), np.log(t_max)), method="bounded",
                          options={"xatol": 1e-5})
    t = float(np.exp(res.x))
    return {"temperature": t, "criterion": "nll", "nll": float(res.fun),
            "at_bound": bool(np.isclose(t, t_min, rtol=1e-3) or np.isclose(t, t_max, rtol=1e-3))}


# ---------------------------------------------------------------- OOD detection


def _check_scores(scores_in: np.ndarray, scores_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s_in = np.asarray(scores_in, dtype=np.float64).ravel()
    s_out = np.asarray(scores_out, dtype=np.float64).ravel()
    if s_in.size == 0 or s_out.size == 0:
        raise ValueError("OOD metrics need at least one in-distribution and one OOD score")
    if not (np.all(np.isfinite(s_in)) and np.all(np.isfinite(s_out))):
        raise ValueError("anomaly scores contain NaN or infinity")
    return s_in, s_out


def ood_labels_scores(scores_in: np.ndarray, scores_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s_in, s_out = _check_scores(scores_in, scores_out)
    y = np.concatenate([np.zeros(len(s_in), dtype=np.int64), np.ones(len(s_out), dtype=np.int64)])
    return y, np.concatenate([s_in, s_out])


def auroc(scores_in: np.ndarray, scores_out: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    y, s = ood_labels_scores(scores_in, scores_out)
    return float(roc_auc_score(y, s))


def auroc_weighted(scores_in: np.ndarray, scores_out: np.ndarray, weights_in: np.ndarray | None = None,
                   weights_out: np.ndarray | None = None) -> np.ndarray:
    """AUROC of many reweightings at once (numpy): ``weights_in`` (B, N_in) and ``weights_out``
    (B, N_out) example multiplicities, e.g. the counts of bootstrap resamples; ``None`` = each example
    once. Returns (B,) AUROCs: the weighted share of (in, out) pairs with the OOD score higher, ties
    counting one half (Mann-Whitney), which is what :func:`auroc` (scikit-learn) computes."""
    s_in, s_out = _check_scores(scores_in, scores_out)
    w_in = np.ones((1, s_in.size)) if weights_in is None else np.atleast_2d(np.asarray(weights_in, dtype=np.float64))
    w_out = (np.ones((1, s_out.size)) if weights_out is None
             else np.atleast_2d(np.asarray(weights_out, dtype=np.float64)))
    if w_in.shape[1] != s_in.size or w_out.shape[1] != s_out.size:
        raise ValueError("weights do not match the number of scores")
    order = np.argsort(s_in, kind="stable")
    ranked = s_in[order]
    cum = np.concatenate([np.zeros((w_in.shape[0], 1)), np.cumsum(w_in[:, order], axis=1)], axis=1)
    below = cum[:, np.searchsorted(ranked, s_out, side="left")]  # weight of in-scores lower than each out-score
    ties = cum[:, np.searchsorted(ranked, s_out, side="right")] - below
    return (w_out * (below + 0.5 * ties)).sum(axis=1) / (w_in.sum(axis=1) * w_out.sum(axis=1))


def aupr(scores_in: np.ndarray, scores_out: np.ndarray) -> float:
    """Average precision with OOD as the positive class."""
    from sklearn.metrics import average_precision_score

    y, s = ood_labels_scores(scores_in, scores_out)
    return float(average_precision_score(y, s))


def roc(scores_in: np.ndarray, scores_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) of the ROC curve, OOD positive, every threshold kept."""
    from sklearn.metrics import roc_curve

    y, s = ood_labels_scores(scores_in, scores_out)
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    return fpr, tpr


def fpr_at_tpr(scores_in: np.ndarray, scores_out: np.ndarray, tpr_level: float = 0.95) -> float:
    """False-positive rate (in-distribution flagged) at the first threshold reaching ``tpr_level`` TPR."""
    fpr, tpr = roc(scores_in, scores_out)
    return float(fpr[np.argmax(tpr >= tpr_level - 1e-12)])


def ood_metrics(scores_in: np.ndarray, scores_out: np.ndarray) -> dict[str, float]:
    return {"auroc": auroc(scores_in, scores_out), "aupr": aupr(scores_in, scores_out),
            "fpr95": fpr_at_tpr(scores_in, scores_out, 0.95)}


def msp_score(logits: np.ndarray) -> np.ndarray:
    """Anomaly score = -max softmax probability (the paper's baseline)."""
    return -softmax(logits).max(axis=-1)


def max_logit_score(logits: np.ndarray) -> np.ndarray:
    return -np.asarray(logits, dtype=np.float64).max(axis=-1)


def energy_score(logits: np.ndarray) -> np.ndarray:
    """Energy ``-logsumexp(logits)`` (temperature 1): higher = more anomalous."""
    return -logsumexp(logits)


class Mahalanobis:
    """Class-conditional Gaussians with a shared (tied) covariance on penultimate features.

    ``ridge`` is relative: ``ridge * mean(diag(cov))`` is added to the diagonal, which keeps the
    covariance invertible when there are fewer examples than dimensions.
    Score = min over classes of the squared Mahalanobis distance (higher = more anomalous).
    """

    def __init__(self, ridge: float = 1e-3) -> None:
        self.ridge = ridge
        self.means: np.ndarray | None = None
        self._chol: np.ndarray | None = None

    def fit(self, features: np.ndarray, labels: np.ndarray, num_classes: int | None = None) -> Mahalanobis:
        x = np.asarray(features, dtype=np.float64)
        y = np.asarray(labels, dtype=np.int64)
        if x.ndim != 2 or x.shape[0] == 0 or y.shape != (x.shape[0],):
            raise ValueError("Mahalanobis fit needs (N, H) features and (N,) labels with N > 0")
        k = num_classes or int(y.max()) + 1
        if y.min() < 0 or y.max() >= k:
            raise ValueError(f"label outside the {k} classes in Mahalanobis fit")
        present = [c for c in range(k) if np.any(y == c)]
        if not present:
            raise ValueError("no class has training examples")
        self.means = np.stack([x[y == c].mean(axis=0) for c in present])
        centered = x - self.means[np.searchsorted(present, y)]
        cov = centered.T @ centered / x.shape[0]
        scale = float(np.mean(np.diag(cov))) or 1.0
        cov = cov + self.ridge * scale * np.eye(cov.shape[0])
        self._chol = np.linalg.cholesky(cov)
        self.classes = present
        return self

    def score(self, features: np.ndarray) -> np.ndarray:
        from scipy.linalg import solve_triangular

        if self.means is None or self._chol is None:
            raise RuntimeError("Mahalanobis.score before fit")
        x = np.asarray(features, dtype=np.float64)
        dists = []
        for mu in self.means:
            z = solve_triangular(self._chol, (x - mu).T, lower=True)
            dists.append(np.sum(z * z, axis=0))
        return np.min(np.stack(dists, axis=1), axis=1)


def wilson_interval(successes: float, n: float, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval of a proportion ``successes / n`` (95% for the default ``z``).

    Wilson (1927): unlike the normal (Wald) interval it stays inside [0, 1] and keeps its coverage
    near 0 and 1, where accuracy under attack often lies. ``successes`` may be fractional (a mean
    accuracy times ``n``). ``n <= 0`` (or non-finite input) -> ``(nan, nan)``. The interval covers the
    sampling of examples for one fixed model, nothing else (not the spread over training seeds).
    """
    n = float(n)
    successes = float(successes)
    if not (np.isfinite(n) and np.isfinite(successes)) or n <= 0:
        return float("nan"), float("nan")
    p = min(1.0, max(0.0, successes / n))
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def examples_for_half_width(half_width: float, p: float = 0.5, z: float = 1.959963984540054) -> int:
    """The smallest n whose Wilson interval at proportion ``p`` is at most +/- ``half_width`` (worst case p=0.5)."""
    n = 1
    while True:
        lo, hi = wilson_interval(p * n, n, z)
        if max(hi - p, p - lo) <= half_width:
            return n
        n += 1
