"""Methods on an encoder laid out unlike BERT (the tiny random MPNet): where the embedding hooks perturb,
the inputs_embeds path, every registered method training it, and the selective mask's scope.

The reference passes here run MPNet by hand (``mpnet.embeddings`` -> ``mpnet.encoder`` -> classification
head on ``<s>``), never through the hooks of ``robench.methods.embeddings``; the loss helpers are
method_helpers.py's."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from cli_helpers import TINY_MPNET
from conftest import TEXTS
from method_helpers import Acc, assert_same_grads, ce, hooks_of, real_tokens, symkl

from robench.methods import METHODS, build_method
from robench.methods.embeddings import embedding_module, with_embeds, word_embeddings
from robench.methods.selective import is_masked


@pytest.fixture
def mp_model():
    from robench.models import load_model

    return load_model(TINY_MPNET, num_labels=2, seed=0).train()


@pytest.fixture
def mp_batch(mp_tokenizer):
    enc = mp_tokenizer(TEXTS, padding=True, return_tensors="pt")
    enc["labels"] = torch.tensor([1, 0, 1, 0])
    return dict(enc)


def sharpen_head(model, factor: float = 20.0):
    """Scale MPNet's output projection so logits are far from uniform and every loss term is visible."""
    with torch.no_grad():
        model.classifier.out_proj.weight.mul_(factor)
    return model


def mp_embed(model, batch) -> torch.Tensor:
    return model.mpnet.embeddings(input_ids=batch["input_ids"])


def mp_logits_from(model, emb, batch) -> torch.Tensor:
    ext = (1.0 - batch["attention_mask"][:, None, None, :].to(emb.dtype)) * torch.finfo(emb.dtype).min
    hidden = model.mpnet.encoder(emb, attention_mask=ext, head_mask=[None] * model.config.num_hidden_layers)[0]
    return model.classifier(hidden)


def mp_logits_from_words(model, words, batch) -> torch.Tensor:
    """Logits with ``words`` in place of the word-embedding lookup (positions and LayerNorm after)."""
    return mp_logits_from(model, model.mpnet.embeddings(inputs_embeds=words), batch)


# ------------------------------------------------------------------------------ model and embeddings

def test_tiny_mpnet_shape(mp_model):
    cfg = mp_model.config
    assert type(mp_model).__name__ == "MPNetForSequenceClassification"
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.vocab_size, cfg.pad_token_id) == (64, 2, 30527, 1)
    assert embedding_module(mp_model) is mp_model.mpnet.embeddings


