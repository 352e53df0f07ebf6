"""The audit trail (robench.audit): five seeded examples per recipe in the adversarial result and in
attacks.md, the rating sheet drawn from a run's attack logs, the filled sheet read back into the result's
``audit`` block (valid share with its Wilson interval, human-validated success rate), and its board line."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
from audit_helpers import (
    DECOY_INDEX,
    LABELS,
    RECIPES,
    SUCCESSES,
    N,
    attack_records,
    fill_sheet,
    read_sheet,
    result_of,
    run_id,
    write_attack_run,
)
from cli_helpers import edit_json

from robench.audit import SHEET_COLUMNS, apply_ratings, draw_examples, read_ratings, write_sheet
from robench.errors import ConfigError

Z = 1.959963984540054


def wilson(k: int, n: int) -> tuple[float, float]:
    """The Wilson score interval in closed form (Wilson 1927), written out here independently of robench."""
    p = k / n
    denom = 1 + Z * Z / n
    centre = (p + Z * Z / (2 * n)) / denom
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / denom
    return centre - half, centre + half


# --------------------------------------------------------------------------------------------- draw_examples


def test_draw_examples_is_seeded_and_draws_only_successes():
    records = attack_records("textfooler")
    successes = [r for r in records if r["outcome"] == "successful"]
    assert len(successes) == SUCCESSES
    drawn = draw_examples(records, 5, seed=3)
    assert drawn == draw_examples(records, 5, seed=3)  # deterministic
    # the brief's rule, written out: RandomState(seed) picks k positions among the successes, kept in order
    picked = sorted(np.random.RandomState(3).choice(SUCCESSES, size=5, replace=False))
    assert [e["index"] for e in drawn] == [successes[p]["index"] for p in picked]
    assert all(e["index"] in {r["index"] for r in successes} for e in drawn)
    first = drawn[0]
    assert set(first) == {"index", "label", "original_prediction", "perturbed_prediction", "original", "perturbed",
                          "swaps"}
    assert first["swaps"] == [["good", "decent"]] and first["perturbed"].endswith("decent")
    assert first["original_prediction"] != first["perturbed_prediction"] and isinstance(first["label"], int)
    named = draw_examples(records, 5, seed=3, labels=LABELS)
    assert [e["label"] for e in named] == [LABELS[e["label"]] for e in drawn]
    # fewer successes than k: all of them, in sample order; none at all: nothing
    assert [e["index"] for e in draw_examples(records, 50, seed=0)] == [r["index"] for r in successes]
    assert draw_examples([r for r in records if r["outcome"] != "successful"], 5, seed=0) == []


def test_the_evaluator_stores_five_examples_per_recipe(tiny_run, monkeypatch):
    """details.examples holds, per recipe, the seeded draw of that recipe's successes (label names)."""
    from robench.attacks.runner import sample_indices, summarize
    from robench.evaluation import make_context
    from robench.evaluators import adversarial

    ctx = make_context(tiny_run, device="cpu")
    idx = sample_indices(len(ctx.texts("test")), N, 1)
    records = {r: attack_records(r, indices=idx, word="fine" if r == "pwws" else "decent")
               for r in ("deepwordbug", "pwws")}

    def fake(ctx_, recipe, **kwargs):
        return summarize(records[recipe]), records[recipe], ctx_.run_dir / "artifacts" / f"fake-{recipe}.jsonl"

    monkeypatch.setattr(adversarial, "attack_recipe", fake)
    out = adversarial.Adversarial(recipes=["deepwordbug", "pwws"], n=N, seed=1).evaluate(ctx)
    examples = out.details["examples"]
    assert set(examples) == {"deepwordbug", "pwws"}
    picked = sorted(np.random.RandomState(1).choice(SUCCESSES, size=5, replace=False))  # the evaluator's seed
    for recipe, shown in examples.items():
        successes = [r for r in records[recipe] if r["outcome"] == "successful"]
        assert [e["index"] for e in shown] == [successes[p]["index"] for p in picked]
        assert all(e["label"] in ctx.task.labels for e in shown)
    assert examples["pwws"][0]["swaps"] == [["good", "fine"]]
    json.dumps(out.details)  # stored as JSON


