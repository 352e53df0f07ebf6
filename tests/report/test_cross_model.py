"""The cross-model summary as a pure function of hand-built board frames: signs that agree or not, missing
values, significance marks from the Holm-adjusted p-values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from robench.report.aspects import Column
from robench.report.cross import cross_model_lines, cross_model_markdown, cross_model_table, sign_agreement

NAN = float("nan")
ASPECTS = [Column("id", "id", "accuracy", "ID acc", "ID", True, "correct"),
           Column("ece", "calibration", "ece", "ECE", "ECE", False, "examples", "ece")]


def board_row(model: str, method: str, *, id_delta: float = 0.0, ece_delta: float = 0.0, id_p: float = NAN,
              id_p_holm: float = NAN, ece_p_holm: float = NAN, task: str = "sentiment") -> dict:
    """One board row with the columns the summary reads (and a raw ``_p`` it must not read)."""
    return {"task": task, "model": model, "method": method, "id_mean": 0.8, "id_delta": id_delta, "id_p": id_p,
            "id_p_holm": id_p_holm, "ece_mean": 0.1, "ece_delta": ece_delta, "ece_p": NAN, "ece_p_holm": ece_p_holm,
            "avg_improvement": np.nanmean([id_delta, ece_delta])}


def two_models(ram_on_mpnet: dict | None = None, **ram_on_minilm) -> pd.DataFrame:
    rows = [board_row("minilm", "vanilla"), board_row("minilm", "ram", **ram_on_minilm), board_row("mpnet", "vanilla")]
    if ram_on_mpnet is not None:
        rows.append(board_row("mpnet", "ram", **ram_on_mpnet))
    return pd.DataFrame(rows)


def cell(table: pd.DataFrame, method: str, aspect: str) -> pd.Series:
    return table[(table["method"] == method) & (table["aspect"] == aspect)].iloc[0]


def test_sign_agreement():
    assert sign_agreement([0.1, 0.3]) == "agree" and sign_agreement([-0.1, -2.0, -0.5]) == "agree"
    assert sign_agreement([0.1, -0.3]) == "disagree" and sign_agreement([0.1, 0.2, -1e-9]) == "disagree"
    for missing in ([0.1, NAN], [0.1, 0.0], [-0.0, -0.2], [0.1], []):
        assert sign_agreement(missing) == "n/a"


def test_flipping_one_models_sign_flips_agree_to_disagree():
    agree = cross_model_table(two_models({"id_delta": 0.04, "ece_delta": -0.3}, id_delta=0.1, ece_delta=-0.2),
                              ASPECTS)
    assert list(agree["method"]) == ["ram"] * 3 and list(agree["aspect"]) == ["id", "ece", "average"]
    assert list(agree["agreement"]) == ["agree", "agree", "agree"]
    row = cell(agree, "ram", "id")  # each model's own delta, copied from its rows
    assert (row["minilm_delta"], row["mpnet_delta"], row["models"]) == (0.1, 0.04, "minilm, mpnet")
    assert cell(agree, "ram", "average")["mpnet_delta"] == pytest.approx(-0.13)

    flipped = cross_model_table(two_models({"id_delta": -0.04, "ece_delta": -0.3}, id_delta=0.1, ece_delta=-0.2),
                                ASPECTS)
    assert list(flipped["agreement"]) == ["disagree", "agree", "agree"]  # the averages: -0.05 and -0.17
    assert cell(flipped, "ram", "average")["minilm_delta"] == pytest.approx(-0.05)
    assert cell(flipped, "ram", "average")["mpnet_delta"] == pytest.approx(-0.17)


def test_a_missing_model_value_is_not_comparable():
    table = cross_model_table(two_models(None, id_delta=0.1, ece_delta=0.2), ASPECTS)  # ram never ran on mpnet
    row = cell(table, "ram", "id")
    assert row["minilm_delta"] == 0.1 and np.isnan(row["mpnet_delta"]) and row["mpnet_significant"] is None
    assert set(table["agreement"]) == {"n/a"}
    # a change of exactly 0 has no sign to agree with; a NaN delta (no baseline on a model) neither
    zero = cross_model_table(two_models({"id_delta": 0.0, "ece_delta": NAN}, id_delta=0.1, ece_delta=0.2), ASPECTS)
    assert list(zero["agreement"][:2]) == ["n/a", "n/a"]
    headers, rows, counts = cross_model_markdown(table)["sentiment"]
    assert headers == ["method", "aspect", "minilm", "mpnet", "signs"]
    assert rows[0] == ["ram", "ID acc", "+10.0%", "–", "n/a"] and counts == {"agree": 0, "disagree": 0, "n/a": 2}


def test_significance_comes_from_p_holm_on_each_model():
    # minilm: raw p tiny but Holm-adjusted 0.2 -> not significant; mpnet: raw p large, adjusted 0.004 -> "**"
    table = cross_model_table(two_models({"id_delta": 0.05, "id_p": 0.5, "id_p_holm": 0.004},
                                         id_delta=0.1, id_p=0.001, id_p_holm=0.2, ece_p_holm=0.03), ASPECTS)
    row = cell(table, "ram", "id")
    assert (row["minilm_p_holm"], row["mpnet_p_holm"]) == (0.2, 0.004)
    assert row["minilm_significant"] is False and row["mpnet_significant"] is True
    assert cell(table, "ram", "ece")["minilm_significant"] is True  # 0.03 < 0.05
    assert cell(table, "ram", "average")["minilm_significant"] is None  # the average is not tested
    _headers, rows, _counts = cross_model_markdown(table)["sentiment"]
    assert rows[0][2:4] == ["+10.0%", r"+5.0%\*\*"] and rows[1][2] == r"+0.0%\*"


def test_a_choice_dependent_cell_carries_no_verdict_across_models():
    """As in the tables: an ECE significant after Holm whose sign flips with the temperature fit is no verdict."""
    frame = two_models({"ece_delta": 0.1, "ece_p_holm": 0.01}, ece_delta=0.2, ece_p_holm=0.01)
    frame["ece_choice_dependent"] = [False, True, False, False]  # ram on minilm only
    table = cross_model_table(frame, ASPECTS)
    row = cell(table, "ram", "ece")
    assert row["minilm_significant"] is None and row["mpnet_significant"] is True
    assert row["minilm_p_holm"] == 0.01  # the p-value itself is kept in the CSV
    _headers, rows, _counts = cross_model_markdown(table)["sentiment"]
    assert rows[1][2:4] == ["+20.0%‡", r"+10.0%\*"]
    assert any("`‡`: p < 0.05, but the sign depends" in line for line in cross_model_lines(table))
    frame["ece_choice_dependent"] = False
    assert not any("`‡`" in line for line in cross_model_lines(cross_model_table(frame, ASPECTS)))


def test_only_tasks_with_two_models_and_never_the_baseline():
    frame = pd.concat([two_models({"id_delta": 0.1}, id_delta=0.2),
                       pd.DataFrame([board_row("minilm", "vanilla", task="topic"),
                                     board_row("minilm", "ram", id_delta=0.3, task="topic")])])
    table = cross_model_table(frame, ASPECTS)
    assert set(table["task"]) == {"sentiment"} and "vanilla" not in set(table["method"])
    single = frame[frame["task"] == "topic"]
    assert cross_model_table(single, ASPECTS).empty and cross_model_lines(cross_model_table(single, ASPECTS)) == []


def test_the_section_counts_and_threat_models():
    frame = pd.concat([two_models({"id_delta": -0.1, "ece_delta": 0.2}, id_delta=0.1, ece_delta=0.3),
                       pd.DataFrame([board_row("minilm", "smart"), board_row("mpnet", "smart", id_delta=0.1)])])
    lines = cross_model_lines(cross_model_table(frame, ASPECTS), "vanilla",
                              {"sentiment": {"minilm": "card-a", "mpnet": "card-b"}})
    text = "\n".join(lines)
    assert lines[0] == "## Across models: sentiment"
    # ram: id disagree, ece agree (its average, 0.2 vs 0.05, not counted); smart: n/a (minilm's changes are 0)
    assert "(averages aside): 1 agree, 1 disagree, 2 n/a." in text
    assert "| ram | ID acc | +10.0% | -10.0% | disagree |" in text
    assert "differs (minilm: `card-a`, mpnet: `card-b`)" in text
    same = "\n".join(cross_model_lines(cross_model_table(frame, ASPECTS), "vanilla",
                                       {"sentiment": {"minilm": "card-a", "mpnet": "card-a"}}))
    assert "the same on every model" in same and "differs" not in same
