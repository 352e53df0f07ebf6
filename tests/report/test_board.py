"""The leaderboard on synthetic result files (no training): aggregation, improvements, tables, plots."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from report_helpers import make_suite, write_result
from typer.testing import CliRunner

from robench.errors import ConfigError
from robench.evaluators import EVALUATORS
from robench.identity import result_path
from robench.report import (
    build_leaderboard,
    format_table,
    load_results,
    paired_bootstrap,
    relative_improvement,
    resolve_aspects,
    terminal_tables,
    write_leaderboard,
)
from robench.results import make_result
from robench.storage import atomic_write_json


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for seed in (0, 1):
        make_suite(root, "vanilla", seed, 0.70, ece=0.10 + 0.01 * seed, auroc=0.80, attack=0.30, cost=1e-3)
        # clearly better on accuracy, better (lower) ECE, 3x the training cost
        make_suite(root, "ram", seed, 0.85, ece=0.05, auroc=0.84, attack=0.40, cost=3e-3)
        # same accuracy distribution as vanilla but other examples: not significant
        make_suite(root, "r3f", seed + 10, 0.70, ece=0.12, auroc=0.80, attack=0.30, cost=2e-3)
    return root


def test_load_and_board(synthetic):
    records = load_results(synthetic)
    assert len(records) == 3 * 2 * 5
    board = build_leaderboard(synthetic, n_boot=2000, significance="examples")  # 2 seeds: the examples test
    assert list(board.frame["method"]) == ["vanilla", "r3f", "ram"]
    b = board.frame.set_index("method")
    assert b.loc["vanilla", "seeds"] == 2 and b.loc["vanilla", "id_n"] == 2
    assert b.loc["vanilla", "ece_mean"] == pytest.approx(0.105)
    assert b.loc["vanilla", "ece_std"] == pytest.approx(np.std([0.10, 0.11], ddof=1))
    # direction-aware: lower ECE is a positive improvement
    assert b.loc["ram", "ece_delta"] == pytest.approx((0.105 - 0.05) / 0.105)
    assert b.loc["r3f", "ece_delta"] < 0
    assert b.loc["ram", "auroc_delta"] == pytest.approx(0.04 / 0.20)  # bounded: the share of the room closed
    assert b.loc["vanilla", "avg_improvement"] == 0
    assert b.loc["ram", "rank"] == 1 and b.loc["ram", "avg_improvement"] > 0.1
    assert b.loc["ram", "cost_ratio"] == pytest.approx(3.0)
    assert b.loc["ram", "id_p"] < 0.01 and b.loc["ram", "shift_p"] < 0.05
    assert b.loc["r3f", "id_p"] > 0.05
    assert np.isnan(b.loc["vanilla", "id_p"]) and np.isnan(b.loc["vanilla", "ece_p_holm"])
    # ECE and AUROC are tested too (the metric bootstrapped from the stored per-example data)
    assert b.loc["ram", "ece_p"] < 0.01 and b.loc["ram", "auroc_p"] < 0.05 and b.loc["r3f", "auroc_p"] > 0.05
    # Holm over every tested cell of the table (both methods' six columns): never below the raw p, at most 1
    keys = ("id", "shift", "attack", "transfer", "ece", "auroc")
    raw = b.loc[["ram", "r3f"], [f"{k}_p" for k in keys]].to_numpy(dtype=float).ravel()
    adj = b.loc[["ram", "r3f"], [f"{k}_p_holm" for k in keys]].to_numpy(dtype=float).ravel()
    assert np.all(np.isfinite(raw)) and np.all(adj >= raw) and np.all(adj <= 1)
    assert adj[np.argmin(raw)] == pytest.approx(min(1.0, 12 * raw.min()))
    assert not board.untested


def test_missing_vanilla_and_aspect(tmp_path):
    write_result(tmp_path, "ram", 0, "id", {"accuracy": 0.8}, {"correct": "1101"})
    write_result(tmp_path, "ram", 0, "calibration", {"ece": float("nan")})
    board = build_leaderboard(tmp_path)
    row = board.frame.iloc[0]
    assert row["id_mean"] == 0.8 and np.isnan(row["ece_mean"]) and np.isnan(row["avg_improvement"])
    assert [a.key for a in board.aspects] == ["id", "ece"]  # only columns some result declares
    text = format_table(board, "markdown")
    assert "80.0" in text and "–" in text


def test_paired_bootstrap():
    a = np.array([1, 0] * 50)
    assert paired_bootstrap([{"": a}], [{"": a}]) == 1.0
    better = np.ones(100, dtype=int)
    assert paired_bootstrap([{"": better}], [{"": a}], n_boot=300) < 0.01
    assert np.isnan(paired_bootstrap([{"": a}], [{"": a[:10]}]))
    # a test on part of the sets could point the other way from the delta over all of them: none at all
    good, bad = (np.random.default_rng(1).random(100) < 0.9).astype(int), np.zeros(100, dtype=int)
    assert np.isnan(paired_bootstrap([{"a": good, "b": bad}], [{"a": a}]))  # set a alone says better; a+b worse
    assert np.isnan(paired_bootstrap([{"a": good, "b": bad}, {"a": good}], [{"a": a, "b": a}, {"a": a, "b": a}]))
    assert paired_bootstrap([{"a": good, "b": good}], [{"a": a, "b": a}], n_boot=300) < 0.01
    assert np.isnan(paired_bootstrap([], [{"": a}]))
    assert relative_improvement(0.05, 0.1, higher_is_better=False) == pytest.approx(0.5)
    assert np.isnan(relative_improvement(0.5, 0.0, True))


def test_tables(synthetic):
    board = build_leaderboard(synthetic, n_boot=2000, significance="examples")
    md = format_table(board, "markdown")
    assert "ECE ↓" in md and "ID acc ↑" in md
    ram_line = next(line for line in md.splitlines() if line.startswith("| ram"))
    assert "**5.0 ± 0.0**" in ram_line  # best (lowest) ECE in bold
    assert "| 50.0 ± 0.0 |" in ram_line  # a column where all methods tie: nothing bold
    assert r"\*" in ram_line and "3.00×" in ram_line
    tex = format_table(build_leaderboard(synthetic, "id,ece", n_boot=300, significance="examples"), "latex")
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"$\downarrow$" in tex and r"\textbf{" in tex
    assert r"$\pm$" in tex and "$^{**}$" in tex and "AUROC" not in tex
    csv = format_table(board, "csv")
    df = pd.read_csv(__import__("io").StringIO(csv))
    assert {"id_mean", "ece_std", "avg_improvement", "cost_ratio"} <= set(df.columns)
    with pytest.raises(ConfigError):
        format_table(board, "html")
    records = load_results(synthetic)
    with pytest.raises(ConfigError):
        resolve_aspects("id,bogus", records)
    assert [a.key for a in resolve_aspects("id,shift.accuracy.amazon", records)] == ["id", "shift.accuracy.amazon"]
    with pytest.raises(ConfigError, match="no better/worse direction"):
        resolve_aspects("calibration.temperature", records)  # declared informational


def test_write_leaderboard_and_artifacts(synthetic, tmp_path):
    run_dir = synthetic / "sentiment" / "tiny" / "vanilla" / "seed0"
    (run_dir / "artifacts").mkdir(exist_ok=True)
    (run_dir / "run.json").write_text("{}")  # figures are collected only from real run folders
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(1, 1))
    fig.savefig(run_dir / "artifacts" / "reliability.png")
    plt.close(fig)
    _board, written = write_leaderboard(synthetic, tmp_path / "out", n_boot=200)
    md = written["markdown"].read_text()
    plots = tmp_path / "out" / "plots"
    assert "| ram" in md
    for kind in ("aspects", "reliability", "roc"):  # one figure per kind, each embedded once
        assert (plots / f"sentiment-tiny-{kind}.png").exists() and md.count(f"plots/sentiment-tiny-{kind}.png)") == 1
    assert sorted(p.name for p in plots.iterdir()) == [f"sentiment-tiny-{k}.png" for k in ("aspects", "reliability",
                                                                                            "roc")]
    assert (tmp_path / "out" / "artifacts" / "sentiment" / "tiny" / "vanilla" / "seed0" / "reliability.png").exists()
    # the copied per-run figures: one line linking the table's folder, no image of them on the board
    assert md.count("[artifacts/sentiment/tiny/](artifacts/sentiment/tiny/)") == 1 and "](artifacts/" in md
    assert "![" not in "".join(line for line in md.splitlines() if "artifacts/" in line)
    assert "no per-run figures" not in md
    assert written["csv"].exists() and written["latex"].exists()


def test_no_artifacts_note(tmp_path):
    write_result(tmp_path / "runs", "vanilla", 0, "id", {"accuracy": 0.8}, {"correct": "1101"})
    _board, written = write_leaderboard(tmp_path / "runs", tmp_path / "out", plots=True)
    assert "no per-run figures" in written["markdown"].read_text()


def test_cli_leaderboard_and_table(synthetic, tmp_path):
    from robench.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["leaderboard", "--results", str(synthetic), "--out", str(tmp_path / "lb"),
                              "--no-plots", "--bootstrap", "200"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "lb" / "LEADERBOARD.md").exists() and "ram" in res.output
    res = runner.invoke(app, ["table", "--format", "latex", "--results", str(synthetic), "--aspects", "id,ece",
                              "--bootstrap", "100"])
    assert res.exit_code == 0, res.output
    assert r"\toprule" in res.output
    res = runner.invoke(app, ["table", "--results", str(tmp_path / "nowhere")])
    assert isinstance(res.exception, ConfigError)


def test_board_from_result_files_alone(synthetic, tmp_path):
    """Result files copied away from their run folders (no run.json anywhere) give the same board."""
    import shutil

    flat = tmp_path / "flat"
    flat.mkdir()
    for i, path in enumerate(sorted(synthetic.rglob("results/*.json"))):
        shutil.copyfile(path, flat / f"{i:03d}-{path.name}")
    assert not list(flat.rglob("run.json"))
    a = build_leaderboard(synthetic, n_boot=200).frame
    b = build_leaderboard(flat, n_boot=200).frame
    pd.testing.assert_frame_equal(a, b)


def test_direction_comes_from_the_declaration(synthetic, tmp_path):
    """Declare ECE higher-is-better in the files and the board ranks it the other way: nothing is
    guessed from the metric's name."""
    import json
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(synthetic, copy)
    for path in copy.rglob("calibration.json"):
        data = json.loads(path.read_text())
        for spec in data["metric_specs"]:
            if spec["name"] == "ece":
                spec["direction"] = "higher"
        path.write_text(json.dumps(data))
    before = build_leaderboard(synthetic, n_boot=100, significance="examples").frame.set_index("method")
    after = build_leaderboard(copy, n_boot=100, significance="examples").frame.set_index("method")
    assert before.loc["ram", "ece_delta"] > 0 > after.loc["ram", "ece_delta"]
    assert after.loc["ram", "ece_delta"] == pytest.approx(-before.loc["ram", "ece_delta"])


