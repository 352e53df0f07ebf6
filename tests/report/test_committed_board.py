"""The committed leaderboard is a pure function of the committed result files (results/files/)."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

from robench.report import build_leaderboard, cross_model_table, format_table
from robench.report.cross import cross_model_csv, cross_model_lines
from robench.report.figures import FIGURE_KINDS, OLD_KINDS, slug
from robench.report.write import legend, legend_markdown, verdict_lines

RESULTS = Path(__file__).resolve().parents[2] / "results"
RERENDER = ("it was rendered by another robench version: re-render it with "
            "'robench leaderboard --results results/files --out results'")


@pytest.fixture(scope="module")
def board():
    files = RESULTS / "files"
    assert files.is_dir() and list(files.rglob("*.json")), "results/files/ (the board's sources) is missing"
    return build_leaderboard(files)  # the same resamples and seed as `robench run` / `robench leaderboard`


def test_committed_board_rebuilds_from_its_result_files(board):
    rebuilt = pd.read_csv(io.StringIO(format_table(board, "csv")))
    committed = pd.read_csv(RESULTS / "leaderboard.csv")
    changed = sorted(set(rebuilt.columns) ^ set(committed.columns))
    assert not changed, f"results/leaderboard.csv has other columns ({', '.join(changed)}): {RERENDER}"
    # every number: means, intervals, raw and Holm-adjusted p-values, ranks, costs
    pd.testing.assert_frame_equal(rebuilt, committed)
    markdown = (RESULTS / "LEADERBOARD.md").read_text()
    assert legend(board) in markdown, f"LEADERBOARD.md's header list is stale: {RERENDER}"
    legend_file = RESULTS / "LEGEND.md"
    assert legend_file.is_file() and legend_file.read_text() == legend_markdown(board), (
        f"LEGEND.md (what is tested and how) is missing or stale: {RERENDER}")
    for method in board.frame["method"]:
        assert f"| {method} |" in markdown


def test_committed_board_compares_both_backbones(board):
    """Issue 15: the board holds MiniLM and MPNet under one protocol, and its cross-model summary
    (cross_model.csv and the "Across models" section) is the one the result files give."""
    groups = set(zip(board.frame["task"], board.frame["model"], strict=True))
    shared = {task for task, model in groups if model == "mpnet"} & {task for task, model in groups if model == "minilm"}
    assert shared, f"no task is on both minilm and mpnet: {sorted(groups)}"
    rebuilt = cross_model_table(board.frame, board.aspects, board.baseline)
    committed = pd.read_csv(RESULTS / "cross_model.csv")
    assert set(committed["task"]) == shared and set(rebuilt["task"]) == shared
    pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(cross_model_csv(rebuilt))), committed)
    markdown = (RESULTS / "LEADERBOARD.md").read_text()
    for line in cross_model_lines(rebuilt, board.baseline):  # the "Across models" section, every line
        assert line in markdown, f"LEADERBOARD.md lacks {line[:80]!r}: {RERENDER}"


def test_committed_board_figures_are_this_versions(board):
    """plots/ holds this version's figures of every table (each embedded in LEADERBOARD.md) and none of an
    earlier version's kinds."""
    markdown = (RESULTS / "LEADERBOARD.md").read_text()
    for task, model in set(zip(board.frame["task"], board.frame["model"], strict=True)):
        stem = f"{slug(task)}-{slug(model)}"
        for kind in FIGURE_KINDS:
            assert (RESULTS / "plots" / f"{stem}-{kind}.png").is_file(), f"plots/{stem}-{kind}.png: {RERENDER}"
            assert f"](plots/{stem}-{kind}.png)" in markdown
        for kind in OLD_KINDS:
            assert not (RESULTS / "plots" / f"{stem}-{kind}.png").exists(), f"plots/{stem}-{kind}.png: {RERENDER}"


def test_what_results_readme_says_is_on_the_board(board):
    """results/README.md quotes the board: each 'mean ± std', each card id, the quick transfer set's size
    and the default table's verdicts (each line as LEADERBOARD.md prints it) are read back from the files."""
    import json
    import re

    readme = (RESULTS / "README.md").read_text()
    markdown = (RESULTS / "LEADERBOARD.md").read_text()
    quoted = re.findall(r"\d+\.\d ± \d+\.\d", readme)
    assert quoted and all(q in markdown for q in quoted), [q for q in quoted if q not in markdown]
    attacks = (RESULTS / "attacks.md").read_text()
    cards = set(re.findall(r"`([0-9a-f]{12})`", readme))
    assert cards and all(f"card `{c}`" in attacks for c in cards)
    default = json.loads((RESULTS / "files/sentiment/minilm/vanilla/seed0/adversarial.json").read_text())
    quick = json.loads((RESULTS / "files/sentiment-quick/minilm/vanilla/seed0/adversarial.json").read_text())
    assert f"`{default['settings']['threat_model']['card_id']}`" in readme.split("the default board's is")[1][:20]
    size = quick["data"]["adversarial:textfooler_transfer"]["size"]
    assert f"the transfer set {size}," in readme
    # the default table's verdicts, as the board words them, quoted whole: a verdict the board no longer prints
    # (or one it prints and the README omits) fails here
    said = [line for line in verdict_lines(board, "sentiment", "minilm") if line.startswith("- ")]
    assert said, "the default table prints no verdict lines"
    missing = [line for line in said if line not in readme]
    assert not missing, f"results/README.md does not quote the board's verdicts: {missing}"
