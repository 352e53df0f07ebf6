"""Verdicts that survive the seeds: the hierarchical bootstrap, the table-wide Holm family, and a headline
(rank by significant wins minus losses, Δ on a bounded scale) that no degenerate predictor can win."""

from __future__ import annotations

import numpy as np
import pytest
from report_helpers import bits, exact_bits, make_suite, write_result

from robench.report import build_leaderboard, leaderboard, load_results
from robench.report.stats import (
    MIN_SEEDS,
    bounded_improvement,
    difference_interval,
    hierarchical_bootstrap,
    holm,
    relative_improvement,
)


def _acc(bits: np.ndarray) -> dict:
    return {"statistic": "accuracy", "bins": None, "units": {("set", "test"): (bits.astype(np.int64),)}}


def _seeds(accs: list[float], n: int = 400, shared: int = 0) -> list[dict]:
    """One accuracy data per seed: seed k gets the first round(acc_k * n) examples of a fixed order right."""
    order = np.random.default_rng(shared).permutation(n)
    out = []
    for acc in accs:
        bits = np.zeros(n, dtype=np.int64)
        bits[order[: round(acc * n)]] = 1
        out.append(_acc(bits))
    return out


def test_the_interval_widens_when_seeds_disagree_and_not_when_they_agree():
    base = _seeds([0.70, 0.70, 0.70])
    agree = _seeds([0.75, 0.75, 0.75])
    disagree = _seeds([0.95, 0.65, 0.65])  # the same mean, one lucky seed
    width = {}
    for name, method in (("agree", agree), ("disagree", disagree)):
        for seeds in (True, False):
            low, high = difference_interval(method, base, n_boot=2000, seed=1, seeds=seeds)
            width[name, seeds] = high - low
    assert width["agree", True] == pytest.approx(width["agree", False], rel=0.05)
    assert width["disagree", True] > 3 * width["disagree", False]
    # and the verdict follows: one lucky seed is no evidence here
    assert hierarchical_bootstrap(disagree, base, 2000, 1) > 0.05
    assert hierarchical_bootstrap(agree, base, 2000, 1) < 0.01


def test_fewer_than_three_seeds_give_no_verdict():
    two = _seeds([0.9, 0.9])
    assert MIN_SEEDS == 3
    assert np.isnan(hierarchical_bootstrap(two, _seeds([0.5, 0.5, 0.5]), 200))
    assert hierarchical_bootstrap(_seeds([0.9] * 3), _seeds([0.5] * 3), 200) < 0.01


def test_seeds_resampled_is_not_the_same_as_seeds_fixed():
    """Mutation guard: dropping the seed draw (seeds=False) narrows the interval of disagreeing seeds."""
    base, method = _seeds([0.7, 0.7, 0.7]), _seeds([0.9, 0.7, 0.6])
    a = difference_interval(method, base, 1000, 3, seeds=True)
    b = difference_interval(method, base, 1000, 3, seeds=False)
    assert (a[1] - a[0]) > 2 * (b[1] - b[0])


def test_bounded_improvement_cannot_explode():
    assert bounded_improvement(0.040, 0.019, True) == pytest.approx(0.021 / 0.981)
    assert relative_improvement(0.040, 0.019, True) == pytest.approx(1.105, abs=1e-3)  # the paper's: +110%
    assert bounded_improvement(0.5, 0.8, True) == pytest.approx(-0.3 / 0.8)
    assert bounded_improvement(0.10, 0.20, False) == pytest.approx(0.5)  # half the ECE removed
    assert bounded_improvement(0.60, 0.20, False) == pytest.approx(-0.4 / 0.8)
    assert bounded_improvement(0.3, 0.0, True) == pytest.approx(0.3)  # a zero base is fine
    assert bounded_improvement(0.0, 0.0, True) == 0.0
    for base in np.linspace(0, 1, 11):
        for value in np.linspace(0, 1, 11):
            for higher in (True, False):
                assert -1.0 <= bounded_improvement(value, base, higher) <= 1.0
    assert bounded_improvement(0.9, 0.8, True) > 0 > bounded_improvement(0.9, 0.8, False)  # direction-aware


VANILLA = dict(acc=0.80, shift=0.70, ece=0.10, auroc=0.80, attack=0.03, transfer=0.50)  # attack near 0, as on the board


