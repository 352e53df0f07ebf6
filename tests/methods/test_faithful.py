"""Tests that can fail: every loss term's weight moves the loss, perturbations land where the
released code puts them, FreeLB's passes share dropout masks, the selective mask keeps the
important entries, the released SMART step is alive, and an independent SMART implementation
(smart-pytorch's ``SMARTLoss``) agrees with robench on one fixed batch.
"""

from __future__ import annotations

import copy

import pytest
import torch
from method_helpers import (
    REGULARISED,
    Acc,
    embed,
    logits_from,
    logits_from_words,
    methods_with,
    perturb_teacher,
    selective,
    sharpen,
)

from robench.methods import build_method
from robench.methods.diagnostics import TermMeans

LOSS_RTOL = 1e-5  # the tolerance the reference tests compare losses with
GRAD_RTOL = 1e-3  # ... and gradients


def loss_and_grads(name: str, overrides: dict[str, str], batch, *, seed: int = 5):
    """One training step of a fresh tiny model (train mode: dropout on) from a fixed seed."""
    from robench.models import load_model

    model = sharpen(load_model("tiny-bert", num_labels=2, seed=0))
    model.train()
    method = build_method(name, overrides)
    if getattr(method, "config", None) is not None and getattr(method.config, "bregman", False):
        method.setup(model, [], Acc())
        perturb_teacher(method.teacher)
    torch.manual_seed(seed)
    loss = method.training_step(model, batch, Acc())
    grad = torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.grad is not None])
    return loss, grad


def moved(a, b) -> bool:
    (la, ga), (lb, gb) = a, b
    loss_moved = abs(la - lb) > LOSS_RTOL * abs(la) + 1e-8
    grad_moved = (ga - gb).abs().max() > GRAD_RTOL * ga.abs().max()
    return bool(loss_moved or grad_moved)


# (method, weight, fixed overrides): every loss term's weight, and FreeLB's two perturbation knobs
TERMS = [
    ("smart", "lambda_s", {}),
    ("smart", "mu", {}),
    ("alum", "alpha", {}),
    ("r3f", "r3f_lambda", {}),
    ("ram", "kl_weight", {"selective": "false"}),
    ("freelb", "init_mag", {"adv_steps": "0"}),
    ("freelb", "adv_lr", {}),
]


@pytest.mark.parametrize("name,weight,fixed", TERMS, ids=[f"{n}-{w}" for n, w, _ in TERMS])
def test_every_weight_moves_the_loss_or_gradient(batch, name, weight, fixed):
    default = build_method(name, fixed).config
    base = float(getattr(default, weight))
    at = {factor: loss_and_grads(name, {**fixed, weight: str(base * factor)}, batch) for factor in (0.0, 1.0, 10.0)}
    assert moved(at[1.0], at[0.0]), f"{name}: {weight} x0 changes nothing"
    assert moved(at[1.0], at[10.0]), f"{name}: {weight} x10 changes nothing"


def test_ram_adversarial_ce_term_moves_the_loss(batch):
    off = loss_and_grads("ram", {"selective": "false", "adv_ce": "false"}, batch)
    on = loss_and_grads("ram", {"selective": "false", "adv_ce": "true"}, batch)
    assert moved(off, on)


def test_same_seed_same_step(batch):
    """The mutation test's premise: two runs with the same weights agree exactly."""
    a, b = loss_and_grads("smart", {}, batch), loss_and_grads("smart", {}, batch)
    assert a[0] == b[0] and torch.equal(a[1], b[1])


# ------------------------------------------------------------------------------------ SMART / ALUM

@pytest.mark.parametrize("name", methods_with("step_norm"))
def test_released_step_is_alive_and_paper_step_is_not(tiny_model, batch, name):
    sharpen(tiny_model).eval()
    regs = {}
    for norm in ("released", "paper"):
        off = {"bregman": "false"} if name in methods_with("bregman") else {}  # SMART's teacher term off
        method = build_method(name, {"step_norm": norm, **off})
        torch.manual_seed(0)
        method.loss(tiny_model, batch)
        regs[norm] = method.last_reg
    assert regs["released"] > 1e-6
    assert regs["released"] > 1e4 * regs["paper"], regs


