"""The one training loop for every method, on Hugging Face Accelerate.

Read it top to bottom: clean up what killed saves left -> seed -> data -> model -> optimiser
-> hooks' setup, or resume from a checkpoint -> per step (method's passes, clip, hooks,
optimiser step; a checkpoint every ``checkpoint_steps``) -> per epoch (hooks, validation, keep
the best, a checkpoint) -> write the run directory atomically (weights, tokenizer, run.json) ->
remove the checkpoint. Methods plug in through ``robench.methods.base.TrainingHook``; the loop
knows nothing about any one method.

Resuming (``robench.checkpoint``): a checkpoint holds the weights, optimiser, scheduler, every
hook's ``state_dict``, the RNG states and the loop's bookkeeping (``Loop``). The batch order of
an epoch comes from the shuffling generator alone (random, or length-grouped with
``group_by_length``: ``robench.sampling``), so a checkpoint taken mid-epoch stores that
generator's state from the start of the epoch: a resumed run replays the epoch's order and skips
the batches already done. A run resumed after a kill ends with the same weights and run.json
(timings aside) as a run never killed; ``training.resumed`` lists where it resumed.

A budget (``TrainConfig.stop_after_epoch = k``, used by ``robench tune``'s successive halving): the
run follows its full ``epochs``-long schedule (warm-up and decay included) but returns after epoch
k's end-of-epoch checkpoint, writing no run folder; :func:`halted_history` reads the epochs done
(validation accuracy per epoch) from that checkpoint. The budget is not part of the run spec nor of
the checkpoint's key, so the same config without it resumes there and ends exactly as a run never
stopped. A run already past epoch k (its checkpoint) returns at once.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import torch

from robench import checkpoint
from robench.configs import make_config
from robench.errors import ConfigError
from robench.hardware import make_adamw, native_bf16, resolve_precision, size_threads
from robench.identity import RunIdentity
from robench.methods import build_method
from robench.methods.base import TrainingHook
from robench.models import align_padding, load_model, load_tokenizer, resolve_device, usable_positions
from robench.outputs import guard_checkpoint_dir, guard_run_out
from robench.progress import console, progress_bar
from robench.records import RUN_FILE, RUN_SCHEMA, RunMethod, RunModel, RunRecord, RunTask, parse, to_json
from robench.runspec import TRAINER_FIELDS, RunSpec, TrainConfig
from robench.storage import atomic_write_json, file_sha256, provenance
from robench.tasks import TaskData, load_task, task_source


@dataclass
class Loop:
    """The loop's position (the next step to run) and bookkeeping: what a checkpoint saves beside
    the weights, optimiser, scheduler, hooks and RNG states."""

    epoch: int = 1  # the epoch in progress, 1-based; epochs + 1 once training is done
    step: int = 0  # batches of that epoch already done
    global_step: int = 0
    losses: list[Any] = field(default_factory=list)  # this epoch's step losses (float64 device scalars)
    history: list[dict[str, Any]] = field(default_factory=list)
    best_acc: float = -1.0
    best_epoch: int = 0
    train_seconds: float = 0.0
    train_examples: int = 0
    setup_seconds: float = 0.0
    wall_seconds: float = 0.0  # up to the last checkpoint
    resumed: list[dict[str, int]] = field(default_factory=list)  # where each resume started


LOG_EVERY = 10  # steps between progress-bar loss updates (each one reads the loss from the device)


def identity(cfg: TrainConfig) -> RunIdentity:
    return RunIdentity(task=cfg.task, model=cfg.model, method=cfg.method, selective=cfg.selective, seed=cfg.seed,
                       profile=cfg.profile, limit=cfg.limit)


def default_run_dir(cfg: TrainConfig, root: str | Path = "runs") -> Path:
    return identity(cfg).run_dir(root)


def seed_everything(seed: int) -> None:
    from accelerate.utils import set_seed

    set_seed(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)


def resolve_preset(cfg: TrainConfig) -> tuple[str | None, str]:
    """The method preset and where it came from: ``user`` (--preset), ``task`` (the task YAML's
    ``method_presets``, applied unless the user passes --preset) or ``default``. ``--set`` values
    always apply on top of the preset."""
    if cfg.preset:
        return cfg.preset, "user"
    from robench.methods import METHODS

    preset = load_task(cfg.task).method_presets.get(METHODS.canonical(cfg.method))
    return (preset, "task") if preset else (None, "default")


def _preset_values(cfg: TrainConfig) -> tuple[str | None, str, dict[str, Any], dict[str, Any]]:
    """(preset, where it came from, the method's default values, the preset's values)."""
    preset, origin = resolve_preset(cfg)
    defaults = dataclasses.asdict(build_method(cfg.method, {}, None).config)
    return preset, origin, defaults, dataclasses.asdict(build_method(cfg.method, {}, preset).config) if preset \
        else defaults


def preset_record(cfg: TrainConfig) -> dict[str, Any]:
    """run.json's ``method.preset``: its name and source, saying so when its values are the defaults."""
    name, source, defaults, values = _preset_values(cfg)
    if name and values == defaults:
        source += " (same values as the defaults)"
    return {"name": name, "source": source}