@pytest.fixture(scope="module")
def degenerate(tmp_path_factory):
    """Vanilla, a twin of vanilla, a better method, and a constant and a uniform-random predictor, 3 seeds each."""
    root = tmp_path_factory.mktemp("degenerate")
    rows = {
        "vanilla": VANILLA,
        "twin": VANILLA,  # the same outcomes as vanilla on every seed
        "better": dict(VANILLA, acc=0.86, shift=0.78, ece=0.05),
        # always "positive": half right, never flipped by an attack, sure of itself, blind to OOD
        "constant": dict(acc=0.50, shift=0.50, ece=0.35, auroc=0.50, attack=0.50, transfer=0.50),
        # a coin: half right, easily flipped, calibrated (confidence 1/2), blind to OOD
        "random": dict(acc=0.50, shift=0.50, ece=0.02, auroc=0.50, attack=0.05, transfer=0.50),
    }
    for method, kw in rows.items():
        for seed in range(3):
            make_suite(root, method, seed, **kw, n=400)
    return root


def test_constant_and_random_predictors_rank_last_and_a_twin_ranks_with_vanilla(degenerate):
    board = build_leaderboard(degenerate, n_boot=2000)
    rank = dict(zip(board.frame["method"], board.frame["rank"], strict=True))
    score = dict(zip(board.frame["method"], board.frame["score"], strict=True))
    assert rank["better"] == 1 and score["better"] > 0
    assert rank["twin"] == rank["vanilla"] == 2 and score["twin"] == 0
    assert {rank["constant"], rank["random"]} == {4, 5}
    assert score["constant"] < 0 and score["random"] < 0
    # the old headline (mean of the paper's relative changes) puts the constant predictor first: the test fails
    # against it
    frame = board.frame.set_index("method")
    paper = {m: np.nanmean([relative_improvement(frame.at[m, f"{a.key}_mean"], frame.at["vanilla", f"{a.key}_mean"],
                                                 a.higher_is_better) for a in board.aspects])
             for m in frame.index if m != "vanilla"}
    assert max(paper, key=paper.get) == "constant"
    assert frame.at["constant", "avg_improvement"] < 0  # the bounded Δ does not reward it either


def test_holm_family_is_the_whole_table(degenerate):
    board = build_leaderboard(degenerate, n_boot=2000)
    cols = [a.key for a in board.aspects]
    raw = board.frame[[f"{c}_p" for c in cols]].to_numpy(dtype=float)
    adjusted = board.frame[[f"{c}_p_holm" for c in cols]].to_numpy(dtype=float)
    np.testing.assert_array_equal(np.isnan(adjusted), np.isnan(raw))
    np.testing.assert_allclose(adjusted.ravel(), holm(raw.ravel()), equal_nan=True)
    rowwise = np.vstack([holm(r) for r in raw])
    assert np.nansum(adjusted) > np.nansum(rowwise)  # a larger family than a row: never fewer corrections


def test_one_seed_boards_mark_nothing_and_say_why(tmp_path):
    for method, kw in (("vanilla", VANILLA), ("better", dict(VANILLA, acc=0.95))):
        make_suite(tmp_path, method, 0, **kw, n=400)
    board = build_leaderboard(tmp_path, n_boot=200)
    assert board.few_seeds == {("sentiment", "tiny", "better")}
    assert board.frame.filter(like="_p_holm").isna().all().all()
    assert not board.untested  # not "untested": withheld for lack of seeds
    from robench.report.write import legend

    assert "fewer than 3 seeds" in legend(board)
    pooled = leaderboard(load_results(tmp_path), n_boot=2000, significance="examples")
    assert pooled.frame.set_index("method").at["better", "id_p_holm"] < 0.01  # the older test still runs


def test_an_ood_verdict_whose_sign_depends_on_the_detector_is_no_verdict(tmp_path):
    from report_helpers import auroc_examples, write_result

    from robench.report.tables import detector_table, table_rows

    for method, msp, maha in (("vanilla", 0.80, 0.70), ("ram", 0.60, 0.90), ("smart", 0.60, 0.65)):
        for seed in range(3):
            write_result(tmp_path, method, seed, "anomaly", {
                "auroc": msp, "aupr": 0.5, "fpr95": 0.5,
                "scores": {"msp": {"mean": {"auroc": msp}}, "mahalanobis": {"mean": {"auroc": maha}}}},
                {"examples": auroc_examples(msp, seed)})
    board = build_leaderboard(tmp_path, n_boot=500)
    frame = board.frame.set_index("method")
    assert frame.at["ram", "auroc_p_holm"] < 0.05 and frame.at["smart", "auroc_p_holm"] < 0.05
    assert bool(frame.at["ram", "auroc_choice_dependent"]) and not bool(frame.at["smart", "auroc_choice_dependent"])
    assert frame.at["ram", "worse"] == 0 and frame.at["smart", "worse"] == 1  # MSP alone would call both worse
    assert frame.at["ram", "auroc_mahalanobis_mean"] == pytest.approx(0.9)
    (headers, rows), = table_rows(board, "markdown").values()
    cells = {r[0]: r[headers.index("AUROC ↑")] for r in rows}
    assert cells["ram"].endswith("‡") and not cells["smart"].endswith("‡")
    (dheaders, drows), = detector_table(board).values()
    assert dheaders == ["method", "msp", "mahalanobis", "sign vs vanilla"]
    assert {r[0]: r[-1] for r in drows}["ram"] == "depends on the detector"