def test_smart_matches_smart_pytorch_smartloss(tiny_model, batch):
    """smart-pytorch 0.0.4 ``SMARTLoss`` (an independent implementation of mt-dnn's update) on one batch."""
    smart_pytorch = pytest.importorskip("smart_pytorch", reason="pip install smart-pytorch==0.0.4 (the dev extra)")
    model = sharpen(tiny_model).eval()
    ref = copy.deepcopy(model)
    method = build_method("smart", {"bregman": "false"})
    torch.manual_seed(7)
    loss = method.loss(model, batch)

    def kl_q_p(q_logits, p_logits):  # robench's ascent loss: KL(q || p), summed over the batch
        lq, lp = q_logits.log_softmax(-1), p_logits.log_softmax(-1)
        return (lq.exp() * (lq - lp)).sum()

    torch.manual_seed(7)
    emb = embed(ref, batch)
    clean = logits_from(ref, emb, batch)
    smart = smart_pytorch.SMARTLoss(eval_fn=lambda e: logits_from(ref, e, batch), loss_fn=kl_q_p,
                                    loss_last_fn=lambda a, b: smart_pytorch.sym_kl_loss(a, b, reduction="batchmean"),
                                    num_steps=1, step_size=1e-3, epsilon=1e-6, noise_var=1e-5)
    reg = smart(emb, clean)
    assert method.last_reg == pytest.approx(reg.item(), rel=1e-4)
    expected = torch.nn.functional.cross_entropy(clean, batch["labels"]) + reg
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    expected.backward()
    for (n, p), (_, q) in zip(model.named_parameters(), ref.named_parameters(), strict=True):
        if p.grad is not None:
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-3, atol=1e-6, msg=n)


# ------------------------------------------------------------------------------------------ FreeLB

def test_freelb_delta_enters_at_the_word_embeddings(tiny_model, batch):
    model = sharpen(tiny_model).eval()
    seen = {}

    def pre_hook(_module, args, kwargs):
        seen["input_ids"], seen["inputs_embeds"] = kwargs.get("input_ids"), kwargs.get("inputs_embeds")

    handle = model.bert.embeddings.register_forward_pre_hook(pre_hook, with_kwargs=True)
    method = build_method("freelb", {"adv_steps": "0", "init_mag": "20", "diag_every": "0"})
    torch.manual_seed(0)
    loss = method.training_step(model, batch, Acc())
    handle.remove()
    assert seen["input_ids"] is None and seen["inputs_embeds"] is not None

    torch.manual_seed(0)
    with torch.no_grad():
        words = model.bert.embeddings.word_embeddings(batch["input_ids"])
        mask = batch["attention_mask"].float()[..., None]
        delta = torch.empty_like(words).uniform_(-1, 1) * mask
        delta = delta * (20.0 / (mask.sum((1, 2)) * words.shape[-1]).sqrt())[:, None, None]
        at_words = torch.nn.functional.cross_entropy(logits_from_words(model, words + delta, batch), batch["labels"])
        at_output = torch.nn.functional.cross_entropy(logits_from(model, embed(model, batch) + delta, batch),
                                                      batch["labels"])
    assert loss == pytest.approx(at_words.item(), rel=LOSS_RTOL)
    assert abs(at_output.item() - at_words.item()) > 100 * LOSS_RTOL * at_words.item()  # the place matters


def test_freelb_passes_share_dropout_masks(tiny_model, batch):
    """delta fixed at 0, dropout on: every pass of a step must give the same logits."""
    model = sharpen(tiny_model)
    model.train()
    outputs = []
    handle = model.classifier.register_forward_hook(lambda _m, _i, out: outputs.append(out.detach().clone()))
    method = build_method("freelb", {"init_mag": "0", "adv_lr": "0", "adv_steps": "3", "diag_every": "0"})
    torch.manual_seed(0)
    method.training_step(model, batch, Acc())
    handle.remove()
    assert len(outputs) == 4  # 1 + adv_steps passes (fairseq's count)
    for out in outputs[1:]:
        torch.testing.assert_close(out, outputs[0], rtol=0, atol=0)
    with torch.no_grad():  # ...while two plain forwards with dropout on differ
        assert not torch.equal(model(**batch).logits, model(**batch).logits)


def test_freelb_default_pass_count(tiny_model, batch):
    calls = []
    handle = tiny_model.classifier.register_forward_hook(lambda *_: calls.append(1))
    build_method("freelb", {"diag_every": "0"}).training_step(tiny_model, batch, Acc())
    handle.remove()
    assert len(calls) == 3  # --adv-steps 2 in the SST-2/MNLI launch scripts = 3 passes


# ------------------------------------------------------------------------------ selective training

def importance_and_mask(model, batch, monkeypatch=None):
    sel = selective({"seed": "0"})
    sel.setup(model, [batch, batch], Acc())
    model.zero_grad(set_to_none=True)
    model(**batch).loss.backward()  # the same CE gradients the Fisher pass saw (dropout aside: eval mode)
    importance = torch.cat([p.grad.reshape(-1) ** 2 for p in sel.params])
    kept = torch.cat([(s != 0).reshape(-1) for s in sel.scales])
    model.zero_grad(set_to_none=True)
    return importance, kept


def test_mask_keeps_the_important_entries(tiny_model, batch):
    tiny_model.eval()
    importance, kept = importance_and_mask(tiny_model, batch)
    assert importance[kept].mean() > 3 * importance[~kept].mean()


