"""Fine-tuning methods: each loss against an independent step-by-step computation (method_helpers.py),
the methods' presets, and an end-to-end run of every registered method on the tiny BERT.

Models are in eval mode in the reference tests, so dropout draws no random numbers and the noise draws
line up under the same seed."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from method_helpers import (
    Acc,
    assert_same_grads,
    ce,
    embed,
    kl_rows,
    logits_from,
    logits_from_words,
    perturb_teacher,
    real_tokens,
    sharpen,
    symkl,
    symkl_detached,
)

from robench.errors import ConfigError
from robench.methods import METHODS, build_method
from robench.methods.embeddings import linf_normalize
from robench.methods.freelb import ascend


@pytest.fixture
def pair(tiny_model):
    sharpen(tiny_model).eval()
    return tiny_model, copy.deepcopy(tiny_model)


# ------------------------------------------------------------------------------------------- FreeLB

def test_freelb_loss_and_accumulated_gradient(pair, batch):
    """fairseq FreeLB: a pass on word + delta0, then adv_steps ascent passes; each backward CE / (1 + adv_steps)."""
    model, ref = pair
    method = build_method("freelb", {"adv_steps": "2", "adv_lr": "0.5", "max_norm": "0.6"})
    torch.manual_seed(1)
    loss = method.training_step(model, batch, Acc())

    torch.manual_seed(1)
    n_passes, mask = 3, batch["attention_mask"].float()[..., None]
    words = ref.bert.embeddings.word_embeddings(batch["input_ids"])
    delta = torch.empty_like(words).uniform_(-1, 1) * mask
    n = mask.sum((1, 2)) * words.shape[-1]
    delta = (delta * (1.0 / n.sqrt())[:, None, None]).detach()
    total = 0.0
    for step in range(n_passes):
        delta.requires_grad_()
        words = ref.bert.embeddings.word_embeddings(batch["input_ids"])
        step_loss = ce(logits_from_words(ref, words + delta, batch), batch["labels"]) / n_passes
        step_loss.backward()
        total += step_loss.item()
        if step == n_passes - 1:
            break
        g = delta.grad
        gnorm = torch.stack([gi.norm() for gi in g]).clamp_min(1e-10)
        delta = delta.detach() + 0.5 * g / gnorm[:, None, None]
        dnorm = torch.stack([di.norm() for di in delta])
        factor = torch.where(dnorm > 0.6, 0.6 / dnorm, torch.ones_like(dnorm))
        delta = (delta * factor[:, None, None]).detach()
    assert loss == pytest.approx(total, rel=1e-5)
    assert_same_grads(model, ref)
    assert method.state()["last_max_delta_l2"] <= 0.6 + 1e-5


def test_freelb_delta_stays_in_l2_ball():
    torch.manual_seed(0)
    delta = torch.randn(3, 5, 8) * 0.01
    for _ in range(20):
        delta = ascend(delta, torch.randn(3, 5, 8), adv_lr=0.3, max_norm=0.6)
        norms = delta.reshape(3, -1).norm(dim=1)
        assert (norms <= 0.6 + 1e-5).all()
    assert norms.max() == pytest.approx(0.6, rel=1e-4)
    free = ascend(torch.zeros(2, 3, 4), torch.randn(2, 3, 4), adv_lr=5.0, max_norm=0.0)
    assert free.reshape(2, -1).norm(dim=1).tolist() == pytest.approx([5.0, 5.0], rel=1e-5)  # 0 = no projection


# ----------------------------------------------------------------------------------- SMART and ALUM

@pytest.mark.parametrize("name,overrides", [("smart", {}), ("smart", {"bregman": "false", "lambda_s": "3"}),
                                            ("smart", {"step_norm": "paper"}), ("alum", {"alpha": "2"}),
                                            ("alum", {"step_norm": "paper"})])
def test_virtual_adversarial_loss(pair, batch, name, overrides):
    """A transcription of mt-dnn ``mt_dnn/perturbation.py`` ``SmartPerturbation.forward`` (commit 676b48b,
    lines 103-151: noise, ascent on the KL, ``noise + step_size * grad`` normalised by ``_norm_grad``'s
    L-inf branch, lines 52-74), on the embedding-layer output, plus robench's Bregman term."""
    model, ref = pair
    method = build_method(name, overrides)
    cfg = method.config
    teacher = None
    if name == "smart" and cfg.bregman:
        method.setup(model, [], Acc())
        perturb_teacher(method.teacher)
        teacher = copy.deepcopy(ref)
        perturb_teacher(teacher)
    torch.manual_seed(2)
    loss = method.loss(model, batch)

    torch.manual_seed(2)
    emb = embed(ref, batch)
    clean = logits_from(ref, emb, batch)
    noise = (torch.randn_like(emb) * 1e-5).requires_grad_()
    adv = logits_from(ref, emb + noise, batch)
    (g,) = torch.autograd.grad(kl_rows(adv, clean.detach()).sum(), noise)
    if cfg.step_norm == "released":
        d = noise.detach() + 1e-3 * g
        delta = d / (d.abs().amax(-1, keepdim=True) + 1e-6)
    else:
        delta = noise.detach() + 1e-3 * g / (g.abs().amax(-1, keepdim=True) + 1e-6)
    adv = logits_from(ref, emb + delta, batch)
    weight = cfg.alpha if name == "alum" else cfg.lambda_s
    reg = symkl_detached(clean, adv)
    expected = ce(clean, batch["labels"]) + weight * reg
    assert method.last_reg == pytest.approx(reg.item(), rel=1e-3)
    if teacher is not None:
        with torch.no_grad():
            t_logits = logits_from(teacher, embed(teacher, batch), batch)
        breg = symkl(clean, t_logits)
        assert breg.item() > 1e-3  # the teacher differs from the student: mu matters
        assert method.last_bregman == pytest.approx(breg.item(), rel=1e-4)
        expected = expected + 1.0 * breg
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5, abs=1e-8)
    torch.testing.assert_close(method.last_delta, delta, rtol=1e-4, atol=1e-9)
    linf = method.last_delta.abs().amax(-1)[real_tokens(batch)]
    if cfg.step_norm == "released":  # per-token L-inf ~1
        assert (linf > 0.9).all() and (linf <= 1.0).all()
    else:  # ~eta at most
        assert (linf <= 1e-3 + 1e-4).all()
    loss.backward()
    expected.backward()
    assert_same_grads(model, ref, rtol=1e-3, atol=1e-6)


