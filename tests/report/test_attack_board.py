"""The board's attack reporting on fabricated adversarial result files (the evaluator's output shape):
Wilson intervals, one threat model per column, runs that generated a transfer set left off,
the paired test on per-example ``robust`` outcomes, and the attack table."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from robench.errors import ConfigError
from robench.evaluators import EVALUATORS
from robench.identity import result_path
from robench.report import attack_table, build_leaderboard, format_table, wilson_interval, write_leaderboard
from robench.report.tables import attack_markdown
from robench.results import MetricSpec, make_result
from robench.storage import atomic_write_json

SAMPLE = "test:ab12cd34ef56"
RECIPES = ("deepwordbug", "textfooler")

# The adversarial evaluator's declarations in the new shape (worst case over recipes, per-example outcomes)
ADV_SPECS = (
    MetricSpec("accuracy_under_attack", "higher", "adversarial", headline=True, column="attack", label="Attack acc",
               short="Atk", per_example="robust"),
    MetricSpec("transfer_accuracy", "higher", "adversarial", headline=True, column="transfer", label="Transfer acc",
               short="Trans", per_example="transfer_correct"),
    MetricSpec("accuracy_under_attack_low", "higher", "adversarial"),
    MetricSpec("accuracy_under_attack_high", "higher", "adversarial"),
    MetricSpec("recipes.*.accuracy_under_attack*", "higher", "adversarial"),
    MetricSpec("recipes.*.attack_success_rate", "lower", "adversarial"),
    MetricSpec("recipes.*.valid_success_rate", "lower", "adversarial"),
    MetricSpec("recipes.*", "none", "adversarial"),
)


def card(constraints: str = "filtered", **extra) -> dict:
    body = {"recipes": list(RECIPES), "constraints": constraints, "thresholds": {"use": 0.84},
            "query_budget": 200, "n": 100, "sampling_seed": 0, "split": "test", **extra}
    body["card_id"] = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]
    return body


def to_bits(a: np.ndarray) -> str:
    return "".join("1" if x else "0" for x in a)


def run_block(method, seed, task, weights, model="tiny"):
    return {"run_id": f"{task}/{model}/{method}/seed{seed}", "task": {"name": task, "profile": "default"},
            "model": {"name": model}, "method": {"name": method}, "seed": seed,
            "weights_fingerprint": weights, "training": {"seconds_per_example": 1e-3}}


def write_adv(root, method, seed, by_recipe, *, threat=None, task="sentiment", sample=SAMPLE, weights=None,
              transfer_sources=None, transfer=None, valid=0.5, model="tiny"):
    """An adversarial result in the evaluator's new shape; ``by_recipe``: {recipe: 0/1 array}."""
    weights = weights or f"w-{method}-{seed}"
    robust = np.logical_and.reduce([np.asarray(v, bool) for v in by_recipe.values()])
    n = len(robust)
    acc = float(robust.mean())
    low, high = wilson_interval(robust.sum(), n)
    recipes = {}
    for recipe, outcome in by_recipe.items():
        r_acc = float(np.mean(outcome))
        r_low, r_high = wilson_interval(np.sum(outcome), n)
        recipes[recipe] = {"accuracy_under_attack": r_acc, "accuracy_under_attack_low": r_low,
                           "accuracy_under_attack_high": r_high, "attack_success_rate": 1 - r_acc,
                           "valid_success_rate": (1 - r_acc) * valid, "num_examples": n}
    transfer = transfer if transfer is not None else {"advset": np.ones(20, bool)}
    metrics = {"accuracy_under_attack": acc, "accuracy_under_attack_low": low, "accuracy_under_attack_high": high,
               "recipes": recipes, "transfer_accuracy": float(np.mean([np.mean(v) for v in transfer.values()]))}
    details = {"robust": {sample: to_bits(robust)},
               "robust_by_recipe": {r: {sample: to_bits(v)} for r, v in by_recipe.items()},
               "transfer_correct": {k: to_bits(v) for k, v in transfer.items()}}
    settings = {"threat_model": threat if threat is not None else card()}
    if threat is False:
        settings = {}
    if transfer_sources:
        settings["transfer_sources"] = transfer_sources
    run_dir = root / task / model / method / f"seed{seed}"
    atomic_write_json(result_path(run_dir, "adversarial"),
                      make_result("adversarial", run_block(method, seed, task, weights, model), metrics, details=details,
                                  settings=settings, specs=ADV_SPECS))
    return run_dir


