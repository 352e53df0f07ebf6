"""Significance on every aspect: Holm's correction, the ECE / AUROC metric bootstrap, and how the board
uses them (markers from Holm-adjusted p, untested cells, the header text). Synthetic data, seconds."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from report_helpers import make_suite, write_result
from sklearn.metrics import roc_auc_score

from robench import metrics as M
from robench.report import build_leaderboard, format_table, write_leaderboard
from robench.report.stats import (
    STATISTICS,
    auroc_examples,
    ece_examples,
    example_metric,
    holm,
    metric_bootstrap,
    two_sided_p,
)
from robench.report.tables import table_rows
from robench.report.write import legend, legend_markdown

# --------------------------------------------------------------------------------------------- Holm


def test_holm_against_a_hand_computation():
    # sorted: 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04; running max 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02], abs=1e-15)
    # NaN (not tested) stays NaN and is not in the family: m = 2
    out = holm([0.01, float("nan"), 0.04])
    assert out[0] == pytest.approx(0.02) and np.isnan(out[1]) and out[2] == pytest.approx(0.04)
    # capped at 1: 3 * 0.5, then the running max keeps the rest at the cap
    assert list(holm([0.5, 0.6, 0.9])) == [1.0, 1.0, 1.0]
    assert list(holm([])) == [] and np.isnan(holm([float("nan")])[0])
    assert holm([0.2])[0] == pytest.approx(0.2)  # a family of one: unchanged


def test_holm_is_monotone_capped_and_never_below_raw():
    rng = np.random.default_rng(0)
    for _ in range(200):
        p = rng.random(rng.integers(1, 8)) ** 3
        adj = holm(p)
        assert np.all(adj >= p - 1e-15) and np.all(adj <= 1.0)
        order = np.argsort(p, kind="stable")
        assert np.all(np.diff(adj[order]) >= 0)  # a smaller raw p never gets a larger adjusted p
        assert adj[order[0]] == pytest.approx(min(1.0, len(p) * p[order[0]]))  # the smallest: Bonferroni


# --------------------------------------------------------------------------------------------- the metrics


def test_ece_weighted_is_netcals_ece_also_on_resamples():
    rng = np.random.default_rng(1)
    for trial in range(60):
        n = int(rng.integers(1, 120))
        conf = rng.uniform(0.34, 1.0, n)
        if trial % 3 == 0:
            conf = np.round(conf, 1)  # on the bin edges, and 1.0
        hits = (rng.random(n) < conf).astype(int)
        assert M.ece_weighted(conf, hits)[0] == pytest.approx(M.ece_from_confidence(conf, hits), abs=1e-12)
        counts = rng.multinomial(n, np.ones(n) / n)  # a bootstrap resample as multiplicities
        resampled = M.ece_from_confidence(np.repeat(conf, counts), np.repeat(hits, counts))
        assert M.ece_weighted(conf, hits, weights=counts)[0] == pytest.approx(resampled, abs=1e-12)


def test_auroc_weighted_is_sklearns_auroc_also_on_resamples():
    rng = np.random.default_rng(2)
    for trial in range(60):
        s_in, s_out = rng.normal(size=rng.integers(1, 80)), rng.normal(0.5, size=rng.integers(1, 80))
        if trial % 2:
            s_in, s_out = np.round(s_in, 1), np.round(s_out, 1)  # ties
        assert M.auroc_weighted(s_in, s_out)[0] == pytest.approx(M.auroc(s_in, s_out), abs=1e-12)
        w_in = rng.multinomial(len(s_in), np.ones(len(s_in)) / len(s_in))
        w_out = rng.multinomial(len(s_out), np.ones(len(s_out)) / len(s_out))
        y = np.r_[np.zeros(w_in.sum()), np.ones(w_out.sum())]
        expected = roc_auc_score(y, np.r_[np.repeat(s_in, w_in), np.repeat(s_out, w_out)])
        assert M.auroc_weighted(s_in, s_out, w_in, w_out)[0] == pytest.approx(expected, abs=1e-12)


def test_ece_over_sets_is_the_mean_of_per_set_eces_not_the_pooled_ece():
    """As the evaluator averages: each set's ECE, then the unweighted mean (sets of different sizes)."""
    a = {"confidence": [0.9] * 10, "correct": "1" * 9 + "0"}  # calibrated: ECE 0
    b = {"confidence": [0.9] * 90, "correct": "0" * 90}  # ECE 0.9
    data = ece_examples({"bins": 10, "sets": {"a": a, "b": b}})
    per_set = [M.ece_from_confidence(s["confidence"], [int(c) for c in s["correct"]]) for s in (a, b)]
    pooled = M.ece_from_confidence([0.9] * 100, [1] * 9 + [0] * 91)
    assert example_metric(data, "ece") == pytest.approx(np.mean(per_set)) == pytest.approx(0.45)
    assert abs(pooled - 0.45) > 0.3


