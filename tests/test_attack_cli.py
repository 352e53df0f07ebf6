"""`robench attack --save`: successful adversarial examples become a labelled task source."""

from __future__ import annotations

import json
import sys

from robench.cli import main
from robench.tasks import TaskData, load_task


def test_attack_saves_a_labelled_set_usable_as_task_source(tiny_run, tmp_path, monkeypatch, capsys):
    saved = tmp_path / "adv.jsonl"
    monkeypatch.setattr(sys, "argv", ["robench", "attack", "--run", str(tiny_run), "--recipe", "deepwordbug",
                                      "--n", "6", "--save", str(saved), "--device", "cpu"])
    try:
        main()
    except SystemExit as exc:
        assert exc.code in (0, None), capsys.readouterr().err
    assert saved.exists()
    rows = [json.loads(line) for line in saved.read_text().splitlines()]
    assert all(set(r) == {"text", "label", "original", "recipe", "index"} for r in rows)
    assert all(r["label"] in {"negative", "positive"} and r["text"] != r["original"] for r in rows)
    log = next((tiny_run / "artifacts").glob("attack-deepwordbug-filtered*-n6-*.jsonl"))
    outcomes = [json.loads(line).get("outcome") for line in log.read_text().splitlines()[1:]]
    assert len(rows) == outcomes.count("successful")
    # the set records the model it was made against: the board leaves that run out
    source = json.loads(saved.with_suffix(".source.json").read_text())
    run = json.loads((tiny_run / "run.json").read_text())
    assert source["weights_fingerprint"] == run["weights_fingerprint"]
    assert (source["recipe"], source["n"], source["constraints"], source["query_budget"]) == ("deepwordbug", 6,
                                                                                            "filtered", 1000)
    assert source["successful"] == len(rows) and source["settings"]["constraints"] == "filtered"
    if rows:  # the saved file loads as a labelled set of a task
        task = tmp_path / "t.yaml"
        task.write_text(f"name: t\nlabels: [negative, positive]\nsources:\n  adv: {{file: {saved}, label_column: label}}\n"
                        "train: adv\nvalidation: adv\ntest: adv\n")
        ds = TaskData(load_task(str(task))).get("test")
        assert len(ds) == len(rows) and set(ds["label"]) <= {0, 1}
