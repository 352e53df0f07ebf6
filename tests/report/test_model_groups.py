"""A board with two models of one task: every comparison stays within a (task, model) group, one table per
task and model everywhere the board is rendered, and the cross-model summary in LEADERBOARD.md and CSV."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from report_helpers import make_suite

from robench.report import build_leaderboard, format_table, improvement_table, table_rows, terminal_tables
from robench.report.write import write_leaderboard

N_BOOT = 100


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    """tiny: ram clearly better than vanilla; big: vanilla stronger than tiny's methods and ram worse than it,
    at 5x tiny's cost. A board mixing the models would rank and compare them differently."""
    root = tmp_path_factory.mktemp("models")
    for seed in (0, 1):
        make_suite(root, "vanilla", seed, 0.70, ece=0.10, auroc=0.80, attack=0.30, cost=1e-3, model="tiny")
        make_suite(root, "ram", seed, 0.85, ece=0.05, auroc=0.84, attack=0.40, cost=3e-3, model="tiny")
        make_suite(root, "r3f", seed + 10, 0.70, ece=0.12, auroc=0.80, attack=0.30, cost=2e-3, model="tiny")
        make_suite(root, "vanilla", seed + 20, 0.92, ece=0.04, auroc=0.90, attack=0.50, cost=5e-3, model="big")
        make_suite(root, "ram", seed + 30, 0.80, ece=0.08, auroc=0.86, attack=0.60, cost=5e-3, model="big")
        make_suite(root, "r3f", seed + 40, 0.94, ece=0.03, auroc=0.91, attack=0.55, cost=1e-2, model="big")
    return root


def one_model(root, model, dest):
    """The same result files, only those of one model."""
    for path in (root / "sentiment" / model).rglob("*.json"):
        target = dest / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return dest


def test_every_comparison_stays_within_a_model(two_models, tmp_path):
    board = build_leaderboard(two_models, n_boot=N_BOOT, significance="examples")
    assert list(zip(board.frame["model"], board.frame["method"], strict=True)) == [
        ("big", "vanilla"), ("big", "r3f"), ("big", "ram"), ("tiny", "vanilla"), ("tiny", "r3f"), ("tiny", "ram")]
    for model in ("big", "tiny"):
        alone = build_leaderboard(one_model(two_models, model, tmp_path / model), n_boot=N_BOOT, significance="examples").frame
        mixed = board.frame[board.frame["model"] == model].reset_index(drop=True)
        # deltas, raw and Holm p-values, avg_improvement, rank, mean_rank, cost ratio: as on the model's own board
        pd.testing.assert_frame_equal(mixed, alone)
    b = board.frame.set_index(["model", "method"])
    assert b.loc[("tiny", "ram"), "rank"] == 1 and b.loc[("big", "ram"), "rank"] == 3
    assert b.loc[("big", "ram"), "id_delta"] == pytest.approx(b.loc[("big", "ram"), "id_mean"]
                                                              / b.loc[("big", "vanilla"), "id_mean"] - 1)
    assert b.loc[("big", "ram"), "cost_ratio"] == pytest.approx(1.0)
    assert b.loc[("tiny", "ram"), "cost_ratio"] == pytest.approx(3.0)
    assert board.row("ram", "sentiment", "big")["id_delta"] < 0 < board.row("ram", "sentiment", "tiny")["id_delta"]


def test_one_table_per_task_and_model(two_models):
    board = build_leaderboard(two_models, n_boot=N_BOOT, significance="examples")
    tables = table_rows(board, "markdown")
    assert list(tables) == [("sentiment", "big"), ("sentiment", "tiny")]
    tiny = {r[0]: r for r in tables[("sentiment", "tiny")][1]}
    assert tiny["ram"][2].startswith("**")  # the best ID accuracy of tiny's table, though big's methods score higher
    assert all(not r[0].endswith(")") for t in tables.values() for r in t[1])  # rows are methods: no "(model)"
    md = format_table(board, "markdown")
    assert md.index("### sentiment (model big)") < md.index("### sentiment (model tiny)")
    tex = format_table(board, "latex")
    assert tex.count(r"\begin{tabular}") == 2 and "% robench leaderboard: sentiment (model tiny). Mean" in tex
    gains = improvement_table(board)
    assert {r[0]: r[1] for r in gains[("sentiment", "big")][1]}["ram"].startswith("-")
    from rich.console import Console

    console = Console(width=200, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    for table in terminal_tables(board, 200):
        console.print(table)
    text = console.export_text()
    assert "leaderboard: sentiment (model big)" in text and "leaderboard: sentiment (model tiny)" in text


def test_leaderboard_files_with_two_models(two_models, tmp_path):
    out = tmp_path / "out"
    (out / "plots").mkdir(parents=True)
    (out / "plots" / "sentiment-aspects.png").write_bytes(b"an earlier version's per-task figure")
    (out / "plots" / "sentiment-tiny-radar.png").write_bytes(b"an earlier version's kind of figure")
    (out / "LEADERBOARD.md").write_text("# robench leaderboard\n")  # that earlier version's board
    board, written = write_leaderboard(two_models, out, n_boot=N_BOOT, significance="examples")
    md = written["markdown"].read_text()
    assert md.index("## sentiment (model big)") < md.index("## sentiment (model tiny)") < md.index(
        "## Across models: sentiment")
    for model in ("big", "tiny"):
        assert f"plots/sentiment-{model}-aspects.png" in md and (out / "plots" / f"sentiment-{model}-roc.png").exists()
    assert not (out / "plots" / "sentiment-aspects.png").exists()
    assert not (out / "plots" / "sentiment-tiny-radar.png").exists()
    assert "Threat model of the attack columns: the same on every model (big: `none`, tiny: `none`)" in md
    assert "[cross_model.csv](cross_model.csv)" in md

    cross = pd.read_csv(written["cross_model_csv"])
    assert written["cross_model_csv"] == out / "cross_model.csv"
    assert len(cross) == 2 * (6 + 1)  # r3f and ram; six aspects and the average
    b = board.frame.set_index(["model", "method"])
    for method in ("r3f", "ram"):
        for key in ("id", "ece", "attack"):
            row = cross[(cross["method"] == method) & (cross["aspect"] == key)].iloc[0]
            for model in ("big", "tiny"):
                assert row[f"{model}_delta"] == pytest.approx(b.loc[(model, method), f"{key}_delta"], rel=1e-5)
                p = b.loc[(model, method), f"{key}_p_holm"]
                assert row[f"{model}_p_holm"] == pytest.approx(p, rel=1e-5)
                assert row[f"{model}_significant"] == (p < 0.05)
    ram = cross[cross["method"] == "ram"].set_index("aspect")
    # ram: better on ID for tiny, worse for big; better under attack on both
    assert (ram.loc["id", "agreement"], ram.loc["attack", "agreement"]) == ("disagree", "agree")
    assert f"| ram | ID acc | {b.loc[('big', 'ram'), 'id_delta'] * 100:+.1f}%" in md and "| disagree |" in md

    # a board of one model writes no summary and removes a stale one
    tiny, again = write_leaderboard(one_model(two_models, "tiny", tmp_path / "tiny"), out, plots=False,
                                      n_boot=N_BOOT)
    assert "cross_model_csv" not in again and not (out / "cross_model.csv").exists()
    text = again["markdown"].read_text()
    assert "Across models" not in text and "cross_model.csv" not in text
    assert tiny.row("ram")["id_delta"] == pytest.approx(b.loc[("tiny", "ram"), "id_delta"])