def test_auroc_over_ood_sets_is_the_mean_against_one_in_distribution_set():
    data = auroc_examples({"in": [0.0, 1.0, 2.0], "out": {"far": [5.0, 6.0], "near": [0.5, 1.5]}})
    assert example_metric(data, "auroc") == pytest.approx(np.mean([1.0, M.auroc([0, 1, 2], [0.5, 1.5])]))


# --------------------------------------------------------------------------------------------- the metric bootstrap


def ece_data(conf, correct, name="s"):
    bits = "".join("1" if c else "0" for c in correct)
    return ece_examples({"bins": 10, "sets": {name: {"confidence": list(map(float, conf)), "correct": bits}}})


def auroc_data(s_in, s_out):
    return auroc_examples({"in": list(map(float, s_in)), "out": {"ood": list(map(float, s_out))}})


def noisy_pair(seed=0, n=150):
    """Two different, noisy models on the same examples: (ECE data, ECE data, AUROC data, AUROC data)."""
    rng = np.random.default_rng(seed)
    conf_a, conf_b = rng.uniform(0.5, 1, n), rng.uniform(0.5, 1, n)
    hits_a, hits_b = rng.random(n) < 0.75, rng.random(n) < 0.7
    return (ece_data(conf_a, hits_a), ece_data(conf_b, hits_b),
            auroc_data(rng.normal(size=n), rng.normal(0.9, size=n)), auroc_data(rng.normal(size=n), rng.normal(0.7, size=n)))


def unpaired_bootstrap(method, base, n_boot=1000, seed=0):
    """The WRONG test, for contrast: each side resampled on its own indices."""
    rng = np.random.default_rng(seed)
    stat = STATISTICS[method[0]["statistic"]]

    def side(data):
        counts = {}
        for unit, arrays in data[0]["units"].items():
            n = len(arrays[0]) if isinstance(arrays, tuple) else len(arrays)
            counts[unit] = np.bincount(rng.integers(0, n, n), minlength=n)[None].astype(float)
        return np.mean([stat(d, counts)[0] for d in data])

    return two_sided_p(np.array([side(method) - side(base) for _ in range(n_boot)]))


def test_identical_models_give_p_one():
    ece_a, _, auroc_a, _ = noisy_pair()
    assert metric_bootstrap([ece_a], [ece_a]) == 1.0
    assert metric_bootstrap([auroc_a], [auroc_a]) == 1.0
    ece_b, _, auroc_b, _ = noisy_pair(seed=5)  # three seeds in another order: float noise is no difference
    assert metric_bootstrap([ece_a, ece_b, ece_a], [ece_b, ece_a, ece_a]) == 1.0


def test_a_clearly_better_model_gets_p_below_001():
    rng = np.random.default_rng(3)
    n = 200
    hits = rng.random(n) < 0.7
    # same predictions; vanilla says 99% on every example, the method 70%: calibrated
    assert metric_bootstrap([ece_data([0.7] * n, hits)], [ece_data([0.99] * n, hits)], 500) < 0.01
    # the method ranks every OOD example above every in-distribution one; vanilla overlaps
    s_in = rng.normal(size=n)
    better, worse = auroc_data(s_in, s_in.max() + 1 + rng.random(n)), auroc_data(s_in, rng.normal(0.3, size=n))
    assert metric_bootstrap([better], [worse], 500) < 0.01


def test_swapping_method_and_vanilla_gives_the_same_p():
    for seed in range(4):
        ece_a, ece_b, auroc_a, auroc_b = noisy_pair(seed)
        for a, b in ((ece_a, ece_b), (auroc_a, auroc_b)):
            p = metric_bootstrap([a], [b], 400, seed=seed)
            assert p == metric_bootstrap([b], [a], 400, seed=seed)
            assert 0 < p <= 1


def test_resamples_are_paired_across_methods():
    """The method and vanilla make the same predictions on the same examples; the method's confidences are
    always 0.02 lower (less over-confident) / its OOD scores 0.1 higher. On every shared resample it is
    better, so the paired test is certain; resampling each side on its own indices drowns the difference
    in the examples' noise (the test fails for an unpaired implementation)."""
    rng = np.random.default_rng(0)
    n = 200
    hits = rng.random(n) < 0.7
    ece_m, ece_v = ece_data([0.93] * n, hits), ece_data([0.95] * n, hits)
    s_in, s_out = rng.normal(size=n), rng.normal(0.8, size=n)
    auroc_m, auroc_v = auroc_data(s_in, s_out + 0.1), auroc_data(s_in, s_out)
    for m, v in ((ece_m, ece_v), (auroc_m, auroc_v)):
        assert metric_bootstrap([m], [v]) < 0.01
        assert unpaired_bootstrap([m], [v]) > 0.2  # the same data, unpaired: far from significant


