"""Resumable training: a run killed and resumed ends exactly as a run never killed; checkpoints are
tied to their command; killed saves leave nothing behind that the next run does not clean up."""

from __future__ import annotations

import copy
import itertools
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from train_helpers import grow_validation

import robench.train as tr
from robench import checkpoint
from robench.methods import METHODS
from robench.records import load_run as load_record
from robench.records import to_json
from robench.train import TrainConfig, train


def load_run(path):
    """run.json as its mapping, read through the typed loader."""
    return to_json(load_record(path))

ROOT = Path(__file__).resolve().parents[2]
TIMINGS = ("train_seconds", "setup_seconds", "examples_per_second", "seconds_per_example", "wall_seconds")
# `robench train` in a child process, with the last_epoch_best fixture's patches, and 0.3 s of sleep per
# step so that a kill lands mid-training
CHILD = f"""
import sys
import time

sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
import pytest
from train_helpers import grow_validation

from robench.cli import main
from robench.methods.vanilla import Vanilla

step = Vanilla.training_step

def slow_step(self, *args):
    time.sleep(0.3)
    return step(self, *args)

grow_validation(pytest.MonkeyPatch())
Vanilla.training_step = slow_step
main()
"""


def tiny(tmp_path: Path, name: str = "run", **kw) -> TrainConfig:
    """6 steps per epoch, 12 in all; a checkpoint every 2 steps and at each epoch end."""
    cfg = dict(model="tiny-bert", limit=48, epochs=2, batch_size=8, checkpoint_steps=2, out=str(tmp_path / name),
               device="cpu")
    cfg.update(kw)
    return TrainConfig(**cfg)


@pytest.fixture(autouse=True)
def last_epoch_best(monkeypatch):
    """Validation accuracy grows with the epoch: a run keeps its last epoch's weights (train_helpers)."""
    grow_validation(monkeypatch)


def killed(monkeypatch, cfg: TrainConfig, steps: int) -> None:
    """Run ``cfg`` and interrupt it (as Ctrl-C does) at the start of its step ``steps + 1``."""
    cls = METHODS.get(cfg.method)
    original, calls = cls.training_step, itertools.count(1)

    def step(self, *args, **kwargs):
        if next(calls) > steps:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(cls, "training_step", step)
        with pytest.raises(KeyboardInterrupt):
            train(cfg)


def comparable(run: dict) -> dict:
    """run.json without what may differ between a resumed and an uninterrupted run: timings, the
    resume points, the creation time and the output path."""
    run = copy.deepcopy(run)
    for key in (*TIMINGS, "resumed"):
        run["training"].pop(key)
    for epoch in run["training"]["history"]:
        epoch.pop("epoch_seconds")
    mask = run["method"]["state"].get("SelectiveTraining")
    if mask:
        mask.pop("seconds"), mask.pop("mask_seconds_per_step")
    run.pop("created"), run["config"].pop("out")
    return run


def assert_same_run(resumed: Path, uninterrupted: Path) -> None:
    a, b = load_run(uninterrupted), load_run(resumed)
    assert b["weights_fingerprint"] == a["weights_fingerprint"]
    assert comparable(b) == comparable(a)
    assert a["training"]["resumed"] == [] and a["training"]["best_epoch"] == 2
    assert not checkpoint.checkpoint_dir(resumed).exists(), "a finished run removes its checkpoint"
    assert sorted(p.name for p in resumed.parent.iterdir()) == [resumed.name], "no leftovers beside the run"


# ------------------------------------------------------------------ resumed == uninterrupted


@pytest.mark.parametrize("method", METHODS.names())
def test_killed_twice_and_resumed_equals_uninterrupted(tmp_path, monkeypatch, capsys, method):
    """Killed mid-epoch 1 (checkpoint at step 2) and mid-epoch 2 (checkpoint at step 8): RAM's mask,
    accumulator and generator, SMART's EMA teacher, and every method's diagnostics resume."""
    a = train(tiny(tmp_path / "a", method=method))
    cfg = tiny(tmp_path / "b", method=method)
    killed(monkeypatch, cfg, steps=3)
    out = Path(cfg.out)
    assert not out.exists() and checkpoint.checkpoint_dir(out).is_dir(), "the checkpoint lives beside the run"
    assert {p.name for p in checkpoint.checkpoint_dir(out).iterdir()} == {"state.json", "tensors.safetensors"}
    killed(monkeypatch, cfg, steps=7)  # resumes at global step 2, dies after step 9
    b = train(cfg)
    err = capsys.readouterr().err
    assert "resuming from epoch 1 step 2" in err and "resuming from epoch 2 step 2" in err
    assert load_run(b)["training"]["resumed"] == [{"epoch": 1, "step": 2, "global_step": 2},
                                                  {"epoch": 2, "step": 2, "global_step": 8}]
    assert_same_run(b, a)