def test_only_declared_per_example_outcomes_are_tested(synthetic, tmp_path):
    """The paired test runs where the evaluator declares per-example outcomes, and only there."""
    import json
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(synthetic, copy)
    for path in copy.rglob("id.json"):
        data = json.loads(path.read_text())
        for spec in data["metric_specs"]:
            spec.pop("per_example", None)
        path.write_text(json.dumps(data))
    board = build_leaderboard(copy, n_boot=100, significance="examples")
    assert np.isnan(board.frame.set_index("method").loc["ram", "id_p"])
    assert board.frame.set_index("method").loc["ram", "shift_p"] < 0.05


def test_terminal_board_fits_80_columns(synthetic):
    from rich.console import Console

    board = build_leaderboard(synthetic, n_boot=100)
    for width in (80, 200):
        console = Console(width=width, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
        for table in terminal_tables(board, width):
            console.print(table)
        text = console.export_text()
        assert max(len(line) for line in text.splitlines()) <= width
        assert "vanilla" in text and "r3f" in text and "…" not in text  # method names whole, nothing cut
        assert (" ± " in text) == (width == 200)  # std where it fits


def test_report_package_has_no_import_cycle():
    """robench.report's modules import only those before them in data-flow order; baseline and results
    never import the report."""
    import ast
    from pathlib import Path

    import robench

    root = Path(robench.__file__).parent
    order = ["aspects", "stats", "board", "tables", "cross", "figures", "write"]

    def imports(path):
        tree = ast.parse(path.read_text())
        return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}

    for i, name in enumerate(order):
        for module in imports(root / "report" / f"{name}.py"):
            if module.startswith("robench.report."):
                assert module.split(".")[-1] in order[:i], f"report.{name} imports {module}"
    for name in ("results.py", "baseline.py"):
        assert not any(m.startswith("robench.report") for m in imports(root / name)), name


