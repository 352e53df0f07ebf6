"""The committed leaderboard is a pure function of the committed result files (results/files/)."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from robench.report import build_leaderboard, format_table
from robench.report.write import legend

RESULTS = Path(__file__).resolve().parent.parent / "results"
RERENDER = ("it was rendered by another robench version: re-render it with "
            "'robench leaderboard --results results/files --out results'")


def test_committed_board_rebuilds_from_its_result_files():
    files = RESULTS / "files"
    assert files.is_dir() and list(files.rglob("*.json")), "results/files/ (the board's sources) is missing"
    board = build_leaderboard(files)  # the same resamples and seed as `robench run` / `robench leaderboard`
    rebuilt = pd.read_csv(io.StringIO(format_table(board, "csv")))
    committed = pd.read_csv(RESULTS / "leaderboard.csv")
    changed = sorted(set(rebuilt.columns) ^ set(committed.columns))
    assert not changed, f"results/leaderboard.csv has other columns ({', '.join(changed)}): {RERENDER}"
    # every number: means, intervals, raw and Holm-adjusted p-values, ranks, costs
    pd.testing.assert_frame_equal(rebuilt, committed)
    markdown = (RESULTS / "LEADERBOARD.md").read_text()
    assert legend(board) in markdown, f"LEADERBOARD.md's header text (what is tested and how) is stale: {RERENDER}"
    for method in board.frame["method"]:
        assert f"| {method} |" in markdown
