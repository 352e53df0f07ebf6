"""Length-grouped batching (``--group-by-length``, robench/sampling.py): every example once per epoch, an
order that is a function of the seed and the epoch alone, less padding than random batching, a setting of
the run's key (off by default: no earlier run's key changes), recorded in run.json, and resumable: a run
stopped or killed and resumed ends with the same weights as a run never interrupted."""

from __future__ import annotations

import dataclasses
import itertools
from contextlib import contextmanager
from itertools import islice
from pathlib import Path

import pytest
import torch
from cli_helpers import run_cli
from train_helpers import grow_validation

import robench.train as tr
from robench import checkpoint
from robench.errors import ConfigError
from robench.methods.vanilla import Vanilla
from robench.records import RunRecord, load_run, parse, to_json
from robench.runspec import RunSpec, TrainConfig
from robench.sampling import (
    LengthGroupedSampler,
    length_grouped_order,
    megabatch_factor,
    padded_tokens,
    padding_share,
    token_lengths,
)


def varied_lengths(n: int = 1000, seed: int = 0) -> list[int]:
    """Token lengths from 5 to 128, uniformly (a set whose random batches pad a lot)."""
    return torch.randint(5, 129, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def epochs(sampler: LengthGroupedSampler, k: int) -> list[list[int]]:
    return [list(sampler) for _ in range(k)]


# ------------------------------------------------------------------ the sampler, from lengths alone


@pytest.mark.parametrize("n", [1000, 1003, 37, 1])
def test_every_example_appears_exactly_once_per_epoch(n):
    sampler = LengthGroupedSampler(varied_lengths(n), 16, torch.Generator().manual_seed(0))
    assert len(sampler) == n
    for order in epochs(sampler, 3):
        assert sorted(order) == list(range(n))


def test_megabatch_factor_is_hugging_faces():
    assert megabatch_factor(1200, 16) == 18  # the default task: megabatches of 288
    assert megabatch_factor(100_000, 16) == 50 and megabatch_factor(10, 16) == 1 and megabatch_factor(0, 8) == 1


def test_megabatches_are_sorted_longest_first_and_the_longest_batch_comes_first():
    lengths = varied_lengths(1000)
    order = length_grouped_order(lengths, 16, torch.Generator().manual_seed(3))
    size = megabatch_factor(1000, 16) * 16
    assert lengths[order[0]] == max(lengths)
    for start in range(0, len(order), size):
        rest = [lengths[i] for i in order[start + 1:start + size]]  # a head may be the swapped one
        assert rest == sorted(rest, reverse=True)


def test_the_order_is_a_function_of_the_seed_and_the_epoch():
    lengths = varied_lengths(1000)
    a = epochs(LengthGroupedSampler(lengths, 16, torch.Generator().manual_seed(0)), 2)
    b = epochs(LengthGroupedSampler(lengths, 16, torch.Generator().manual_seed(0)), 2)
    c = epochs(LengthGroupedSampler(lengths, 16, torch.Generator().manual_seed(1)), 2)
    assert a == b  # the same seed: the same epochs
    assert a[0] != a[1] and a[0] != c[0] and a[1] != c[1]  # another epoch, another seed: another order
    batches = [{frozenset(e[i:i + 16]) for i in range(0, 1000, 16)} for e in (a[0], a[1], c[0])]
    assert len(batches[0] & batches[1]) < 10 and len(batches[0] & batches[2]) < 10  # other batches, not reordered ones


def test_the_sampler_draws_only_from_its_generator():
    """The epoch's order replays from the generator's state at its start, and the global RNG is untouched."""
    generator = torch.Generator().manual_seed(0)
    sampler = LengthGroupedSampler(varied_lengths(500), 8, generator)
    list(sampler)
    state, rng = generator.get_state(), torch.get_rng_state()
    epoch2 = list(sampler)
    assert torch.equal(torch.get_rng_state(), rng)
    generator.set_state(state)
    assert list(sampler) == epoch2


def test_grouped_epochs_pad_far_less_than_random_ones():
    lengths = varied_lengths(1000)
    generator = torch.Generator().manual_seed(0)
    for _ in range(4):
        shuffled = torch.randperm(len(lengths), generator=generator).tolist()
        grouped = length_grouped_order(lengths, 16, generator)
        (pad_r, real_r), (pad_g, real_g) = padded_tokens(lengths, shuffled, 16), padded_tokens(lengths, grouped, 16)
        assert real_r == real_g == sum(lengths)
        assert pad_g < pad_r
        assert padding_share(lengths, grouped, 16) < padding_share(lengths, shuffled, 16) / 4
    assert padded_tokens([3, 1, 2, 5], [0, 1, 2, 3], 2) == (2 * 3 + 2 * 5, 11)


# ------------------------------------------------------------------ the trainer's loader


@pytest.fixture(scope="module")
def train_ds():
    from robench.models import load_tokenizer
    from robench.tasks import TaskData, load_task

    return tr.tokenize(TaskData(load_task("sentiment", None, 400)).get("train"), load_tokenizer("tiny-bert"), 128)


def loader_for(train_ds, group: bool, seed: int = 0):
    from transformers import DataCollatorWithPadding

    from robench.models import load_tokenizer

    generator = torch.Generator().manual_seed(seed)
    cfg = TrainConfig(batch_size=16, seed=seed, group_by_length=group)
    return tr.make_train_loader(train_ds, cfg, DataCollatorWithPadding(load_tokenizer("tiny-bert")), generator), \
        generator


def test_off_the_loader_is_the_one_every_earlier_run_trained_with(train_ds):
    """group_by_length off: the same DataLoader as before the option existed, so the same batches."""
    from torch.utils.data import DataLoader, RandomSampler

    loader, generator = loader_for(train_ds, False)
    assert isinstance(loader.sampler, RandomSampler) and loader.generator is generator
    before = DataLoader(train_ds, batch_size=16, shuffle=True, collate_fn=loader.collate_fn,
                        generator=torch.Generator().manual_seed(0))
    for _ in range(2):  # two epochs
        for a, b in zip(loader, before, strict=True):
            assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["labels"], b["labels"])