def write_id(root, method, seed, correct, *, task="sentiment", weights=None):
    weights = weights or f"w-{method}-{seed}"
    atomic_write_json(result_path(root / task / "tiny" / method / f"seed{seed}", "id"),
                      make_result("id", run_block(method, seed, task, weights),
                                  {"accuracy": float(np.mean(correct)), "n": len(correct)},
                                  details={"correct": to_bits(correct)}, specs=EVALUATORS.get("id").metrics))


def outcomes(p: float, seed: int, n: int = 100) -> np.ndarray:
    return np.random.default_rng(seed).random(n) < p


def suite(root, **kw):
    """vanilla: fragile; ram: robust under both recipes. Two seeds each."""
    for seed in (0, 1):
        write_id(root, "vanilla", seed, outcomes(0.8, seed))
        write_id(root, "ram", seed, outcomes(0.8, seed + 5))
        write_adv(root, "vanilla", seed, {"deepwordbug": outcomes(0.4, seed), "textfooler": outcomes(0.3, seed + 1)},
                  **kw)
        write_adv(root, "ram", seed, {"deepwordbug": outcomes(0.9, seed + 2), "textfooler": outcomes(0.95, seed + 3)},
                  valid=0.25, **kw)


# --------------------------------------------------------------------------------------------- Wilson


def test_wilson_interval_known_values():
    # textbook values (Wilson 1927 / Agresti & Coull 1998), 95%
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.27754), abs=1e-5)
    assert wilson_interval(5, 10) == pytest.approx((0.23659, 0.76341), abs=1e-5)
    assert wilson_interval(10, 10) == pytest.approx((0.72246, 1.0), abs=1e-5)
    assert all(np.isnan(wilson_interval(0, 0))) and all(np.isnan(wilson_interval(3, float("nan"))))
    low, high = wilson_interval(2.5, 10)  # fractional successes (a mean accuracy times n)
    assert 0 < low < 0.25 < high < 1


def test_wilson_interval_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    for k, n in ((0, 10), (5, 10), (3, 17), (97, 100), (450, 1000), (1, 1)):
        ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert wilson_interval(k, n) == pytest.approx((ci.low, ci.high), abs=1e-9)


# --------------------------------------------------------------------------------------------- the board


def test_per_example_columns_get_wilson_intervals(tmp_path):
    suite(tmp_path)
    board = build_leaderboard(tmp_path, n_boot=200)
    b = board.frame.set_index("method")
    for key in ("id", "attack", "transfer"):
        assert {f"{key}_low", f"{key}_high"} <= set(board.frame.columns)
    # n = examples per seed: 100 attacked, 20 transfer examples
    for method in ("vanilla", "ram"):
        assert (b.loc[method, "attack_low"], b.loc[method, "attack_high"]) == pytest.approx(
            wilson_interval(b.loc[method, "attack_mean"] * 100, 100))
    assert b.loc["ram", "transfer_low"] == pytest.approx(wilson_interval(20, 20)[0])
    cols = list(board.frame.columns)
    assert cols.index("attack_n") < cols.index("attack_low") < cols.index("attack_high") < cols.index("attack_delta")
    csv = pd.read_csv(__import__("io").StringIO(format_table(board, "csv")))
    assert {"attack_low", "attack_high", "id_low"} <= set(csv.columns)


def test_no_interval_without_per_example_outcomes(tmp_path):
    """A column without declared per-example outcomes gets no _low/_high."""
    for seed in (0, 1):
        atomic_write_json(result_path(tmp_path / f"s{seed}", "calibration"),
                          make_result("calibration", run_block("vanilla", seed, "sentiment", f"w{seed}"),
                                      {"ece": 0.1}, specs=EVALUATORS.get("calibration").metrics))
    board = build_leaderboard(tmp_path)
    assert "ece_low" not in board.frame.columns and "ece_mean" in board.frame.columns


