"""The selective-training mask (robench/methods/selective.py: RAM's mask and ``+selective``): keep
fractions, scope, frozen entries, scaled gradients, refreshes each epoch, and its configuration."""

from __future__ import annotations

import math

import pytest
import torch
from method_helpers import Acc, hooks_of, selective

from robench.errors import ConfigError
from robench.methods import build_method
from robench.methods.selective import SelectiveTraining, expected_keep


def test_closed_form_keep_fractions():
    assert expected_keep(0.9, 10) == pytest.approx(0.1063, abs=2e-4)
    assert expected_keep(0.6, 1) == pytest.approx(0.4539, abs=2e-4)


@pytest.mark.parametrize("preset,alpha,beta", [("sentiment", 0.9, 10.0), ("entailment", 0.6, 1.0)])
def test_ram_mask_keep_ratio_and_scope(tiny_model, batch, preset, alpha, beta):
    method = build_method("ram", preset=preset)
    sel = method.selective
    assert method.extra_hooks() == [sel]
    assert (sel.config.alpha, sel.config.beta) == (alpha, beta)
    for hook in hooks_of(method):
        hook.setup(tiny_model, [batch, batch], Acc())
    assert all(p.grad is None for p in tiny_model.parameters())  # Fisher pass leaves no gradients
    st = sel.state()
    n = st["masked_entries"]
    # sampling error of the kept fraction: sqrt(sum p(1 - p)) / n <= 0.5 / sqrt(n)
    assert st["kept_fraction"] == pytest.approx(expected_keep(alpha, beta), abs=5 * 0.5 / math.sqrt(n))
    assert st["expected_keep_fraction"] == pytest.approx(expected_keep(alpha, beta), abs=1e-3)
    names = dict(tiny_model.named_parameters())
    assert sel.names and all(".encoder.layer." in s for s in sel.names)
    assert n == sum(p.numel() for name, p in names.items() if ".encoder.layer." in name)
    assert not any("embeddings" in s or "classifier" in s or "pooler" in s for s in sel.names)


def test_mask_freezes_zero_entries_and_spares_embeddings_and_head(tiny_model, batch):
    method = build_method("ram")
    hooks = hooks_of(method)
    for hook in hooks:
        hook.setup(tiny_model, [batch], Acc())
    before = {n: p.detach().clone() for n, p in tiny_model.named_parameters()}
    opt = torch.optim.SGD(tiny_model.parameters(), lr=0.5)
    method.training_step(tiny_model, batch, Acc())
    for hook in hooks:
        hook.after_backward(tiny_model)
    for hook in hooks:
        hook.before_optimizer_step(tiny_model)
    opt.step()
    moved_kept = 0
    for name, p in tiny_model.named_parameters():
        mask = method.selective.mask_of(name)
        if mask is None:
            if name in ("classifier.weight", "bert.embeddings.word_embeddings.weight"):
                assert not torch.equal(p.detach(), before[name]), name  # never masked: it moves
            continue
        frozen = mask == 0
        assert torch.equal(p.detach()[frozen], before[name][frozen]), name
        moved_kept += int((p.detach() != before[name])[~frozen].sum())
    assert moved_kept > 0
    assert method.selective.mask_of("classifier.weight") is None
    assert method.selective.mask_of("bert.embeddings.word_embeddings.weight") is None


def test_mask_scales_kept_gradients_by_inverse_keep_prob(tiny_model, batch):
    sel = selective({"alpha": "0.6", "beta": "1", "seed": "7"})
    sel.setup(tiny_model, [batch], Acc())
    tiny_model(**batch).loss.backward()
    name, p = next((n, q) for n, q in tiny_model.named_parameters() if ".encoder.layer." in n)
    raw = p.grad.clone()
    sel.before_optimizer_step(tiny_model)
    scale = sel.scales[sel.names.index(name)]
    torch.testing.assert_close(p.grad, raw * scale)
    kept = scale[scale != 0]
    assert (kept >= 1.0).all() and (kept <= 1.0 / torch.sigmoid(torch.tensor(-1.2)) + 1e-4).all()


def test_a_keep_probability_that_underflows_gives_no_nan(tiny_model, batch):
    """RoAST scales a kept entry by 1 / (p + 1e-12): with a large beta the keep probability of the lowest ranks
    underflows to 0 in float32, and m / p would be 0 / 0 (NaN, which AdamW spreads into the weights)."""
    from robench.methods.selective import KEEP_EPS

    assert KEEP_EPS == 1e-12
    sel = selective({"alpha": "0.9", "beta": "60", "seed": "3"})
    sel.setup(tiny_model, [batch], Acc())
    scales = torch.cat([s.reshape(-1) for s in sel.scales])
    assert torch.isfinite(scales).all() and (scales == 0).any()
    # the scale of a kept entry is 1 / (p + 1e-12), not 1 / p: visible where p is below 1e-6
    keep = torch.tensor([0.5, 1e-7, 0.0])
    mask = torch.tensor([1.0, 1.0, 0.0])
    torch.testing.assert_close(mask / (keep + KEEP_EPS), torch.tensor([2.0, 1.0 / (1e-7 + 1e-12), 0.0]))


