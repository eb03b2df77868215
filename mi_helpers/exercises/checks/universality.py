"""Checks for universality: matching units across models (notebook 09).

Each ``check_<skill>(fn)`` compares the learner's ``fn`` with a reference on fresh
inputs (see :mod:`mi_helpers.exercises.checking`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...features.sae.toy import mmcs
from ...universality.matching import correlation_matrix
from ..checking import Case, Mistake, check_function, generator

__all__ = ["check_neuron_correlations", "check_best_partner", "check_mean_max_cosine"]


def _randn(gen: torch.Generator, *shape: int) -> Tensor:
    return torch.randn(*shape, generator=gen)


def check_neuron_correlations(fn) -> None:
    """``fn(acts_a, acts_b)``: ``[n unit_a]``, ``[n unit_b]`` -> ``[unit_a unit_b]`` Pearson."""
    gen = generator(30)
    acts_a = torch.relu(_randn(gen, 50, 4)) + 1.0
    with_dead = torch.cat([_randn(gen, 50, 2), torch.zeros(50, 1)], 1)
    cases = [Case("50 tokens, 4 and 3 neurons", (acts_a, _randn(gen, 50, 3))),
             Case("a dead neuron (constant: correlation 0, not NaN)", (acts_a, with_dead)),
             Case("the same neurons scaled and shifted (correlation 1)", (acts_a, 2 * acts_a - 1))]
    check_function(fn, correlation_matrix, cases, axes="unit_a unit_b", mistakes=[
        Mistake("you did not centre the activations (that is a cosine similarity, not Pearson)",
                lambda a, b: (a / a.norm(dim=0).clamp_min(1e-12)).T
                @ (b / b.norm(dim=0).clamp_min(1e-12))),
        Mistake("you returned [unit_b, unit_a]", lambda a, b: correlation_matrix(a, b).T)],
        hint="centre each column over the tokens, divide it by its norm (clamped away from 0 "
             "for a dead neuron), then A^T B.")


def check_best_partner(fn) -> None:
    """``fn(corr)``: ``[unit_a unit_b]`` -> ``(best values [unit_a], their indices [unit_a])``."""
    gen = generator(31)
    corr = torch.tanh(_randn(gen, 6, 9))
    negative = torch.tensor([[-0.9, 0.2, 0.1], [0.3, -0.1, 0.5]])
    cases = [Case("6 neurons against 9", (corr,)), Case("a square matrix", (corr[:, :6].clone(),)),
             Case("a strong negative correlation is not a match", (negative,))]
    check_function(fn, lambda c: tuple(c.max(dim=1)), cases, axes=("unit_a", "unit_a"), mistakes=[
        Mistake("you took the maximum over axis 0 (unit_a) instead of axis 1 (unit_b)",
                lambda c: tuple(c.max(dim=0))),
        Mistake("you matched on |correlation|",
                lambda c: (c.gather(1, c.abs().argmax(1, keepdim=True)).squeeze(1),
                           c.abs().argmax(1)))],
        hint="for each row (a neuron of A), the largest entry and its column index.")


def check_mean_max_cosine(fn) -> None:
    """``fn(dirs_a, dirs_b)``: ``[unit_a d]``, ``[unit_b d]`` -> mean over A of the best cosine."""
    gen = generator(32)
    dirs = _randn(gen, 5, 4)
    cases = [Case("5 against 7 random directions", (dirs, _randn(gen, 7, 4))),
             Case("the same directions, shuffled and rescaled (1)", (dirs, 3 * dirs[[2, 0, 4, 1, 3]])),
             Case("many more directions in B", (dirs[:2].clone(), _randn(gen, 20, 4)))]
    check_function(fn, lambda a, b: mmcs(b, a).item(), cases, mistakes=[
        Mistake("you did not normalise the directions (dot products, not cosines)",
                lambda a, b: (a @ b.T).max(1).values.mean().item()),
        Mistake("you averaged over B's directions instead of A's", lambda a, b: mmcs(a, b).item())],
        hint="normalise every row of both, take A @ B^T, the maximum of each row, then the mean.")