def test_attack_column_is_tested_on_robust_outcomes(tmp_path):
    suite(tmp_path)
    b = build_leaderboard(tmp_path, n_boot=300, significance="examples").frame.set_index("method")
    assert b.loc["ram", "attack_p"] < 0.01
    assert np.isnan(b.loc["vanilla", "attack_p"])
    # flip ram's outcomes to vanilla's: same per-example robustness -> no difference
    flipped = tmp_path.parent / (tmp_path.name + "-flipped")
    for seed in (0, 1):
        same = {"deepwordbug": outcomes(0.4, seed), "textfooler": outcomes(0.3, seed + 1)}
        write_adv(flipped, "vanilla", seed, same)
        write_adv(flipped, "ram", seed, same)
    again = build_leaderboard(flipped, n_boot=300, significance="examples").frame.set_index("method")
    assert again.loc["ram", "attack_p"] == 1.0 != b.loc["ram", "attack_p"]


def test_only_identical_samples_pair(tmp_path):
    """robust outcomes are keyed by the attacked sample's id: another sample gives no p-value."""
    for seed in (0, 1):
        write_adv(tmp_path, "vanilla", seed, {"textfooler": outcomes(0.3, seed)}, sample="test:000000000000")
        write_adv(tmp_path, "ram", seed, {"textfooler": outcomes(0.9, seed)}, sample="test:111111111111")
    b = build_leaderboard(tmp_path, "attack", n_boot=100, significance="examples").frame.set_index("method")
    assert np.isnan(b.loc["ram", "attack_p"]) and np.isfinite(b.loc["ram", "attack_mean"])


# --------------------------------------------------------------------------------------------- threat models


def test_two_threat_models_never_share_a_column(tmp_path):
    write_adv(tmp_path, "vanilla", 0, {"textfooler": outcomes(0.3, 0)}, threat=card("filtered"))
    write_adv(tmp_path, "ram", 0, {"textfooler": outcomes(0.6, 1)}, threat=card("strict"))
    with pytest.raises(ConfigError) as err:
        build_leaderboard(tmp_path)
    msg = str(err.value)
    assert "\n" not in msg
    assert "constraints: strict vs filtered" in msg and "card_id" not in msg  # ram's card first (sorted runs)
    assert "tiny/ram/seed0 vs tiny/vanilla/seed0" in msg
    assert "robench eval --suite adversarial" in msg and "separately" in msg
    # the same two cards on two different tasks: two tables, nothing shared
    other = tmp_path.parent / (tmp_path.name + "-tasks")
    write_adv(other, "vanilla", 0, {"textfooler": outcomes(0.3, 0)}, threat=card("filtered"), task="sentiment")
    write_adv(other, "vanilla", 0, {"textfooler": outcomes(0.3, 0)}, threat=card("strict"), task="topic")
    assert len(build_leaderboard(other).frame) == 2


def test_a_result_without_a_card_is_its_own_threat_model(tmp_path):
    write_adv(tmp_path, "vanilla", 0, {"textfooler": outcomes(0.3, 0)}, threat=False)
    write_adv(tmp_path, "ram", 0, {"textfooler": outcomes(0.6, 1)})
    with pytest.raises(ConfigError, match="none"):
        build_leaderboard(tmp_path)
    # all without a card (old files): one threat model "none", the board builds
    old = tmp_path.parent / (tmp_path.name + "-old")
    write_adv(old, "vanilla", 0, {"textfooler": outcomes(0.3, 0)}, threat=False)
    write_adv(old, "ram", 0, {"textfooler": outcomes(0.6, 1)}, threat=False)
    assert len(build_leaderboard(old).frame) == 2


def test_one_threat_model_per_task_and_model_table(tmp_path):
    """Each (task, model) table has one card; two models' tables of one task may differ (the card records the
    attack encoder's precision, which follows the device), and each attack section names its own card."""
    for model, constraints in (("tiny", "filtered"), ("big", "strict")):
        for method, p in (("vanilla", 0.3), ("ram", 0.6)):
            write_adv(tmp_path, method, 0, {"textfooler": outcomes(p, 0)}, threat=card(constraints), model=model)
    board = build_leaderboard(tmp_path, n_boot=50)
    assert sorted(zip(board.frame["model"], board.frame["method"], strict=True)) == [
        ("big", "ram"), ("big", "vanilla"), ("tiny", "ram"), ("tiny", "vanilla")]
    md = attack_markdown(board)
    big, tiny = md.split("## sentiment (model big)")[1].split("## sentiment (model tiny)")
    assert '"constraints": "strict"' in big and '"constraints": "filtered"' not in big
    assert '"constraints": "filtered"' in tiny and '"constraints": "strict"' not in tiny
    # a second card inside one model's table is still refused, naming that table
    write_adv(tmp_path, "r3f", 0, {"textfooler": outcomes(0.5, 0)}, threat=card("strict"), model="tiny")
    with pytest.raises(ConfigError, match="task 'sentiment', model 'tiny': .* 2 different threat models"):
        build_leaderboard(tmp_path)


