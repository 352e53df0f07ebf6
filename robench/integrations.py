"""robench inside other tools' training loops: a Hugging Face Trainer callback.

    from robench.integrations import RobustnessCallback

    trainer = Trainer(model=model, args=args, train_dataset=train, processing_class=tokenizer)
    RobustnessCallback.attach(trainer, task="sentiment", suite="quick")   # evaluates after every epoch
    trainer.train()

At each evaluation point the callback saves the model being trained (``save_pretrained``, under
``<output_dir>/robench/step-<N>/``), evaluates it with :func:`robench.evaluate` exactly as
``robench eval --model`` would (result files beside it, so ``robench leaderboard`` reads them), and
logs the headline numbers (``robench/id``, ``robench/shift``, ...) through ``Trainer.log``, so every
``report_to`` integration (TensorBoard, W&B, ...) receives them with the Trainer's own metrics.

The evaluation leaves training as it was: it runs on a saved copy (the model's train/eval mode untouched),
in the main process alone (no collective another rank would have to join), and with the random generators
(Python, NumPy, torch, CUDA) restored afterwards, so dropout and shuffling go on as without the callback.
Whether the model's labels match the task's (``label_map``) is checked when training begins, not after
the first epoch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from robench.runspec import EVAL_PRECISION

try:
    from transformers import TrainerCallback
except ImportError as exc:  # pragma: no cover - transformers is a dependency; a broken install says so
    raise ImportError(f"robench.integrations needs the Hugging Face Trainer (transformers with accelerate), which "
                      f"could not be imported ({exc}); reinstall robench's dependencies: pip install robench") from None

__all__ = ["RobustnessCallback"]


@contextlib.contextmanager
def _training_untouched() -> Iterator[None]:
    """Around an evaluation inside training: this process alone (no collectives) and every random generator
    restored on exit (attacks and perturbations reseed them per example), whatever the evaluation raises."""
    import random

    import numpy as np
    import torch

    from robench import distributed

    states = (random.getstate(), np.random.get_state(), torch.get_rng_state(),
              torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)
    try:
        with distributed.alone():
            yield
    finally:
        python, numpy_state, torch_state, cuda = states
        random.setstate(python)
        np.random.set_state(numpy_state)
        torch.set_rng_state(torch_state)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


class RobustnessCallback(TrainerCallback):
    """Evaluate robustness during Trainer training and log it with the Trainer's metrics.

    ``every``: ``"epoch"`` (default), ``"end"`` (once, after training) or a number of optimiser steps.
    ``task``, ``suite``, ``limit``, ``label_map`` and ``precision`` mean what they mean for
    ``robench eval``; ``out`` replaces ``<output_dir>/robench``. Use :meth:`attach` (or set
    ``callback.trainer``) so the numbers go through ``Trainer.log``; without a trainer they are only
    appended to ``state.log_history``."""

    def __init__(self, task: str = "sentiment", suite: str = "quick", every: str | int = "epoch", *,
                 limit: int | None = None, label_map: str | dict[str, int] | None = None, precision: str = EVAL_PRECISION,
                 out: str | Path | None = None, prefix: str = "robench", tokenizer: Any = None, trainer: Any = None,
                 profile: str | None = None) -> None:
        from robench.errors import ConfigError

        if not (every in ("epoch", "end") or (isinstance(every, int) and not isinstance(every, bool) and every > 0)):
            raise ConfigError(f"RobustnessCallback(every={every!r}): use 'epoch', 'end' or a positive number of steps")
        self.task, self.suite, self.every, self.limit, self.profile = task, suite, every, limit, profile
        self.label_map, self.precision, self.out, self.prefix = label_map, precision, out, prefix
        self.tokenizer, self.trainer = tokenizer, trainer
        self.history: list[dict[str, float]] = []  # what was logged, per evaluation point

    @classmethod
    def attach(cls, trainer: Any, **kwargs: Any) -> RobustnessCallback:
        """Create the callback for ``trainer``, add it to the trainer and return it."""
        callback = cls(trainer=trainer, **kwargs)
        trainer.add_callback(callback)
        return callback

    # -- Trainer events

    def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001 - the Trainer's signature
        """Refuse a model whose labels do not match the task's before training, not at the first evaluation."""
        model = kwargs.get("model")
        if model is not None and getattr(model, "config", None) is not None:
            from robench.external import label_order, parse_label_map
            from robench.tasks import load_task

            spec = load_task(self.task, self.profile, self.limit)
            label_order(getattr(model.config, "id2label", None) or {}, spec.labels, parse_label_map(self.label_map),
                        "the Trainer's model")

    def on_epoch_end(self, args, state, control, **kwargs):  # noqa: ANN001
        if self.every == "epoch":
            self._evaluate(args, state, kwargs)

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
        if isinstance(self.every, int) and state.global_step % self.every == 0:
            self._evaluate(args, state, kwargs)

    def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001
        if self.every == "end":
            self._evaluate(args, state, kwargs)

    # -- the work

    def _evaluate(self, args, state, kwargs: dict[str, Any]) -> None:  # noqa: ANN001
        from robench.api import evaluate

        if not state.is_world_process_zero:
            return
        model = kwargs.get("model")
        tokenizer = self.tokenizer or kwargs.get("processing_class") or kwargs.get("tokenizer")
        if model is None or tokenizer is None:
            from robench.errors import ConfigError

            raise ConfigError("RobustnessCallback needs the model and its tokenizer: pass processing_class=tokenizer "
                              "to the Trainer, or tokenizer=... to the callback")
        base = Path(self.out) if self.out is not None else Path(args.output_dir) / "robench"
        device = "cuda" if getattr(model, "device", None) is not None and model.device.type == "cuda" else "cpu"
        with _training_untouched():
            res = evaluate(model, task=self.task, suite=self.suite, tokenizer=tokenizer,
                           out=base / f"step-{state.global_step}", label_map=self.label_map, limit=self.limit,
                           precision=self.precision, device=device, profile=self.profile, force=True)
        metrics = {f"{self.prefix}/{key}": float(value) for key, value in res.headline().items()}
        self.history.append(metrics)
        if self.trainer is not None:
            self.trainer.log(metrics)  # through every report_to callback, and into state.log_history
        else:
            state.log_history.append({**metrics, "step": state.global_step})
