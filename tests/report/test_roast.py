"""RoAST's summary line (robench/report/roast.py, `robench table --format roast`) reproduced from hand-computed
values: synthetic result files whose per-set numbers are chosen so that truncating (RoAST's int(1000 * x) / 1000)
and rounding give different answers."""

from __future__ import annotations

import csv
import math

import pytest
from cli_helpers import run_cli
from report_helpers import write_result

from robench.report.roast import load_roast_rows, roast_csv, truncate3


def sst2_run(root):
    """One run of the sentiment protocol with every part's result file."""
    def write(evaluator, metrics):
        write_result(root, "ram", 1, evaluator, metrics, task="sst2", model="tiny")

    write("id", {"accuracy": 0.917431, "n": 872})
    write("shift", {"mean_accuracy": 0.0, "accuracy": {"yelp": 0.888859, "imdb": 0.8512, "poem": 0.7, "amazon": 0.29}})
    write("adversarial", {"transfer_accuracy": 0.0, "transfer": {"advglue_sst2": 0.3378, "dynasent_r1": 0.55555}})
    write("calibration", {"ece": 0.0, "id": {"ece": 0.05129, "accuracy": 0.917431},
                          "sets": {"yelp": {"ece": 0.10399, "accuracy": 0.888859}, "imdb": {"ece": 0.0738},
                                   "poem": {"ece": 0.2}, "amazon": {"ece": 0.0999},
                                   "adversarial:advglue_sst2": {"ece": 0.15, "accuracy": 0.3378},
                                   "adversarial:dynasent_r1": {"ece": 0.3001, "accuracy": 0.55555}}})
    write("anomaly", {"auroc": 0.0, "scores": {"msp": {
        "wmt16": {"auroc": 0.91234}, "multi30k": {"auroc": 0.8}, "newsgroups": {"auroc": 0.75555},
        "qqp": {"auroc": 0.6}, "mnli_m": {"auroc": 0.5}, "mnli_mm": {"auroc": 0.4321},
        "mean": {"auroc": 0.123}}, "energy": {"wmt16": {"auroc": 0.01}}}})


# By hand, in RoAST's units (accuracy in percent, ECE and AUROC as fractions), each value truncated to 3 decimals:
# inD   = 91.743                                               (91.7431)
# ooD   = (88.885 + 85.12 + 70.0 + 29.0) / 4   = 68.25125       (88.8859 -> 88.885; 0.29 * 100 -> 29.0, not 28.999)
# adv   = (33.78 + 55.555) / 2                 = 44.6675
# ece   = (0.051 + 0.103 + 0.073 + 0.2 + 0.099 + 0.15 + 0.3) / 7 = 0.976 / 7 -> 13.942857 %
# auroc = (0.912 + 0.8 + 0.755 + 0.6 + 0.5 + 0.432) / 6 = 3.999 / 6 -> 66.65 % (rounding instead: 66.6667)
EXPECTED = {"inD": 91.743, "ooD": 68.25125, "adv": 44.6675, "ece": 97.6 / 7, "auroc": 66.65}


def test_truncation_is_not_rounding():
    assert truncate3(0.75555) == 0.755 and truncate3(0.9999) == 0.999
    assert truncate3(0.29 * 100) == 29.0  # 28.999999999999996 in binary: the guard keeps it at 29.0
    assert truncate3(88.8859) == 88.885


def test_roast_line_from_hand_computed_values(tmp_path):
    sst2_run(tmp_path)
    (row,) = load_roast_rows(tmp_path)
    assert (row["task"], row["model"], row["method"], row["seed"]) == ("sst2", "tiny", "ram", 1)
    for key, value in EXPECTED.items():
        assert row[key] == pytest.approx(value, abs=1e-9), key
    assert (row["n_ind"], row["n_ood"], row["n_adv"], row["n_ece"], row["n_auroc"]) == (1, 4, 2, 7, 6)
    (line,) = list(csv.DictReader(roast_csv([row]).splitlines()))
    assert [line[k] for k in ("inD", "ooD", "adv", "ece", "auroc")] == \
        ["91.743", "68.25125", "44.6675", "13.942857", "66.65"]


def test_cli_prints_and_writes_the_roast_table(monkeypatch, capsys, tmp_path):
    sst2_run(tmp_path / "runs")
    out_file = tmp_path / "roast.csv"
    code, out, err = run_cli(monkeypatch, capsys, "table", "--format", "roast", "--results", str(tmp_path / "runs"),
                             "--out", str(out_file), "--digits", "2")
    assert code == 0, err
    header, _rule, line = out.splitlines()[:3]
    assert header.split()[:9] == ["task", "model", "method", "seed", "inD", "ooD", "adv", "ece", "auroc"]
    assert line.split() == ["sst2", "tiny", "ram", "1", "91.74", "68.25", "44.67", "13.94", "66.65", "1/4/2/7/6"]
    assert "written:" in out and out_file.is_file()  # (the path itself may wrap in the console)
    (written,) = list(csv.DictReader(out_file.read_text().splitlines()))
    assert float(written["auroc"]) == pytest.approx(66.65) and written["n_ece"] == "7"


def test_mnli_protocol_counts_mismatched_as_in_distribution_and_falls_back(tmp_path):
    """MNLI: inD = mean(matched test, mismatched), ooD the other shift sets; without an adversarial result the
    static sets' accuracy comes from the calibration result; a part with no result is empty, not zero."""
    def write(evaluator, metrics):
        write_result(tmp_path, "vanilla", 0, evaluator, metrics, task="mnli", model="tiny")

    write("id", {"accuracy": 0.84})
    write("shift", {"accuracy": {"mnli_mm": 0.85, "hans": 0.6, "wanli": 0.5}})
    write("calibration", {"id": {"ece": 0.05}, "sets": {"mnli_mm": {"ece": 0.06}, "hans": {"ece": 0.3},
                                                        "wanli": {"ece": 0.1},
                                                        "adversarial:anli_r1": {"ece": 0.2, "accuracy": 0.35}}})
    (row,) = load_roast_rows(tmp_path)
    assert row["inD"] == pytest.approx((84.0 + 85.0) / 2) and row["n_ind"] == 2
    assert row["ooD"] == pytest.approx((60.0 + 50.0) / 2) and row["n_ood"] == 2
    assert row["adv"] == pytest.approx(35.0) and row["n_adv"] == 1
    assert row["ece"] == pytest.approx(100 * (0.05 + 0.06 + 0.3 + 0.1 + 0.2) / 5) and row["n_ece"] == 5
    assert math.isnan(row["auroc"]) and row["n_auroc"] == 0
    (line,) = list(csv.DictReader(roast_csv([row]).splitlines()))
    assert line["auroc"] == "" and line["n_auroc"] == "0"