def test_grouped_loader_replays_an_epoch_from_the_generator_state_and_pads_less(train_ds):
    grouped, generator = loader_for(train_ds, True)
    assert isinstance(grouped.sampler, LengthGroupedSampler) and grouped.sampler.generator is generator
    list(grouped)  # epoch 1
    state = generator.get_state()
    epoch2 = list(grouped)
    generator.set_state(state)  # what a resumed run does before skipping the batches done
    resumed = list(islice(grouped, 3, None))
    assert len(resumed) == len(epoch2) - 3
    for a, b in zip(resumed, epoch2[3:], strict=True):
        assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["labels"], b["labels"])
    random, _ = loader_for(train_ds, False)
    lengths = token_lengths(train_ds)
    for loader in (random, grouped):
        batches = list(loader)
        assert sum(int(b["attention_mask"].sum()) for b in batches) == sum(lengths)
    padded = {name: sum(int(b["input_ids"].numel()) for b in loader) for name, loader in (("random", random),
                                                                                          ("grouped", grouped))}
    assert padded["grouped"] < padded["random"]


# ------------------------------------------------------------------ the run's key and run.json


def test_the_option_is_part_of_the_run_key_and_off_keeps_every_earlier_key():
    off = TrainConfig(model="tiny-bert", limit=96)
    on = dataclasses.replace(off, group_by_length=True)
    a, b = RunSpec.of(off, {}, None, "h"), RunSpec.of(on, {}, None, "h")
    assert a.key() != b.key()
    assert "group_by_length" not in a.trainer  # off: the key every run trained before the option has
    assert b.trainer["group_by_length"] is True
    assert a.differences(b) == ["group_by_length False, now True"]
    assert b.differences(a) == ["group_by_length True, now False"]
    assert RunSpec.of(dataclasses.replace(off, checkpoint_steps=3), {}, None, "h").key() == a.key()


@contextmanager
def last_epoch_best():
    """Validation accuracy grows with the epoch: a run keeps its last epoch's weights (train_helpers)."""
    with pytest.MonkeyPatch.context() as m:
        grow_validation(m)
        yield


def grouped_cfg(folder: Path, name: str, **kw) -> TrainConfig:
    """96 examples at batch 8: 12 steps per epoch, megabatches of 3 batches (4 per epoch); 2 epochs; a
    checkpoint every 4 steps."""
    cfg = dict(model="tiny-bert", limit=96, epochs=2, batch_size=8, checkpoint_steps=4, group_by_length=True,
               device="cpu", out=str(folder / name))
    cfg.update(kw)
    return TrainConfig(**cfg)


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """An uninterrupted grouped run, and the loader the trainer built for it."""
    built = []
    make = tr.make_train_loader

    def recording(*args, **kwargs):
        built.append(make(*args, **kwargs))
        return built[-1]

    with last_epoch_best(), pytest.MonkeyPatch.context() as m:
        m.setattr(tr, "make_train_loader", recording)
        run = tr.train(grouped_cfg(tmp_path_factory.mktemp("grouped"), "whole"))
    return run, built