# --------------------------------------------------------------------------------------------- the rating sheet


def test_sheet_draws_successes_of_every_recipe_and_never_stale_or_shard_logs(tmp_path):
    run = write_attack_run(tmp_path, decoys=True)
    sheet = write_sheet(run, n=10, seed=0)
    assert sheet.path == run / "audit" / "audit-sheet.csv" and sheet.available == 2 * SUCCESSES
    rows = read_sheet(sheet.path)
    assert tuple(rows[0]) == SHEET_COLUMNS and len(rows) == 10
    assert [r["id"] for r in rows] == [str(i) for i in range(1, 11)]
    logs = {json.loads(line)["recipe"]: p.name for p in (run / "artifacts").glob("attack-*.jsonl")
            if ".rank" not in p.name for line in p.read_text().splitlines()[:1]}
    successes = {(r, str(rec["index"])) for r in RECIPES for rec in attack_records(r)
                 if rec["outcome"] == "successful"}
    for row in rows:
        assert (row["recipe"], row["index"]) in successes and row["log"] == logs[row["recipe"]]
        assert int(row["index"]) < DECOY_INDEX  # nothing from the .stale log or the shard's
        assert row["run_id"] == run_id() and row["gold_label"] in LABELS
        assert row["swaps"] == "good -> decent" and row["label_kept"] == "" and row["meaning"] == ""
    # the same seed draws the same sheet; another n draws from the same pool
    again = write_sheet(run, n=10, seed=0, out=tmp_path / "again.csv")
    assert again.path.read_bytes() == sheet.path.read_bytes()
    everything = write_sheet(run, n=100, seed=0, out=tmp_path / "all.csv")
    assert len(everything.rows) == everything.available == 2 * SUCCESSES


def test_a_run_without_attack_logs_says_to_evaluate_first(tmp_path):
    run = write_attack_run(tmp_path, result=False)
    for log in (run / "artifacts").iterdir():
        log.unlink()
    with pytest.raises(ConfigError) as err:
        write_sheet(run)
    assert "\n" not in str(err.value) and "robench eval" in str(err.value) and "--suite adversarial" in str(err.value)


VALID_7_OF_10 = [("yes", "5"), ("Yes", "4"), ("y", "4"), ("1", "5"), ("YES", "4"), ("yes", "5"), ("Y", "4"),
                 ("yes", "3"),  # label kept, meaning not kept: not valid
                 ("no", "5"),  # meaning kept, label lost: not valid
                 ("N", "2")]


