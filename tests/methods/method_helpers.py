"""Helpers of the method tests (not a test module). The reference computations run the encoder by hand
from the embedding module's output (``bert.embeddings`` -> ``bert.encoder`` -> pooler -> classifier),
never through the hooks of ``robench.methods.embeddings``; REGULARISED and methods_with() are the
registry queries the tests iterate."""

from __future__ import annotations

import dataclasses

import torch

from robench.configs import make_config
from robench.methods import METHODS
from robench.methods.base import RegularisedConfig
from robench.methods.selective import SelectiveTraining


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


def selective(overrides=None, preset=None) -> SelectiveTraining:
    return SelectiveTraining(make_config(SelectiveTraining, overrides, preset))


def hooks_of(method) -> list:
    """The method and the hooks it hands the trainer (RAM: its selective mask)."""
    return [method, *method.extra_hooks()]


def real_tokens(batch) -> torch.Tensor:
    return batch["attention_mask"].bool()


def perturb_teacher(teacher, seed: int = 11, scale: float = 0.05) -> None:
    """Move the teacher away from the student so that the Bregman term is not zero."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in teacher.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * scale)


# every registered method with a perturbation or regulariser (a RegularisedConfig, with diag_every)
REGULARISED = [name for name in METHODS.names() if issubclass(METHODS.get(name).Config, RegularisedConfig)]


def methods_with(option: str) -> list[str]:
    """The registered methods whose Config has ``option`` (``step_norm``: SMART and ALUM)."""
    return [name for name in METHODS.names() if option in {f.name for f in dataclasses.fields(METHODS.get(name).Config)}]