def test_the_trainer_batches_by_length_and_run_json_records_it(whole):
    run, built = whole
    assert len(built) == 1 and isinstance(built[0].sampler, LengthGroupedSampler)
    assert built[0].sampler.factor == 3
    record = load_run(run)
    assert record.config["group_by_length"] is True
    assert record.spec["fields"]["trainer"]["group_by_length"] is True
    assert record.spec["sources"]["trainer"]["group_by_length"] == "cli"
    assert RunSpec.from_record(record).key() == record.spec["key"]
    assert record.training["best_epoch"] == 2
    data = to_json(record)
    older = {k: v for k, v in data.items() if k != "spec"}  # a run.json from before the spec was recorded
    older["config"] = {k: v for k, v in data["config"].items() if k != "group_by_length"}
    default = RunSpec.from_record(parse(RunRecord, older))
    assert "group_by_length" not in default.trainer
    assert default.differences(RunSpec.from_record(record)) == ["group_by_length False, now True"]


def test_stopped_after_epoch_1_then_resumed_equals_an_uninterrupted_run(tmp_path, capsys, whole):
    cfg = grouped_cfg(tmp_path, "stopped")
    with last_epoch_best():
        tr.train(dataclasses.replace(cfg, stop_after_epoch=1))
        assert not Path(cfg.out).exists() and checkpoint.checkpoint_dir(Path(cfg.out)).is_dir()
        resumed = tr.train(cfg)
    a, b = load_run(resumed), load_run(whole[0])
    assert a.training["resumed"] == [{"epoch": 2, "step": 0, "global_step": 12}] and b.training["resumed"] == []
    assert a.weights_fingerprint == b.weights_fingerprint
    assert a.training["history"][-1]["train_loss"] == b.training["history"][-1]["train_loss"]
    assert RunSpec.from_record(a).key() == RunSpec.from_record(b).key()


def killed(cfg: TrainConfig, steps: int) -> None:
    """Run ``cfg`` and interrupt it (as Ctrl-C does) at the start of its step ``steps + 1``."""
    original, calls = Vanilla.training_step, itertools.count(1)

    def step(self, *args, **kwargs):
        if next(calls) > steps:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(Vanilla, "training_step", step)
        with pytest.raises(KeyboardInterrupt):
            tr.train(cfg)


def test_killed_mid_epoch_and_resumed_equals_an_uninterrupted_run(tmp_path, capsys, whole):
    """Killed in epoch 1 (checkpoint at step 4) and in epoch 2 (checkpoint at its step 4): each resume
    replays its epoch's grouped order from the generator and skips the batches done."""
    cfg = grouped_cfg(tmp_path, "killed")
    with last_epoch_best():
        killed(cfg, steps=6)
        killed(cfg, steps=14)  # resumes at global step 4, dies after step 18
        resumed = tr.train(cfg)
    err = capsys.readouterr().err
    assert "resuming from epoch 1 step 4" in err and "resuming from epoch 2 step 4" in err
    a, b = load_run(resumed), load_run(whole[0])
    assert a.training["resumed"] == [{"epoch": 1, "step": 4, "global_step": 4},
                                     {"epoch": 2, "step": 4, "global_step": 16}]
    assert a.weights_fingerprint == b.weights_fingerprint
    assert [h["train_loss"] for h in a.training["history"]] == [h["train_loss"] for h in b.training["history"]]


# ------------------------------------------------------------------ the command line


def test_train_and_run_pass_the_option_on(monkeypatch, capsys):
    seen = {}

    def fake_train(cfg):
        seen["cfg"] = cfg
        raise ConfigError("stopped by the test; nothing trained")

    monkeypatch.setattr(tr, "train", fake_train)
    for flag, expected in ((("--group-by-length",), True), ((), False)):
        code, _, err = run_cli(monkeypatch, capsys, "train", "--model", "tiny-bert", "--device", "cpu", *flag)
        assert code == 2 and "stopped by the test" in err and seen["cfg"].group_by_length is expected

    import robench.matrix as matrix

    def fake_bench(*args, **kwargs):
        seen["train_options"] = kwargs["train_options"]
        return matrix.BenchResult()

    monkeypatch.setattr(matrix, "run_benchmark", fake_bench)
    for flag, expected in ((("--group-by-length",), {"group_by_length": True}), ((), None)):
        code, _, err = run_cli(monkeypatch, capsys, "run", "--methods", "vanilla", "--seeds", "0", *flag)
        assert code == 0, err
        assert seen["train_options"] == expected


def test_run_benchmark_trains_every_job_with_it(monkeypatch, tmp_path):
    import robench.estimate as estimate
    from robench.matrix import run_benchmark

    seen = []

    class Plan:
        def text(self) -> str:
            return ""

    def fake_plan(configs, *args, **kwargs):
        seen.extend(configs)
        return Plan()

    monkeypatch.setattr(estimate, "estimate_plan", fake_plan)
    run_benchmark("sentiment", "vanilla,ram", "0,1", "id", None, model="tiny-bert", runs_dir=tmp_path / "runs",
                  results_dir=None, limit=16, train_options={"group_by_length": True}, dry_run=True)
    assert len(seen) == 4 and all(cfg.group_by_length for cfg in seen)
    assert not (tmp_path / "runs").exists()  # a dry run trains nothing