def test_card_field_differences_are_named():
    from robench.report.board import card_differences

    a, b = card("filtered"), card("filtered", substitutes="glove")
    assert card_differences(a, b) == ["substitutes: (unset) vs glove"]
    c = dict(a, thresholds={"use": 0.7})
    assert card_differences(a, c) == ["thresholds.use: 0.84 vs 0.7"]


# --------------------------------------------------------------------------------------------- transfer sources


def test_runs_that_generated_a_transfer_set_are_excluded(tmp_path):
    sources = {"advset": {"weights_fingerprint": "w-vanilla-0", "description": "textfooler against vanilla seed 0"}}
    suite(tmp_path, transfer_sources=sources)
    board = build_leaderboard(tmp_path, n_boot=100)
    assert board.excluded == [("sentiment", "tiny", "vanilla", 0, "its weights generated the transfer set 'advset'")]
    assert {r.evaluator for r in board.excluded_records} == {"id", "adversarial"}  # all its evaluators
    assert not any(r.weights == "w-vanilla-0" for r in board.records)
    b = board.frame.set_index("method")
    assert b.loc["vanilla", "seeds"] == 1 and b.loc["ram", "seeds"] == 2
    note = "Excluded 1 run (all evaluators): sentiment / tiny / vanilla / seed 0 (its weights generated the transfer set 'advset')."
    assert note in format_table(board, "markdown")
    assert "% " + note in format_table(board, "latex")

    _board, written = write_leaderboard(tmp_path, tmp_path / "out", plots=False, n_boot=100)
    md = written["markdown"].read_text()
    assert sum(note in line for line in md.splitlines()) == 1
    assert note in written["attacks_markdown"].read_text()
    # the board folder carries the excluded run's files too, so a rebuild excludes it again
    again = build_leaderboard(tmp_path / "out" / "files", n_boot=100)
    assert again.excluded == board.excluded
    pd.testing.assert_frame_equal(again.frame, board.frame)

    from robench.cli import app

    res = CliRunner().invoke(app, ["leaderboard", "--results", str(tmp_path), "--out", str(tmp_path / "lb"),
                                   "--no-plots", "--bootstrap", "50"])
    assert res.exit_code == 0, res.output
    assert "Excluded 1 run" in res.output and "vanilla / seed 0" in " ".join(res.output.split())


def test_no_exclusion_without_a_matching_fingerprint(tmp_path):
    suite(tmp_path, transfer_sources={"advset": {"weights_fingerprint": "elsewhere", "description": "x"}})
    board = build_leaderboard(tmp_path, n_boot=50)
    assert board.excluded == [] and board.excluded_records == []
    assert "Excluded" not in format_table(board, "markdown")


# --------------------------------------------------------------------------------------------- attack table


def test_attack_table(tmp_path):
    suite(tmp_path)
    board = build_leaderboard(tmp_path, n_boot=300, significance="examples")
    table = attack_table(board).set_index("method")
    assert list(table.index) == ["vanilla", "ram"]
    for recipe in RECIPES:
        for col in ("acc", "acc_low", "acc_high", "success_rate", "valid_success_rate"):
            assert f"{recipe}_{col}" in table.columns
    r = table.loc["ram"]
    assert r["n_examples"] == 100 and r["seeds"] == 2 and r["threat_model"] == card()["card_id"]
    tf = np.mean([outcomes(0.95, s + 3).mean() for s in (0, 1)])
    assert r["textfooler_acc"] == pytest.approx(tf)
    assert (r["textfooler_acc_low"], r["textfooler_acc_high"]) == pytest.approx(wilson_interval(tf * 100, 100))
    assert r["textfooler_success_rate"] == pytest.approx(1 - tf)
    assert r["textfooler_valid_success_rate"] == pytest.approx((1 - tf) * 0.25)
    # the worst case is the board's attack column, with the same interval and p-value
    b = board.frame.set_index("method")
    assert r["worst_acc"] == pytest.approx(b.loc["ram", "attack_mean"])
    assert (r["worst_acc_low"], r["worst_acc_high"]) == pytest.approx((b.loc["ram", "attack_low"],
                                                                       b.loc["ram", "attack_high"]))
    assert r["worst_p"] == b.loc["ram", "attack_p"] < 0.01
    assert r["worst_acc"] <= min(r["deepwordbug_acc"], r["textfooler_acc"])
    assert np.isnan(table.loc["vanilla", "worst_p"])


