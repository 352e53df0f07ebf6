"""Fine-tuning methods: each loss against an independent step-by-step computation, plus the
selective-training mask and end-to-end runs on the tiny BERT.

The reference computations below run the encoder by hand from the embedding module's output
(``bert.embeddings`` -> ``bert.encoder`` -> pooler -> classifier), never through the hooks of
``robench.methods.embeddings``. Models are in eval mode there so dropout draws no random numbers
and the noise draws line up under the same seed.
"""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from robench.configs import make_config
from robench.errors import ConfigError
from robench.methods import build_method
from robench.methods.embeddings import linf_normalize
from robench.methods.freelb import ascend
from robench.methods.selective import SelectiveTraining, expected_keep


class Acc:
    """The two things methods use of an Accelerator."""

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()


def embed(model, batch) -> torch.Tensor:
    return model.bert.embeddings(input_ids=batch["input_ids"], token_type_ids=batch.get("token_type_ids"))


def logits_from_words(model, words, batch) -> torch.Tensor:
    """Logits with ``words`` in place of the word-embedding lookup (positions, types, LayerNorm after)."""
    emb = model.bert.embeddings(inputs_embeds=words, token_type_ids=batch.get("token_type_ids"))
    return logits_from(model, emb, batch)


def logits_from(model, emb, batch) -> torch.Tensor:
    bert = model.bert
    ext = (1.0 - batch["attention_mask"][:, None, None, :].to(emb.dtype)) * torch.finfo(emb.dtype).min
    hidden = bert.encoder(emb, attention_mask=ext).last_hidden_state
    return model.classifier(model.dropout(bert.pooler(hidden)))


def ce(logits, labels) -> torch.Tensor:
    logp = logits.log_softmax(-1)
    return -logp[torch.arange(len(labels)), labels].mean()


def kl_rows(a_logits, b_logits) -> torch.Tensor:
    """KL(a || b) per example."""
    la, lb = a_logits.log_softmax(-1), b_logits.log_softmax(-1)
    return (la.exp() * (la - lb)).sum(-1)


def symkl(a, b) -> torch.Tensor:
    return (kl_rows(a, b) + kl_rows(b, a)).mean()


def symkl_detached(a, b) -> torch.Tensor:
    """mt-dnn's ``SymKlCriterion``: ``KL(a.detach() || b) + KL(b.detach() || a)``, batch mean."""
    return (kl_rows(a.detach(), b) + kl_rows(b.detach(), a)).mean()


def grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def assert_same_grads(a, b, rtol=1e-4, atol=1e-7) -> None:
    ga, gb = grads(a), grads(b)
    assert ga.keys() == gb.keys()
    for name in ga:
        torch.testing.assert_close(ga[name], gb[name], rtol=rtol, atol=atol, msg=name)


def sharpen(model, factor: float = 20.0):
    """Scale the random classifier so logits are far from uniform and every loss term is visible."""
    with torch.no_grad():
        model.classifier.weight.mul_(factor)
    return model


@pytest.fixture
def pair(tiny_model):
    sharpen(tiny_model).eval()
    return tiny_model, copy.deepcopy(tiny_model)


def selective(overrides=None, preset=None) -> SelectiveTraining:
    return SelectiveTraining(make_config(SelectiveTraining, overrides, preset))


def hooks_of(method) -> list:
    """The method and the hooks it hands the trainer (RAM: its selective mask)."""
    return [method, *method.extra_hooks()]


def real_tokens(batch) -> torch.Tensor:
    return batch["attention_mask"].bool()


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

def perturb_teacher(teacher, seed: int = 11, scale: float = 0.05) -> None:
    """Move the teacher away from the student so that the Bregman term is not zero."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in teacher.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * scale)


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
    g_hat[real] = g[real] / g[real].abs().amax(-1, keepdim=True)
    adv_logits = logits_from(ref, emb.detach() + delta0.detach() + 0.1 * g_hat, batch)
    expected = ce(clean, batch["labels"]) + 0.16 * symkl(clean, adv_logits)
    if adv_ce:
        expected = expected + ce(adv_logits, batch["labels"])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    linf = method.last_step.abs().amax(-1)
    torch.testing.assert_close(linf[real], torch.full_like(linf[real], 0.1))
    loss.backward()
    expected.backward()
    assert_same_grads(model, ref, rtol=1e-3, atol=1e-6)


# -------------------------------------------------------------------------------- selective training

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


# ----------------------------------------------------------------------------------- configuration

def test_presets_and_overrides():
    assert build_method("freelb", preset="entailment").config.max_norm == 0.3
    assert build_method("ram", {"selective": "false"}).selective is None
    assert build_method("r3f", {"r3f_lambda": "2"}).config.r3f_lambda == 2.0
    with pytest.raises(ConfigError):
        build_method("smart", {"lambda": "2"})


def test_selective_with_ram_is_an_error():
    from robench.train import TrainConfig, build_hooks

    with pytest.raises(ConfigError, match="already applies selective"):
        build_hooks(TrainConfig(model="tiny-bert", method="ram", selective=True))
    _, hooks = build_hooks(TrainConfig(model="tiny-bert", method="ram", method_overrides={"selective": "false"},
                                       selective=True, selective_overrides={"alpha": 0.6, "beta": 1.0}))
    assert isinstance(hooks[-1], SelectiveTraining) and hooks[-1].config.alpha == 0.6


# ------------------------------------------------------------------------------------- end to end

@pytest.mark.parametrize("method,selective", [("freelb", False), ("smart", False), ("alum", False), ("r3f", False),
                                              ("ram", False), ("vanilla", True)])
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
