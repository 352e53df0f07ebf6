"""`robench run`'s cost estimate (robench.estimate): the planned runs times the costs measured by earlier
runs of the same task and model, read from run.json and result files written here with robench's own
record writers. Nothing is trained."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from robench.estimate import NO_HISTORY, estimate_plan, pass_weight
from robench.identity import RunIdentity, result_path
from robench.methods import METHODS
from robench.records import RUN_FILE, RUN_SCHEMA, RunMethod, RunModel, RunRecord, RunTask, to_json
from robench.results import make_result
from robench.runspec import TrainConfig
from robench.storage import atomic_write_json

MODEL = "tiny-bert"
EVALUATORS = ["id", "shift"]
# earlier vanilla runs trained for 2 epochs: 50 and 70 s per epoch (mean 60); id 10 and 14 s (mean 12), shift 30 s
HISTORY = {7: (100.0, {"id": 10.0, "shift": 30.0}), 8: (140.0, {"id": 14.0, "shift": 30.0})}
HISTORY_EPOCHS = 2
PLANNED_EPOCHS = 3
VANILLA_RUN = 60.0 * PLANNED_EPOCHS  # 180 s: seconds per epoch x the planned epochs
ALUM_RUN = 60.0 / 3 * 7 * PLANNED_EPOCHS  # 420 s: vanilla's cost per pass (1F+1B = 3) x alum's 3F+2B = 7


def record(method: str, seed: int, wall: float, *, epochs: int = HISTORY_EPOCHS, model: str = MODEL,
           profile: str = "default") -> RunRecord:
    """A run.json as robench.train writes it (the keys the estimate reads: task, model, method, training)."""
    return RunRecord(schema=RUN_SCHEMA, run_id=f"sentiment/{model}/{method}/seed{seed}", seed=seed,
                     task=RunTask(name="sentiment", profile=profile), model=RunModel(name=model),
                     method=RunMethod(name=method, passes=METHODS.get(method).passes),
                     training={"epochs": epochs, "wall_seconds": wall, "device": "cpu",
                               "history": [{"epoch": e + 1, "diagnostics": {}} for e in range(epochs)]},
                     weights_fingerprint=f"{method}-{seed}-{model}-{profile}")


def write_run(runs, method: str, seed: int, wall: float, evals: dict[str, float], *, run_json: bool = True,
              results_dir=None, **kw):
    """A finished run folder under ``runs`` (run.json and one result per evaluator), or with ``results_dir``
    only its result files, copied as a board's ``files/`` folder holds them."""
    rec = record(method, seed, wall, **kw)
    run_dir = RunIdentity(task="sentiment", model=rec.model.name, method=method, seed=seed,
                          profile=kw.get("profile")).run_dir(runs)
    if run_json:
        atomic_write_json(run_dir / RUN_FILE, to_json(rec))
    for evaluator, seconds in evals.items():
        where = result_path(run_dir, evaluator) if results_dir is None else \
            results_dir / "files" / "sentiment" / rec.model.name / method / f"seed{seed}" / f"{evaluator}.json"
        atomic_write_json(where, make_result(evaluator, rec, {}, wall_time_s=seconds))
    return run_dir


def write_history(runs, **kw) -> None:
    for seed, (wall, evals) in HISTORY.items():
        write_run(runs, "vanilla", seed, wall, evals, **kw)


def plan(runs, jobs, epochs: int = PLANNED_EPOCHS) -> list[TrainConfig]:
    """The configs robench.matrix.run_benchmark builds: one per (method, seed), ``out`` in the runs folder."""
    configs = []
    for method, seed in jobs:
        cfg = TrainConfig(task="sentiment", model=MODEL, method=method, seed=seed, epochs=epochs)
        cfg.out = str(RunIdentity(task=cfg.task, model=cfg.model, method=method, seed=seed).run_dir(runs))
        configs.append(cfg)
    return configs


def test_pass_weight_counts_forward_one_backward_two():
    assert pass_weight("1F+1B") == 3 and pass_weight("3F+2B") == 7 and pass_weight("3F+2B+1F(teacher)") == 8
    assert pass_weight(None) is None and pass_weight("") is None
    # the derivation of ALUM_RUN
    assert (METHODS.get("vanilla").passes, METHODS.get("alum").passes) == ("1F+1B", "3F+2B")


def test_estimate_from_history_scales_epochs_and_passes(tmp_path):
    """Two vanilla runs of 2 epochs measured; planned: vanilla x 2 seeds and alum (no history) at 3 epochs.
    Training: per-epoch seconds x 3 epochs; alum: vanilla's cost per pass x alum's pass count. Evaluation:
    each evaluator's mean per run (alum takes vanilla's)."""
    runs = tmp_path / "runs"
    write_history(runs)
    est = estimate_plan(plan(runs, [("vanilla", 0), ("vanilla", 1), ("alum", 0)]), EVALUATORS)
    assert (est.to_train, est.to_evaluate, est.results_to_write, est.done) == (3, 3, 6, 0)
    assert est.train_seconds == pytest.approx(2 * VANILLA_RUN + ALUM_RUN) == 780.0
    assert est.eval_seconds == pytest.approx({"id": 3 * 12.0, "shift": 3 * 30.0})
    assert est.total == pytest.approx(780.0 + 36.0 + 90.0)
    assert est.history_runs == 2 and set(est.scaled) == {"alum"}
    text = est.text()
    assert "from 2 earlier run(s) of sentiment/tiny-bert" in text and "(trained on cpu)" in text
    assert "estimated wall time 15.1 min: training 13.0 min (3 epochs), evaluation 2.1 min" in text
    assert "alum: no earlier runs of its own: the cost per pass of vanilla x its passes 3F+2B = 7" in text


