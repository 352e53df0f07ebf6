"""Markers of the committed default board under each significance test and Holm family (issue 24):
    python benchmarks/verdict_markers.py
"""
import numpy as np

from robench.report import leaderboard, load_results
from robench.report.stats import holm

records = [r for r in load_results("results/files") if r.task == "sentiment" and r.model == "minilm"]
for significance in ("examples", "hierarchical"):
    board = leaderboard(records, significance=significance)
    f = board.frame.set_index("method")
    keys = [a.key for a in board.aspects]
    raw = f[[f"{k}_p" for k in keys]].to_numpy(dtype=float)
    row = np.vstack([holm(r) for r in raw])
    table = f[[f"{k}_p_holm" for k in keys]].to_numpy(dtype=float)
    for name, adj in (("row Holm", row), ("table Holm", table)):
        cells = [f"{m} {k}" for i, m in enumerate(f.index) for j, k in enumerate(keys) if adj[i, j] < 0.05]
        print(f"{significance:12s} {name:10s} {len(cells):2d}: {', '.join(cells)}")