def build_hooks(cfg: TrainConfig) -> tuple[Any, list[TrainingHook]]:
    preset, _ = resolve_preset(cfg)
    method = build_method(cfg.method, cfg.method_overrides, preset)
    hooks: list[TrainingHook] = [method, *method.extra_hooks()]
    if cfg.selective:
        from robench.methods.selective import SelectiveTraining

        if any(isinstance(h, SelectiveTraining) for h in hooks):  # RAM already masks: never mask twice
            raise ConfigError(f"method {method.name!r} already applies selective training; drop --selective "
                              "(set its mask with --set selective_alpha=.. selective_beta=..), or pass "
                              "--set selective=false to use --selective's mask instead")
        # the task's mask preset (method_presets.selective), the user's --selective-alpha/beta on top
        preset = load_task(cfg.task).method_presets.get(SelectiveTraining.name)
        hooks.append(SelectiveTraining(make_config(SelectiveTraining, cfg.selective_overrides, preset)))
    return method, hooks


def resolve_run_spec(cfg: TrainConfig, built: tuple[Any, list[TrainingHook]] | None = None,
                     data_hash: str | None = None) -> RunSpec:
    """The one builder of a run's :class:`~robench.runspec.RunSpec`. ``cfg`` is the command's request
    with a tuned file already applied (``robench.tune.apply_tuned``); the method config resolves
    dataclass defaults -> preset (``--preset``, else the task's ``method_presets``) -> ``--set``.
    ``built`` (the method and hooks ``build_hooks(cfg)`` made) and ``data_hash`` are passed by
    ``train``, which has them; planning builds them here without training."""
    method, hooks = built if built is not None else build_hooks(cfg)
    if data_hash is None:
        data_hash = load_task(cfg.task, cfg.profile, cfg.limit).data_hash
    return RunSpec.of(cfg, dataclasses.asdict(method.config), hooks[-1].config_dict() if cfg.selective else None,
                      data_hash, spec_sources(cfg, method))


def spec_sources(cfg: TrainConfig, method) -> dict[str, dict[str, str]]:
    """Where each value of the spec came from: ``default``, ``preset NAME (task|user)``, ``tuned`` (a
    --tuned file) or ``cli`` (given by the command or the caller). Recorded beside the spec, not part of
    its key: the values decide the weights, not their origin."""
    preset, origin, defaults, preset_values = _preset_values(cfg)
    tuned = cfg.tuned or {}
    setting, overridden = tuned.get("setting") or {}, tuned.get("overridden") or {}
    method_sources = {}
    for name in dataclasses.asdict(method.config):
        if name in cfg.method_overrides:
            method_sources[name] = "tuned" if name in setting and name not in overridden else "cli"
        elif preset_values.get(name) != defaults.get(name):
            method_sources[name] = f"preset {preset} ({origin})"
        else:
            method_sources[name] = "default"
    base = TrainConfig()
    trainer_sources = {name: "tuned" if name == "lr" and tuned and "lr" not in overridden
                       else "default" if getattr(cfg, name) == getattr(base, name) else "cli"
                       for name in TRAINER_FIELDS}
    return {"trainer": trainer_sources, "method_config": method_sources}


