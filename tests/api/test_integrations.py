"""The Hugging Face Trainer callback (robench/integrations.py): evaluates during a tiny Trainer run and
logs the headline numbers through Trainer.log, where report_to integrations receive them."""

from __future__ import annotations

import json

import pytest


class Recorder:
    """Stands in for a report_to integration (TensorBoard, W&B): what on_log receives."""

    def __new__(cls):
        from transformers import TrainerCallback

        class _Recorder(TrainerCallback):
            def __init__(self):
                self.logs = []

            def on_log(self, args, state, control, logs=None, **kwargs):
                self.logs.append(dict(logs or {}))

        return _Recorder()


def tiny_trainer(tmp_path, epochs: int = 2):
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    from robench.models import load_model, load_tokenizer
    from robench.tasks import TaskData, load_task

    task = load_task("sentiment", limit=32)
    model = load_model("tiny-bert", num_labels=2, seed=0)
    model.config.id2label = dict(enumerate(task.labels))
    model.config.label2id = {n: i for i, n in enumerate(task.labels)}
    tokenizer = load_tokenizer("tiny-bert")
    train = TaskData(task).get("train").map(lambda b: tokenizer(b["text"], truncation=True, max_length=64),
                                            batched=True, remove_columns=["text"])
    args = TrainingArguments(output_dir=str(tmp_path / "trainer"), num_train_epochs=epochs,
                             per_device_train_batch_size=16, report_to=[], use_cpu=True, save_strategy="no",
                             logging_strategy="no", seed=0, disable_tqdm=True)
    return Trainer(model=model, args=args, train_dataset=train, processing_class=tokenizer,
                   data_collator=DataCollatorWithPadding(tokenizer))


def test_callback_logs_headline_metrics_through_the_trainer(tmp_path):
    from robench.integrations import RobustnessCallback

    trainer = tiny_trainer(tmp_path)
    recorder = Recorder()
    trainer.add_callback(recorder)
    callback = RobustnessCallback.attach(trainer, task="sentiment", suite="id,calibration", limit=16)
    trainer.train()
    logged = [logs for logs in recorder.logs if any(k.startswith("robench/") for k in logs)]
    assert len(logged) == 2 and len(callback.history) == 2  # one per epoch
    assert {"robench/id", "robench/ece"} <= set(logged[0])
    assert all(0.0 <= logs["robench/id"] <= 1.0 for logs in logged)
    assert [h for h in trainer.state.log_history if "robench/id" in h]
    # what was logged is what the result files say: the same numbers robench leaderboard reads
    result = json.loads((tmp_path / "trainer" / "robench" / f"step-{trainer.state.global_step}" / "run" / "results"
                         / "id.json").read_text())
    assert logged[-1]["robench/id"] == result["metrics"]["accuracy"]


def test_callback_checks_its_schedule():
    from robench.errors import ConfigError
    from robench.integrations import RobustnessCallback

    with pytest.raises(ConfigError, match="use 'epoch', 'end' or a positive number of steps"):
        RobustnessCallback(every="weekly")


@pytest.mark.parametrize("every, evaluations", [("end", 1), (2, 2)], ids=["end", "every-2-steps"])
def test_callback_schedules(tmp_path, every, evaluations):
    from robench.integrations import RobustnessCallback

    trainer = tiny_trainer(tmp_path)  # 32 examples, batch 16, 2 epochs: 4 optimiser steps
    callback = RobustnessCallback.attach(trainer, task="sentiment", suite="id", limit=16, every=every)
    trainer.train()
    assert len(callback.history) == evaluations
    steps = sorted(p.name for p in (tmp_path / "trainer" / "robench").iterdir())
    assert steps == (["step-4"] if every == "end" else ["step-2", "step-4"])


def test_callback_evaluates_alone_and_leaves_the_random_generators_as_they_were(tmp_path, monkeypatch):
    """Inside a process group only rank 0 evaluates, so it must use no collective (the others never join); and
    attacks and perturbations reseed the generators per example, which must not change training's dropout and
    shuffling after the evaluation point."""
    import random
    from types import SimpleNamespace

    import numpy as np
    import torch

    import robench.api as api
    from robench import distributed
    from robench.integrations import RobustnessCallback
    from robench.models import load_model, load_tokenizer

    seen = []

    def evaluate(model, **kwargs):
        seen.append(distributed.is_distributed())
        torch.manual_seed(1), random.seed(1), np.random.seed(1)  # as the attacks and perturbations do
        return api.Results(tmp_path, {})

    monkeypatch.setattr(api, "evaluate", evaluate)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    assert distributed.is_distributed()
    objects = {"model": load_model("tiny-bert", num_labels=2, seed=0), "processing_class": load_tokenizer("tiny-bert")}
    torch.manual_seed(7), random.seed(7), np.random.seed(7)
    before = (torch.get_rng_state().clone(), random.getstate(), np.random.get_state()[1].copy())
    callback = RobustnessCallback(task="sentiment", suite="id")
    state = SimpleNamespace(is_world_process_zero=True, global_step=3, log_history=[])
    callback._evaluate(SimpleNamespace(output_dir=str(tmp_path)), state, objects)
    assert seen == [False] and distributed.is_distributed()  # alone inside, in the group again after
    assert torch.equal(torch.get_rng_state(), before[0]) and random.getstate() == before[1]
    assert np.array_equal(np.random.get_state()[1], before[2])


def test_callback_refuses_mismatched_labels_before_training(tmp_path):
    from robench.errors import ConfigError
    from robench.integrations import RobustnessCallback

    trainer = tiny_trainer(tmp_path)
    trainer.model.config.id2label = {0: "LABEL_0", 1: "LABEL_1"}  # what from_pretrained(num_labels=2) gives
    RobustnessCallback.attach(trainer, task="sentiment", suite="id", limit=16)
    with pytest.raises(ConfigError, match="label"):
        trainer.train()
    assert trainer.state.global_step == 0  # refused before the first step, not after an epoch
    trainer.callback_handler.callbacks[-1].label_map = "negative=0,positive=1"
    trainer.train()  # with the mapping it trains
