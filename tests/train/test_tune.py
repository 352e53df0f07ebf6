"""robench tune: grids (method, task file, command line), selection and its tie-break, tuned.json,
resuming, successive halving (rung 0, the best third, margins and ties), and applying the choice with
run/train --tuned (run.json, errors, the board; tuned files from before halving)."""

from __future__ import annotations

import dataclasses
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
    TrialRun,
    default_grid,
    margin_and_ties,
    parse_grid_options,
    resolve_grid,
    rung_survivors,
    select,
    settings,
    trial_id,
)

TINY = ["--model", "tiny-bert", "--limit", "48", "--epochs", "1", "--device", "cpu"]
ROOT = Path(__file__).resolve().parents[2]


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
        assert list(grid)[0] == "lr" and len(settings(grid)) <= 8, name
        assert name == "ram" or (len(grid) <= 2 and len(settings(grid)) <= 4), name
    # RAM searches its mask over RoAST's two presets: both of them and their two crosses, at each lr
    ram = METHODS.get("ram")
    assert default_grid(ram) == {"lr": [1e-4, 2e-4], "selective_alpha": [0.6, 0.9], "selective_beta": [1.0, 10.0]}
    masks = [{k: s[k] for k in ("selective_alpha", "selective_beta")} for s in settings(default_grid(ram))]
    assert masks.count(ram.presets["sentiment"]) == 2 and masks.count(ram.presets["entailment"]) == 2
    assert ram.presets["sentiment"] == {"selective_alpha": 0.9, "selective_beta": 10.0}
    assert ram.presets["entailment"] == {"selective_alpha": 0.6, "selective_beta": 1.0}
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
    # --set on top of --tuned wins, and the run records it as given by hand (it was silently dropped)
    code, _, err = run_cli(monkeypatch, capsys, *base, "--methods", "r3f", "--tuned", str(tuned), "--set",
                           "r3f_lambda=0.5", "--runs-dir", str(tmp_path / "r4"), "--results-dir", str(tmp_path / "res4"))
    assert code == 0, err
    r3f_set = json.loads((tmp_path / "r4" / "sent-limit48" / "tiny-bert" / "r3f" / "seed0" / "run.json").read_text())
    assert r3f_set["method"]["config"]["r3f_lambda"] == 0.5 and r3f_set["config"]["lr"] == 2e-4
    assert r3f_set["config"]["tuned"]["overridden"] == {"r3f_lambda": "0.5"}  # as given on the command line

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


# ------------------------------------------------------------------ successive halving


def test_margin_is_the_choice_minus_the_runner_up_and_ties_are_listed():
    def trial(i, lr, mean):
        return {"id": f"t{i}", "setting": {"lr": lr}, "mean_val_accuracy": mean}

    # t3 never finished (dropped at rung 0): no part of the margin
    trials = [trial(0, 1e-4, 0.70), trial(1, 2e-4, 0.80), trial(2, 5e-5, 0.50), trial(3, 1e-4, None)]
    chosen = select(trials[:3])
    assert chosen["id"] == "t1"
    margin, runner_up, ties = margin_and_ties(trials, chosen)
    # against the runner-up, not the choice itself (0) and not the other way round (-0.1)
    assert margin == pytest.approx(0.10) and margin > 0 and runner_up == "t0" and ties == []
    # a tie (float noise included): the smaller lr is chosen, the margin is 0 and the other is a tie
    trials = [trial(0, 2e-4, 0.8), trial(1, 1e-4, 0.1 + 0.7), trial(2, 1e-4, 0.6)]
    assert margin_and_ties(trials, select(trials)) == (0.0, "t0", ["t0"])
    # nothing else finished: no margin
    alone = [trial(0, 1e-4, 0.7), trial(1, 2e-4, None)]
    assert margin_and_ties(alone, alone[0]) == (None, None, [])


