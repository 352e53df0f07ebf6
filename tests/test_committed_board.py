"""The committed leaderboard is a pure function of the committed result files (results/files/)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from robench.report import build_leaderboard, format_table

RESULTS = Path(__file__).resolve().parent.parent / "results"


def test_committed_board_rebuilds_from_its_result_files():
    files = RESULTS / "files"
    assert files.is_dir() and list(files.rglob("*.json")), "results/files/ (the board's sources) is missing"
    board = build_leaderboard(files)  # the same resamples and seed as `robench run` / `robench leaderboard`
    rebuilt = pd.read_csv(__import__("io").StringIO(format_table(board, "csv")))
    committed = pd.read_csv(RESULTS / "leaderboard.csv")
    pd.testing.assert_frame_equal(rebuilt, committed)
    markdown = (RESULTS / "LEADERBOARD.md").read_text()
    for method in board.frame["method"]:
        assert f"| {method} |" in markdown
