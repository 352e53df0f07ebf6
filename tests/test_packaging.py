"""A plain (non-editable) install carries everything: a wheel built from the checkout, installed outside it,
lists the packaged tasks and trains and evaluates a tiny model on the default task from another directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_installed_elsewhere_has_its_tasks_and_runs(tmp_path):
    wheels, site, cwd = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    cwd.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(wheels), str(ROOT)], check=True, cwd=tmp_path)
    wheel = next(wheels.glob("robench-*.whl"))
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True, cwd=tmp_path)
    env = {**os.environ, "PYTHONPATH": str(site), "ROBENCH_PROGRESS": "0"}

    def robench(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "robench.cli", *args], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        return done.stdout

    where = subprocess.run([sys.executable, "-c", "import robench.tasks as t; print(t.__file__, t.TASKS_DIR)"],
                           cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(site)) and str(ROOT) not in where  # the installed copy, not the checkout
    listing = robench("list", "tasks")
    assert "sentiment" in listing and "packaged" in listing
    robench("train", "--model", "tiny-bert", "--limit", "16", "--epochs", "1", "--device", "cpu", "--out", "run")
    robench("eval", "--run", "run", "--suite", "id,adversarial", "--n", "2", "--recipe", "deepwordbug",
            "--device", "cpu")  # the packaged static transfer set is read from the installed package
    record = json.loads((cwd / "run" / "run.json").read_text())
    assert record["task"]["source"] == "sentiment" and record["git_commit"] is None
    assert (cwd / "run" / "results" / "id.json").is_file() and (cwd / "run" / "results" / "adversarial.json").is_file()