def test_an_ece_verdict_whose_sign_depends_on_the_temperature_fit_is_no_verdict(tmp_path):
    from report_helpers import ece_examples, write_result

    from robench.report.tables import detector_table, table_rows
    from robench.report.write import verdict_lines, write_leaderboard

    # (method, headline ECE (the continuous fit's), the grid fit's ECE)
    for method, ece, grid in (("vanilla", 0.10, 0.10), ("ram", 0.05, 0.12), ("smart", 0.05, 0.06)):
        for seed in range(3):
            write_result(tmp_path, method, seed, "calibration", {
                "ece": ece, "ece_raw": 0.2, "temperature": 1.0, "id": {"ece": ece},
                "sets": {"amazon": {"ece": ece}, "tweets": {"ece": ece}},
                "fits": {"grid": {"temperature": 2.0, "ece": grid}, "continuous": {"temperature": 1.0, "ece": ece}}},
                {"examples": ece_examples(ece)})
    board = build_leaderboard(tmp_path, n_boot=500)
    frame = board.frame.set_index("method")
    assert frame.at["ram", "ece_p_holm"] < 0.05 and frame.at["smart", "ece_p_holm"] < 0.05
    assert bool(frame.at["ram", "ece_choice_dependent"]) and not bool(frame.at["smart", "ece_choice_dependent"])
    assert frame.at["ram", "better"] == 0 and frame.at["smart", "better"] == 1  # one fit alone calls both better
    assert frame.at["ram", "ece_fit_grid_mean"] == pytest.approx(0.12)
    (headers, rows), = table_rows(board, "markdown").values()
    cells = {r[0]: r[headers.index("ECE ↓")] for r in rows}
    assert cells["ram"].endswith("‡") and not cells["smart"].endswith("‡")
    (fheaders, frows), = detector_table(board, ("fit_grid", "fit_continuous")).values()
    assert fheaders == ["method", "fit_grid", "fit_continuous", "sign vs vanilla"]
    assert {r[0]: r[-1] for r in frows}["ram"] == "depends on the temperature fit"
    assert detector_table(board) == {}  # no OOD column: no detector table (ECE's fits are not detectors)
    assert "- ram against vanilla: no verdict on ECE, whose sign depends on the temperature fit." in \
        verdict_lines(board, "sentiment", "tiny")
    _board, written = write_leaderboard(tmp_path, tmp_path / "out", plots=False, n_boot=100)
    text = written["markdown"].read_text()
    assert "ECE per temperature fit" in text and "| ram | 12.0 | 5.0 | depends on the temperature fit |" in text


def test_a_row_with_fewer_seeds_gets_no_verdict_and_the_others_keep_theirs(tmp_path):
    from robench.report.write import legend, verdict_lines

    for method, kw, seeds in (("vanilla", VANILLA, 3), ("better", dict(VANILLA, acc=0.95), 3),
                              ("short", dict(VANILLA, acc=0.95), 2)):
        for seed in range(seeds):
            make_suite(tmp_path, method, seed, **kw, n=400)
    board = build_leaderboard(tmp_path, n_boot=2000)
    frame = board.frame.set_index("method")
    assert board.few_seeds == {("sentiment", "tiny", "short")}
    assert frame.at["better", "id_p_holm"] < 0.05 and np.isnan(frame.at["short", "id_p_holm"])
    assert "short on sentiment (tiny)" in legend(board)
    lines = verdict_lines(board, "sentiment", "tiny")
    assert "- short against vanilla: no verdict (fewer than 3 seeds)." in lines
    assert any(line.startswith("- better against vanilla: better on ID acc") for line in lines)