def check_finished_run(run_dir: Path, cfg: TrainConfig, fix: str) -> None:
    """A finished run at ``run_dir`` may stand for ``cfg`` only if every field of the spec matches, and its train
    and validation examples are the ones the task gives now (a data file edited behind an unchanged task file
    changes no hash of the spec, but it changes these sets' fingerprints, which run.json records)."""
    from robench.records import load_run

    record = load_run(run_dir)
    diff = RunSpec.from_record(record).differences(resolve_run_spec(cfg))
    recorded = record.task.fingerprints or {}
    now = _set_fingerprints(cfg.task, cfg.profile, cfg.limit) if not diff and recorded else {}
    if now:
        diff = [f"{key} examples changed (fingerprint {recorded[key]}, now {now[key]})" for key in sorted(recorded)
                if key in now and recorded[key] != now[key]]
    if diff:
        raise ConfigError(f"run {run_dir} was trained with other settings ({'; '.join(diff)}); {fix}")


def _set_fingerprints(task: str, profile: str | None, limit: int | None) -> dict[str, str]:
    """The train and validation fingerprints of a task as it is now; none where its data cannot be read here
    (e.g. a hub set while offline): the spec's check stands alone then, as before this one."""
    from robench.errors import RobenchError

    try:
        data = TaskData(load_task(task, profile, limit), pairs=True)
        return {k: data.fingerprint(k) for k in ("train", "validation")}
    except RobenchError:
        return {}


def tokenize(ds, tokenizer, max_length: int):
    """Token ids of a set: one text per example, or a sentence pair (``text``, ``text_pair``) in the
    tokenizer's pair encoding, truncated longest-first to ``max_length``."""
    if "text_pair" in ds.column_names:
        return ds.map(lambda b: tokenizer(b["text"], b["text_pair"], truncation=True, max_length=max_length),
                      batched=True, remove_columns=["text", "text_pair"]).rename_column("label", "labels")
    return ds.map(lambda b: tokenizer(b["text"], truncation=True, max_length=max_length), batched=True,
                  remove_columns=["text"]).rename_column("label", "labels")


def make_train_loader(train_ds, cfg: TrainConfig, collate, generator: torch.Generator):
    """The training batches of ``cfg.batch_size``: a fresh random order each epoch, or with
    ``cfg.group_by_length`` that order grouped by length (:mod:`robench.sampling`). Either way every
    draw comes from ``generator`` (the permutation, and the DataLoader's per-epoch base seed), so an
    epoch's batches replay from the generator's state at its start: what resuming relies on."""
    from torch.utils.data import DataLoader

    if not cfg.group_by_length:
        return DataLoader(train_ds, batch_size=cfg.batch_size, shuffle=True, collate_fn=collate, generator=generator)
    from robench.sampling import LengthGroupedSampler, token_lengths

    sampler = LengthGroupedSampler(token_lengths(train_ds), cfg.batch_size, generator)
    return DataLoader(train_ds, batch_size=cfg.batch_size, sampler=sampler, collate_fn=collate, generator=generator)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on biases and LayerNorm weights (the reference optimiser)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


@torch.no_grad()
def accuracy(model: torch.nn.Module, loader, accelerator) -> float:
    model.eval()
    correct = total = 0
    for batch in loader:
        logits = model(**batch).logits
        preds, labels = accelerator.gather_for_metrics((logits.argmax(-1), batch["labels"]))
        correct += int((preds == labels).sum())
        total += int(labels.numel())
    model.train()
    return correct / max(total, 1)


def train_step(method, hooks: list[TrainingHook], model, batch, accelerator, optimizer, scheduler=None,
               max_grad_norm: float = 1.0) -> torch.Tensor:
    """One optimiser step as every method takes it: the method's passes, hooks after backward, clipping,
    hooks before the step (RAM's mask), AdamW (and the schedule), hooks after it (SMART's teacher).
    Returns the step loss on the device. ``benchmarks/bench_train.py`` times exactly this."""
    loss = method.training_step(model, batch, accelerator)
    for hook in hooks:
        hook.after_backward(model)
    if max_grad_norm:
        accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
    for hook in hooks:
        hook.before_optimizer_step(model)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    for hook in hooks:
        hook.after_optimizer_step(model)
    return loss