def test_mask_test_fails_with_inverted_ranks(tiny_model, batch, monkeypatch):
    """The previous test's check must catch a mask built from inverted ranks."""
    import robench.methods.selective as sel_mod

    original = sel_mod.rank01
    monkeypatch.setattr(sel_mod, "rank01", lambda values: 1.0 - original(values))
    tiny_model.eval()
    importance, kept = importance_and_mask(tiny_model, batch)
    assert not importance[kept].mean() > 3 * importance[~kept].mean()


# ------------------------------------------------------------------------------------- diagnostics

def test_diagnostic_reference_pass_leaves_training_unchanged(batch):
    a = loss_and_grads("alum", {"diag_every": "0"}, batch)
    after_a = torch.get_rng_state()
    b = loss_and_grads("alum", {"diag_every": "1"}, batch)
    after_b = torch.get_rng_state()
    assert a[0] == b[0] and torch.equal(a[1], b[1])
    # and the next step's dropout too: the reference pass's draws are given back (mutation: no restore)
    assert torch.equal(after_a, after_b)


@pytest.mark.parametrize("name", REGULARISED)
def test_epoch_diagnostics_record_terms_and_ratio(tiny_model, batch, name):
    tiny_model.train()
    method = build_method(name, {"diag_every": "2"})
    for hook in [method, *method.extra_hooks()]:
        hook.setup(tiny_model, [batch], Acc())
    for _ in range(3):
        method.training_step(tiny_model, batch, Acc())
        tiny_model.zero_grad(set_to_none=True)
    diag = method.epoch_diagnostics()
    terms = {"smart": {"ce", "sym_kl", "bregman", "ascent_share"}, "alum": {"ce", "sym_kl", "ascent_share"},
             "r3f": {"ce", "sym_kl"}, "ram": {"ce", "sym_kl", "ascent_share"},
             "freelb": {"adv_ce", "ce_first", "ce_last", "ascent_share"}}
    assert name in terms, f"add the diagnostic terms that {name} records to this table"
    expected = terms[name]
    assert expected <= set(diag)
    if name == "r3f":  # no gradient step: no share to record
        assert "ascent_share" not in diag
    assert diag["sampled_steps"] == 2 and diag["alive_ratio"] > 0  # steps 1 and 3
    assert method.epoch_diagnostics() == {}  # reset per epoch


def test_gradient_share_per_token():
    from robench.methods.embeddings import gradient_share

    step = torch.tensor([[[3.0, 0.0], [1.0, 0.0], [9.0, 9.0]]])
    total = torch.tensor([[[3.0, 4.0], [2.0, 0.0], [1.0, 0.0]]])
    mask = torch.tensor([[[1.0], [1.0], [0.0]]])  # the third token is padding
    assert float(gradient_share(step, total, mask)) == pytest.approx((3 / 5 + 1 / 2) / 2)
    assert float(gradient_share(torch.zeros_like(step), total, mask)) == 0.0


def ascent_share(name: str, overrides: dict[str, str], batch) -> float:
    """The ascent share one training step records."""
    from robench.models import load_model

    model = load_model("tiny-bert", num_labels=2, seed=0)
    model.train()
    method = build_method(name, {"diag_every": "0", **overrides})
    torch.manual_seed(5)
    method.training_step(model, batch, Acc())
    return method.epoch_diagnostics()["ascent_share"]


# (method, the gradient step's size, its default): the share tells an ascent from noise
STEP_SIZES = [("smart", "eta", 1e-3), ("alum", "eta", 1e-3), ("ram", "adv_eps", 0.1), ("freelb", "adv_lr", 0.1)]


@pytest.mark.parametrize(("name", "knob", "default"), STEP_SIZES, ids=[s[0] for s in STEP_SIZES])
def test_ascent_share_follows_the_gradient_step(batch, name, knob, default):
    none = ascent_share(name, {knob: "0"}, batch)
    base = ascent_share(name, {knob: str(default)}, batch)
    more = ascent_share(name, {knob: str(default * 10)}, batch)
    assert none == 0.0  # no step: the perturbation is all noise
    assert 0.0 < base < more <= 1.0
    if name in ("smart", "alum"):  # the released mt-dnn step: the noise (sigma 1e-5 per coordinate) dominates
        assert base < 0.05
    if name == "ram":  # RoAST's step (0.1 per token in L-inf) dwarfs its 1e-5 noise
        assert base > 0.99


def test_term_means_ratio():
    terms = TermMeans(every=3)
    assert [terms.sample_step() for _ in range(7)] == [True, False, False, True, False, False, True]
    terms.add(sampled_sym_kl=2.0, dropout_sym_kl=1.0)
    terms.add(sampled_sym_kl=4.0, dropout_sym_kl=1.0)
    out = terms.flush()
    assert out["alive_ratio"] == 3.0 and out["sampled_steps"] == 2