def test_rung_cut_keeps_the_best_third_and_ties_at_the_cut():
    def trial(lr, rung0):
        return {"setting": {"lr": lr}, "rung0": {"mean_val_accuracy": rung0}}

    six = [trial(1e-4, a) for a in (0.5, 0.9, 0.6, 0.8, 0.7, 0.4)]
    assert rung_survivors(six) == [1, 3]  # ceil(6/3) = 2, in grid order
    tied = [trial(1e-4, a) for a in (0.5, 0.9, 0.8, 0.1 + 0.7, 0.7)]
    assert rung_survivors(tied) == [1, 2, 3]  # ceil(5/3) = 2, and the one tied with the second
    assert rung_survivors([trial(1e-4, 0.5), trial(2e-4, 0.6)]) == [1]


# RAM's 8 settings in grid order (lr, then selective_alpha, then selective_beta), with their validation
# accuracy at epoch 1 and its gain per epoch: 7 and 4 lead at rung 0, 1 and 2 tie for third (both go on);
# 0 would end best of all but is last at rung 0, so halving drops it
CURVES = {(1e-4, 0.6, 1.0): (0.50, 0.20), (1e-4, 0.6, 10.0): (0.70, 0.0), (1e-4, 0.9, 1.0): (0.70, 0.05),
          (1e-4, 0.9, 10.0): (0.55, 0.0), (2e-4, 0.6, 1.0): (0.75, 0.035), (2e-4, 0.6, 10.0): (0.60, 0.0),
          (2e-4, 0.9, 1.0): (0.65, 0.0), (2e-4, 0.9, 10.0): (0.80, 0.03)}
RAM_IDS = [trial_id({"lr": lr, "selective_alpha": a, "selective_beta": b}) for lr, a, b in CURVES]


class FakeTrials:
    """Stands in for ``robench.tune.train_trial``: the validation accuracy of epoch e is the setting's
    CURVES value (seed 0 a point below it, seed 1 a point above: the mean is the curve); remembers how
    far every trial run went, as its checkpoint would."""

    def __init__(self):
        self.reached: dict[str, int] = {}
        self.calls: list[tuple[str, int | None, bool]] = []

    def __call__(self, cfg, upto):
        target = cfg.epochs if upto is None else min(upto, cfg.epochs)
        have = self.reached.get(cfg.out, 0)
        self.reached[cfg.out] = done = max(have, target)
        self.calls.append((cfg.out, upto, target > have))
        start, gain = CURVES[(cfg.lr, cfg.method_overrides["selective_alpha"], cfg.method_overrides["selective_beta"])]
        history = [{"epoch": e, "val_accuracy": start + gain * (e - 1) + (0.01 if cfg.seed else -0.01)}
                   for e in range(1, done + 1)]
        best = max(h["val_accuracy"] for h in history) if done == cfg.epochs else None
        return TrialRun(history, best, target > have, "fake")


