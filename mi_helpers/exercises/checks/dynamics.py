"""Checks for training dynamics (notebook 13): the in-context-learning score, the step at
which a recorded curve first crosses a threshold, and the norm of an embedding at each
Fourier frequency.

Each ``check_<skill>(fn)`` compares the learner's ``fn`` with a reference on fresh
inputs (see :mod:`mi_helpers.exercises.checking`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ...core.metrics import per_token_loss
from ...dynamics.grokking import first_crossing
from ...dynamics.modular import frequency_norms
from ..checking import Case, Mistake, check_function, generator

__all__ = ["check_icl_from_logits", "check_crossing_step", "check_fourier_norms"]


def _randn(gen: torch.Generator, *shape: int) -> Tensor:
    return torch.randn(*shape, generator=gen)


# --- 13: the in-context-learning score ----------------------------------------------------------
def _icl(logits: Tensor, tokens: Tensor, early: range, late: range, shift: int = 1) -> Tensor:
    if shift:
        losses = per_token_loss(logits, tokens)
    else:  # position i scored against token i
        losses = -logits.log_softmax(-1).gather(-1, tokens[..., None]).squeeze(-1)
    return losses[:, late.start:late.stop].mean() - losses[:, early.start:early.stop].mean()


def check_icl_from_logits(fn) -> None:
    """``fn(logits, tokens, early, late)`` -> late minus early mean next-token loss.

    ``early`` and ``late`` are ``range`` s of positions; position ``i`` predicts token
    ``i + 1``.
    """
    gen = generator(60)

    def case(name, batch, n_ctx, d_vocab, early, late, context_helps=False):
        tokens = torch.randint(0, d_vocab, (batch, n_ctx), generator=gen)
        logits = _randn(gen, batch, n_ctx, d_vocab)
        if context_helps:  # late positions put more weight on the right next token
            ramp = torch.linspace(0, 6, n_ctx - 1)[None, :, None]
            logits[:, :-1] += ramp * torch.nn.functional.one_hot(tokens[:, 1:], d_vocab)
        return Case(name, (logits, tokens, early, late))

    cases = [case("context 16, early 1..1, late 11..14", 3, 16, 10, range(1, 2), range(11, 15)),
             case("context 64, the recorder's ranges", 2, 64, 20, range(4, 8), range(47, 63),
                  context_helps=True),
             case("a model that uses its context (a clearly negative score)", 4, 32, 12,
                  range(2, 4), range(23, 31), context_helps=True)]
    check_function(fn, _icl, cases, mistakes=[
        Mistake("you computed early minus late: the score is *late* minus early (negative once "
                "the model uses its context)", lambda lg, t, e, l: -_icl(lg, t, e, l)),
        Mistake("you scored position i against token i; position i predicts token i + 1",
                lambda lg, t, e, l: _icl(lg, t, e, l, shift=0))],
        hint="per-token losses -log_softmax(logits[:, :-1]) at tokens[:, 1:] (position i "
             "predicts token i + 1), then the mean at the late positions minus the mean at "
             "the early ones.")


# --- 13: when does a curve first cross a threshold? ----------------------------------------------
def _crossing_index(steps: Tensor, values: Tensor, threshold: float, below: bool = False):
    hits = ((values <= threshold) if below else (values >= threshold)).nonzero()
    return int(hits[0, 0]) if len(hits) else None


def _crossing_strict(steps: Tensor, values: Tensor, threshold: float, below: bool = False):
    hits = ((values < threshold) if below else (values > threshold)).nonzero()
    return int(steps[hits[0, 0]]) if len(hits) else None


def _crossing_last(steps: Tensor, values: Tensor, threshold: float, below: bool = False):
    hits = ((values <= threshold) if below else (values >= threshold)).nonzero()
    return int(steps[hits[-1, 0]]) if len(hits) else None


def check_crossing_step(fn) -> None:
    """``fn(steps, values, threshold, below=False)`` -> the first *step* at which
    ``values >= threshold`` (``<=`` with ``below``), or ``None`` if it never happens."""
    steps = torch.arange(0, 500, 25)
    rising = torch.sigmoid((steps - 260) / 30.0)
    twice = torch.tensor([0.1, 0.3, 0.85, 0.6, 0.4, 0.82, 0.9, 0.95])
    cases = [Case("a score that rises through 0.5 (records every 25 steps)", (steps, rising, 0.5)),
             Case("a score that reaches the threshold exactly", (steps[:5], torch.tensor(
                 [0.0, 0.2, 0.8, 0.9, 1.0]), 0.8)),
             Case("a score that crosses, falls back and crosses again",
                  (torch.arange(100, 900, 100), twice, 0.8)),
             Case("a curve that never gets there (None)", (steps, rising, 1.5)),
             Case("a loss falling below 0.3 (below=True)", (steps, 1 - rising, 0.3),
                  {"below": True}),
             Case("already above at the first record", (steps[3:], rising[3:] + 1, 0.5))]
    check_function(fn, first_crossing, cases, mistakes=[
        Mistake("you returned the record's index, not its training step",
                _crossing_index),
        Mistake("you used > (or < with below): a value equal to the threshold counts",
                _crossing_strict),
        Mistake("you returned the *last* record past the threshold, not the first",
                _crossing_last)],
        hint="find the first index i where values[i] >= threshold (values[i] <= threshold when "
             "below), return int(steps[i]); return None when there is none.")


# --- 13: an embedding's norm at each Fourier frequency -------------------------------------------
def _unnormalised_norms(embedding: Tensor) -> Tensor:
    p = len(embedding)
    x = torch.arange(p, dtype=embedding.dtype)
    norms = []
    for k in range(1, p // 2 + 1):
        cos, sin = torch.cos(2 * math.pi * k * x / p), torch.sin(2 * math.pi * k * x / p)
        norms.append(((cos @ embedding).pow(2).sum() + (sin @ embedding).pow(2).sum()).sqrt())
    return torch.stack(norms)


def _sum_of_part_norms(embedding: Tensor) -> Tensor:
    p = len(embedding)
    x = torch.arange(p, dtype=embedding.dtype)
    norms = []
    for k in range(1, p // 2 + 1):
        parts = [torch.cos(2 * math.pi * k * x / p)]
        if 2 * k != p:
            parts.append(torch.sin(2 * math.pi * k * x / p))
        norms.append(sum((w / w.norm() @ embedding).norm() for w in parts))
    return torch.stack(norms)


def _wave(p: int, k: int, d_model: int, gen: torch.Generator) -> Tensor:
    x = torch.arange(p, dtype=torch.float32)[:, None]
    a, b = _randn(gen, 1, d_model), _randn(gen, 1, d_model)
    return torch.cos(2 * math.pi * k * x / p) * a + torch.sin(2 * math.pi * k * x / p) * b


def check_fourier_norms(fn) -> None:
    """``fn(embedding)``: ``[p d_model]``, one row per number ``0..p-1`` -> ``[p // 2]``, the
    norm of its component at each frequency ``k = 1 .. p // 2``."""
    gen = generator(61)
    cases = [Case("p = 13, a random embedding", (_randn(gen, 13, 5),)),
             Case("p = 11, a pure wave at k = 3 (only k = 3 is non-zero)", (_wave(11, 3, 4, gen),)),
             Case("p = 12 (even: k = 6 has a cosine only)", (_randn(gen, 12, 3),)),
             Case("a wave plus a constant (the constant is not a frequency)",
                  (_wave(7, 2, 3, gen) + 5.0,))]
    check_function(fn, frequency_norms, cases, axes="freq", atol=1e-3, mistakes=[
        Mistake("you did not normalise the cosine and sine vectors (each has norm sqrt(p / 2))",
                _unnormalised_norms),
        Mistake("you added the cosine and sine parts' norms; combine them as "
                "sqrt(|cos part|^2 + |sin part|^2)", _sum_of_part_norms)],
        hint="for each k build cos(2 pi k x / p) and sin(2 pi k x / p) over x = 0..p-1, each "
             "divided by its norm; project the embedding on both (w @ embedding) and return "
             "sqrt of the sum of both squared norms. For even p, sin(pi x) is 0: skip it.")