def test_attack_files_are_written(tmp_path):
    suite(tmp_path)
    _board, written = write_leaderboard(tmp_path, tmp_path / "out", plots=False, n_boot=100)
    assert written["attacks_csv"] == tmp_path / "out" / "attacks.csv"
    assert written["attacks_markdown"] == tmp_path / "out" / "attacks.md"
    csv = pd.read_csv(written["attacks_csv"])
    assert {"worst_acc", "worst_acc_low", "worst_p", "textfooler_valid_success_rate"} <= set(csv.columns)
    md = written["attacks_markdown"].read_text()
    assert "textfooler acc [95% CI]" in md and "worst case [95% CI]" in md and '"constraints": "filtered"' in md
    # the threat-model card as a table (one row per field), its JSON kept in a collapsed block
    assert "| setting | value |" in md and "| constraints | filtered |" in md and "| query budget | 200 |" in md
    assert "<details><summary>The threat-model card as JSON</summary>" in md and "Threat model: `{" not in md
    ram = next(line for line in md.splitlines() if line.startswith("| ram"))
    assert " [" in ram and "ref" not in ram
    board_md = written["markdown"].read_text()
    assert "[attacks.md](attacks.md)" in board_md and "worst case over the attack recipes" in board_md
    # main leaderboard columns unchanged apart from the intervals
    lb = pd.read_csv(written["csv"])
    assert "attack_mean" in lb.columns and not any(c.startswith("worst") for c in lb.columns)


def test_no_attack_files_without_adversarial_results(tmp_path):
    for seed in (0, 1):
        write_id(tmp_path / "runs", "vanilla", seed, outcomes(0.8, seed))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "attacks.md").write_text("stale")
    (tmp_path / "out" / "LEADERBOARD.md").write_text("# robench leaderboard\n")  # the earlier board's
    _board, written = write_leaderboard(tmp_path / "runs", tmp_path / "out", plots=False, n_boot=50)
    assert "attacks_csv" not in written and not (tmp_path / "out" / "attacks.md").exists()
    assert "attacks.md" not in written["markdown"].read_text()


@pytest.mark.parametrize("preset, meaning", [("valid", "only attacks that found an example passing the valid checks"),
                                             ("filtered", "an upper bound on vulnerability")])
def test_the_board_headline_names_its_preset(tmp_path, preset, meaning):
    suite(tmp_path, threat=card(preset))
    _board, written = write_leaderboard(tmp_path, tmp_path / "out", plots=False, n_boot=50)
    line = next(x for x in written["markdown"].read_text().splitlines() if x.startswith("Attack acc"))
    assert f"constraint preset `{preset}` ({meaning}" in line
    other = "filtered" if preset == "valid" else "valid"
    assert f"`{other}`" not in line
    attacks = written["attacks_markdown"].read_text()
    assert f"Accuracy under attack of this table: constraint preset `{preset}` ({meaning}" in attacks


def test_a_set_made_against_several_models_excludes_each_source(tmp_path):
    sources = {"advset": {"weights_fingerprints": ["w-vanilla-0", "w-ram-1"], "weights_fingerprint": None,
                          "description": "validated set"}}
    suite(tmp_path, transfer_sources=sources)
    board = build_leaderboard(tmp_path, n_boot=50)
    assert sorted((m, s) for _, _, m, s, _ in board.excluded) == [("ram", 1), ("vanilla", 0)]
    _board, written = write_leaderboard(tmp_path, tmp_path / "out", plots=False, n_boot=50)
    assert "generated against weights `w-vanilla-0`, `w-ram-1`" in written["attacks_markdown"].read_text()