def test_sheet_round_trip_writes_the_audit_block(tmp_path):
    run = write_attack_run(tmp_path)
    # a result written before the audit was declared: the rating adds the declarations it needs
    edit_json(run / "results" / "adversarial.json", lambda d: d.__setitem__(
        "metric_specs", [s for s in d["metric_specs"] if not s["name"].startswith("audit.")]))
    sheet = write_sheet(run, n=10, seed=0)
    rows = fill_sheet(sheet.path, VALID_7_OF_10)
    ratings = read_ratings(sheet.path)
    assert [r.valid for r in ratings] == [True] * 7 + [False] * 3
    applied = apply_ratings(sheet.path)  # the sheet sits in <run>/audit: that run's results are found
    assert [a.path.resolve() for a in applied.results] == [(run / "results" / "adversarial.json").resolve()]
    assert not applied.unmatched
    data = result_of(run)
    block = data["metrics"]["audit"]
    assert (block["rated"], block["valid"]) == (10, 7)
    assert block["valid_share"] == pytest.approx(0.7)
    low, high = wilson(7, 10)
    assert (low, high) == pytest.approx((0.3968, 0.8922), abs=1e-4)  # the textbook 95% interval of 7 of 10
    assert (block["valid_share_low"], block["valid_share_high"]) == pytest.approx((low, high), abs=1e-9)
    # human-validated success rate: the run's attack success rate (8 of 10 attacked) x the valid share
    assert block["validated_success_rate"] == pytest.approx(0.8 * 0.7)
    assert (block["validated_success_rate_low"], block["validated_success_rate_high"]) == pytest.approx(
        (0.8 * low, 0.8 * high))
    for recipe in RECIPES:
        mine = [v for row, v in zip(rows, [True] * 7 + [False] * 3, strict=True) if row["recipe"] == recipe]
        if not mine:
            assert recipe not in block["recipes"]
            continue
        got = block["recipes"][recipe]
        assert (got["rated"], got["valid"]) == (len(mine), sum(mine))
        assert got["valid_share"] == pytest.approx(sum(mine) / len(mine))
        if 0 < sum(mine) < len(mine):
            assert (got["valid_share_low"], got["valid_share_high"]) == pytest.approx(wilson(sum(mine), len(mine)))
        assert got["validated_success_rate"] == pytest.approx(0.8 * sum(mine) / len(mine))
    # provenance of the ratings, and declarations the typed loader reads the block with
    assert data["details"]["audit"]["sheet_sha256"] == hashlib.sha256(sheet.path.read_bytes()).hexdigest()
    assert len(data["details"]["audit"]["ratings"]) == 10
    assert {"audit.*", "audit.validated_success_rate"} <= {s["name"] for s in data["metric_specs"]}
    from robench.results import load_results

    (rec,) = load_results(run)
    assert rec.metrics["audit.valid_share"] == pytest.approx(0.7) and rec.metrics["audit.rated"] == 10
    assert rec.direction("audit.valid_share") == "none" and rec.direction("audit.valid_share_low") == "none"
    assert rec.direction("audit.validated_success_rate") == "lower"
    assert rec.metrics["recipes.textfooler.attack_success_rate"] == pytest.approx(0.8)  # the rest is untouched


def test_ratings_go_only_into_the_run_that_holds_the_rated_examples(tmp_path):
    """Run ids repeat across task profiles: a result of the same id whose log holds other texts is left alone."""
    run = write_attack_run(tmp_path / "a")
    other = write_attack_run(tmp_path / "b", word="great")  # same run id and log names, other adversarial texts
    sheet = write_sheet(run, n=10, seed=0, out=tmp_path / "sheet.csv")
    fill_sheet(sheet.path, VALID_7_OF_10)
    applied = apply_ratings(sheet.path, [tmp_path])
    assert [a.path.resolve() for a in applied.results] == [(run / "results" / "adversarial.json").resolve()]
    assert "audit" in result_of(run)["metrics"] and "audit" not in result_of(other)["metrics"]


@pytest.mark.parametrize("column, value, fragment", [
    ("label_kept", "maybe", "'maybe', not yes or no"),
    ("label_kept", "", "'', not yes or no"),
    ("meaning", "6", "'6', not a whole number from 1 to 5"),
    ("meaning", "4.5", "'4.5', not a whole number from 1 to 5"),
    ("meaning", "", "'', not a whole number from 1 to 5"),
])
def test_a_bad_rating_names_its_row_and_column(tmp_path, column, value, fragment):
    run = write_attack_run(tmp_path)
    sheet = write_sheet(run, n=10, seed=0)
    ratings = list(VALID_7_OF_10)
    ratings[2] = (value, "4") if column == "label_kept" else ("yes", value)
    ratings[5] = ("perhaps", "9")  # a later bad row: the first one is named
    fill_sheet(sheet.path, ratings)
    before = (run / "results" / "adversarial.json").read_bytes()
    with pytest.raises(ConfigError) as err:
        apply_ratings(sheet.path)
    msg = str(err.value)
    assert "\n" not in msg and "row 3 (id 3)" in msg and f"column {column}" in msg and fragment in msg, msg
    assert (run / "results" / "adversarial.json").read_bytes() == before  # nothing written


