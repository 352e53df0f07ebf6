"""Shared fixtures: a tiny random-init BERT (seconds per test), a tiny finished run and a private copy of
it, and blocked sockets."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest
import torch

os.environ.setdefault("ROBENCH_PROGRESS", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TEXTS = [
    "a wonderful, moving film with superb acting",
    "dull and lifeless, a complete waste of time",
    "the plot is clever and the jokes land",
    "i hated every minute of this boring mess",
]


@pytest.fixture(scope="session")
def tokenizer():
    from robench.models import load_tokenizer

    return load_tokenizer("tiny-bert")


@pytest.fixture
def tiny_model():
    """A fresh 2-layer BERT (hidden 64) with MiniLM's vocabulary, seeded, in train mode."""
    from robench.models import load_model

    model = load_model("tiny-bert", num_labels=2, seed=0)
    model.train()
    return model


@pytest.fixture
def batch(tokenizer):
    """A fixed padded batch of four sentences with labels, as the trainer feeds methods."""
    enc = tokenizer(TEXTS, padding=True, return_tensors="pt")
    enc["labels"] = torch.tensor([1, 0, 1, 0])
    return dict(enc)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A finished vanilla run of the tiny model on a small slice of the sentiment task."""
    from robench.train import TrainConfig, train

    out = tmp_path_factory.mktemp("runs") / "tiny"
    return train(TrainConfig(model="tiny-bert", limit=64, epochs=1, batch_size=16, out=str(out), device="cpu"))


@pytest.fixture
def run(tiny_run, tmp_path) -> Path:
    """A private copy of the tiny finished run without its results, cache and figures (tests that take it
    damage it)."""
    dest = tmp_path / "run"
    shutil.copytree(tiny_run, dest, ignore=shutil.ignore_patterns("results", "cache", "artifacts"))
    return dest


@pytest.fixture
def blocked_sockets(monkeypatch) -> list[tuple[str, object]]:
    """Every connection attempt fails and is recorded: a test then asserts that nothing was contacted."""
    attempts: list[tuple[str, object]] = []

    def connect(self, address, *args, **kwargs):
        attempts.append(("connect", address))
        raise OSError("network blocked by test")

    def getaddrinfo(host, *args, **kwargs):
        attempts.append(("getaddrinfo", host))
        raise socket.gaierror("network blocked by test")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return attempts


@pytest.fixture(scope="session")
def mp_tokenizer():
    """The tokenizer of the random-init MPNet-architecture model."""
    from robench.models import load_tokenizer

    return load_tokenizer("tiny-mpnet")
