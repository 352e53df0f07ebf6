"""`robench attack --save`: successful adversarial examples become a labelled task source."""

from __future__ import annotations

import json
import sys

import pytest

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
    log = next((tiny_run / "artifacts").glob("attack-deepwordbug-valid*-n6-*.jsonl"))
    outcomes = [json.loads(line).get("outcome") for line in log.read_text().splitlines()[1:]]
    assert len(rows) == outcomes.count("successful")
    # the set records the model it was made against: the board leaves that run out
    source = json.loads(saved.with_suffix(".source.json").read_text())
    run = json.loads((tiny_run / "run.json").read_text())
    assert source["weights_fingerprint"] == run["weights_fingerprint"]
    assert (source["recipe"], source["n"], source["constraints"], source["query_budget"]) == ("deepwordbug", 6,
                                                                                            "valid", 1000)
    assert source["successful"] == len(rows) and source["settings"]["constraints"] == "valid"
    if rows:  # the saved file loads as a labelled set of a task
        task = tmp_path / "t.yaml"
        task.write_text(f"name: t\nlabels: [negative, positive]\nsources:\n  adv: {{file: {saved}, label_column: label}}\n"
                        "train: adv\nvalidation: adv\ntest: adv\n")
        ds = TaskData(load_task(str(task))).get("test")
        assert len(ds) == len(rows) and set(ds["label"]) <= {0, 1}


@pytest.mark.parametrize("command", ["attack", "eval"])
def test_killed_attack_resumes_from_its_log(tiny_run, tmp_path, monkeypatch, capsys, command):
    """A real kill (SIGKILL mid-attack) of `robench attack` / `robench eval --suite adversarial`: the same
    command again keeps the examples already logged (byte for byte: not attacked again) and finishes."""
    import shutil
    import subprocess
    import time

    from robench.attacks.runner import read_log, sample_indices

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("results", "artifacts"))
    saved = tmp_path / "adv.jsonl"
    args = {"attack": ["attack", "--run", str(run), "--recipe", "deepwordbug", "--n", "40", "--seed", "3",
                       "--save", str(saved), "--device", "cpu"],
            "eval": ["eval", "--run", str(run), "--suite", "adversarial", "--recipe", "deepwordbug", "--n", "40",
                     "--seed", "3", "--device", "cpu"]}[command]
    log = run / "artifacts" / "attack-deepwordbug-valid-valence-n40-seed3-qb1000.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "robench.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if len(read_log(log)[1]) >= 3:
                break
            time.sleep(0.01)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -9, "the attack finished before it could be killed"
    kept = [line for line in log.read_text().splitlines(keepends=True) if line.endswith("\n")]
    assert 3 <= len(kept) - 1 < 40 and not saved.exists() and not (run / "results" / "adversarial.json").exists()

    monkeypatch.setattr(sys, "argv", ["robench", *args])
    try:
        main()
    except SystemExit as exc:
        assert exc.code in (0, None), capsys.readouterr().err
    text = log.read_text()
    assert text.startswith("".join(kept))  # the logged examples were kept, not attacked again
    _, records = read_log(log)
    assert [r["index"] for r in records] == sample_indices(64, 40, 3) and [r["i"] for r in records] == list(range(40))
    if command == "attack":
        assert len(saved.read_text().splitlines()) == sum(r["outcome"] == "successful" for r in records)
    else:
        result = json.loads((run / "results" / "adversarial.json").read_text())
        assert result["metrics"]["num_examples"] == 40 and result["details"]["indices"] == sample_indices(64, 40, 3)
