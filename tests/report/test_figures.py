"""The board's figures, legend and threat-model card: one plotting module, one figure per table
whose panels show every seed, a short legend list linking the details, the card as a table. Synthetic
result files, no training; seconds."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import numpy as np
import pytest
from report_helpers import make_suite, write_result

import robench
from robench import plots
from robench.errors import ConfigError
from robench.report import build_leaderboard, load_results, write_leaderboard
from robench.report.figures import aspect_strips, plot_leaderboard
from robench.report.tables import threat_card_lines
from robench.report.write import legend

# method -> seeds, in the board's row order (the baseline first, then by name); unequal seed counts
SEEDS = {"vanilla": ["0", "1", "2"], "r3f": ["5"], "ram": ["0", "1"]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("fig-runs")
    for seed in (0, 1, 2):
        make_suite(root, "vanilla", seed, 0.70, ece=0.10 + 0.01 * seed, auroc=0.80 + 0.01 * seed)
    for seed in (0, 1):
        make_suite(root, "ram", seed, 0.85, ece=0.05, auroc=0.84, attack=0.40)
    make_suite(root, "r3f", 5, 0.70, ece=0.12)
    return root


@pytest.fixture(scope="module")
def board(runs):
    return build_leaderboard(runs, n_boot=50)


def test_aspect_figure_has_one_point_per_method_and_seed(runs, board):
    strips = aspect_strips(board, "sentiment", "tiny")
    # one panel per column of the table, the direction arrow in its title
    assert [s.title for s in strips] == [f"{a.label} {a.arrow}" for a in board.aspects]
    records = load_results(runs)
    for aspect, strip in zip(board.aspects, strips, strict=True):
        assert {m: len(v) for m, v in strip.values.items()} == {m: len(s) for m, s in SEEDS.items()}
        for method, values in strip.values.items():
            expected = [r.metrics[aspect.metric] * 100 for r in records
                        if r.method == method and r.evaluator == aspect.evaluator]
            assert sorted(values) == pytest.approx(sorted(expected))
            row = board.row(method)
            # the marked mean is the table's number, and the table's ± is the spread of these points
            assert strip.means[method] == pytest.approx(row[f"{aspect.key}_mean"] * 100)
            assert strip.means[method] == pytest.approx(np.mean(values))
            if len(values) > 1:
                assert np.std(values, ddof=1) == pytest.approx(row[f"{aspect.key}_std"] * 100)

    fig = plots.strips_figure(strips, title="sentiment (model tiny)")
    assert len(fig.axes) == len(strips)
    for ax, strip in zip(fig.axes, strips, strict=True):
        assert ax.get_title() == strip.title and ax.get_title()[-1] in "↑↓"
        points = {c.get_label(): np.asarray(c.get_offsets()) for c in ax.collections}
        assert {m: len(p) for m, p in points.items()} == {m: len(v) for m, v in strip.values.items()}
        for method, p in points.items():
            assert sorted(p[:, 1]) == pytest.approx(sorted(strip.values[method]))
        assert [line.get_ydata()[0] for line in ax.get_lines()] == pytest.approx(list(strip.means.values()))


def test_figures_are_saved_atomically_as_png(board, tmp_path):
    path = plots.seed_strips(aspect_strips(board, "sentiment", "tiny"), tmp_path / "x.png", title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]  # no temp file left behind


def test_reliability_and_roc_overlay_every_seed(board, tmp_path, monkeypatch):
    drawn = {}

    def capture(kind):
        def draw(panels, path, **kwargs):
            drawn[kind] = panels
            return path
        return draw

    monkeypatch.setattr(plots, "reliability_seeds", capture("reliability"))
    monkeypatch.setattr(plots, "roc_seeds", capture("roc"))
    figures = plot_leaderboard(board, tmp_path)
    assert [p.name for p in figures[("sentiment", "tiny")]] == [
        "sentiment-tiny-aspects.png", "sentiment-tiny-reliability.png", "sentiment-tiny-roc.png"]
    # one panel per method (its title names it), one curve per seed; ROC: per OOD set, one curve per seed
    assert {t.split(":")[0]: len(c) for t, c in drawn["reliability"].items()} == {m: len(s) for m, s in SEEDS.items()}
    for curves in drawn["reliability"].values():
        assert all(len(conf) == len(hits) == 400 for conf, hits in curves.values())  # two sets of 200, pooled
    assert {t.split(":")[0]: {n: len(c) for n, c in sets.items()} for t, sets in drawn["roc"].items()} == {
        m: {"trec": len(s), "sms": len(s)} for m, s in SEEDS.items()}


KEY_SENTENCES = (  # what the legend must say, in LEGEND.md (issue 26 moved it there; issue 24 changed the test)
    "Mean over seeds in percent, ± the sample standard deviation over seeds (blank with one seed).",
    "↑ higher is better, ↓ lower is better (as each evaluator declares); the best value per column is bold.",
    "Significance against vanilla (same task and model): hierarchical paired bootstrap over seeds and test examples "
    "(50 resamples, seed 0)",
    "each resample first draws, on each side, as many seeds as that side has, with replacement",
    "draws one set of example indices per evaluated set, shared by the method and vanilla and by all "
    "their seeds (examples paired by index within each set, attacked examples by sample id)",
    "p is two-sided: twice the smaller of the shares (count + 1) / (resamples + 1) of resampled differences at or "
    "below and at or above 0, at most 1.",
    "`*` p < 0.05, `**` p < 0.01 after Holm's step-down correction over every tested cell of the (task, model) table",
    "leaderboard.csv gives `<key>_p` (raw) and `<key>_p_holm` (adjusted).",
    "the Wilson 95% interval of the seed mean with n = the size of the largest set one seed was scored on",
    "rank: the score (columns significantly better minus significantly worse than vanilla, after Holm",
    "Δ vs vanilla: the mean over columns of the direction-aware change as a share of vanilla's room",
    "cost ×: training seconds per example relative to vanilla.",
)


def test_legend_is_a_short_list_linking_a_file_with_the_details(runs, tmp_path):
    board, written = write_leaderboard(runs, tmp_path / "out", plots=False, n_boot=50)
    md = written["markdown"].read_text()
    head = md.split("\n## ")[0]  # everything above the first table
    items = [line for line in head.splitlines() if line.startswith("- ")]
    assert 3 <= len(items) <= 8 and all(len(line) <= 200 for line in items)
    assert legend(board) == "\n".join(items) and len(legend(board)) < 1000
    link = re.search(r"\[LEGEND\.md\]\(([^)]+)\)", head)
    assert link, "the short list links the full legend"
    target = written["markdown"].parent / link.group(1)
    assert target == written["legend"] and target.is_file()
    details = target.read_text()
    for sentence in KEY_SENTENCES:
        assert sentence in details, sentence
    assert "Holm's step-down correction" not in head and "p is two-sided" not in head  # details: only in LEGEND.md
    # the same output guard as the board: never over a folder that holds no robench leaderboard
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("x")
    with pytest.raises(ConfigError):
        write_leaderboard(runs, foreign, plots=False, n_boot=50)
    assert not (foreign / "LEGEND.md").exists()


def _tables(lines: list[str]) -> list[list[list[str]]]:
    """The Markdown tables in ``lines`` (strings of one or more lines): [[cells of each row, header first,
    the separator dropped]]."""
    tables, current = [], []
    for line in [*"\n".join(lines).splitlines(), ""]:
        if line.startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if not all(set(c) <= set("-:") for c in cells):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    return tables


CARD = {
    "goal": "untargeted: flip the predicted label",
    "access": "black-box",
    "recipes": {
        "textfooler": {"implementation": "offline rebuild", "min_cos_sim": 0.5,
                       "constraint_list": [{"constraint": "repeat_modification"},
                                           {"constraint": "word_embedding_distance", "min_cos_sim": 0.5}],
                       "substitutes": {"USE": "MiniLM"}},
        "pwws": {"implementation": "PWWS", "stop_words": "nltk"},
    },
    "query_budget": 1000,
    "validity_check": {"word_cos": 0.9, "sentence_cos": 0.98},
    "note": "a | b",
    "card_id": "abc123def456",
}


def test_threat_card_renders_as_a_table_with_a_row_per_field():
    lines = threat_card_lines(CARD)
    text = "\n".join(lines)
    settings, recipes = _tables(lines)
    assert settings[0] == ["setting", "value"]
    assert [r[0] for r in settings[1:]] == ["goal", "access", "query budget", "validity check", "note"]
    assert all(len(r) == 2 for r in settings)  # a pipe inside a value is escaped, never a new cell
    assert dict(settings[1:])["note"] == r"a \| b"
    assert dict(settings[1:])["validity check"] == "word_cos: 0.9<br>sentence_cos: 0.98"
    assert recipes[0] == ["recipe setting", "textfooler", "pwws"]
    rows = {r[0]: r[1:] for r in recipes[1:]}
    assert list(rows) == ["implementation", "min cos sim", "constraint list", "substitutes", "stop words"]
    assert rows["constraint list"] == ["repeat_modification<br>word_embedding_distance (min_cos_sim: 0.5)", "–"]
    assert rows["stop words"] == ["–", "nltk"]
    assert "abc123def456" in text.split("\n\n")[0]
    # the machine-readable card, collapsed
    assert "<details>" in text and "</details>" in text
    block = text.split("```json\n")[1].split("\n```")[0]
    assert json.loads(block) == CARD
    assert threat_card_lines({})[0].startswith("Threat model: none recorded")


def test_a_rewrite_removes_figures_that_no_longer_apply(runs, tmp_path):
    out = tmp_path / "out"
    plots_dir = out / "plots"
    plots_dir.mkdir(parents=True)
    (out / "LEADERBOARD.md").write_text("# robench leaderboard\n")  # an earlier version's board
    old = [plots_dir / f"sentiment-tiny-{k}.png" for k in ("radar", "gain", "attack")]
    old.append(plots_dir / "sentiment-aspects.png")  # an earlier per-task name
    for path in old:
        path.write_bytes(b"old")
    other = plots_dir / "topic-tiny-radar.png"  # another table's: not this board's to remove
    other.write_bytes(b"another board's")
    copy = out / "artifacts" / "sentiment" / "tiny" / "vanilla" / "seed0" / "calibration_reliability.png"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(b"a per-run figure copied by an earlier board")
    write_leaderboard(runs, out, n_boot=50)
    assert not [p for p in old if p.exists()] and other.exists()
    assert not copy.exists() and not (out / "artifacts").exists()  # these results have no run folders to copy from
    assert sorted(p.name for p in plots_dir.glob("sentiment-*")) == [
        f"sentiment-tiny-{k}.png" for k in ("aspects", "reliability", "roc")]
    # the same table without calibration and anomaly results: their figures no longer apply
    only_id = tmp_path / "id-only"
    for seed in (0, 1):
        write_result(only_id, "vanilla", seed, "id", {"accuracy": 0.75}, {"correct": "1101"})
    _board, written = write_leaderboard(only_id, out, n_boot=50)
    assert sorted(p.name for p in plots_dir.glob("sentiment-*")) == ["sentiment-tiny-aspects.png"]
    assert "reliability.png" not in written["markdown"].read_text()


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    return found | {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}


def test_plots_is_the_one_drawing_module_and_imports_none_of_its_callers():
    root = Path(robench.__file__).parent
    callers = ("robench.report", "robench.evaluators", "robench.evaluation", "robench.matrix", "robench.train",
               "robench.tune")
    assert not [m for m in _imports(root / "plots.py") if m.startswith(callers)]
    drawing = [str(p.relative_to(root)) for p in root.rglob("*.py")
               if p != root / "plots.py" and any(m.split(".")[0] == "matplotlib" for m in _imports(p))]
    assert drawing == [], f"matplotlib used outside robench/plots.py: {drawing}"
    assert not hasattr(plots, "bar_chart")


def test_confidence_bins_bin_as_the_ece_does():
    """The board's reliability curves come from the stored confidences, binned as the ECE column bins them."""
    from robench import metrics as M

    rng = np.random.default_rng(0)
    conf = rng.uniform(0.5, 1.0, 300)
    hits = (rng.random(300) < conf).astype(int)
    b = M.confidence_bins(conf, hits, 10)
    n = np.array(b["count"])
    mean_conf = np.array([0.0 if v is None else v for v in b["confidence"]])
    acc = np.array([0.0 if v is None else v for v in b["accuracy"]])
    assert n.sum() == 300 and len(n) == 10
    assert (n * np.abs(mean_conf - acc)).sum() / 300 == pytest.approx(M.ece_weighted(conf, hits, 10)[0])
