"""robench tune: grids (method, task file, command line), selection and its tie-break, tuned.json,
resuming, and applying the choice with run/train --tuned (run.json, errors, the board)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from cli_helpers import assert_one_line_error, run_cli

from robench.errors import ConfigError
from robench.methods import METHODS
from robench.tasks import TASKS_DIR, load_task
from robench.tune import (
    TUNED_SCHEMA,
    default_grid,
    parse_grid_options,
    resolve_grid,
    select,
    settings,
    trial_id,
)

TINY = ["--model", "tiny-bert", "--limit", "48", "--epochs", "1", "--device", "cpu"]






def task_file(folder: Path, tuning: str = "", name: str = "sent.yaml") -> Path:
    """The sentiment task without its file-backed transfer set (assets only), plus a ``tuning:`` text."""
    raw = yaml.safe_load((TASKS_DIR / "sentiment.yaml").read_text())
    raw["sources"].pop("valid_transfer")
    raw.pop("adversarial")
    path = folder / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False) + tuning)
    return path


# 2e-4 is written the way YAML reads as text: the grid still gets the number
TUNING = """
tuning:
  seeds: [0]
  vanilla: {lr: [2e-4, 1.0e-4]}
  r3f: {r3f_lambda: [0.5, 2]}
"""


def test_grids_from_method_task_file_and_command_line(tmp_path):
    for name in METHODS.names():
        grid = default_grid(METHODS.get(name))
        assert list(grid)[0] == "lr" and len(grid) <= 2 and len(settings(grid)) <= 4, name
    assert default_grid(METHODS.get("ram")) == {"lr": [1e-4, 2e-4], "selective_alpha": [0.6, 0.9]}
    assert set(default_grid(METHODS.get("freelb"))) == {"lr", "adv_lr"}
    assert set(default_grid(METHODS.get("smart"))) == {"lr", "lambda_s"}
    assert set(default_grid(METHODS.get("alum"))) == {"lr", "alpha"}

    spec = load_task(str(task_file(tmp_path, TUNING)))
    assert spec.tuning == {"seeds": [0], "grids": {"vanilla": {"lr": [2e-4, 1e-4]}, "r3f": {"r3f_lambda": [0.5, 2.0]}}}
    # the tuning key changes no run: it is not part of the task's spec hash
    assert spec.spec_hash == load_task(str(task_file(tmp_path, name="plain.yaml"))).spec_hash
    r3f, vanilla = METHODS.get("r3f"), METHODS.get("vanilla")
    assert resolve_grid(r3f, spec.tuning["grids"], []) == {"lr": [1e-4, 2e-4], "r3f_lambda": [0.5, 2.0]}
    assert resolve_grid(vanilla, spec.tuning["grids"], []) == {"lr": [2e-4, 1e-4]}
    cli = parse_grid_options(["lr=3e-4", "r3f.r3f_lambda=1,4", "r3f_lambda=9"])
    assert resolve_grid(r3f, spec.tuning["grids"], cli[:2]) == {"lr": [3e-4], "r3f_lambda": [1.0, 4.0]}
    assert resolve_grid(vanilla, spec.tuning["grids"], cli) == {"lr": [3e-4]}  # r3f's knob is not vanilla's
    # a second knob adds a dimension
    grid = resolve_grid(r3f, {}, parse_grid_options(["lr=1e-4", "eps=1e-5,1e-4"]))
    assert settings(grid)[:2] == [{"lr": 1e-4, "r3f_lambda": 1.0, "eps": e} for e in (1e-5, 1e-4)]
    assert len(settings(grid)) == 4  # eps varies fastest: grid order
    assert trial_id({"lr": 1e-4, "r3f_lambda": 0.5}) == "lr0.0001-r3f_lambda0.5"
    assert trial_id({"lr": 1e-4, "noise": "a b/c"}).startswith("t")


@pytest.mark.parametrize("tuning, fragments", [
    ("tuning: {magic: {lr: [1]}}", ["key 'tuning.magic'", "unknown method 'magic'", "vanilla"]),
    ("tuning: {ram: {nonsense: [1]}}", ["key 'tuning.ram'", "no hyper-parameter 'nonsense'", "selective_alpha"]),
    ("tuning: {ram: {lr: 1.0e-4}}", ["key 'tuning.ram'", "lr must be a non-empty list"]),
    ("tuning: {ram: {selective_alpha: [high]}}", ["key 'tuning.ram'", "'high' is not a valid float"]),
    ("tuning: {ram: {lr: [-1]}}", ["key 'tuning.ram'", "not a positive number"]),
    ("tuning: {seeds: 0}", ["key 'tuning.seeds'", "non-empty list of seeds"]),
    ("tuning: [ram]", ["key 'tuning'", "must be a mapping"]),
])
def test_task_file_tuning_errors(tmp_path, tuning, fragments):
    with pytest.raises(ConfigError) as info:
        load_task(str(task_file(tmp_path, "\n" + tuning + "\n")))
    assert all(f in str(info.value) for f in fragments) and "\n" not in str(info.value)


def test_command_line_errors_are_one_line(monkeypatch, capsys, tmp_path):
    code, _, err = run_cli(monkeypatch, capsys, "tune", "--method", "vanilla", "--grid", "adv_lr=0.1", *TINY)
    assert_one_line_error(code, err, "--grid adv_lr", "none of the tuned methods")
    code, _, err = run_cli(monkeypatch, capsys, "tune", "--method", "vanilla", "--grid", "lr", *TINY)
    assert_one_line_error(code, err, "--grid expects name=v1,v2")
    code, _, err = run_cli(monkeypatch, capsys, "tune", "--method", "r3f", "--grid", "r3f.r3f_lambda=x", *TINY)
    assert_one_line_error(code, err, "--grid r3f.r3f_lambda", "'x' is not a valid float")
    bad = task_file(tmp_path, "\ntuning: {r3f: {lambda: [1]}}\n")
    code, _, err = run_cli(monkeypatch, capsys, "tune", "--method", "r3f", "--task", str(bad), *TINY)
    assert_one_line_error(code, err, "key 'tuning.r3f'", "no hyper-parameter 'lambda'", "r3f_lambda")


def test_selection_best_mean_then_smaller_lr_then_grid_order():
    def trial(i, lr, mean, **knob):
        return {"id": f"t{i}", "setting": {"lr": lr, **knob}, "mean_val_accuracy": mean}

    assert select([trial(0, 1e-4, 0.5), trial(1, 2e-4, 0.7), trial(2, 5e-5, 0.6)])["id"] == "t1"
    assert select([trial(0, 2e-4, 0.7), trial(1, 1e-4, 0.7)])["id"] == "t1"  # tie: the smaller lr
    assert select([trial(0, 1e-4, 0.7, a=2), trial(1, 1e-4, 0.7, a=1)])["id"] == "t0"  # then grid order
    assert select([trial(0, 1e-4, 0.1 + 0.2), trial(1, 5e-5, 0.3)])["id"] == "t1"  # float noise is a tie


@pytest.fixture
def scored(monkeypatch):
    """Trains for real but reports a validation accuracy that is a function of the setting; counts runs."""
    import robench.train as tr

    state = {"cfg": None, "trained": []}
    original = tr.train

    def train(cfg):
        state["cfg"] = cfg
        state["trained"].append(cfg.out)
        return original(cfg)

    def accuracy(*args, **kwargs):
        cfg = state["cfg"]
        lam = float(cfg.method_overrides.get("r3f_lambda", 0))
        return {1e-4: 0.5, 2e-4: 0.5 if cfg.method == "vanilla" else 0.6}.get(cfg.lr, 0.4) + 0.1 * lam

    monkeypatch.setattr(tr, "train", train)
    monkeypatch.setattr(tr, "accuracy", accuracy)
    return state


def test_tune_writes_tuned_json_resumes_and_applies(monkeypatch, capsys, tmp_path, scored):
    task = task_file(tmp_path, TUNING)
    runs, tuned = tmp_path / "runs", tmp_path / "runs" / "tune" / "sent-limit48" / "tiny-bert" / "tuned.json"
    args = ["tune", "--task", str(task), "--method", "vanilla,r3f", "--runs-dir", str(runs), *TINY]
    code, out, err = run_cli(monkeypatch, capsys, *args, "--grid", "r3f.lr=1e-4,2e-4")
    assert code == 0, err
    assert len(scored["trained"]) == 6 and err.count(": trained in ") == 6  # 2 vanilla + 2 x 2 r3f, one line each
    assert "tuning on validation" in out and str(tuned) in out.replace("\n", "")

    data = json.loads(tuned.read_text())
    spec = load_task(str(task))
    assert data["schema"] == TUNED_SCHEMA and data["model"] == "tiny-bert"
    assert data["task"] == {"name": "sentiment", "source": str(task), "spec_hash": spec.spec_hash,
                            "profile": "default", "limit": 48}
    assert {"git_commit", "robench_version", "versions"} <= set(data)
    van, r3f = data["methods"]["vanilla"], data["methods"]["r3f"]
    assert van["grid"] == {"lr": [2e-4, 1e-4]} and van["seeds"] == [0]
    assert [t["val_accuracy"] for t in van["trials"]] == [{"0": 0.5}, {"0": 0.5}]
    assert van["chosen"]["setting"] == {"lr": 1e-4}  # a tie: the smaller lr, although listed second
    assert r3f["grid"] == {"lr": [1e-4, 2e-4], "r3f_lambda": [0.5, 2.0]} and len(r3f["trials"]) == 4
    assert r3f["chosen"]["setting"] == {"lr": 2e-4, "r3f_lambda": 2.0}
    assert r3f["chosen"]["mean_val_accuracy"] == pytest.approx(0.8)
    assert r3f["fixed"]["epochs"] == 1 and r3f["fixed"]["batch_size"] == 16 and r3f["fixed"]["limit"] == 48
    assert "smaller lr" in r3f["selection"]["tie_break"] and r3f["selection"]["split"] == "validation"
    trial = Path(r3f["trials"][3]["runs"][0])
    assert trial == runs / "tune" / "sent-limit48" / "tiny-bert" / "r3f" / "lr0.0002-r3f_lambda2.0" / "seed0"
    record = json.loads((trial / "run.json").read_text())
    assert record["config"]["lr"] == 2e-4 and record["method"]["config"]["r3f_lambda"] == 2.0

    # resumable: nothing to train; a deleted trial is redone alone; merging keeps the other method
    scored["trained"].clear()
    code, _, err = run_cli(monkeypatch, capsys, *args, "--grid", "r3f.lr=1e-4,2e-4")
    assert code == 0 and scored["trained"] == [] and err.count("trained already") == 6
    shutil.rmtree(trial)
    code, _, err = run_cli(monkeypatch, capsys, *args[:4], "r3f", *args[5:], "--grid", "r3f.lr=1e-4,2e-4")
    assert code == 0 and scored["trained"] == [str(trial)]
    assert set(json.loads(tuned.read_text())["methods"]) == {"vanilla", "r3f"}
    # other trainer settings on the same trials: an error, not a silent reuse
    code, _, err = run_cli(monkeypatch, capsys, *args, "--batch-size", "8")
    assert_one_line_error(code, err, "was trained with other settings", "batch_size 16, now 8", "--force")

    # run --tuned applies the lr and the knob, records them, and the board says so
    base = ["run", "--task", str(task), "--seeds", "0", "--suite", "id", "--no-plots", *TINY]
    code, out, err = run_cli(monkeypatch, capsys, *base, "--methods", "vanilla,r3f", "--tuned", str(tuned),
                             "--runs-dir", str(tmp_path / "r2"), "--results-dir", str(tmp_path / "res"))
    assert code == 0, err
    r3f_run = json.loads((tmp_path / "r2" / "sent-limit48" / "tiny-bert" / "r3f" / "seed0" / "run.json").read_text())
    assert r3f_run["config"]["lr"] == 2e-4 and r3f_run["method"]["config"]["r3f_lambda"] == 2.0
    assert r3f_run["config"]["tuned"]["setting"] == {"lr": 2e-4, "r3f_lambda": 2.0}
    assert r3f_run["config"]["tuned"]["file"] == str(tuned) and r3f_run["config"]["tuned"]["overridden"] == {}
    van_run = json.loads((tmp_path / "r2" / "sent-limit48" / "tiny-bert" / "vanilla" / "seed0" / "run.json").read_text())
    assert van_run["config"]["lr"] == 1e-4 and van_run["config"]["method_overrides"] == {}
    import pandas as pd

    board = pd.read_csv(tmp_path / "res" / "leaderboard.csv").set_index("method")
    assert board.at["r3f", "tuned"] == "lr=0.0002, r3f_lambda=2.0" and board.at["vanilla", "tuned"] == "lr=0.0001"
    md = (tmp_path / "res" / "LEADERBOARD.md").read_text()
    assert "Tuned on validation (`robench tune`, best mean validation accuracy): vanilla: lr=0.0001; r3f: " \
           "lr=0.0002, r3f_lambda=2.0." in md

    # errors, one line each, before anything trains
    scored["trained"].clear()
    r3 = ["--runs-dir", str(tmp_path / "r3"), "--results-dir", str(tmp_path / "res3")]
    code, _, err = run_cli(monkeypatch, capsys, *base, "--methods", "ram", "--tuned", str(tuned), *r3)
    assert_one_line_error(code, err, "no tuned setting for method 'ram'", "(it has: r3f, vanilla)",
                          "robench tune", "--method ram")
    code, _, err = run_cli(monkeypatch, capsys, *base, "--methods", "vanilla", "--tuned", str(tuned), *r3,
                           "--model", "minilm")
    assert_one_line_error(code, err, "tuned for model 'tiny-bert', not 'minilm'", "robench tune")
    code, _, err = run_cli(monkeypatch, capsys, *base, "--methods", "vanilla", "--tuned", str(tuned), *r3,
                           "--task", "sst2")
    assert_one_line_error(code, err, "tuned on task 'sentiment', not 'sst2'", "robench tune --task sst2")
    code, _, err = run_cli(monkeypatch, capsys, *base, "--methods", "vanilla", "--runs-dir", str(tmp_path / "r2"),
                           "--results-dir", str(tmp_path / "res3"))
    assert_one_line_error(code, err, "was trained with the tuned setting lr=0.0001", "asks for no tuned settings")
    assert scored["trained"] == []

    # train --tuned: an explicit --lr wins over the tuned one, and run.json records both
    one = tmp_path / "one"
    code, _, err = run_cli(monkeypatch, capsys, "train", "--task", str(task), "--method", "r3f", "--tuned", str(tuned),
                           "--lr", "3e-4", "--out", str(one), *TINY)
    assert code == 0, err
    record = json.loads((one / "run.json").read_text())
    assert record["config"]["lr"] == 3e-4 and record["method"]["config"]["r3f_lambda"] == 2.0
    assert record["config"]["tuned"]["overridden"] == {"lr": 3e-4}

    # one board row of a tuned and an untuned run: an error naming the runs
    from robench.matrix import run_benchmark
    from robench.report import build_leaderboard

    run_benchmark(str(task), "vanilla", "1", "id", None, model="tiny-bert", runs_dir=tmp_path / "r2", results_dir=None,
                  limit=48, epochs=1, device="cpu")
    with pytest.raises(ConfigError, match=r"different tuned settings .*seed0: lr=0.0001; .*seed1: untuned"):
        build_leaderboard(tmp_path / "r2")


def test_killed_trial_resumes_from_its_checkpoint(monkeypatch, tmp_path):
    from robench.methods.vanilla import Vanilla
    from robench.tune import tune

    calls = {"n": 0}
    original = Vanilla.training_step

    def failing(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("simulated kill")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Vanilla, "training_step", failing)
    kwargs = dict(model="tiny-bert", grid=["lr=1e-4"], limit=48, epochs=1, device="cpu", runs_dir=tmp_path,
                  checkpoint_steps=1)
    with pytest.raises(RuntimeError, match="simulated kill"):
        tune("sentiment", "vanilla", **kwargs)
    res = tune("sentiment", "vanilla", **kwargs)
    record = json.loads((res.trained[0] / "run.json").read_text())
    assert record["training"]["resumed"] == [{"epoch": 1, "step": 2, "global_step": 2}]
    assert res.data["methods"]["vanilla"]["chosen"]["setting"] == {"lr": 1e-4}