def test_inputs_embeds_path_gives_the_input_ids_logits(mp_model, mp_batch):
    """FreeLB and R3F call MPNet with ``inputs_embeds``; MPNet then numbers every position 2..L+1, padding
    included, while from ``input_ids`` padding gets position 1: real tokens (right padding) see the same."""
    mp_model.eval()
    assert (mp_batch["attention_mask"] == 0).any()  # the batch has padding
    inputs = {k: v for k, v in mp_batch.items() if k != "labels"}
    with torch.no_grad():
        direct = mp_model(**inputs).logits
        embeds = mp_model(**with_embeds(inputs, word_embeddings(mp_model, inputs))).logits
    torch.testing.assert_close(direct, embeds, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------- methods

def test_r3f_on_mpnet_word_embeddings(mp_model, mp_batch):
    """R3F's noise lands on MPNet's word embeddings: the loss and gradients of a hand-run MPNet."""
    model = sharpen_head(mp_model).eval()
    ref = copy.deepcopy(model)
    method = build_method("r3f", {"eps": "0.05"})
    torch.manual_seed(3)
    loss = method.loss(model, mp_batch)

    torch.manual_seed(3)
    words = ref.mpnet.embeddings.word_embeddings(mp_batch["input_ids"])
    clean = mp_logits_from_words(ref, words, mp_batch)
    noise = torch.empty_like(words).uniform_(-0.05, 0.05)
    reg = symkl(clean, mp_logits_from_words(ref, words.detach() + noise, mp_batch))
    assert reg.item() > 1e-3 * loss.item()
    expected = ce(clean, mp_batch["labels"]) + 1.0 * reg
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    expected.backward()
    assert_same_grads(model, ref, rtol=1e-3, atol=1e-6)


def test_ram_on_mpnet_embedding_output(mp_model, mp_batch):
    """RAM's step lands on the output of MPNet's embedding module (word + position, LayerNorm, dropout)."""
    model = sharpen_head(mp_model).eval()
    ref = copy.deepcopy(model)
    method = build_method("ram", {"selective": "false"})
    torch.manual_seed(4)
    loss = method.loss(model, mp_batch)

    torch.manual_seed(4)
    emb = mp_embed(ref, mp_batch)
    clean = mp_logits_from(ref, emb, mp_batch)
    delta0 = (torch.rand_like(emb) * 1e-5).requires_grad_()
    (g,) = torch.autograd.grad(ce(mp_logits_from(ref, emb.detach() + delta0, mp_batch), mp_batch["labels"]), delta0)
    real = real_tokens(mp_batch)
    g_hat = torch.zeros_like(g)
    g_hat[real] = g[real] / g[real].abs().amax(-1, keepdim=True)
    adv = mp_logits_from(ref, emb.detach() + delta0.detach() + 0.1 * g_hat, mp_batch)
    expected = ce(clean, mp_batch["labels"]) + 0.16 * symkl(clean, adv)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    expected.backward()
    assert_same_grads(model, ref, rtol=1e-3, atol=1e-6)


METHOD_CASES = [(name, False) for name in METHODS.names()] + [("vanilla", True)]


@pytest.mark.parametrize("name,selective", METHOD_CASES)
def test_every_method_trains_tiny_mpnet(mp_model, mp_batch, name, selective):
    """A few optimiser steps of each registered method (with its hooks) on one batch: finite losses,
    a live regulariser, a lower clean loss afterwards, and the mask (RAM, +selective) on layers only."""
    from robench.methods.selective import SelectiveTraining

    model = mp_model
    method = build_method(name)
    hooks = hooks_of(method) + ([SelectiveTraining()] if selective else [])
    torch.manual_seed(0)
    for hook in hooks:
        hook.setup(model, [mp_batch], Acc())
    with torch.no_grad():
        before = ce(model.eval()(**mp_batch).logits, mp_batch["labels"]).item()
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(4):
        losses.append(float(method.training_step(model, mp_batch, Acc())))
        for hook in hooks:
            hook.after_backward(model)
        for hook in hooks:
            hook.before_optimizer_step(model)
        opt.step()
        for hook in hooks:
            hook.after_optimizer_step(model)
        opt.zero_grad(set_to_none=True)
    assert all(math.isfinite(v) for v in losses), losses
    with torch.no_grad():
        after = ce(model.eval()(**mp_batch).logits, mp_batch["labels"]).item()
    assert after < before, (before, after)
    terms = {k: v for k, v in method.state().items() if v is not None}
    if name != "vanilla":  # each regulariser's last value: finite and not zero (it sees the perturbation)
        assert terms and all(math.isfinite(v) and v > 0 for v in terms.values()), terms
    masks = [h for h in hooks if isinstance(h, SelectiveTraining)]
    for sel in masks:
        assert sel.names and all(".encoder.layer." in n for n in sel.names)
        assert 0 < sel.state()["kept_fraction"] < 0.2


def test_selective_mask_covers_exactly_mpnets_encoder_layers(mp_model, mp_batch):
    """Masked: every ``mpnet.encoder.layer.<i>.`` parameter. Not masked: embeddings, the classification head
    and ``mpnet.encoder.relative_attention_bias`` (one table shared by all layers, outside ``layer.<i>``;
    RoAST's own filter, ``'layer' in name``, leaves it out too)."""
    from robench.methods.selective import SelectiveTraining

    sel = SelectiveTraining()
    sel.setup(mp_model, [mp_batch], Acc())
    names = [n for n, _ in mp_model.named_parameters()]
    layers = [n for n in names if n.startswith("mpnet.encoder.layer.")]
    assert sel.names == layers and len(layers) == 2 * 16  # q, k, v, o, 2 LayerNorms, 2 dense: 16 tensors a layer
    assert sel.masked_entries == sum(p.numel() for n, p in mp_model.named_parameters() if n in layers)
    assert not is_masked("mpnet.encoder.relative_attention_bias.weight")
    unmasked = set(names) - set(layers)
    assert unmasked == {"mpnet.embeddings.word_embeddings.weight", "mpnet.embeddings.position_embeddings.weight",
                        "mpnet.embeddings.LayerNorm.weight", "mpnet.embeddings.LayerNorm.bias",
                        "mpnet.encoder.relative_attention_bias.weight", "classifier.dense.weight",
                        "classifier.dense.bias", "classifier.out_proj.weight", "classifier.out_proj.bias"}