def test_halving_drops_dominated_settings_and_the_best_goes_on(monkeypatch, capsys, tmp_path):
    import robench.tune as tuning

    fake = FakeTrials()
    monkeypatch.setattr(tuning, "train_trial", fake)
    runs = tmp_path / "runs"
    args = ["tune", "--method", "ram", "--seeds", "0,1", "--epochs", "3", "--runs-dir", str(runs), "--model",
            "tiny-bert", "--limit", "48", "--device", "cpu"]
    code, out, err = run_cli(monkeypatch, capsys, *args)  # 8 settings: halving by default
    assert code == 0, err
    # rung 0: all 16 trial runs to epoch 1; then only the 4 kept settings' 8 runs to the end
    assert [upto for _, upto, _ in fake.calls] == [1] * 16 + [None] * 8
    kept, dropped = [RAM_IDS[i] for i in (1, 2, 4, 7)], [RAM_IDS[i] for i in (0, 3, 5, 6)]
    assert {Path(o).parent.name for o, upto, _ in fake.calls if upto is None} == set(kept)
    assert all(fake.reached[o] == 1 for o in fake.reached if Path(o).parent.name in dropped)

    tuned = runs / "tune" / "sentiment-limit48" / "tiny-bert" / "tuned.json"
    entry = json.loads(tuned.read_text())["methods"]["ram"]
    assert entry["mode"] == "halving" and entry["halving"]["simulated"] is False
    assert entry["halving"]["rung_epochs"] == 1
    assert entry["halving"]["kept"] == kept and entry["halving"]["dropped"] == dropped
    trials = {t["id"]: t for t in entry["trials"]}
    assert trials[RAM_IDS[7]]["rung0"]["mean_val_accuracy"] == pytest.approx(0.80)
    assert trials[RAM_IDS[0]]["rung0"]["val_accuracy"] == pytest.approx({"0": 0.49, "1": 0.51})
    assert trials[RAM_IDS[0]]["dropped_at_rung"] == 0 and trials[RAM_IDS[0]]["mean_val_accuracy"] is None
    assert trials[RAM_IDS[0]]["val_accuracy"] == {} and trials[RAM_IDS[2]]["dropped_at_rung"] is None
    chosen = entry["chosen"]
    assert chosen["setting"] == {"lr": 2e-4, "selective_alpha": 0.9, "selective_beta": 10.0}
    assert chosen["mean_val_accuracy"] == pytest.approx(0.86)
    assert chosen["runner_up"] == RAM_IDS[4] and chosen["margin"] == pytest.approx(0.86 - 0.82) and chosen["ties"] == []
    # the command line says what was chosen, by how much, the ties and what was dropped
    line = next(ln for ln in out.splitlines() if ln.startswith("ram (halving): chose"))
    assert "chose lr=0.0002, selective_alpha=0.9, selective_beta=10.0, mean val acc 0.8600" in line
    assert "margin +0.0400 over lr=0.0002, selective_alpha=0.6, selective_beta=1.0" in line and "no ties" in line
    assert "dropped at rung 0 (epoch 1): lr=0.0001, selective_alpha=0.6, selective_beta=1.0; " in line

    # again: nothing trains (finished runs are read, the dropped ones stay at epoch 1)
    fake.calls.clear()
    res = tuning.tune("sentiment", "ram", model="tiny-bert", seeds="0,1", epochs=3, limit=48, device="cpu",
                      runs_dir=runs)
    assert not any(trained for *_, trained in fake.calls) and res.trained == [] and len(res.skipped) == 16
    assert res.data["methods"]["ram"]["chosen"]["id"] == RAM_IDS[7]

    # the full grid on the same runs: the dropped settings resume to the end, the late one wins, and the
    # entry says halving would have chosen otherwise and by how much
    res = tuning.tune("sentiment", "ram", model="tiny-bert", seeds="0,1", epochs=3, limit=48, device="cpu",
                      runs_dir=runs, halving=False)
    grid = res.data["methods"]["ram"]
    assert grid["mode"] == "grid" and len(res.trained) == 8 and grid["chosen"]["id"] == RAM_IDS[0]
    assert grid["halving"]["simulated"] is True and grid["halving"]["kept"] == kept
    assert grid["halving"]["would_choose"] == RAM_IDS[7] and grid["halving"]["same_choice"] is False
    assert grid["halving"]["choice_margin"] == pytest.approx(0.90 - 0.86)
    assert grid["chosen"]["margin"] == pytest.approx(0.90 - 0.86) and grid["chosen"]["runner_up"] == RAM_IDS[7]

    # halving once more, every trial finished: the choice is still among the kept, and a dropped setting
    # finished earlier that beats it shows as a negative margin
    res = tuning.tune("sentiment", "ram", model="tiny-bert", seeds="0,1", epochs=3, limit=48, device="cpu",
                      runs_dir=runs)
    chosen = res.data["methods"]["ram"]["chosen"]
    assert chosen["id"] == RAM_IDS[7] and chosen["runner_up"] == RAM_IDS[0]
    assert chosen["margin"] == pytest.approx(0.86 - 0.90)


