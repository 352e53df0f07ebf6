"""The typed records (robench.records): every file robench writes is declared in full by its record, is
read back through one loader, and a damaged key is one line naming it."""

from __future__ import annotations

import dataclasses
import json

import pytest

from robench.errors import ConfigError
from robench.records import (
    Baseline,
    RecordProblem,
    ResultFile,
    RunRecord,
    TunedFile,
    load_record,
    load_run,
    parse,
    to_json,
)


def _undeclared(record, where="") -> list[str]:
    """Keys robench's own writers wrote that the record does not declare (kept in ``extra``)."""
    out = []
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        if f.name == "extra":
            out += [f"{where}{k}" for k in value]
        elif dataclasses.is_dataclass(value):
            out += _undeclared(value, f"{where}{f.name}.")
        elif isinstance(value, dict):
            for k, v in value.items():
                if dataclasses.is_dataclass(v):
                    out += _undeclared(v, f"{where}{f.name}[{k}].")
    return out


def test_a_run_record_declares_every_key_training_writes_and_round_trips(tiny_run):
    raw = json.loads((tiny_run / "run.json").read_text())
    record = load_run(tiny_run)
    assert _undeclared(record) == []
    assert to_json(record) == raw
    assert record.method.name == "vanilla" and record.task.fingerprints.keys() == {"train", "validation"}


def test_a_result_file_declares_every_key_evaluation_writes(tiny_run, tmp_path):
    import shutil

    from robench.evaluation import evaluate_run

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    evaluate_run(run, "id", device="cpu")
    raw = json.loads((run / "results" / "id.json").read_text())
    result = parse(ResultFile, raw)
    assert _undeclared(result) == [] and to_json(result) == raw
    assert result.run == load_run(run).result_run()  # the run block is the run record's, built in one place


def test_the_committed_result_files_parse_with_nothing_undeclared():
    from pathlib import Path

    files = sorted((Path(__file__).resolve().parents[2] / "results" / "files").rglob("*.json"))
    assert len(files) > 100
    for path in files[:: max(1, len(files) // 40)]:
        result = parse(ResultFile, json.loads(path.read_text()))
        assert _undeclared(result) == [], path


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("seed"), "key 'seed' is missing"),
    (lambda d: d.__setitem__("seed", True), "seed is True, not a whole number"),
    (lambda d: d["task"].__setitem__("limit", "64"), "task.limit is '64', not a whole number"),
    (lambda d: d["task"].__setitem__("fingerprints", {"train": 5}), 'task.fingerprints["train"] is 5, not text'),
    (lambda d: d.__setitem__("schema", "robench.run/0"), "schema is 'robench.run/0', not 'robench.run/1'"),
    (lambda d: d["method"].__setitem__("selective", "yes"), "method.selective is 'yes', not true/false"),
    (lambda d: d.__setitem__("files", "run.json"), "files is 'run.json', not a list"),
    (lambda d: d["config"].__setitem__("max_length", 0), "config.max_length is 0, not a positive whole number"),
])
def test_a_damaged_run_record_names_the_key(tiny_run, change, message):
    data = json.loads((tiny_run / "run.json").read_text())
    change(data)
    with pytest.raises(RecordProblem) as err:
        parse(RunRecord, data)
    assert str(err.value) == message


def test_keys_a_newer_writer_adds_are_kept():
    data = {"schema": "robench.tuned/1", "task": {"name": "t"}, "model": "m", "future": [1],
            "methods": {"ram": {"chosen": {"setting": {"lr": 1e-4}, "margin": 0.01}, "trials": []}}}
    tuned = parse(TunedFile, data)
    assert tuned.extra == {"future": [1]} and tuned.methods["ram"].chosen.extra == {"margin": 0.01}
    assert to_json(tuned) == data


def test_tuned_and_baseline_files_load_through_one_loader(tmp_path):
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"schema": "robench.baseline/1", "scores": {"t | m | x": {"id.accuracy": {
        "value": 0.5, "direction": "higher"}}}, "tolerances": {"*": 0.02}}))
    baseline = load_record(Baseline, path, "baseline", "re-record it")
    assert baseline.scores["t | m | x"]["id.accuracy"].value == 0.5 and baseline.tolerances == {"*": 0.02}
    with pytest.raises(ConfigError, match=r"is not a robench tuned file \(schema 'robench.baseline/1', expected "
                                          r"'robench.tuned/1'\); write it"):
        load_record(TunedFile, path, "tuned file", "write it")
    path.write_text(json.dumps({"schema": "robench.baseline/1", "scores": {"t | m | x": {"id.accuracy": {
        "value": float("inf"), "direction": "higher"}}}}).replace("Infinity", "1e999"))
    with pytest.raises(ConfigError, match=r'scores\["t \| m \| x"\]\["id.accuracy"\].value is inf, not a finite'):
        load_record(Baseline, path, "baseline", "re-record it")
    path.write_text(json.dumps({"schema": "robench.baseline/1", "scores": {"t | m | x": {"id.accuracy": {
        "value": 0.5, "direction": "up"}}}}))
    with pytest.raises(ConfigError, match=r"direction is 'up', not 'higher' or 'lower'"):
        load_record(Baseline, path, "baseline", "re-record it")


def test_schema_1_result_files_still_load_with_their_frozen_declarations(tmp_path):
    """A result written before files carried metric declarations reads with the frozen ones
    (robench/legacy_specs.json), the same as the file's own declarations today."""
    import json
    from pathlib import Path

    from robench.results import load_results

    source = next((Path(__file__).resolve().parents[2] / "results" / "files").rglob("id.json"))
    data = json.loads(source.read_text())
    own = load_results(source)[0].specs
    data["schema"] = "robench.result/1"
    del data["metric_specs"]
    (tmp_path / "id.json").write_text(json.dumps(data))
    old = load_results(tmp_path / "id.json")[0]
    assert old.specs == own and old.spec("accuracy").headline
