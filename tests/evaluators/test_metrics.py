"""Metric functions against small independent computations and closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from robench import metrics as M

# Fixed binary probabilities (P(positive)) with labels; confidences avoid bin edges.
P_POS = np.array([0.93, 0.81, 0.77, 0.62, 0.55, 0.38, 0.27, 0.12, 0.97, 0.45, 0.66, 0.84])
Y = np.array([1, 1, 0, 1, 0, 0, 1, 0, 1, 1, 0, 1])
PROBS = np.stack([1 - P_POS, P_POS], axis=1)


def hand_ece_mce(probs, labels, bins=10):
    """Top-label ECE / MCE with equal-width bins, written out without numpy tricks."""
    n = len(labels)
    buckets = [[] for _ in range(bins)]
    for p, y in zip(probs, labels, strict=True):
        conf = max(p)
        pred = list(p).index(conf)
        b = min(int(conf * bins), bins - 1)
        buckets[b].append((conf, 1.0 if pred == y else 0.0))
    ece, mce = 0.0, 0.0
    for items in buckets:
        if not items:
            continue
        gap = abs(sum(c for c, _ in items) / len(items) - sum(a for _, a in items) / len(items))
        ece += len(items) / n * gap
        mce = max(mce, gap)
    return ece, mce


def test_ece_mce_binary_match_hand_computation():
    ece, mce = hand_ece_mce(PROBS, Y)
    assert M.ece(PROBS, Y) == pytest.approx(ece, abs=1e-9)
    assert M.mce(PROBS, Y) == pytest.approx(mce, abs=1e-9)


def test_ece_is_top_label_not_positive_class():
    # all predictions are class 0 with confidence 0.9 and correct 90% of the time: perfectly calibrated
    probs = np.tile([0.9, 0.1], (10, 1))
    labels = np.array([0] * 9 + [1])
    assert M.ece(probs, labels) == pytest.approx(0.0, abs=1e-9)


def test_ece_multiclass_and_single_example():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(40, 3)) * 2
    probs = M.softmax(logits)
    labels = np.array([0, 1, 2, 1] * 10)
    ece, mce = hand_ece_mce(probs, labels)
    assert M.ece(probs, labels) == pytest.approx(ece, abs=1e-9)
    assert M.mce(probs, labels) == pytest.approx(mce, abs=1e-9)
    # one example, only two of three labels present: still top-label, no crash
    assert M.ece(probs[:1], labels[:1]) == pytest.approx(hand_ece_mce(probs[:1], labels[:1])[0])
    assert M.ece(probs[:2], labels[:2]) == pytest.approx(hand_ece_mce(probs[:2], labels[:2])[0])


def test_brier_and_nll_by_hand():
    brier = np.mean([(p[0] - (y == 0)) ** 2 + (p[1] - (y == 1)) ** 2 for p, y in zip(PROBS, Y, strict=True)])
    nll = -np.mean([np.log(p[y]) for p, y in zip(PROBS, Y, strict=True)])
    assert M.brier(PROBS, Y) == pytest.approx(brier)
    assert M.nll(PROBS, Y) == pytest.approx(nll)
    logits = np.log(PROBS)
    assert M.nll_from_logits(logits, Y) == pytest.approx(nll)
    assert M.nll_from_logits(logits * 2, Y, temperature=2.0) == pytest.approx(nll)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="empty"):
        M.ece(np.zeros((0, 2)), np.zeros(0, dtype=int))
    with pytest.raises(ValueError, match="outside"):
        M.brier(PROBS, np.where(Y == 1, 2, 0))
    with pytest.raises(ValueError, match="does not match"):
        M.nll(PROBS, Y[:-1])
    with pytest.raises(ValueError):
        M.softmax(PROBS, temperature=0.0)
    with pytest.raises(ValueError):
        M.auroc(np.array([]), np.array([1.0]))


def _overconfident(n=600, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    logits = rng.normal(size=(n, 2))
    logits[np.arange(n), labels] += 1.0  # a moderately informative model ...
    return logits * 6.0, labels  # ... made over-confident


def test_temperature_fits_exceed_one_and_reduce_nll():
    logits, labels = _overconfident()
    base = M.nll_from_logits(logits, labels)
    grid = M.fit_temperature_grid(logits, labels)
    cont = M.fit_temperature_nll(logits, labels)
    assert grid["temperature"] in M.PAPER_TEMPERATURES and grid["temperature"] > 1
    assert cont["temperature"] > 1 and not cont["at_bound"]
    assert M.nll_from_logits(logits, labels, grid["temperature"]) < base
    assert cont["nll"] < base
    assert cont["nll"] <= min(grid["values"].values()) + 1e-9  # the continuous optimum is at least as good
    # the returned temperature is the grid value, never an index
    assert grid["values"][grid["temperature"]] == min(grid["values"].values())
    # calibrated logits: T close to 1
    rng = np.random.default_rng(3)
    z = rng.normal(size=(4000, 2)) * 2
    y = np.array([rng.choice(2, p=p) for p in M.softmax(z)])
    assert M.fit_temperature_nll(z, y)["temperature"] == pytest.approx(1.0, abs=0.15)


def test_ood_perfect_and_identical():
    s_in, s_out = np.arange(20.0), np.arange(20.0) + 100
    assert M.ood_metrics(s_in, s_out) == {"auroc": 1.0, "aupr": 1.0, "fpr95": 0.0}
    same = M.ood_metrics(np.zeros(10), np.zeros(10))
    assert same["auroc"] == 0.5
    assert same["fpr95"] == 1.0
    assert same["aupr"] == pytest.approx(0.5)  # AP of a constant score = positive share


@pytest.mark.parametrize("n", [4, 10])
def test_ood_one_flipped_pair(n):
    s_in, s_out = np.arange(n, dtype=float), np.arange(n, dtype=float) + n
    s_in[-1], s_out[0] = s_out[0], s_in[-1]  # swap the top in-score with the lowest OOD score
    assert M.auroc(s_in, s_out) == pytest.approx(1 - 1 / n**2)
    # TPR reaches 95% only after the flipped OOD example is passed, so one in-distribution FP
    assert M.fpr_at_tpr(s_in, s_out) == pytest.approx(1 / n)
    # AP: precision 1 at ranks 1..n-1, then the in example (rank n), the last OOD at rank n+1
    expected_ap = ((n - 1) * 1.0 + n / (n + 1)) / n
    assert M.aupr(s_in, s_out) == pytest.approx(expected_ap)


def test_fpr95_threshold():
    # 20 OOD: 19 well above, 1 below every in-score -> TPR 0.95 reached with no false positive
    s_in = np.linspace(0, 1, 10)
    s_out = np.concatenate([np.full(19, 5.0), [-1.0]])
    assert M.fpr_at_tpr(s_in, s_out, 0.95) == 0.0
    assert M.fpr_at_tpr(s_in, s_out, 0.99) == 1.0


def test_logit_scores_direction():
    logits = np.array([[8.0, -8.0], [0.1, 0.0]])  # confident (in-like) vs unsure (OOD-like)
    for fn in (M.msp_score, M.max_logit_score, M.energy_score):
        s = fn(logits)
        assert s[1] > s[0]
    assert M.energy_score(logits)[0] == pytest.approx(-np.log(np.exp(8) + np.exp(-8)))


def test_mahalanobis_tied_covariance():
    rng = np.random.default_rng(0)
    means = np.array([[3.0, 0.0], [-3.0, 0.0]])
    y = rng.integers(0, 2, 500)
    x = means[y] + rng.normal(size=(500, 2)) * [1.0, 0.2]
    det = M.Mahalanobis(ridge=1e-6).fit(x, y, 2)
    assert np.allclose(det.means, means, atol=0.2)
    # distance along the low-variance axis counts ~25x more than along the wide one
    near_wide = det.score(np.array([[3.0 + 1.0, 0.0]]))[0]
    near_narrow = det.score(np.array([[3.0, 0.2]]))[0]
    assert near_wide == pytest.approx(near_narrow, rel=0.25)
    assert det.score(np.array([[0.0, 3.0]]))[0] > 100 * det.score(np.array([[3.0, 0.0]]))[0]
    # fewer examples than dimensions: the ridge keeps it invertible
    small = M.Mahalanobis().fit(rng.normal(size=(5, 16)), np.array([0, 1, 0, 1, 0]), 2)
    assert np.all(np.isfinite(small.score(rng.normal(size=(3, 16)))))


def test_reliability_plot_and_roc_plot(tmp_path):
    from robench.plots import reliability_diagram, roc_plot

    out = reliability_diagram({"a": (PROBS, Y)}, tmp_path / "rel.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fpr, tpr = M.roc(np.arange(5.0), np.arange(5.0) + 2)
    out = roc_plot({"x": (fpr, tpr)}, tmp_path / "roc.png", aurocs={"x": 0.9})
    assert out.stat().st_size > 1000


def test_reliability_diagram_bins_are_the_eces_bins():
    """A confidence of exactly 0.6 or 0.7 falls in the bin the ECE puts it in (netcal's edges), so a diagram's
    bars are the bins the ECE averages over."""
    import robench.metrics as M

    conf = np.array([0.6, 0.6, 0.7, 1.0, 0.5, 0.55])
    probs = np.stack([conf, 1 - conf], axis=1)
    labels = np.array([0, 1, 0, 0, 1, 0])
    diagram = M.reliability_bins(probs, labels, 10)
    ece_bins = M.confidence_bins(conf, (labels == 0).astype(int), 10)
    assert diagram["count"] == ece_bins["count"] and diagram["accuracy"] == ece_bins["accuracy"]
    gaps = [abs(a - c) * n for a, c, n in zip(diagram["accuracy"], diagram["confidence"], diagram["count"],
                                              strict=True) if n]
    assert sum(gaps) / len(conf) == pytest.approx(M.ece(probs, labels, 10))