def _check_request(cfg: TrainConfig, world: int) -> tuple[Path, Path]:
    """The run folder and its checkpoint folder, after every check that needs no data: the numbers, the
    batch against the processes, and the output rule (nothing robench did not write is ever replaced)."""
    if cfg.batch_size % world:
        raise ConfigError(f"--batch-size {cfg.batch_size} is the global batch and must be divisible by the "
                          f"{world} processes")
    out = Path(cfg.out) if cfg.out else default_run_dir(cfg)
    ckpt_dir = checkpoint.checkpoint_dir(out)
    checkpoint.clean_leftovers(out, RUN_FILE)
    checkpoint.clean_leftovers(ckpt_dir, checkpoint.STATE_FILE)
    guard_run_out(out, cfg.force)
    guard_checkpoint_dir(ckpt_dir, checkpoint.STATE_FILE)
    if cfg.epochs < 1 or cfg.batch_size < 1 or cfg.lr <= 0 or cfg.checkpoint_steps < 0:
        raise ConfigError("--epochs and --batch-size must be >= 1, --lr > 0 and --checkpoint-steps >= 0")
    if cfg.stop_after_epoch is not None and cfg.stop_after_epoch < 1:
        raise ConfigError(f"stop_after_epoch must be >= 1 (an epoch of the schedule), got {cfg.stop_after_epoch}")
    return out, ckpt_dir


