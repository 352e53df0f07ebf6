"""Shared by the training tests (tests/ is on the test path)."""

from __future__ import annotations


def grow_validation(monkeypatch) -> None:
    """Validation accuracy grows with the epoch (epoch / 10), so a run keeps its LAST epoch's weights and a
    weights fingerprint checks the end of training (the tiny random model's real accuracy is flat, which
    would keep epoch 1's weights). Validation still runs: its loader draws from the RNG."""
    import robench.train as tr
    from robench.methods.base import TrainingHook

    seen: dict[str, int] = {}
    on_epoch_end, accuracy = TrainingHook.on_epoch_end, tr.accuracy

    def record_epoch(self, model, epoch):
        seen["epoch"] = epoch
        return on_epoch_end(self, model, epoch)

    def growing(*args):
        accuracy(*args)
        return seen["epoch"] / 10

    monkeypatch.setattr(TrainingHook, "on_epoch_end", record_epoch)
    monkeypatch.setattr(tr, "accuracy", growing)