def test_killed_at_an_epoch_end_resumes_at_the_next_epoch(tmp_path, monkeypatch, capsys):
    a = train(tiny(tmp_path / "a", checkpoint_steps=0))
    cfg = tiny(tmp_path / "b", checkpoint_steps=0)  # epoch-end checkpoints only
    killed(monkeypatch, cfg, steps=9)
    b = train(cfg)
    assert "resuming from epoch 2 step 0" in capsys.readouterr().err
    assert load_run(b)["training"]["resumed"] == [{"epoch": 2, "step": 0, "global_step": 6}]
    assert_same_run(b, a)


def test_killed_while_writing_the_run_resumes_at_the_end(tmp_path, monkeypatch, capsys):
    """The last checkpoint follows the last epoch: no step is redone, and the hooks' last values
    (RAM's ``last_adv_symkl``, the mask's counters) still reach run.json."""
    a = train(tiny(tmp_path / "a", method="ram"))
    cfg = tiny(tmp_path / "b", method="ram")
    def dies(*args):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(tr, "_write_run_dir", dies)
        with pytest.raises(KeyboardInterrupt):
            train(cfg)
    b = train(cfg)
    assert "resuming from the end of training" in capsys.readouterr().err
    assert load_run(b)["training"]["resumed"] == [{"epoch": 3, "step": 0, "global_step": 12}]
    assert_same_run(b, a)


def test_kill_between_the_checkpoint_renames_keeps_the_previous_one(tmp_path, monkeypatch, capsys):
    """Killed after the old checkpoint was moved aside and before the new one took its place: the
    next run renames the old one back and resumes from it."""
    a = train(tiny(tmp_path / "a", method="smart"))
    cfg = tiny(tmp_path / "b", method="smart")
    ckpt = checkpoint.checkpoint_dir(Path(cfg.out))
    calls = itertools.count(1)
    replace = checkpoint.replace_dir

    def dies_mid_swap(tmp, dest):
        if next(calls) < 2:
            return replace(tmp, dest)
        dest.rename(checkpoint.sibling(dest, "old"))
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(checkpoint, "replace_dir", dies_mid_swap)
        with pytest.raises(KeyboardInterrupt):
            train(cfg)
    assert not ckpt.exists()
    # this process lives on; make the leftover look like a dead process's
    checkpoint.sibling(ckpt, "old").rename(checkpoint.sibling(ckpt, "old", dead_pid()))
    b = train(cfg)
    err = capsys.readouterr().err
    assert "restored" in err and "resuming from epoch 1 step 2" in err
    assert_same_run(b, a)