def test_an_unfilled_sheet_is_refused_and_a_filled_one_never_replaced(tmp_path):
    run = write_attack_run(tmp_path)
    sheet = write_sheet(run, n=10, seed=0)
    with pytest.raises(ConfigError, match="row 1 .*column label_kept"):
        read_ratings(sheet.path)
    write_sheet(run, n=10, seed=1)  # no ratings yet: replaced
    fill_sheet(sheet.path, VALID_7_OF_10)
    filled = sheet.path.read_bytes()
    with pytest.raises(ConfigError, match="holds ratings"):
        write_sheet(run, n=10, seed=0)
    assert sheet.path.read_bytes() == filled
    (tmp_path / "notes.csv").write_text("my notes\n")
    with pytest.raises(ConfigError, match="not a robench audit sheet"):
        write_sheet(run, n=10, seed=0, out=tmp_path / "notes.csv")


# --------------------------------------------------------------------------------------------- attacks.md


def test_attacks_md_shows_the_examples_and_the_audit_line(tmp_path):
    from robench.report import build_leaderboard
    from robench.report.tables import attack_markdown

    runs = tmp_path / "runs"
    vanilla = write_attack_run(runs, "vanilla", 0)
    write_attack_run(runs, "vanilla", 1, word="fine")
    write_attack_run(runs, "ram", 0, word="great")
    sheet = write_sheet(vanilla, n=10, seed=0)
    fill_sheet(sheet.path, VALID_7_OF_10)
    apply_ratings(sheet.path)
    md = attack_markdown(build_leaderboard(runs, n_boot=50))
    assert "### Examples" in md and "Successful adversarial examples of vanilla seed 0" in md
    shown = result_of(vanilla)["details"]["examples"]["textfooler"][0]
    prefix = shown["original"].rsplit(" ", 1)[0]  # "scene <index> of this textfooler film was"
    line = next(x for x in md.splitlines() if x.startswith(f"- example {shown['index']} "))
    assert line.endswith(f"{prefix} ~~good~~ **decent**"), line
    assert f"(gold {shown['label']}; prediction {shown['original_prediction']} → " in line
    assert "**great**" not in md and "**fine**" not in md  # ram's and vanilla seed 1's are not shown
    assert "**textfooler**" in md and "**pwws**" in md
    # the audit: one line for the audited run only
    audit = [x for x in md.splitlines() if "human-validated (audit)" in x]
    assert len(audit) == 1 and audit[0].startswith("vanilla seed 0, ")
    assert "human-validated (audit): valid share 70.0% [39.7, 89.2] of 10 rated" in audit[0]
    assert "validated success rate 56.0% [31.7, 71.4]" in audit[0]  # 0.8 x the share and its interval


def test_attacks_md_without_examples_or_audits_says_so_in_one_line(tmp_path):
    from robench.report import build_leaderboard
    from robench.report.tables import NO_EXAMPLES, attack_markdown

    for method in ("vanilla", "ram"):
        write_attack_run(tmp_path, method, 0, examples=False)
    md = attack_markdown(build_leaderboard(tmp_path, n_boot=50))
    assert md.count(NO_EXAMPLES) == 1 and "\n" not in NO_EXAMPLES
    assert "### Examples" not in md and "~~" not in md
    assert "human-validated" not in md and "Human-validated" not in md


def test_marked_text_marks_the_swapped_position():
    from robench.report.tables import marked_text

    assert marked_text("the good and the bad", "the good and a bad", [["the", "a"]]) == "the good and ~~the~~ **a** bad"
    assert (marked_text("A wonderful, moving film with superb acting.", "A marvellous, moving film with fine acting.",
                        [["wonderful", "marvellous"], ["superb", "fine"]])
            == "A ~~wonderful~~ **marvellous**, moving film with ~~superb~~ **fine** acting.")
    assert marked_text("it is GOOD *really*", "it is G00D *really*", [["good", "g00d"]]) == (
        "it is ~~GOOD~~ **G00D** \\*really\\*")  # the original's case; Markdown characters escaped
