"""Batches of token ids for training the zoo, drawn from a seeded mixture.

Each sequence starts with BOS and is filled to ``n_ctx`` tokens with one kind of
data: a run of repeat blocks, or a run of sentences whose kinds are drawn from the
text weights. A *phase* schedule changes the mixture during training (e.g. repeats
only at first, so the induction heads form before the text arrives).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from .corpus import SPECIAL_TOKENS, TEXT_KINDS, vocabulary


@dataclass(frozen=True)
class Phase:
    """One stretch of training with a fixed data mixture.

    Attributes:
        until: fraction of all steps at which this phase ends (the last one: 1.0).
        repeat_share: probability that a sequence is made of repeat blocks.
        text_weights: relative weight of each text kind in the other sequences.
    """

    until: float
    repeat_share: float
    text_weights: tuple[tuple[str, float], ...] = (
        ("english", 1.0), ("french", 1.0), ("ioi", 1.0), ("arithmetic", 0.5))


def phase_at(phases: tuple[Phase, ...], progress: float) -> Phase:
    """The phase in force at ``progress`` (fraction of training done, in [0, 1])."""
    for phase in phases:
        if progress < phase.until:
            return phase
    return phases[-1]


class SequenceSampler:
    """Draws token-id sequences of length ``n_ctx`` from the corpus mixture."""

    def __init__(self, n_ctx: int, seed: int):
        self.n_ctx = n_ctx
        self.rng = random.Random(seed)
        self.word_to_id = {w: i for i, w in enumerate(vocabulary())}
        self.content_ids = list(range(len(SPECIAL_TOKENS), len(self.word_to_id)))
        self.bos_id = self.word_to_id[SPECIAL_TOKENS[0]]

    def repeat_sequence(self) -> list[int]:
        """BOS, then blocks ``r + gap + r`` (|r| in 6..24, |gap| in 0..12), truncated."""
        ids = [self.bos_id]
        while len(ids) < self.n_ctx:
            chunk = self.rng.choices(self.content_ids, k=self.rng.randint(6, 24))
            gap = self.rng.choices(self.content_ids, k=self.rng.randint(0, 12))
            ids += chunk + gap + chunk
        return ids[: self.n_ctx]

    def text_sequence(self, text_weights: tuple[tuple[str, float], ...]) -> list[int]:
        """BOS, then sentences of kinds drawn from ``text_weights``, truncated."""
        kinds, weights = zip(*text_weights)
        ids = [self.bos_id]
        while len(ids) < self.n_ctx:
            kind = self.rng.choices(kinds, weights=weights)[0]
            ids += [self.word_to_id[w] for w in TEXT_KINDS[kind](self.rng).split()]
        return ids[: self.n_ctx]

    def batch(self, batch_size: int, phase: Phase) -> torch.Tensor:
        """A ``[batch, pos]`` LongTensor of sequences drawn from ``phase``'s mixture."""
        rows = [
            self.repeat_sequence() if self.rng.random() < phase.repeat_share
            else self.text_sequence(phase.text_weights)
            for _ in range(batch_size)
        ]
        return torch.tensor(rows, dtype=torch.long)