def test_ece_per_set_is_on_the_csv_and_under_the_table(tmp_path):
    from report_helpers import ece_examples, write_result

    from robench.report.tables import per_set_table

    for method, shift_ece in (("vanilla", 0.10), ("ram", 0.05)):
        for seed in range(3):
            write_result(tmp_path, method, seed, "calibration", {
                "ece": shift_ece, "ece_raw": 0.2, "temperature": 1.0, "id": {"ece": 0.03 + seed / 100},
                "sets": {"amazon": {"ece": shift_ece}, "tweets": {"ece": shift_ece}}},
                {"examples": ece_examples(shift_ece)})
    board = build_leaderboard(tmp_path, n_boot=200)
    frame = board.frame.set_index("method")
    assert frame.at["vanilla", "ece_set_id_mean"] == pytest.approx(0.04)
    assert frame.at["ram", "ece_set_amazon_mean"] == pytest.approx(0.05)
    (headers, rows), = per_set_table(board).values()
    assert headers == ["method", "id", "amazon", "tweets"] and rows[0][1:] == ["4.0", "10.0", "10.0"]


def test_a_row_scored_only_where_it_wins_is_not_ranked(tmp_path):
    """A constant predictor evaluated on the attacks alone would win both attack columns and lose nothing it
    was not scored on: it gets no rank and no Δ, and the legend names what it lacks."""
    from robench.report.write import legend

    for seed in range(3):
        make_suite(tmp_path, "vanilla", seed, **VANILLA, n=400)
        make_suite(tmp_path, "better", seed, **dict(VANILLA, acc=0.86, shift=0.78), n=400)
        write_result(tmp_path, "constant", seed, "adversarial",
                     {"accuracy_under_attack": 0.5, "transfer_accuracy": 0.9,
                      "recipes": {"textfooler": {"accuracy_under_attack": 0.5}}},
                     {"robust": {"test:sample": exact_bits(50, 100, seed + 300)},
                      "transfer_correct": {"tf": exact_bits(90, 100, seed + 400)}})
    board = build_leaderboard(tmp_path, n_boot=2000)
    frame = board.frame.set_index("method")
    assert frame.at["constant", "better"] == 2  # it does win both columns it has
    assert np.isnan(frame.at["constant", "rank"]) and np.isnan(frame.at["constant", "avg_improvement"])
    assert frame.at["better", "rank"] == 1 and frame.at["vanilla", "rank"] == 2
    lacks = board.unranked[("sentiment", "tiny", "constant")]
    assert "ID" in " ".join(lacks) and len(lacks) == 4
    assert "Not ranked, no Δ: constant on sentiment (tiny: no " in legend(board)
    assert set(board.unranked) == {("sentiment", "tiny", "constant")}


def test_a_row_with_no_value_in_any_shown_column_ranks_after_the_others(tmp_path):
    """With one seed (no verdicts, every score 0) the mean column rank orders the rows; a row with no value
    in the shown column has none and must not scramble that order."""
    for method, acc in (("vanilla", 0.70), ("a_worse", 0.50), ("z_best", 0.95)):
        make_suite(tmp_path, method, 0, acc=acc, n=200)
    write_result(tmp_path, "m_noid", 0, "shift", {"mean_accuracy": 0.5, "drop": 0.0, "accuracy": {"amazon": 0.5}},
                 {"correct": {"amazon": bits(0.5, 200, 1)}})
    board = build_leaderboard(tmp_path, aspects="id", n_boot=200, baseline="m_noid")
    rank = dict(zip(board.frame["method"], board.frame["rank"], strict=True))
    assert (rank["z_best"], rank["vanilla"], rank["a_worse"], rank["m_noid"]) == (1, 2, 3, 4)


def test_a_row_short_of_seeds_in_one_column_gets_no_verdict_in_any(tmp_path):
    """The legend and the Verdicts lines say "no verdict" for a row short of seeds: none of its cells may carry one."""
    from robench.report.write import verdict_lines

    for seed in range(3):
        make_suite(tmp_path, "vanilla", seed, **VANILLA, n=400)
        make_suite(tmp_path, "ram", seed, **dict(VANILLA, acc=0.95, shift=0.9), n=400)
    (tmp_path / "sentiment" / "tiny" / "ram" / "seed2" / "results" / "calibration.json").unlink()
    board = build_leaderboard(tmp_path, n_boot=2000)
    frame = board.frame.set_index("method")
    assert ("sentiment", "tiny", "ram") in board.few_seeds
    assert frame.at["ram", "better"] == 0 and np.isnan(frame.at["ram", "id_p_holm"])
    assert verdict_lines(board, "sentiment", "tiny")[0].startswith("Verdicts: none (fewer than 3 seeds")
    # with every column at 3 seeds the same data carries its verdicts
    make_suite(tmp_path, "ram", 2, **dict(VANILLA, acc=0.95, shift=0.9), n=400)
    full = build_leaderboard(tmp_path, n_boot=2000).frame.set_index("method")
    assert full.at["ram", "better"] >= 1 and full.at["ram", "id_p_holm"] < 0.05