@pytest.fixture
def growing(monkeypatch):
    """Validation accuracy = a function of the lr + epoch / 100 (so a run keeps its last epoch's weights);
    training is real."""
    import robench.train as tr
    from robench.methods.base import TrainingHook

    seen = {"cfg": None, "epoch": 0}
    train, on_epoch_end = tr.train, TrainingHook.on_epoch_end

    def recording_train(cfg):
        seen["cfg"] = cfg
        return train(cfg)

    def record_epoch(self, model, epoch):
        seen["epoch"] = epoch
        return on_epoch_end(self, model, epoch)

    def accuracy(*args, **kwargs):
        return {1e-4: 0.5, 2e-4: 0.7, 3e-4: 0.6}.get(seen["cfg"].lr, 0.4) + seen["epoch"] / 100

    monkeypatch.setattr(tr, "train", recording_train)
    monkeypatch.setattr(TrainingHook, "on_epoch_end", record_epoch)
    monkeypatch.setattr(tr, "accuracy", accuracy)


def test_stopped_then_resumed_run_equals_an_uninterrupted_one(tmp_path, capsys, growing):
    from robench import checkpoint
    from robench.records import load_run
    from robench.runspec import RunSpec
    from robench.train import TrainConfig, halted_history, train

    cfg = TrainConfig(model="tiny-bert", limit=48, epochs=2, device="cpu", out=str(tmp_path / "stopped"))
    stopped = Path(cfg.out)
    train(dataclasses.replace(cfg, stop_after_epoch=1))
    assert not stopped.exists() and checkpoint.checkpoint_dir(stopped).is_dir()
    assert [(h["epoch"], h["val_accuracy"]) for h in halted_history(stopped)] == [(1, pytest.approx(0.51))]
    train(dataclasses.replace(cfg, stop_after_epoch=1))  # past the budget already: nothing to do
    assert "past the budget (epoch 1) already" in capsys.readouterr().err and not stopped.exists()
    train(cfg)  # the budget is no part of the run: this resumes
    whole = train(dataclasses.replace(cfg, out=str(tmp_path / "whole")))
    a, b = load_run(stopped), load_run(whole)
    assert a.training["resumed"] == [{"epoch": 2, "step": 0, "global_step": 3}] and b.training["resumed"] == []
    assert a.training["best_val_accuracy"] == b.training["best_val_accuracy"] == pytest.approx(0.52)
    assert a.training["best_epoch"] == 2
    assert a.weights_fingerprint == b.weights_fingerprint
    assert a.training["replica_weights_sha256"] == b.training["replica_weights_sha256"]
    assert RunSpec.from_record(a).key() == RunSpec.from_record(b).key() and "stop_after_epoch" not in a.config
    assert not checkpoint.checkpoint_dir(stopped).exists()


def test_real_halving_leaves_the_dropped_at_rung_0_and_resumes_the_rest(tmp_path, growing):
    from robench import checkpoint
    from robench.train import halted_history
    from robench.tune import tune

    kwargs = dict(model="tiny-bert", grid=["lr=1e-4,2e-4,3e-4,4e-4"], limit=48, epochs=2, device="cpu",
                  runs_dir=tmp_path)
    res = tune("sentiment", "vanilla", **kwargs)  # 4 settings: halving, the best 2 go on
    entry = res.data["methods"]["vanilla"]
    assert entry["mode"] == "halving" and entry["halving"]["dropped"] == ["lr0.0001", "lr0.0004"]
    assert len(res.trained) == 4 and sorted(p.parent.name for p in res.halted) == ["lr0.0001", "lr0.0004"]
    for run in res.halted:
        assert not run.exists() and checkpoint.checkpoint_dir(run).is_dir() and len(halted_history(run)) == 1
    for trial in entry["trials"]:
        if trial["dropped_at_rung"] is None:
            record = json.loads((Path(trial["runs"][0]) / "run.json").read_text())
            assert record["training"]["resumed"] == [{"epoch": 2, "step": 0, "global_step": 3}]
    assert entry["chosen"]["id"] == "lr0.0002" and entry["chosen"]["runner_up"] == "lr0.0003"
    assert entry["chosen"]["margin"] == pytest.approx(0.1)
    assert [t["rung0"]["mean_val_accuracy"] for t in entry["trials"]] == pytest.approx([0.51, 0.71, 0.61, 0.41])
    written = res.path.read_bytes()
    again = tune("sentiment", "vanilla", **kwargs)  # nothing left to train
    assert again.trained == [] and again.data["methods"]["vanilla"]["chosen"] == entry["chosen"]
    assert again.path.read_bytes() == written  # nothing new: the file keeps its bytes