def test_seeds_are_averaged_on_the_same_resamples():
    """Per resample: each seed's metric on the SAME indices, then the mean over seeds."""
    a, b, auroc_a, auroc_b = noisy_pair(seed=2)
    # the same two seeds on each side, in swapped order: equal on every resample only if all seeds share
    # the indices (an implementation drawing indices per seed gives p < 1)
    assert metric_bootstrap([a, b], [b, a]) == 1.0 and metric_bootstrap([auroc_a, auroc_b], [auroc_b, auroc_a]) == 1.0
    # the mean of per-seed ECEs, not the ECE of seed-averaged confidences: the method is over-confident by
    # 0.2 in one seed and under-confident by 0.2 in the other (ECE 0.2 each, as vanilla's two seeds); averaging
    # the confidences first would call it calibrated and far better than vanilla
    hits = np.array([1] * 240 + [0] * 160)
    over, under = ece_data([0.8] * 400, hits), ece_data([0.4] * 400, hits)
    assert metric_bootstrap([over, under], [over, over]) > 0.5
    assert metric_bootstrap([ece_data([0.6] * 400, hits)], [over, over]) < 0.01  # the averaged-first reading


def test_bootstrap_is_deterministic_and_needs_paired_sets():
    ece_a, ece_b, auroc_a, auroc_b = noisy_pair(1)
    assert metric_bootstrap([ece_a], [ece_b], 300, seed=4) == metric_bootstrap([ece_a], [ece_b], 300, seed=4)
    shorter = ece_data([0.9] * 10, [1] * 10)
    assert np.isnan(metric_bootstrap([ece_a], [shorter]))  # other set size: no pairing
    assert np.isnan(metric_bootstrap([ece_a], [ece_data([0.9] * 150, [1] * 150, name="other")]))  # other set
    assert np.isnan(metric_bootstrap([ece_a], [auroc_a]))  # another statistic
    assert np.isnan(metric_bootstrap([], [ece_a]))


def test_bootstrap_is_fast_enough_for_a_board():
    import time

    rng = np.random.default_rng(0)
    seeds = [ece_examples({"bins": 10, "sets": {s: {"confidence": rng.uniform(0.5, 1, 600).tolist(),
                                                    "correct": "".join(rng.choice(["0", "1"], 600))}
                                                for s in ("a", "b", "c")}}) for _ in range(3)]
    start = time.perf_counter()
    metric_bootstrap(seeds, seeds[::-1], 1000)
    assert time.perf_counter() - start < 5  # 3 seeds x 3 sets of 600 x 2 sides x 1000 resamples


# --------------------------------------------------------------------------------------------- the board


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    root = tmp_path_factory.mktemp("sig")
    for seed in (0, 1):
        make_suite(root, "vanilla", seed, 0.70, ece=0.10, auroc=0.80)
        make_suite(root, "ram", seed, 0.85, ece=0.05, auroc=0.84)
        make_suite(root, "r3f", seed + 10, 0.70, ece=0.12, auroc=0.80)
    return root


def _strip(root, evaluator, method, seeds=(0, 1), *, version=1):
    """Rewrite some results as an older evaluator version wrote them: no per-example data, no declaration."""
    for seed in seeds:
        path = next(root.rglob(f"{method}/seed{seed}/results/{evaluator}.json"))
        data = json.loads(path.read_text())
        data["details"].pop("examples", None)
        data["evaluator_version"] = version
        for spec in data["metric_specs"]:
            spec.pop("per_example", None)
            spec.pop("statistic", None)
        path.write_text(json.dumps(data))


