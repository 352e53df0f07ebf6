"""Shared helpers for methods that perturb the input embeddings, in one of two places:

- the EMBEDDING-LAYER OUTPUT (word + position + type, after its LayerNorm and dropout):
  ``model.base_model.embeddings`` for BERT, RoBERTa, DeBERTa, ELECTRA and MPNet (word + position
  only: MPNet has no token types). SMART, ALUM (mt-dnn) and RAM (RoAST) perturb there. The perturbation goes in through a forward hook on that module,
  so no model class is patched and the model is always called the ordinary way.
- the WORD EMBEDDINGS (``model.get_input_embeddings()(input_ids)``, before positions, LayerNorm
  and dropout): FreeLB and R3F perturb there. The model is then called with ``inputs_embeds``
  (plus the attention mask and token types), which every Hugging Face encoder accepts. MPNet
  (like RoBERTa) then numbers positions 2..L+1 for every token, padding included, where from
  ``input_ids`` padding gets position 1: with right padding the real tokens see the same
  positions, so the clean logits are the same either way (pinned in tests/methods/test_architectures.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F

from robench.errors import ConfigError

Delta = torch.Tensor | Callable[[torch.Tensor], torch.Tensor]


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model under DDP/compile wrappers (Accelerate may wrap it)."""
    while hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
        model = model.module
    return getattr(model, "_orig_mod", model)


def embedding_module(model: torch.nn.Module) -> torch.nn.Module:
    """The module whose output is the input embeddings (``model.base_model.embeddings``)."""
    base = getattr(unwrap(model), "base_model", None)
    module = getattr(base, "embeddings", None)
    if not isinstance(module, torch.nn.Module):
        raise ConfigError(f"{type(unwrap(model)).__name__} has no base_model.embeddings module; "
                          "embedding-perturbation methods need a BERT-style encoder")
    return module


def _first(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def _replace_first(output: Any, tensor: torch.Tensor) -> Any:
    return (tensor, *output[1:]) if isinstance(output, tuple) else tensor


@contextmanager
def capture_embeddings(model: torch.nn.Module) -> Iterator[list[torch.Tensor]]:
    """Record the embedding output of every forward inside the block (graph kept)."""
    seen: list[torch.Tensor] = []

    def hook(_module, _inputs, output):
        seen.append(_first(output))

    handle = embedding_module(model).register_forward_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


@contextmanager
def perturb_embeddings(model: torch.nn.Module, delta: Delta, *, base: torch.Tensor | None = None,
                       detach: bool = False) -> Iterator[None]:
    """Inside the block, the embedding output becomes ``emb + delta``.

    ``emb`` is the module's own output (``detach=True``: cut from the graph, so the embedding
    layer gets no gradient through this branch), or ``base`` when given (e.g. the clean pass's
    captured output, reused so both passes see the same embedding dropout). ``delta`` may be a
    callable ``emb -> delta`` (to build it from the output's shape on the first forward).
    """

    def hook(_module, _inputs, output):
        emb = base if base is not None else _first(output)
        if detach:
            emb = emb.detach()
        d = delta(emb) if callable(delta) else delta
        return _replace_first(output, emb + d.to(emb.dtype))

    handle = embedding_module(model).register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def word_embeddings(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The word (token) embeddings of the batch, with the graph to the embedding table."""
    return unwrap(model).get_input_embeddings()(batch["input_ids"])


def with_embeds(batch: dict[str, torch.Tensor], embeds: torch.Tensor, *, labels: bool = True) -> dict[str, Any]:
    """The batch as model inputs with ``inputs_embeds`` in place of ``input_ids``."""
    out: dict[str, Any] = {k: v for k, v in batch.items() if k != "input_ids" and (labels or k != "labels")}
    out["inputs_embeds"] = embeds
    return out


def without_labels(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in batch.items() if k != "labels"}


def token_mask(batch: dict[str, torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """The attention mask as a ``(batch, len, 1)`` float tensor matching ``like``."""
    return batch["attention_mask"].to(like.dtype).unsqueeze(-1)


def linf_normalize(g: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Per-token L-inf normalisation over the hidden dimension: ``g / (max|g| + eps)``.

    With ``eps=0`` an all-zero token (padding gets no gradient) stays zero instead of 0/0.
    """
    top = g.abs().amax(dim=-1, keepdim=True)
    return g / (top + eps) if eps > 0 else g / top.clamp_min(torch.finfo(g.dtype).tiny)


def gradient_share(step: torch.Tensor, total: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The share of a perturbation that its gradient step supplies: per real token,
    ``||step|| / ||total||`` (L2 over the hidden dimension), averaged over the tokens of ``mask``
    (a ``(batch, len, 1)`` attention mask). ``total`` is the perturbation the step is part of,
    before any rescaling that multiplies the whole token (a per-token normalisation or an L2
    projection scales both norms alike). About 0: the perturbation is the initial noise (the
    ascent is numerically absent); about 1: the gradient step is the perturbation. A device
    scalar (no host synchronisation)."""
    step_norm = step.float().norm(dim=-1)
    total_norm = total.float().norm(dim=-1).clamp_min(torch.finfo(torch.float32).tiny)
    weights = mask.squeeze(-1).float()
    return ((step_norm / total_norm) * weights).sum() / weights.sum().clamp_min(1.0)


def l2_per_example(x: torch.Tensor) -> torch.Tensor:
    """The L2 norm of each example's whole ``(len, dim)`` slice: shape ``(batch,)``."""
    return x.reshape(x.shape[0], -1).float().norm(p=2, dim=1)


def sym_kl(p_logits: torch.Tensor, q_logits: torch.Tensor, *, detach_targets: bool = False) -> torch.Tensor:
    """``KL(p||q) + KL(q||p)`` averaged over the batch, computed in fp32.

    ``detach_targets=True`` is mt-dnn's SymKlCriterion: in each KL the target distribution is
    detached (same value, gradient only through the log-probabilities).
    """
    lp = F.log_softmax(p_logits.float(), dim=-1)
    lq = F.log_softmax(q_logits.float(), dim=-1)
    tp, tq = (lp.detach(), lq.detach()) if detach_targets else (lp, lq)
    return (F.kl_div(lq, tp, reduction="batchmean", log_target=True)
            + F.kl_div(lp, tq, reduction="batchmean", log_target=True))


def kl(q_logits: torch.Tensor, p_logits: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """``KL(q || p)`` (q = softmax of ``q_logits``), summed or averaged over the batch."""
    lq = F.log_softmax(q_logits.float(), dim=-1)
    lp = F.log_softmax(p_logits.float(), dim=-1)
    return F.kl_div(lp, lq, reduction=reduction, log_target=True)
