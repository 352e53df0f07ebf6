"""End to end on the real packaged MiniLM and real data (marked slow; CI runs them)."""

from __future__ import annotations

import json

import pytest

from robench.evaluation import evaluate_run
from robench.records import load_run as load_record
from robench.records import to_json
from robench.train import TrainConfig, train


def load_run(path):
    """run.json as its mapping, read through the typed loader."""
    return to_json(load_record(path))

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def minilm_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    cfg = dict(model="minilm", task="sentiment", limit=400, epochs=2, batch_size=16, device="cpu")
    return train(TrainConfig(**cfg, out=str(root / "a"))), train(TrainConfig(**cfg, out=str(root / "b")))


def test_minilm_vanilla_beats_chance_and_is_reproducible(minilm_runs):
    a, b = minilm_runs
    scores = []
    for run in (a, b):
        path = evaluate_run(run, "id", device="cpu", force=True)["id"]
        scores.append(json.loads(path.read_text())["metrics"]["accuracy"])
    assert scores[0] > 0.65, f"real MiniLM should be clearly above chance, got {scores[0]:.3f}"
    assert scores[0] == scores[1], "the same command twice must give identical scores"
    assert load_run(a)["weights_fingerprint"] == load_run(b)["weights_fingerprint"]