def test_results_without_per_example_data_are_shown_untested(suite, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(suite, copy)
    _strip(copy, "calibration", "ram")  # both seeds: an older calibration evaluator
    _strip(copy, "anomaly", "r3f", seeds=(10,))  # one of two seeds: never tested on the other seed alone
    board = build_leaderboard(copy, n_boot=2000, significance="examples")
    b = board.frame.set_index("method")
    assert np.isfinite(b.loc["ram", "ece_mean"]) and np.isnan(b.loc["ram", "ece_p"])
    assert np.isnan(b.loc["r3f", "auroc_p"]) and np.isfinite(b.loc["r3f", "ece_p"])
    assert board.untested == {("sentiment", "tiny", "ram", "ece"), ("sentiment", "tiny", "r3f", "auroc")}
    # left out of the table's Holm family: ten tests (five per method), not twelve
    keys = [f"{k}_p" for k in ("id", "shift", "attack", "transfer", "ece", "auroc")]
    raw = b.loc[["ram", "r3f"], keys].to_numpy(dtype=float).ravel()
    adj = b.loc[["ram", "r3f"], [f"{k}_holm" for k in keys]].to_numpy(dtype=float).ravel()
    assert np.isfinite(raw).sum() == 10
    assert adj[np.nanargmin(raw)] == pytest.approx(min(1.0, 10 * np.nanmin(raw)))
    md = format_table(board, "markdown")
    ram = next(line for line in md.splitlines() if line.startswith("| ram"))
    assert "**5.0 ± 0.0**†" in ram and "84.0 ± 0.0**\\*" in ram
    assert r"$^{\dagger}$" in format_table(board, "latex")
    text = legend_markdown(board)
    assert "`†` (on this board: ECE, AUROC): not tested for that method" in text
    assert "`†` not tested for that method" in legend(board)  # the board's short list names the dagger too
    # vanilla's own results without the data: every method untested on that column
    _strip(copy, "calibration", "vanilla")
    board = build_leaderboard(copy, n_boot=100, significance="examples")
    assert {c for c in board.untested if c[3] == "ece"} == {("sentiment", "tiny", m, "ece") for m in ("ram", "r3f")}


def test_per_example_data_that_do_not_reproduce_the_headline_are_not_tested(suite, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(suite, copy)
    path = next(copy.rglob("ram/seed0/results/anomaly.json"))
    data = json.loads(path.read_text())
    data["metrics"]["auroc"] = 0.9  # the stored scores give 0.84
    path.write_text(json.dumps(data))
    b = build_leaderboard(copy, n_boot=100, significance="examples").frame.set_index("method")
    assert np.isnan(b.loc["ram", "auroc_p"]) and np.isfinite(b.loc["r3f", "auroc_p"])


def test_markers_come_from_the_holm_adjusted_p(suite):
    board = build_leaderboard(suite, n_boot=200, significance="examples")
    i = board.frame.index[board.frame["method"] == "ram"][0]
    board.frame.loc[i, ["id_p", "id_p_holm"]] = [0.001, 0.2]  # significant raw, not after correction
    board.frame.loc[i, ["shift_p", "shift_p_holm"]] = [0.03, 0.03]
    board.frame.loc[i, ["ece_p", "ece_p_holm"]] = [0.004, 0.004]
    _headers, rows = table_rows(board, "text")[("sentiment", "tiny")]
    ram = next(r for r in rows if r[0] == "ram")
    assert not ram[2].endswith("*") and ram[3].endswith("*") and not ram[3].endswith("**")
    assert ram[6].endswith("**")


def test_csv_columns_and_header_text(suite, tmp_path):
    board, written = write_leaderboard(suite, tmp_path / "out", plots=False, n_boot=200, significance="examples")
    csv = pd.read_csv(io.StringIO(written["csv"].read_text()))
    keys = ("id", "shift", "attack", "transfer", "ece", "auroc")
    for key in keys:
        cols = list(csv.columns)
        assert cols.index(f"{key}_delta") + 1 == cols.index(f"{key}_p") == cols.index(f"{key}_p_holm") - 1
    assert "ece_low" not in csv.columns and "auroc_low" not in csv.columns  # intervals: accuracies only
    md = written["markdown"].read_text()
    assert legend(board) in md and "[LEGEND.md](LEGEND.md)" in md  # the short list, the details linked
    details = written["legend"].read_text()
    assert written["legend"] == tmp_path / "out" / "LEGEND.md" and legend_markdown(board) == details
    assert "Holm's step-down correction" in details and "`<key>_p_holm`" in details and "Not tested (" not in details
    assert "ECE: the metric itself, recomputed on every resample" in details and "AUROC: likewise" in details


def test_custom_columns_without_per_example_data_are_named_untested(suite):
    board = build_leaderboard(suite, "id,calibration.ece_raw", n_boot=100, significance="examples")
    text = legend_markdown(board)
    assert "or the evaluator stores none): calibration.ece_raw." in text and "†" not in text
    assert "not tested: calibration.ece_raw" in legend(board)
    assert np.isnan(board.frame.set_index("method").loc["ram", "calibration.ece_raw_p_holm"])
    assert not board.untested


def test_old_results_of_every_method_make_the_column_untested_everywhere(tmp_path):
    for method in ("vanilla", "ram"):
        write_result(tmp_path, method, 0, "calibration", {"ece": 0.1})  # no details.examples
    board = build_leaderboard(tmp_path, n_boot=100, significance="examples")
    assert board.untested == {("sentiment", "tiny", "ram", "ece")}
    assert "†" in format_table(board, "markdown")