def test_kept_gradients_are_unbiased_on_average(tiny_model, batch):
    """E[m / p] = 1: over the ~10^5 masked entries the mean gradient scale is 1, and every kept entry's
    scale is above 1 (p < 1). Without the 1/p factor the mean is the keep fraction (mutation check)."""
    sel = selective({"alpha": "0.6", "beta": "1", "seed": "3"})  # p in [0.23, 0.69]: a bounded variance
    sel.setup(tiny_model, [batch], Acc())
    scales = torch.cat([s.reshape(-1) for s in sel.scales]).double()
    assert scales.numel() > 50_000
    assert abs(float(scales.mean()) - 1.0) < 0.05
    kept = scales[scales != 0]
    assert (kept > 1.0).all()
    biased = selective({"alpha": "0.6", "beta": "1", "seed": "3", "unbiased": "false"})
    biased.setup(tiny_model, [batch], Acc())
    assert float(torch.cat([s.reshape(-1) for s in biased.scales]).double().mean()) < 0.7


def test_importance_is_the_sum_of_squared_gradients(tiny_model, batch):
    """Fisher importance: the squares of the gradients summed over backward passes (not |g|)."""
    sel = selective({"seed": "0"})
    sel.setup(tiny_model, [batch], Acc())
    for a in sel.acc:
        a.zero_()
    first = [torch.randn_like(p) for p in sel.params]
    second = [torch.randn_like(p) for p in sel.params]
    for grads in (first, second):
        for p, g in zip(sel.params, grads, strict=True):
            p.grad = g.clone()
        sel.after_backward(tiny_model)
    for acc, g1, g2 in zip(sel.acc, first, second, strict=True):
        torch.testing.assert_close(acc, g1 ** 2 + g2 ** 2)


def test_mask_refreshed_each_epoch_from_accumulated_gradients(tiny_model, batch):
    sel = selective({"seed": "0"})
    sel.setup(tiny_model, [batch], Acc())
    first = [s.clone() for s in sel.scales]
    opt = torch.optim.SGD(tiny_model.parameters(), lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        tiny_model(**batch).loss.backward()
        sel.after_backward(tiny_model)
        sel.before_optimizer_step(tiny_model)
        opt.step()
    assert sel.acc_steps == 2 and any(a.abs().sum() > 0 for a in sel.acc)
    sel.on_epoch_end(tiny_model, 1)
    assert sel.refreshes == 2 and sel.acc_steps == 0
    assert any(not torch.equal(a, b) for a, b in zip(first, sel.scales, strict=True))
    assert sel.state()["kept_fraction"] == pytest.approx(expected_keep(0.9, 10), abs=0.01)


def test_selective_config_errors():
    with pytest.raises(ConfigError, match="no hyper-parameter 'gamma'"):
        selective({"gamma": 1})
    with pytest.raises(ConfigError, match="no preset 'nope'"):
        selective(preset="nope")
    with pytest.raises(ConfigError, match="alpha in"):
        selective({"alpha": "1.5"})
    assert selective(preset="entailment").config.alpha == 0.6
    assert selective({"beta": "2"}, preset="entailment").config.beta == 2.0  # overrides after the preset


def test_ram_stays_closer_to_init_than_vanilla(batch):
    from robench.models import load_model

    def distance(name: str) -> float:
        model = load_model("tiny-bert", num_labels=2, seed=0)
        model.train()
        init = {n: p.detach().clone() for n, p in model.named_parameters() if ".encoder.layer." in n}
        method = build_method(name)
        hooks = hooks_of(method)
        torch.manual_seed(0)
        for hook in hooks:
            hook.setup(model, [batch], Acc())
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        for _ in range(6):
            method.training_step(model, batch, Acc())
            for hook in hooks:
                hook.after_backward(model)
            for hook in hooks:
                hook.before_optimizer_step(model)
            opt.step()
            opt.zero_grad(set_to_none=True)
        return math.sqrt(sum(float((p.detach() - init[n]).pow(2).sum())
                             for n, p in model.named_parameters() if n in init))

    ram, vanilla = distance("ram"), distance("vanilla")
    assert ram < 0.8 * vanilla, (ram, vanilla)


def test_selective_with_ram_is_an_error():
    from robench.train import TrainConfig, build_hooks

    with pytest.raises(ConfigError, match="already applies selective"):
        build_hooks(TrainConfig(model="tiny-bert", method="ram", selective=True))
    _, hooks = build_hooks(TrainConfig(model="tiny-bert", method="ram", method_overrides={"selective": "false"},
                                       selective=True, selective_overrides={"alpha": 0.6, "beta": 1.0}))
    assert isinstance(hooks[-1], SelectiveTraining) and hooks[-1].config.alpha == 0.6