def train(cfg: TrainConfig) -> Path:
    """Fine-tune and write a run directory; returns its path. Resumes from this command's checkpoint."""
    from accelerate import Accelerator
    from torch.utils.data import DataLoader
    from transformers import DataCollatorWithPadding, get_linear_schedule_with_warmup

    from robench import distributed

    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)  # auto: bf16 autocast where native, else fp32
    # Under a launcher (torchrun, accelerate launch): form the process group now, and refuse a launch
    # that asked for N processes but runs alone. --batch-size is the global batch, split over the ranks,
    # so the number of steps, the schedule and every method's hyper-parameters mean the same at any N.
    world = distributed.state(device).num_processes
    out, ckpt_dir = _check_request(cfg, world)
    method, hooks = build_hooks(cfg)  # validate the method before any heavy work

    if device.type == "cpu":
        size_threads()  # never more compute threads than this process has cores
    seed_everything(cfg.seed)
    task = load_task(cfg.task, cfg.profile, cfg.limit)
    data = TaskData(task, pairs=True)  # sentence pairs are tokenised as pairs (tokenize)
    checks = data.train_checks(warn=lambda m: console.print(m, style="yellow", markup=False))  # one-class train / overlaps
    fingerprints = {k: data.fingerprint(k) for k in ("train", "validation")}
    spec = resolve_run_spec(cfg, (method, hooks), task.data_hash)
    # the checkpoint belongs to this spec, these very examples and the device, precision and processes they
    # resolved to (RNG states and arithmetic differ across them: "auto" on a GPU is not "auto" on a CPU)
    key = checkpoint.config_key({"spec": spec.fields(), "data": fingerprints, "device": cfg.device,
                                 "resolved": {"device": device.type, "precision": precision, "processes": world},
                                 "hooks": [type(h).__name__ for h in hooks]})
    saved = resume_point(ckpt_dir, key, cfg.force)
    if saved is not None and _halted(cfg, saved["loop"]["epoch"]):  # stopped at (or past) the budget before
        console.print(f"past the budget (epoch {cfg.stop_after_epoch}) already: checkpoint {ckpt_dir} is at epoch "
                      f"{saved['loop']['epoch']} step {saved['loop']['step']}", markup=False, soft_wrap=True)
        return out
    tokenizer = load_tokenizer(cfg.model)
    train_ds = tokenize(data.get("train"), tokenizer, cfg.max_length)
    val_ds = tokenize(data.get("validation"), tokenizer, cfg.max_length)
    collate = DataCollatorWithPadding(tokenizer)  # pads each batch to its own longest sequence
    generator = torch.Generator().manual_seed(cfg.seed)  # the batch order, and nothing else
    train_loader = make_train_loader(train_ds, cfg, collate, generator)
    val_loader = DataLoader(val_ds, batch_size=cfg.eval_batch_size, collate_fn=collate)

    model = load_model(cfg.model, num_labels=len(task.labels), seed=cfg.seed)
    align_padding(model, tokenizer)
    positions = usable_positions(model.config)
    if positions is not None and cfg.max_length > positions:
        raise ConfigError(f"--max-length {cfg.max_length} is longer than model {cfg.model!r} can read ({positions} "
                          f"positions); pass --max-length {positions} or less")
    model.config.id2label = dict(enumerate(task.labels))
    model.config.label2id = {name: i for i, name in enumerate(task.labels)}
    optimizer, optimizer_impl = make_adamw(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=cfg.adam_betas,
                                           eps=cfg.adam_eps, device=device)  # fused where the build has it
    total_steps = cfg.epochs * len(train_loader)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total_steps), total_steps)
    from accelerate.state import AcceleratorState

    # Accelerate keeps its settings in a process-wide singleton; several runs in one process (robench
    # run, tests) may differ in precision, so start each run from a fresh state (the distributed
    # process group, if any, is kept).
    AcceleratorState._reset_state()
    accelerator = Accelerator(cpu=device.type == "cpu", mixed_precision="bf16" if precision == "bf16" else "no",
                              split_batches=True)
    # Setup passes (RAM's Fisher importance) read the train set in a fixed order from their own
    # loader, so that they leave the shuffling generator, and so every method's batch order, alone.
    setup_loader = DataLoader(train_ds, batch_size=cfg.batch_size, shuffle=False, collate_fn=collate)
    model, optimizer, train_loader, val_loader, setup_loader, scheduler = accelerator.prepare(
        model, optimizer, train_loader, val_loader, setup_loader, scheduler)

    wall_start = time.perf_counter()
    loop, best_state = Loop(), None
    if saved is None:
        for hook in hooks:
            hook.setup(model, setup_loader, accelerator)
        loop.setup_seconds = time.perf_counter() - wall_start
    else:  # everything setup would have built, and all that training changed since, from the checkpoint
        accelerator.unwrap_model(model).load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        for hook, state in zip(hooks, saved["hooks"], strict=True):
            hook.load_state_dict(state, model)
        loop, best_state = Loop(**saved["loop"]), saved["best_state"]
        checkpoint.set_rng_state(saved["rng"])
        generator.set_state(saved["epoch_generator"])
        loop.resumed.append({"epoch": loop.epoch, "step": loop.step, "global_step": loop.global_step})
        where = f"epoch {loop.epoch} step {loop.step}" if loop.epoch <= cfg.epochs else "the end of training"
        console.print(f"resuming from {where} (checkpoint {ckpt_dir})", markup=False, soft_wrap=True)
    wall_before = loop.wall_seconds

    def save_checkpoint(epoch_generator: torch.Tensor) -> None:
        """Everything needed to go on from ``loop``'s position; ``epoch_generator``: the shuffling
        generator's state at the start of the epoch in progress, from which its order replays."""
        loop.wall_seconds = wall_before + time.perf_counter() - wall_start
        loop.losses = [float(x) for x in loop.losses]  # the one host read of the step losses since the last
        if accelerator.is_main_process:
            checkpoint.save(ckpt_dir, {
                "key": key, "loop": dataclasses.asdict(loop), "best_state": best_state,
                "model": accelerator.unwrap_model(model).state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "hooks": [h.state_dict() for h in hooks],
                "rng": checkpoint.rng_state(), "epoch_generator": epoch_generator})

    while loop.epoch <= cfg.epochs:
        epoch = loop.epoch
        model.train()
        epoch_generator = generator.get_state()  # before the loader draws this epoch's order
        t_epoch = t_mark = time.perf_counter()
        desc = f"{cfg.method} epoch {epoch}/{cfg.epochs}"
        with progress_bar(desc, total=len(train_ds), extra="loss {task.fields[info]}") as bar:
            bar.advance(min(loop.step * cfg.batch_size, len(train_ds)), info="")
            for batch in islice(train_loader, loop.step, None):  # resumed mid-epoch: skip the batches done
                loss = train_step(method, hooks, model, batch, accelerator, optimizer, scheduler, cfg.max_grad_norm)
                loop.losses.append(loss.to(torch.float64))  # on the device: read only at log points
                loop.step += 1
                loop.global_step += 1
                n = int(batch["labels"].shape[0]) * world  # this process's share of the global batch
                loop.train_examples += n
                if loop.step % LOG_EVERY == 0 or loop.step == len(train_loader):
                    recent = loop.losses[-LOG_EVERY:]
                    bar.advance(n, info=f"{float(sum(recent)) / len(recent):.4f}")
                else:
                    bar.advance(n)
                # the epoch's last step is followed by the epoch-end checkpoint
                if cfg.checkpoint_steps and loop.global_step % cfg.checkpoint_steps == 0 \
                        and loop.step < len(train_loader):
                    loop.train_seconds += time.perf_counter() - t_mark  # checkpoint writes are not training
                    save_checkpoint(epoch_generator)
                    t_mark = time.perf_counter()
        loop.train_seconds += time.perf_counter() - t_mark
        for hook in hooks:
            hook.on_epoch_end(model, epoch)
        val_acc = accuracy(model, val_loader, accelerator)
        train_loss = float(sum(loop.losses)) / max(len(loop.losses), 1)
        loop.history.append({"epoch": epoch, "train_loss": train_loss, "val_accuracy": val_acc,
                             "epoch_seconds": round(time.perf_counter() - t_epoch, 3),
                             "diagnostics": {k: v for h in hooks for k, v in h.epoch_diagnostics().items()}})
        console.print(f"epoch {epoch}: train loss {train_loss:.4f}  val acc {val_acc:.4f}")
        if val_acc > loop.best_acc:
            loop.best_acc, loop.best_epoch = val_acc, epoch
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in accelerator.unwrap_model(model).state_dict().items()}
        loop.epoch, loop.step, loop.losses = epoch + 1, 0, []
        save_checkpoint(generator.get_state())
        if _halted(cfg, loop.epoch):  # the budget: the checkpoint stays, no run folder is written
            accelerator.wait_for_everyone()  # no rank returns before the checkpoint is in place
            console.print(f"stopping after epoch {epoch} of {cfg.epochs} (budget); checkpoint {ckpt_dir}",
                          markup=False, soft_wrap=True)
            return out
    wall = wall_before + time.perf_counter() - wall_start

    final = accelerator.unwrap_model(model)
    final.load_state_dict(best_state)
    # Replicas must hold the same weights (DDP averages gradients; every hook decides from shared
    # numbers): check it rather than trust it, and never write a run whose ranks drifted apart.
    replica_hashes = distributed.gather_objects(state_hash(best_state))
    if len(set(replica_hashes)) > 1:
        raise RuntimeError(f"the {world} training processes ended with different weights (hashes "
                           f"{', '.join(h[:12] for h in replica_hashes)}); the run was not written")
    outcome = {
        "epochs": cfg.epochs, "best_epoch": loop.best_epoch, "best_val_accuracy": loop.best_acc,
        "history": loop.history, "resumed": loop.resumed,
        "train_seconds": round(loop.train_seconds, 3), "setup_seconds": round(loop.setup_seconds, 3),
        "examples_per_second": round(loop.train_examples / max(loop.train_seconds, 1e-9), 2),
        "seconds_per_example": loop.train_seconds / max(loop.train_examples, 1),
        "wall_seconds": round(wall, 3), "device": str(accelerator.device), "precision": precision,
        "precision_requested": cfg.precision, "native_bf16": native_bf16(device),
        "optimizer": f"AdamW ({optimizer_impl})", "torch_threads": torch.get_num_threads(),
        "world_size": world, "distributed_type": str(accelerator.distributed_type).split(".")[-1],
        "per_process_batch_size": cfg.batch_size // world, "replica_weights_sha256": replica_hashes[0],
    }
    record = run_record(cfg, spec, task, method, hooks, outcome, {
        "fingerprints": fingerprints, "sizes": {"train": len(train_ds), "validation": len(val_ds)}, **checks},
        num_parameters=sum(p.numel() for p in final.parameters()))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:  # under several processes, one writes the run
        _write_run_dir(out, final, tokenizer, record, cfg.force)
        shutil.rmtree(ckpt_dir, ignore_errors=True)  # only now: a kill before this resumes at the end
    accelerator.wait_for_everyone()  # no rank returns before the run directory is in place
    return out