def test_board_folder_carries_its_result_files(synthetic, tmp_path):
    """write_leaderboard copies its sources to <out>/files; rebuilding from them gives the same numbers."""
    board, written = write_leaderboard(synthetic, tmp_path / "out", plots=False, n_boot=200)
    files = sorted((tmp_path / "out" / "files").rglob("*.json"))
    assert len(files) == len(board.records)
    again, _ = write_leaderboard(tmp_path / "out" / "files", tmp_path / "out2", plots=False, n_boot=200)
    pd.testing.assert_frame_equal(board.frame, again.frame)
    # rebuilt in place (results == out/files): nothing lost
    write_leaderboard(tmp_path / "out" / "files", tmp_path / "out", plots=False, n_boot=200)
    assert sorted((tmp_path / "out" / "files").rglob("*.json")) == files


def test_regulariser_check_comes_from_the_result_files(tmp_path):
    """Training diagnostics travel in each result's run block; the board shows the alive ratio."""
    from robench.report.board import regulariser_table

    for seed, ratio in ((0, 3.0), (1, 5.0)):
        run = {"run_id": f"s/tiny/smart/seed{seed}", "task": {"name": "sentiment", "profile": "default"},
               "model": {"name": "tiny"}, "method": {"name": "smart"}, "seed": seed,
               "training": {"seconds_per_example": 1e-3, "history": [
                   {"diagnostics": {"ce": 0.5, "sym_kl": 0.1, "sampled_sym_kl": 0.3 * ratio, "dropout_sym_kl": 0.3,
                                    "alive_ratio": ratio, "sampled_steps": 4}}]}}
        atomic_write_json(result_path(tmp_path / f"seed{seed}", "id"),
                          make_result("id", run, {"accuracy": 0.8, "n": 4}, details={"correct": "1101"},
                                      specs=EVALUATORS.get("id").metrics))
    board = build_leaderboard(tmp_path)
    table = regulariser_table(board)
    assert table.loc[0, "alive_ratio"] == pytest.approx(4.0) and table.loc[0, "seeds"] == 2
    _board, written = write_leaderboard(tmp_path, tmp_path / "out", plots=False)
    assert "| smart | 1.2 | 0.3 | 4.00 |" in written["markdown"].read_text()
