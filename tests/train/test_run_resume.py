"""A killed ``robench run`` resumes: the same command again finishes the matrix, and the results
equal an uninterrupted run's (the run killed mid-training resumes from its checkpoint)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["run", "--model", "tiny-bert", "--methods", "vanilla,smart", "--seeds", "0", "--suite", "id,calibration",
        "--limit", "48", "--epochs", "2", "--batch-size", "8", "--checkpoint-steps", "2", "--device", "cpu",
        "--no-plots"]
# the child trains slowly (a sleep per step), so that the kill lands mid-training of the second run
CHILD = """
import time
from robench.cli import main
from robench.methods.smart import SMART

step = SMART.training_step
def slow_step(self, *args):
    time.sleep(0.3)
    return step(self, *args)
SMART.training_step = slow_step
main()
"""


def robench(args, cwd, **kw):
    env = {**os.environ, "ROBENCH_PROGRESS": "0", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "robench.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600, **kw)


def scores(runs: Path) -> dict:
    out = {}
    for path in sorted(runs.rglob("results/*.json")):
        out[str(path.relative_to(runs))] = json.loads(path.read_text())["metrics"]
    for path in sorted(runs.rglob("run.json")):
        out[str(path.relative_to(runs))] = json.loads(path.read_text())["weights_fingerprint"]
    return out


def test_killed_run_resumes_and_equals_an_uninterrupted_run(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    for d in (whole, killed):
        d.mkdir()
    done = robench([*ARGS, "--runs-dir", "runs", "--results-dir", "results"], whole)
    assert done.returncode == 0, done.stderr[-2000:]

    env = {**os.environ, "ROBENCH_PROGRESS": "0", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, *ARGS, "--runs-dir", "runs", "--results-dir", "results"],
                            cwd=killed, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt = killed / "runs" / "sentiment-limit48" / "tiny-bert" / "smart" / ".seed0.ckpt"
    deadline = time.monotonic() + 300
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    assert (killed / "runs/sentiment-limit48/tiny-bert/vanilla/seed0/results/calibration.json").exists()
    assert not (killed / "runs/sentiment-limit48/tiny-bert/smart/seed0").exists()  # killed mid-training

    again = robench([*ARGS, "--runs-dir", "runs", "--results-dir", "results"], killed)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming from epoch" in again.stdout + again.stderr
    assert "trained already" in again.stdout + again.stderr or "trained 1 run(s), skipped 1" in again.stdout
    assert scores(killed / "runs") == scores(whole / "runs")
    assert not ckpt.exists()
