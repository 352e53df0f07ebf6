"""Length-grouped batching: ``TrainConfig.group_by_length`` (``--group-by-length``), off by default.

The trainer pads each batch to its own longest text, so a batch that mixes a 10-token snippet with a
90-token one spends most of its compute on padding. Grouping puts examples of similar length in one
batch, the way the Hugging Face Trainer's ``group_by_length`` (its ``LengthGroupedSampler``) does it:

1. a random permutation of the training set, drawn from the run's shuffling generator (the one
   ``torch.Generator`` the loop already shuffles with, and nothing else);
2. cut into megabatches of ``factor * batch_size`` examples, with Hugging Face's factor:
   ``min(n // (4 * batch_size), 50)``, at least 1: 50 batches per megabatch, fewer on a small set so
   that an epoch keeps at least four megabatches to shuffle (the default task, 1200 examples at batch
   16: factor 18, megabatches of 288);
3. each megabatch sorted by token length, longest first (ties keep the permutation's order);
4. as Hugging Face does, the longest example of the epoch swapped to the head of the first megabatch,
   so the first batch is the longest one (an out-of-memory shows at step 1, not late in the epoch);
5. concatenated; the DataLoader cuts the order into batches as usual.

Batches thus differ from random batching (which examples share a batch, and so the weights), which is
why the option is part of the run's key and off by default. The order of an epoch is a function of the
generator's state at the epoch's start and of the lengths alone, drawn when the epoch's iteration
begins; a checkpoint stores that state, so a resumed run replays the epoch's order and skips the
batches done exactly as with random batching. Written for robench (no code taken from transformers).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

MEGABATCH_MAX = 50  # batches per megabatch at most (Hugging Face's default)


def megabatch_factor(n: int, batch_size: int) -> int:
    """Batches per megabatch: ``min(n // (4 * batch_size), 50)``, at least 1 (Hugging Face's rule)."""
    return max(1, min(n // (4 * batch_size), MEGABATCH_MAX))


def length_grouped_order(lengths: Sequence[int], batch_size: int, generator: torch.Generator,
                         factor: int | None = None) -> list[int]:
    """One epoch's order of the indices ``0 .. len(lengths) - 1`` (see the module's steps 1-5); draws one
    ``randperm`` from ``generator`` and nothing else."""
    n = len(lengths)
    if n == 0:
        return []
    size = (factor or megabatch_factor(n, batch_size)) * batch_size
    perm = torch.randperm(n, generator=generator).tolist()
    megabatches = [sorted(perm[i:i + size], key=lambda j: -lengths[j]) for i in range(0, n, size)]
    longest = max(range(len(megabatches)), key=lambda m: lengths[megabatches[m][0]])  # first such, ties
    megabatches[0][0], megabatches[longest][0] = megabatches[longest][0], megabatches[0][0]
    return [i for megabatch in megabatches for i in megabatch]


class LengthGroupedSampler(Sampler[int]):
    """The training set's indices in length-grouped order, a new order each epoch from ``generator``.

    ``generator`` is the attribute Accelerate looks for: under several processes it keeps this generator
    the same on every rank (as it does for a ``RandomSampler``'s), so every rank cuts the same batches."""

    def __init__(self, lengths: Sequence[int], batch_size: int, generator: torch.Generator,
                 factor: int | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.lengths = [int(x) for x in lengths]
        self.batch_size = batch_size
        self.generator = generator
        self.factor = factor or megabatch_factor(len(self.lengths), batch_size)

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        # drawn when the epoch's iteration starts, as RandomSampler draws its permutation
        yield from length_grouped_order(self.lengths, self.batch_size, self.generator, self.factor)


def token_lengths(dataset) -> list[int]:
    """Tokens per example of a tokenized dataset (its ``input_ids``, already truncated)."""
    return [len(ids) for ids in dataset["input_ids"]]


def padded_tokens(lengths: Sequence[int], order: Sequence[int], batch_size: int) -> tuple[int, int]:
    """(tokens the batches of ``order`` hold once each is padded to its own longest example, real tokens):
    the padding of an epoch, as the trainer's collator pads, computed from the lengths alone."""
    padded = real = 0
    for i in range(0, len(order), batch_size):
        batch = [lengths[j] for j in order[i:i + batch_size]]
        padded += len(batch) * max(batch)
        real += sum(batch)
    return padded, real


def padding_share(lengths: Sequence[int], order: Sequence[int], batch_size: int) -> float:
    """Padding tokens over all tokens of an epoch's batches (0: no padding)."""
    padded, real = padded_tokens(lengths, order, batch_size)
    return (padded - real) / padded if padded else 0.0
