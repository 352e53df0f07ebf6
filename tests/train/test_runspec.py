"""One rule decides whether a finished run is the one a command asks for (robench/runspec.py): every
field that changes the weights is compared, by run, tune and train's checkpoint alike."""

from __future__ import annotations

import json

import pytest
from cli_helpers import assert_one_line_error, run_cli

from robench.records import RUN_SCHEMA, RunRecord, parse
from robench.runspec import RunSpec, TrainConfig

BASE = ("run", "--model", "tiny-bert", "--methods", "freelb", "--seeds", "0", "--suite", "id", "--limit", "16",
        "--device", "cpu", "--no-plots")
FIRST = ("--epochs", "1", "--precision", "fp32")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One finished FreeLB run (1 epoch, fp32, lr and batch size and max length at their defaults)."""
    from robench.matrix import run_benchmark

    root = tmp_path_factory.mktemp("spec")
    run_benchmark("sentiment", "freelb", "0", "id", None, model="tiny-bert", runs_dir=root / "runs",
                  results_dir=root / "results", limit=16, epochs=1, device="cpu", precision="fp32", plots=False)
    return root


def _tuned(root) -> str:
    path = root / "tuned.json"
    from robench.tasks import load_task

    task = {"name": "sentiment", "spec_hash": load_task("sentiment").spec_hash}
    path.write_text(json.dumps({"schema": "robench.tuned/1", "task": task, "model": "tiny-bert",
                                "methods": {"freelb": {"chosen": {"setting": {"lr": 3e-4}}}}}))
    return str(path)


@pytest.mark.parametrize("change, fragment", [
    (("--epochs", "2", "--precision", "fp32"), "epochs 1, now 2"),
    (("--lr", "5e-4"), "lr 0.0001, now 0.0005"),
    (("--batch-size", "8"), "batch_size 16, now 8"),
    (("--max-length", "64"), "max_length 128, now 64"),
    (("--epochs", "1", "--precision", "bf16"), "precision 'fp32', now 'bf16'"),
    (("--preset", "entailment"), "method init_mag 1.0, now 0.1; method max_norm 0.6, now 0.3"),
    (("--set", "adv_lr=0.2"), "method adv_lr 0.1, now 0.2"),
    (("--tuned", "TUNED"), "tuned setting"),
], ids=["epochs", "lr", "batch-size", "max-length", "precision", "preset", "set", "tuned"])
def test_a_finished_run_is_never_reused_for_other_settings(monkeypatch, capsys, runs, change, fragment):
    change = tuple(_tuned(runs) if c == "TUNED" else c for c in change)
    if "--epochs" not in change:
        change = (*FIRST[:2], *change) if "--precision" in change else (*FIRST, *change)
    before = {p: p.stat().st_mtime_ns for p in (runs / "runs").rglob("*") if p.is_file()}
    code, _, err = run_cli(monkeypatch, capsys, *BASE, *change, "--runs-dir", str(runs / "runs"),
                           "--results-dir", str(runs / "results"))
    assert_one_line_error(code, err, fragment)
    assert "--runs-dir" in err
    assert {p: p.stat().st_mtime_ns for p in (runs / "runs").rglob("*") if p.is_file()} == before  # nothing touched


def test_the_same_settings_reuse_the_run_and_equal_presets_are_one_run(monkeypatch, capsys, runs):
    code, out, err = run_cli(monkeypatch, capsys, *BASE, *FIRST, "--preset", "paper", "--runs-dir",
                             str(runs / "runs"), "--results-dir", str(runs / "results"))
    assert code == 0, err  # 'paper' resolves to the same values as the task's preset: the same weights
    assert "trained 0 run(s), skipped 1 finished" in " ".join((out + err).split())


def test_set_applies_to_the_methods_that_have_it(monkeypatch, capsys, tmp_path):
    code, _, err = run_cli(monkeypatch, capsys, *BASE, *FIRST, "--set", "no_such_knob=1", "--runs-dir",
                           str(tmp_path / "r"), "--results-dir", str(tmp_path / "b"))
    assert_one_line_error(code, err, "--set no_such_knob: none of the methods freelb has that hyper-parameter")


def test_recorded_fields_of_an_older_run_json_are_rebuilt_from_its_config(runs):
    record_path = next((runs / "runs").rglob("run.json"))
    record = json.loads(record_path.read_text())
    spec = record.pop("spec")
    now = RunSpec.from_record(parse(RunRecord, {**record, "spec": spec}))
    assert now.key() == spec["key"] and now.to_json() == spec
    data_hash = record["task"].pop("data_hash")  # older runs carried no data hash (not compared then)
    rebuilt = RunSpec.from_record(parse(RunRecord, record))  # a run.json from before the spec was recorded
    assert rebuilt.differences(now) == [] and rebuilt.data_hash is None
    record["config"]["epochs"] = 3
    assert RunSpec.from_record(parse(RunRecord, record)).differences(now) == ["epochs 3, now 1"]
    record["task"]["data_hash"] = "other"
    assert RunSpec.from_record(parse(RunRecord, record)).differences(now)[-1] == \
        f"task data hash other, now {data_hash}"
    assert record["schema"] == RUN_SCHEMA
    assert set(spec["fields"]["trainer"]) >= {"epochs", "lr", "batch_size", "max_length", "precision", "seed",
                                               "model", "method", "selective", "profile", "limit"}
    assert TrainConfig().epochs == spec["fields"]["trainer"]["epochs"] + 3


def test_sources_say_where_each_value_came_from():
    from robench.train import build_hooks, spec_sources

    cfg = TrainConfig(method="freelb", model="tiny-bert", lr=3e-4, epochs=2, preset="entailment",
                      method_overrides={"adv_lr": "0.2", "adv_steps": "3"},
                      tuned={"setting": {"lr": 3e-4, "adv_lr": 0.2}, "overridden": {"adv_steps": "3"}})
    method, _ = build_hooks(cfg)
    sources = spec_sources(cfg, method)
    assert sources["method_config"] == {"diag_every": "default", "adv_steps": "cli", "adv_lr": "tuned",
                                        "init_mag": "preset entailment (user)", "max_norm": "preset entailment (user)"}
    assert sources["trainer"]["lr"] == "tuned" and sources["trainer"]["epochs"] == "cli"
    assert sources["trainer"]["batch_size"] == "default"


def test_the_default_profile_named_or_not_is_one_run():
    """`robench train --profile default` and `robench run` (no profile) train on the same sets into the same
    folder: the same key, and a run of one stands for the other."""
    named = RunSpec.of(TrainConfig(profile="default"), {}, None, "h")
    plain = RunSpec.of(TrainConfig(profile=None), {}, None, "h")
    assert named.key() == plain.key() and named.differences(plain) == [] == plain.differences(named)
    older = RunSpec(trainer={**plain.trainer, "profile": "default"}, method_config={}, selective_config=None,
                    data_hash="h")  # a run.json recorded before the two were one
    assert older.differences(plain) == []
    assert RunSpec.of(TrainConfig(profile="quick"), {}, None, "h").differences(plain) == ["profile 'quick', now None"]


def test_a_run_is_not_reused_once_its_training_data_file_changed(tmp_path):
    """Editing a task's data file leaves the task file (and so every hash of the spec) as it was; the finished
    run's recorded train and validation fingerprints tell that it learnt from other examples."""
    from robench.errors import ConfigError
    from robench.matrix import run_benchmark

    rows = [f"review number {i} was {'great' if i % 2 else 'awful'},{'positive' if i % 2 else 'negative'}"
            for i in range(40)]
    data = tmp_path / "data.csv"
    data.write_text("text,label\n" + "\n".join(rows) + "\n")
    task = tmp_path / "t.yaml"
    task.write_text("name: t\nlabels: [negative, positive]\nsources:\n  s:\n    file: data.csv\n    label_column: label\n"
                    "    partition: {fractions: {train: 0.5, validation: 0.25, test: 0.25}}\n    seed: 0\n"
                    "train: {source: s, part: train}\nvalidation: {source: s, part: validation}\n"
                    "test: {source: s, part: test}\n")
    kw = dict(model="tiny-bert", runs_dir=tmp_path / "runs", results_dir=None, epochs=1, device="cpu",
              precision="fp32", plots=False)
    run_benchmark(str(task), "vanilla", "0", "id", None, **kw)
    assert run_benchmark(str(task), "vanilla", "0", "id", None, **kw).trained == []  # unchanged: reused
    data.write_text(data.read_text() + "one more awful review,negative\nand a great one,positive\n")
    with pytest.raises(ConfigError, match="examples changed"):
        run_benchmark(str(task), "vanilla", "0", "id", None, **kw)