def test_result_files_alone_are_history_and_counted_once(tmp_path):
    """The same runs' result files in a board's folder, without run.json: the training time comes from the
    result's run block (epochs: one training_diagnostics entry per epoch); copies of one run count once."""
    runs, results = tmp_path / "runs", tmp_path / "results"
    write_history(runs, run_json=False, results_dir=results)
    configs = plan(runs, [("vanilla", 0), ("alum", 0)])
    alone = estimate_plan(configs, EVALUATORS, [results])
    assert alone.train_seconds == pytest.approx(VANILLA_RUN + ALUM_RUN)
    assert alone.eval_seconds == pytest.approx({"id": 24.0, "shift": 60.0})
    write_history(runs)  # now also the run folders (run.json and results): the same two runs
    both = estimate_plan(configs, EVALUATORS, [results])
    assert both.history_runs == alone.history_runs == 2
    assert (both.train_seconds, both.eval_seconds) == (alone.train_seconds, alone.eval_seconds)


def test_finished_runs_and_results_cost_zero(tmp_path):
    """seed 0 finished and evaluated, seed 1 trained with shift missing, seed 2 not started: only seed 2's
    training and the three missing results cost time; the finished work is counted apart."""
    runs = tmp_path / "runs"
    write_history(runs)
    write_run(runs, "vanilla", 0, 120.0, {"id": 12.0, "shift": 30.0})  # 60 s per epoch: the means stay
    write_run(runs, "vanilla", 1, 120.0, {"id": 12.0})
    est = estimate_plan(plan(runs, [("vanilla", 0), ("vanilla", 1), ("vanilla", 2)]), EVALUATORS)
    assert (est.to_train, est.to_evaluate, est.results_to_write, est.done) == (1, 2, 3, 1)
    assert (est.trained_already, est.results_done) == (2, 3)
    assert est.train_seconds == pytest.approx(VANILLA_RUN)
    assert est.eval_seconds == pytest.approx({"id": 12.0, "shift": 2 * 30.0})
    assert "already done: 1 run(s) (2 trained, 3 result file(s) written: cost 0)" in est.text()

    nothing = estimate_plan(plan(runs, [("vanilla", 0)]), EVALUATORS)
    assert nothing.total == 0 and nothing.text().endswith("; nothing to compute")


def test_no_history_is_one_clear_line(tmp_path):
    """Runs of another model and of another profile are not this task and model's: no estimate, one line."""
    runs, results = tmp_path / "runs", tmp_path / "results"
    for other in ({"model": "tiny-mpnet"}, {"profile": "quick"}):
        write_history(runs, **other)
        write_history(runs, run_json=False, results_dir=results, **other)  # a board's folder is read at any depth
    est = estimate_plan(plan(runs, [("vanilla", 0), ("alum", 0)]), EVALUATORS, [results])
    assert not est.known
    lines = est.lines()
    assert [ln.strip() for ln in lines].count(NO_HISTORY) == 1 and len(lines) == 2
    assert lines[0].startswith("estimate: 2 run(s) to train")
    assert "no earlier runs of this task and model: no estimate" in NO_HISTORY
    assert "estimated wall time" not in est.text()


def test_cli_run_dry_run_prints_the_estimate_and_trains_nothing(tmp_path, monkeypatch):
    import robench.evaluation
    import robench.train
    from robench.cli import app

    def refuse(*args, **kwargs):
        raise AssertionError("--dry-run trained or evaluated")

    monkeypatch.setattr(robench.train, "train", refuse)
    monkeypatch.setattr(robench.evaluation, "evaluate_run", refuse)
    runs, results = tmp_path / "runs", tmp_path / "results"
    write_history(runs)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    res = CliRunner().invoke(app, ["run", "--task", "sentiment", "--methods", "vanilla,alum", "--seeds", "0,1",
                                   "--suite", ",".join(EVALUATORS), "--model", MODEL, "--epochs", str(PLANNED_EPOCHS),
                                   "--runs-dir", str(runs), "--results-dir", str(results), "--dry-run"])
    assert res.exit_code == 0, res.output
    out = res.output
    assert "estimate: 4 run(s) to train, 4 to evaluate (8 result file(s)); already done: 0 run(s)" in out
    # 2 x 180 + 2 x 420 = 1200 s training; 4 x 12 + 4 x 30 = 168 s evaluation; 1368 s = 22.8 min
    assert "estimated wall time 22.8 min: training 20.0 min (3 epochs), evaluation 2.8 min" in out
    assert "from 2 earlier run(s) of sentiment/tiny-bert" in out
    assert "dry run: nothing trained, evaluated or written" in out
    assert "leaderboard" not in out.lower()
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written


def test_an_odd_run_json_never_stops_the_estimate(tmp_path):
    """A run.json whose weights fingerprint is not a string (hand-edited, another tool's) is read as having
    none: the estimate goes on from the other runs (it raised TypeError: unhashable type)."""
    import json

    runs = tmp_path / "runs"
    write_history(runs)
    odd = write_run(runs, "vanilla", 9, 120.0, {"id": 11.0})
    data = json.loads((odd / RUN_FILE).read_text())
    data["weights_fingerprint"] = ["x"]
    (odd / RUN_FILE).write_text(json.dumps(data))
    est = estimate_plan(plan(runs, [("vanilla", 0)]), EVALUATORS)
    assert est.history_runs >= 3 and est.train_seconds > 0 and est.known