def test_a_tune_that_trains_nothing_leaves_the_tuned_file_as_it_was(monkeypatch, tmp_path):
    """Run again (a resumed board script), tune reads every trial back: the file is not rewritten with a new
    'created' or commit (the runs trained from it record its sha256), but a changed choice is written."""
    import robench.tune as tuning

    monkeypatch.setattr(tuning, "train_trial", FakeTrials())
    kwargs = dict(model="minilm", seeds="0,1", epochs=3, runs_dir=tmp_path / "runs", out=tmp_path / "tuned.json")
    first = tuning.tune("sentiment", "ram", **kwargs)
    written = first.path.read_bytes()
    later = dict(tuning.provenance(), created="2099-01-01T00:00:00Z", git_commit="f" * 40)
    monkeypatch.setattr(tuning, "provenance", lambda: later)
    again = tuning.tune("sentiment", "ram", **kwargs)
    assert again.path.read_bytes() == written and again.data == json.loads(written)
    # a different grid is a different entry: written, with the new provenance
    tuning.tune("sentiment", "ram", grid=["lr=2e-4", "selective_alpha=0.9", "selective_beta=1,10"], **kwargs)
    data = json.loads(first.path.read_text())
    assert data["created"] == "2099-01-01T00:00:00Z" and data["methods"]["ram"]["grid"]["selective_beta"] == [1.0, 10.0]


def test_tuned_file_from_before_halving_loads_applies_and_merges(monkeypatch, tmp_path):
    import robench.tune as tuning
    from robench.train import TrainConfig

    # the 3-seed board's tuned file (results/tuned/sentiment-minilm.json at b22c45a), written before halving
    old = ROOT / "tests" / "fixtures" / "tuned-before-halving.json"
    path = tmp_path / "tuned.json"
    shutil.copy(old, path)
    before = json.loads(old.read_text())
    assert "margin" not in before["methods"]["ram"]["chosen"]  # written before halving
    data = tuning.load_tuned(path)
    assert "margin not recorded" in tuning.describe_choice(before["methods"]["ram"])
    for label, entry in before["methods"].items():
        cfg = tuning.apply_tuned(TrainConfig(task="sentiment", model="minilm", method=label), path, data)
        setting = entry["chosen"]["setting"]
        assert cfg.lr == setting["lr"] and cfg.method_overrides == {k: v for k, v in setting.items() if k != "lr"}

    # tuning RAM again into it keeps every other method as it was
    monkeypatch.setattr(tuning, "train_trial", FakeTrials())
    tuning.tune("sentiment", "ram", model="minilm", seeds="0,1", epochs=3, runs_dir=tmp_path / "runs", out=path)
    after = json.loads(path.read_text())
    assert {k: v for k, v in after["methods"].items() if k != "ram"} == \
        {k: v for k, v in before["methods"].items() if k != "ram"}
    assert after["methods"]["ram"]["mode"] == "halving"
    cfg = tuning.apply_tuned(TrainConfig(task="sentiment", model="minilm", method="ram"), path)
    assert cfg.lr == 2e-4 and cfg.method_overrides == {"selective_alpha": 0.9, "selective_beta": 10.0}