def run_record(cfg: TrainConfig, spec: RunSpec, task, method, hooks: list[TrainingHook], outcome: dict[str, Any],
               data: dict[str, Any], num_parameters: int) -> RunRecord:
    """run.json: the resolved spec, what the run is (task, model, method, seed) and the training outcome.
    ``data``: the sets' fingerprints and sizes, and the training-data checks (overlaps, files, dropped
    rows); the weights' fingerprint and the files are added when the folder is written."""
    return RunRecord(
        schema=RUN_SCHEMA, run_id=identity(cfg).run_id, seed=cfg.seed,
        # a task file by its absolute path, so the run evaluates from any working directory (data_hash guards it)
        task=parse(RunTask, {"name": task.name, "source": task_source(cfg.task), "profile": cfg.profile or "default",
                             "limit": cfg.limit, "spec_hash": task.spec_hash, "data_hash": task.data_hash,
                             "labels": task.labels, **data}, "task"),
        model=RunModel(name=cfg.model, num_parameters=num_parameters),
        method=RunMethod(name=method.name, config=dataclasses.asdict(method.config), passes=method.passes,
                         preset=preset_record(cfg), selective=cfg.selective,
                         selective_config=hooks[-1].config_dict() if cfg.selective else None,
                         state={type(h).__name__: h.state() for h in hooks if h.state()}),
        config={k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("force", "stop_after_epoch")},
        spec=spec.to_json(), training=outcome, **provenance())