def test_sigkilled_process_resumes(tmp_path):
    """A real ``robench train`` process killed with SIGKILL once it has a checkpoint; the same
    command then resumes (in this process) and ends as an uninterrupted run."""
    cfg = tiny(tmp_path / "b", checkpoint_steps=1)
    args = ["train", "--model", "tiny-bert", "--limit", "48", "--epochs", "2", "--batch-size", "8",
            "--checkpoint-steps", "1", "--device", "cpu", "--out", cfg.out]
    env = {**os.environ, "ROBENCH_PROGRESS": "0", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt = checkpoint.checkpoint_dir(Path(cfg.out))
    deadline = time.monotonic() + 120
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err.decode()
    assert not Path(cfg.out).exists()
    resumed = load_run(train(cfg))["training"]["resumed"]
    assert len(resumed) == 1 and resumed[0]["global_step"] >= 1
    assert_same_run(Path(cfg.out), train(tiny(tmp_path / "a", checkpoint_steps=1)))


# ------------------------------------------------------------------ which checkpoint counts


def test_a_different_command_starts_over(tmp_path, monkeypatch, capsys):
    cfg = tiny(tmp_path)
    killed(monkeypatch, cfg, steps=3)
    other = train(tiny(tmp_path, lr=2e-4))
    assert "different command" in capsys.readouterr().err
    assert load_run(other)["training"]["resumed"] == []
    assert load_run(other)["weights_fingerprint"] == load_run(train(tiny(tmp_path / "a", lr=2e-4)))[
        "weights_fingerprint"]


def test_a_checkpoint_is_not_resumed_where_auto_resolves_otherwise(tmp_path, monkeypatch, capsys):
    """--precision auto (the default) is bf16 on one machine and fp32 on another: a run stopped on the first is
    started over on the second, never continued in another arithmetic."""
    import robench.train as train_module

    cfg = tiny(tmp_path, precision="auto")
    killed(monkeypatch, cfg, steps=3)
    resolved = train_module.resolve_precision("auto", __import__("torch").device("cpu"))
    other = "fp32" if resolved == "bf16" else "bf16"
    monkeypatch.setattr(train_module, "resolve_precision", lambda requested, device: other)
    run = train(cfg)
    assert "different command" in capsys.readouterr().err
    assert load_run(run)["training"]["resumed"] == []


def test_checkpoint_steps_is_not_part_of_the_command(tmp_path, monkeypatch, capsys):
    killed(monkeypatch, tiny(tmp_path), steps=3)
    run = train(tiny(tmp_path, checkpoint_steps=5))
    assert "resuming from epoch 1 step 2" in capsys.readouterr().err
    assert load_run(run)["training"]["resumed"][0]["global_step"] == 2


def test_force_discards_the_checkpoint(tmp_path, monkeypatch, capsys):
    cfg = tiny(tmp_path)
    killed(monkeypatch, cfg, steps=3)
    run = train(tiny(tmp_path, force=True))
    assert "--force" in capsys.readouterr().err
    assert load_run(run)["training"]["resumed"] == []
    assert not checkpoint.checkpoint_dir(run).exists()


def test_unreadable_checkpoint_starts_over(tmp_path, capsys):
    cfg = tiny(tmp_path, checkpoint_steps=0, epochs=1)
    ckpt = checkpoint.checkpoint_dir(Path(cfg.out))
    ckpt.mkdir()
    (ckpt / checkpoint.STATE_FILE).write_text("{not json")
    run = train(cfg)
    assert "it is unreadable; starting over" in capsys.readouterr().err
    assert load_run(run)["training"]["resumed"] == [] and not ckpt.exists()


def test_checkpoint_round_trip_keeps_types_and_tensors(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1, betas=(0.9, 0.98))
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    mask = torch.rand(6)
    state = {"optimizer": opt.state_dict(), "views": [mask[:3], mask[3:]], "rng": checkpoint.rng_state(),
             "x": None, "nan": float("nan")}
    checkpoint.save(tmp_path / ".c", state)
    back = checkpoint.load(tmp_path / ".c")
    assert back["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.98)
    assert set(back["optimizer"]["state"]) == {0, 1}  # int keys: what Optimizer.load_state_dict matches
    assert torch.equal(back["optimizer"]["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert torch.equal(torch.cat(back["views"]), mask) and back["x"] is None and back["nan"] != back["nan"]
    draws = torch.rand(3), torch.randn(2)
    checkpoint.set_rng_state(back["rng"])
    assert torch.equal(torch.rand(3), draws[0])
    before = checkpoint.rng_state()
    want = random.random(), np.random.rand()
    checkpoint.set_rng_state(before)
    assert (random.random(), np.random.rand()) == want
    assert checkpoint.load(tmp_path / "none") is None


# ------------------------------------------------------------------ leftovers of killed saves


def dead_pid() -> int:
    proc = subprocess.Popen(["sleep", "0"])
    proc.wait()
    return proc.pid


def leftover(parent: Path, name: str, *files: str, robench: bool = True) -> Path:
    """A folder left by a killed save: a temporary one carries robench's owner mark, and run.json / state.json
    name robench's schema (``robench=False``: a user's folder that only has such a name)."""
    path = parent / name
    path.mkdir()
    for f in files:
        (path / f).write_text('{"schema": "robench.run/1"}' if robench and f in ("run.json", "state.json") else "{}")
    if robench and ".tmp-" in name:
        (path / checkpoint.OWNER_FILE).write_text("1\n")
    return path


def test_dead_processes_leftovers_are_removed_live_ones_kept(tmp_path):
    dead, live = dead_pid(), os.getpid()
    run = leftover(tmp_path, "run", "run.json")
    gone = [leftover(tmp_path, f".run.tmp-{dead}", "model.safetensors"),
            leftover(tmp_path, f".run.old-{dead}", "run.json"),  # the run is in place: an old copy
            leftover(tmp_path, f".run.ckpt.tmp-{dead}"), leftover(tmp_path, f".run.ckpt.old-{dead}")]
    kept = [leftover(tmp_path, f".run.tmp-{live}"), leftover(tmp_path, f".run.old-{live}", "run.json"),
            leftover(tmp_path, f".run.ckpt.tmp-{live}"), leftover(tmp_path, f".run.tmp-{dead}x"),
            leftover(tmp_path, f".runs.tmp-{dead}"), leftover(tmp_path, f".other.old-{dead}")]
    checkpoint.clean_leftovers(run, "run.json")
    checkpoint.clean_leftovers(checkpoint.checkpoint_dir(run), checkpoint.STATE_FILE)
    assert not any(p.exists() for p in gone) and all(p.exists() for p in kept) and run.exists()


def test_a_users_folder_with_a_leftovers_name_is_never_removed(tmp_path):
    """Only robench's own leftovers go: a user's '.thesis.old-<pid>' (no robench run.json) or '.thesis.tmp-<pid>'
    (no owner mark) stays, also when train refuses the --out it sits beside."""
    from robench.errors import ConfigError

    dead = dead_pid()
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "chapter1.tex").write_text("mine")
    backup = leftover(tmp_path, f".thesis.old-{dead}", "chapter1.tex", "run.json", robench=False)
    draft = leftover(tmp_path, f".thesis.tmp-{dead}", "notes.txt", robench=False)
    checkpoint.clean_leftovers(thesis, "run.json")
    assert backup.exists() and draft.exists() and (backup / "chapter1.tex").read_text() == "{}"
    with pytest.raises(ConfigError, match="not a robench run"):
        train(tiny(tmp_path, checkpoint_steps=0, epochs=1, out=str(thesis)))
    assert backup.exists() and draft.exists() and (thesis / "chapter1.tex").read_text() == "mine"
    # a missing target is not restored from a user's folder either
    (thesis / "chapter1.tex").unlink()
    thesis.rmdir()
    checkpoint.clean_leftovers(thesis, "run.json")
    assert not thesis.exists() and backup.exists()
    # robench's own leftovers of the same names do go
    ours = leftover(tmp_path, f".thesis.tmp-{dead_pid()}", "model.safetensors")
    checkpoint.clean_leftovers(thesis, "run.json")
    assert not ours.exists() and backup.exists()


def test_another_users_process_counts_as_alive(tmp_path, monkeypatch):
    path = leftover(tmp_path, ".run.tmp-4242")

    def denied(pid, sig):
        raise PermissionError

    monkeypatch.setattr(os, "kill", denied)
    checkpoint.clean_leftovers(tmp_path / "run", "run.json")
    assert path.exists()


def test_old_copy_of_a_missing_run_is_restored(tmp_path, capsys):
    """Killed between the two renames of a --force save: the old run is the only complete one."""
    dead = dead_pid()
    old = leftover(tmp_path, f".run.old-{dead}", "run.json")
    half = leftover(tmp_path, f".run.tmp-{dead}", "model.safetensors")
    checkpoint.clean_leftovers(tmp_path / "run", "run.json")
    assert (tmp_path / "run" / "run.json").exists() and not old.exists() and not half.exists()
    assert "restored" in capsys.readouterr().err
    incomplete = leftover(tmp_path, f".gone.old-{dead}")  # no run.json: nothing to restore
    checkpoint.clean_leftovers(tmp_path / "gone", "run.json")
    assert not incomplete.exists() and not (tmp_path / "gone").exists()


def test_train_cleans_up_before_it_starts(tmp_path, capsys):
    """The next run of the same command: a restored run is a finished run (needs --force), and
    --force then replaces it, leaving no leftover."""
    from robench.errors import ConfigError

    cfg = tiny(tmp_path, checkpoint_steps=0, epochs=1)
    first = train(cfg)
    dead = dead_pid()
    first.rename(tmp_path / f".run.old-{dead}")
    leftover(tmp_path, f".run.tmp-{dead}", "model.safetensors")
    leftover(tmp_path, f".run.ckpt.tmp-{dead}", "tensors.safetensors")
    with pytest.raises(ConfigError, match="already holds a finished run"):
        train(cfg)
    assert "restored" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    train(tiny(tmp_path, checkpoint_steps=0, epochs=1, force=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_cli_rejects_negative_checkpoint_steps(monkeypatch, capsys, tmp_path):
    from cli_helpers import assert_one_line_error, run_cli

    code, _, err = run_cli(monkeypatch, capsys, "train", "--model", "tiny-bert", "--checkpoint-steps", "-1",
                           "--out", str(tmp_path / "r"))
    assert_one_line_error(code, err, "--checkpoint-steps must be >= 0")