def test_smart_teacher_is_an_ema(tiny_model, batch):
    method = build_method("smart")
    method.setup(tiny_model, [batch], Acc())
    before = {n: p.detach().clone() for n, p in method.teacher.named_parameters()}
    with torch.no_grad():
        for p in tiny_model.parameters():
            p.add_(1.0)
    method.after_optimizer_step(tiny_model)
    student = dict(tiny_model.named_parameters())
    for n, p in method.teacher.named_parameters():
        torch.testing.assert_close(p, 0.99 * before[n] + 0.01 * student[n].detach())
    assert build_method("smart", {"bregman": "false"}).config.bregman is False


def test_linf_normalize_unit_per_token():
    g = torch.randn(2, 4, 16)
    g[1, 3] = 0.0  # a padding token
    out = linf_normalize(g)
    torch.testing.assert_close(out.abs().amax(-1)[:1], torch.ones(1, 4))
    assert torch.equal(out[1, 3], torch.zeros(16))


def test_ram_step_shrinks_with_a_gradient_below_roasts_epsilon(monkeypatch, tiny_model, batch):
    """RoAST normalises the ascent gradient per token by max|g| + 1e-8: a token whose gradient is about 1e-8
    gets half the step, one far above gets the full adv_eps (plain g / max|g| would give every token adv_eps)."""
    import robench.methods.ram as ram

    assert ram.ROAST_GRAD_EPS == 1e-8
    grads = {}

    def fake_grad(loss, inputs):
        g = torch.zeros_like(inputs)
        g[0, 0, 0] = 1e-3  # a token with a large gradient
        g[0, 1, 0] = 1e-8  # a token at RoAST's epsilon
        g[0, 1, 1] = -0.5e-8
        grads["g"] = g
        return (g,)

    monkeypatch.setattr(torch.autograd, "grad", fake_grad)
    emb = tiny_model.get_input_embeddings()(batch["input_ids"])
    _, step, _ = ram.ram_adversarial_embeddings(tiny_model.eval(), batch, emb, 1e-5, 0.1)
    assert step[0, 0, 0].item() == pytest.approx(0.1 * 1e-3 / (1e-3 + 1e-8))
    assert step[0, 1, 0].item() == pytest.approx(0.05)  # 0.1 * 1e-8 / (1e-8 + 1e-8)
    assert step[0, 1, 1].item() == pytest.approx(-0.025)


# ---------------------------------------------------------------------------------------------- R3F

