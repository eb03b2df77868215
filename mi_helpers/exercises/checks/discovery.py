"""Checks for automated circuit discovery (notebook 08): an edge's attribution-patching
score, its EAP-IG score, ACDC's pruning rule, and MIB's areas under a faithfulness curve.

Each ``check_<skill>(fn)`` compares the learner's ``fn`` with a reference on fresh
inputs (see :mod:`mi_helpers.exercises.checking`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...circuits.edge_circuits import MIB_BUDGETS, cpr_cmd
from ..checking import Case, Mistake, check_function, generator

__all__ = ["check_eap_edge_score", "check_eap_ig_edge_score", "check_acdc_prune",
           "check_faithfulness_areas"]


def _randn(gen: torch.Generator, *shape: int) -> Tensor:
    return torch.randn(*shape, generator=gen)


# --- 08: attribution patching of one edge ------------------------------------------------------
def _eap(clean_out: Tensor, corrupted_out: Tensor, grad: Tensor) -> Tensor:
    return ((clean_out - corrupted_out) * grad).sum()


def check_eap_edge_score(fn) -> None:
    """``fn(clean_out, corrupted_out, grad)``, each ``[batch pos d_model]`` -> a scalar."""
    gen = generator(40)

    def case(name, batch, n_pos, d_model, same=False):
        clean = _randn(gen, batch, n_pos, d_model)
        corrupted = clean.clone() if same else _randn(gen, batch, n_pos, d_model)
        return Case(name, (clean, corrupted, _randn(gen, batch, n_pos, d_model)))

    cases = [case("4 prompts, 6 positions, d_model 8", 4, 6, 8),
             case("one prompt, one position", 1, 1, 5),
             case("the sender's output is the same in both runs (score 0)", 2, 3, 4, same=True)]
    check_function(fn, _eap, cases, mistakes=[
        Mistake("you used (corrupted - clean): the score is for *restoring* the clean edge in "
                "the corrupted run", lambda c, x, g: _eap(x, c, g)),
        Mistake("you multiplied the gradient by the clean activation, not by the change "
                "(clean - corrupted)", lambda c, x, g: (c * g).sum()),
        Mistake("you averaged over prompts and positions instead of summing (the metric's own "
                "mean over prompts is already in the gradient)", lambda c, x, g: _eap(c, x, g)
                / (g.shape[0] * g.shape[1]))],
        hint="(clean_out - corrupted_out) * grad, summed over every axis: the first-order change "
             "of the metric when the edge carries its clean value.")


# --- 08: EAP-IG of one edge ----------------------------------------------------------------------
def _eap_ig(clean_out: Tensor, corrupted_out: Tensor, gradient_at, ig_steps: int,
            alphas: Tensor | None = None) -> Tensor:
    alphas = torch.arange(ig_steps) / ig_steps if alphas is None else alphas
    mean_grad = torch.stack([gradient_at(a.item()) for a in alphas]).mean(0)
    return ((clean_out - corrupted_out) * mean_grad).sum()


def _gradient_path(gen: torch.Generator, shape: tuple[int, ...], degree: int):
    """A gradient that changes along the path as a polynomial of ``alpha``."""
    coefficients = [_randn(gen, *shape) for _ in range(degree + 1)]
    return lambda alpha: sum(c * alpha ** i for i, c in enumerate(coefficients))


def check_eap_ig_edge_score(fn) -> None:
    """``fn(clean_out, corrupted_out, gradient_at, ig_steps)`` -> a scalar.

    ``gradient_at(alpha)`` is the receiver's gradient ``[batch pos d_model]`` at the point
    ``alpha`` of the way from the corrupted run (0) to the clean one (1).
    """
    gen = generator(41)

    def case(name, shape, degree, ig_steps):
        return Case(name, (_randn(gen, *shape), _randn(gen, *shape),
                           _gradient_path(gen, shape, degree), ig_steps))

    cases = [case("10 steps, a gradient that bends along the path", (3, 4, 5), 2, 10),
             case("ig_steps = 1 (this is EAP)", (2, 3, 4), 1, 1),
             case("5 steps, one prompt", (1, 6, 3), 3, 5),
             case("a constant gradient (a linear metric: every step the same)", (2, 2, 3), 0, 4)]
    check_function(fn, _eap_ig, cases, atol=1e-3, mistakes=[
        Mistake("you took ig_steps points from 0 to 1 *inclusive* (torch.linspace); the "
                "left Riemann sum uses alpha = k / ig_steps for k = 0 .. ig_steps - 1",
                lambda c, x, g, m: _eap_ig(c, x, g, m, torch.linspace(0, 1, m))),
        Mistake("you used alpha = (k + 1) / ig_steps, a right Riemann sum that starts one "
                "step away from the corrupted run", lambda c, x, g, m: _eap_ig(
                    c, x, g, m, torch.arange(1, m + 1) / m)),
        Mistake("you summed the gradients over the steps instead of averaging them",
                lambda c, x, g, m: m * _eap_ig(c, x, g, m))],
        hint="average gradient_at(k / ig_steps) over k = 0 .. ig_steps - 1, then score it like "
             "EAP: (clean_out - corrupted_out) * mean gradient, summed.")


# --- 08: ACDC's pruning rule ----------------------------------------------------------------------
def _acdc_prune(kl_with_removed, order: list[int], tau: float, *, update: bool = True,
                alone: bool = False, absolute: bool = False) -> Tensor:
    removed = torch.zeros(len(order), dtype=torch.bool)
    start = current = kl_with_removed(removed.clone())
    for edge in order:
        trial = torch.zeros_like(removed) if alone else removed.clone()
        trial[edge] = True
        value = kl_with_removed(trial)
        change = value - (current if update else start)
        if (abs(change) if absolute else change) < tau:
            removed[edge] = True
            current = value
    return ~removed


def _kl_function(gen: torch.Generator, n_edges: int, interaction: float,
                 weights: Tensor | None = None):
    """A KL divergence from the full model's output that grows as edges are removed.

    Each edge has its own weight (some negative: removing them brings the output closer),
    and removing edges 0 and 1 together costs ``interaction`` more than each alone.
    """
    weights = torch.rand(n_edges, generator=gen) * 0.4 - 0.05 if weights is None else weights

    def kl_with_removed(removed: Tensor) -> float:
        removed = removed.float()
        return 0.01 + (weights @ removed).item() + interaction * (removed[0] * removed[1]).item()

    return kl_with_removed


def check_acdc_prune(fn) -> None:
    """``fn(kl_with_removed, order, tau)`` -> ``[edge]`` bool, True for the edges kept.

    ``kl_with_removed(removed)`` maps a ``[edge]`` bool mask of removed edges to the KL
    divergence of the output from the full model's.
    """
    gen = generator(42)
    cases = [Case("8 edges tried last to first, tau 0.1",
                  (_kl_function(gen, 8, 0.5), list(range(7, -1, -1)), 0.1)),
             Case("edges that only matter together (0 and 1)",
                  (_kl_function(gen, 6, 0.6), [0, 1, 2, 3, 4, 5], 0.35)),
             Case("an edge whose removal brings the output closer (the KL falls by 0.3)",
                  (_kl_function(gen, 4, 0.0, torch.tensor([0.2, -0.3, 0.02, 0.4])), [3, 2, 1, 0], 0.1)),
             Case("a tau so large that every edge goes", (_kl_function(gen, 5, 0.3), [4, 2, 0, 1, 3], 10.0)),
             Case("a tau so small that only edges helping the output go",
                  (_kl_function(gen, 5, 0.3), [0, 1, 2, 3, 4], 1e-6))]
    check_function(fn, _acdc_prune, cases, axes="edge", mistakes=[
        Mistake("you compared every trial with the *full* model's KL; ACDC compares it with "
                "the KL of the circuit as pruned so far", lambda f, o, t: _acdc_prune(
                    f, o, t, update=False)),
        Mistake("you tried each edge alone (on the full graph) instead of on the circuit "
                "pruned so far", lambda f, o, t: _acdc_prune(f, o, t, alone=True)),
        Mistake("you used |change| < tau: an edge whose removal *lowers* the KL by more than "
                "tau must go too", lambda f, o, t: _acdc_prune(f, o, t, absolute=True)),
        Mistake("you returned the removed edges instead of the kept ones",
                lambda f, o, t: ~_acdc_prune(f, o, t))],
        hint="start from nothing removed and its KL; for each edge in order, remove it on top "
             "of what is removed so far; if the KL rose by less than tau, leave it removed and "
             "take the new KL as the current one.")


# --- 08: MIB's areas under the faithfulness curve ----------------------------------------------
def _riemann_areas(budgets: Tensor, faithfulness: Tensor) -> tuple[float, float]:
    widths = budgets[1:] - budgets[:-1]
    return ((widths * faithfulness[:-1]).sum().item(),
            (widths * (1 - faithfulness[:-1]).abs()).sum().item())


def check_faithfulness_areas(fn) -> None:
    """``fn(budgets, faithfulness)``: two ``[budget]`` tensors -> ``(cpr, cmd)`` floats."""
    gen = generator(43)
    mib = torch.tensor(MIB_BUDGETS, dtype=torch.float64)
    rising = torch.sigmoid(8 * (mib.log10() + 1.5)).double()
    cases = [Case("MIB's budgets, a curve that rises to 1", (mib, rising)),
             Case("a curve that overshoots 1 (CMD counts |1 - f|)",
                  (mib, (1 + 0.6 * torch.rand(len(mib), generator=gen)).double())),
             Case("two budgets", (torch.tensor([0.1, 0.5], dtype=torch.float64),
                                  torch.tensor([0.2, 0.9], dtype=torch.float64))),
             Case("a faithfulness that goes negative", (mib, rising - 0.5))]
    check_function(fn, lambda b, f: cpr_cmd(b, f), cases, mistakes=[
        Mistake("you used rectangles (a left Riemann sum); MIB uses trapezoids",
                _riemann_areas),
        Mistake("you took CMD = (last budget - first budget) - CPR: that is the area between "
                "f and 1 only where f <= 1", lambda b, f: (cpr_cmd(b, f)[0], (b[-1] - b[0]).item()
                                                            - cpr_cmd(b, f)[0])),
        Mistake("you averaged faithfulness over the budgets instead of integrating over them",
                lambda b, f: (f.mean().item(), (1 - f).abs().mean().item()))],
        hint="CPR = sum over consecutive budgets of (b[i+1] - b[i]) * (f[i] + f[i+1]) / 2 "
             "(torch.trapezoid(f, b)); CMD is the same with |1 - f| in place of f.")