def state_hash(state: dict[str, torch.Tensor]) -> str:
    """sha256 over a state dict's names, dtypes, shapes and bytes (in name order)."""
    import hashlib

    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _halted(cfg: TrainConfig, next_epoch: int) -> bool:
    """Whether a run whose next epoch is ``next_epoch`` has reached its budget (``stop_after_epoch``)
    and still has epochs left (a run whose schedule is done is always written)."""
    return cfg.stop_after_epoch is not None and cfg.stop_after_epoch < next_epoch <= cfg.epochs


def halted_history(out: Path | str) -> list[dict[str, Any]] | None:
    """The per-epoch history (``epoch``, ``train_loss``, ``val_accuracy``, ...) of the run ``out``
    stopped by its budget, read from its checkpoint's loop state; None when there is no checkpoint.
    Read it right after ``train`` returned: that call checked the checkpoint belongs to its config."""
    import json

    state = checkpoint.checkpoint_dir(Path(out)) / checkpoint.STATE_FILE
    if not state.exists():
        return None
    meta = json.loads(state.read_text(encoding="utf-8"))
    if meta.get("schema") != checkpoint.SCHEMA:
        return None
    return list(meta["loop"]["history"])


def resume_point(ckpt_dir: Path, key: str, force: bool) -> dict[str, Any] | None:
    """This command's checkpoint, or None to start over (after one line saying why, if there is one)."""
    if not ckpt_dir.exists():
        return None
    try:
        saved = None if force else checkpoint.load(ckpt_dir)
    except Exception:  # e.g. a truncated file: never worth a crash, the run can start over
        saved = None
    if saved is not None and saved["key"] == key:
        return saved
    why = ("--force" if force else "it is unreadable" if saved is None else
           "it was made by a different command (settings, task or data differ, or the device, precision or "
           "number of processes they resolve to)")
    console.print(f"discarding checkpoint {ckpt_dir}: {why}; starting over", markup=False, soft_wrap=True)
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    return None


def _write_run_dir(out: Path, model, tokenizer, record: RunRecord, force: bool = False) -> None:
    """Write everything into a temp folder beside ``out`` and rename it into place at the end. ``out`` is
    checked again just before (a file put there during training is never replaced); run.json lists the
    files written (``files``), which is what a later ``--force`` may replace."""
    out.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.clean_leftovers(out, RUN_FILE)
    tmp = checkpoint.make_temporary(out)
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        written = {p.name for p in tmp.iterdir()} - {checkpoint.OWNER_FILE}
        record = dataclasses.replace(record, weights_fingerprint=file_sha256(tmp / "model.safetensors"),
                                     files=sorted(written | {RUN_FILE}))
        atomic_write_json(tmp / RUN_FILE, to_json(parse(RunRecord, to_json(record))))  # checked by its type
        guard_run_out(out, force)
        checkpoint.replace_dir(tmp, out)
    except BaseException as exc:
        checkpoint.discard(tmp)
        checkpoint.raise_with_place(exc, out.parent)
        raise