def test_r3f_loss_and_gradient(pair, batch):
    """fairseq rxf ``SentencePredictionR3F.forward``: noise on the word (token) embeddings, no detach."""
    model, ref = pair
    method = build_method("r3f", {"eps": "0.05"})  # large enough that lambda's term is far above tolerance
    torch.manual_seed(3)
    loss = method.loss(model, batch)

    torch.manual_seed(3)
    words = ref.bert.embeddings.word_embeddings(batch["input_ids"])
    clean = logits_from_words(ref, words, batch)
    noise = torch.empty_like(words).uniform_(-0.05, 0.05)
    noised = logits_from_words(ref, words.detach() + noise, batch)
    reg = symkl(clean, noised)
    assert reg.item() > 1e3 * 1e-6 * loss.item()  # a wrong lambda cannot hide inside rel=1e-6
    expected = ce(clean, batch["labels"]) + 1.0 * reg
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    loss.backward()
    expected.backward()
    assert_same_grads(model, ref, rtol=1e-3, atol=1e-6)


# ---------------------------------------------------------------------------------------------- RAM

@pytest.mark.parametrize("adv_ce", [False, True])
def test_ram_loss_and_step(pair, batch, adv_ce):
    model, ref = pair
    method = build_method("roast", {"selective": "false", "adv_ce": str(adv_ce)})
    assert method.name == "ram" and method.selective is None
    torch.manual_seed(4)
    loss = method.loss(model, batch)

    torch.manual_seed(4)
    emb = embed(ref, batch)
    clean = logits_from(ref, emb, batch)
    delta0 = (torch.rand_like(emb) * 1e-5).requires_grad_()
    (g,) = torch.autograd.grad(ce(logits_from(ref, emb.detach() + delta0, batch), batch["labels"]), delta0)
    real = real_tokens(batch)
    g_hat = torch.zeros_like(g)
    top = g[real].abs().amax(-1, keepdim=True)
    g_hat[real] = g[real] / (top + 1e-8)  # RoAST's norm_grad (its epsilon 1e-8)
    adv_logits = logits_from(ref, emb.detach() + delta0.detach() + 0.1 * g_hat, batch)
    expected = ce(clean, batch["labels"]) + 0.16 * symkl(clean, adv_logits)
    if adv_ce:
        expected = expected + ce(adv_logits, batch["labels"])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    linf = method.last_step.abs().amax(-1)
    torch.testing.assert_close(linf[real], 0.1 * top[:, 0] / (top[:, 0] + 1e-8))
    loss.backward()
    expected.backward()
    assert_same_grads(model, ref, rtol=1e-3, atol=1e-6)


# ----------------------------------------------------------------------------------- configuration

def test_presets_and_overrides():
    assert build_method("freelb", preset="entailment").config.max_norm == 0.3
    assert build_method("ram", {"selective": "false"}).selective is None
    assert build_method("r3f", {"r3f_lambda": "2"}).config.r3f_lambda == 2.0
    with pytest.raises(ConfigError):
        build_method("smart", {"lambda": "2"})


# ------------------------------------------------------------------------------------- end to end

@pytest.mark.parametrize("method,selective", [(name, name == "vanilla") for name in METHODS.names()])
def test_trains_end_to_end(tmp_path, method, selective):
    from robench.train import TrainConfig, train

    out = train(TrainConfig(model="tiny-bert", limit=32, epochs=1, method=method, selective=selective,
                            out=str(tmp_path / method), device="cpu"))
    record = json.loads((out / "run.json").read_text())
    assert record["method"]["name"] == method
    assert math.isfinite(record["training"]["history"][0]["train_loss"])
    assert record["method"]["preset"] == {"name": {"ram": "sentiment", "freelb": "sentiment"}.get(method),
                                          # the sentiment presets of RAM and FreeLB hold their defaults' values
                                          "source": "task (same values as the defaults)" if method in ("ram", "freelb")
                                          else "default"}
    diag = record["training"]["history"][0]["diagnostics"]
    if method != "vanilla":  # 32 examples = 2 steps: step 1 runs the dropout-only reference pass
        assert diag["sampled_steps"] == 1 and diag["alive_ratio"] > 0
        assert all(math.isfinite(v) for v in diag.values())
    if method == "ram" or selective:
        sel = record["method"]["state"]["SelectiveTraining"]
        assert sel["refreshes"] == 2 and 0 < sel["kept_fraction"] < 0.2
    if selective:
        assert record["method"]["selective_config"]["alpha"] == 0.9
