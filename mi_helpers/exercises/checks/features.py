"""Checks for features: probing (notebook 02), sparse autoencoders (03) and dashboards (04).

Each ``check_<skill>(fn)`` compares the learner's ``fn`` with a reference on fresh
inputs (see :mod:`mi_helpers.exercises.checking`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...features.autointerp.scoring import pearson
from ...features.sae.base import squared_error
from ...features.sae.topk import topk_activation
from ..checking import Case, Mistake, check_function, generator

__all__ = ["check_f1_score", "check_mean_difference_direction", "check_project_out",
           "check_topk_sae_forward", "check_sae_loss", "check_sparsity_stats",
           "check_top_activations", "check_promoted_tokens", "check_activation_correlation"]


def _randn(gen: torch.Generator, *shape: int) -> Tensor:
    return torch.randn(*shape, generator=gen)


def _bools(gen: torch.Generator, n: int, p: float = 0.5) -> Tensor:
    return torch.rand(n, generator=gen) < p


# --- 02: probing ---------------------------------------------------------------------------
def _f1(predictions: Tensor, labels: Tensor) -> float:
    tp = (predictions & labels).sum().item()
    fp, fn = (predictions & ~labels).sum().item(), (~predictions & labels).sum().item()
    return 0.0 if tp == 0 else tp / (tp + (fp + fn) / 2)


def check_f1_score(fn) -> None:
    """``fn(predictions, labels)``: two ``[n]`` bool tensors -> F1 as a float."""
    gen = generator(10)
    labels = _bools(gen, 40)
    cases = [Case("40 random predictions", (_bools(gen, 40), labels)),
             Case("no positive predictions (F1 is 0, not NaN)", (torch.zeros(40, dtype=torch.bool), labels)),
             Case("every prediction right", (labels.clone(), labels)),
             Case("everything predicted positive", (torch.ones(40, dtype=torch.bool), labels))]
    check_function(fn, _f1, cases, mistakes=[
        Mistake("you computed the accuracy", lambda p, y: (p == y).float().mean().item()),
        Mistake("you averaged precision and recall (F1 is their harmonic mean)", lambda p, y:
                ((p & y).sum() / p.sum().clamp_min(1) + (p & y).sum() / y.sum()).item() / 2)],
        hint="precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2PR / (P + R); "
             "when there is no true positive, F1 is 0.")


def _mean_difference(acts: Tensor, labels: Tensor) -> Tensor:
    diff = acts[labels].mean(0) - acts[~labels].mean(0)
    return diff / diff.norm()


def check_mean_difference_direction(fn) -> None:
    """``fn(acts, labels)``: ``[n d_model]``, ``[n]`` bool -> a unit ``[d_model]`` vector."""
    gen = generator(11)
    balanced = torch.arange(20) % 2 == 0
    unbalanced = torch.arange(10) < 3
    cases = [Case("20 activations, balanced classes", (_randn(gen, 20, 6) + balanced[:, None], balanced)),
             Case("3 positives and 7 negatives", (_randn(gen, 10, 4), unbalanced)),
             Case("d_model 1", (_randn(gen, 10, 1), unbalanced))]
    check_function(fn, _mean_difference, cases, axes="d_model", mistakes=[
        Mistake("you did not normalise the direction to unit length",
                lambda a, y: a[y].mean(0) - a[~y].mean(0)),
        Mistake("your direction points from the positive class to the negative one",
                lambda a, y: -_mean_difference(a, y)),
        Mistake("you subtracted class sums, not class means",
                lambda a, y: (a[y].sum(0) - a[~y].sum(0)) / (a[y].sum(0) - a[~y].sum(0)).norm())],
        hint="mean of the positive class minus mean of the negative class, divided by its norm.")


def _project_out(acts: Tensor, direction: Tensor) -> Tensor:
    unit = direction / direction.norm()
    return acts - (acts @ unit)[..., None] * unit


def check_project_out(fn) -> None:
    """``fn(acts, direction)``: ``[... d_model]``, ``[d_model]`` -> ``acts`` without that component."""
    gen = generator(12)
    unit = _randn(gen, 5)
    unit = unit / unit.norm()
    other = _randn(gen, 3, 5)
    cases = [Case("a unit direction", (_randn(gen, 4, 5), unit)),
             Case("a direction of norm 3", (_randn(gen, 4, 5), 3 * unit)),
             Case("activations already orthogonal to it", (_project_out(other, unit), unit)),
             Case("[batch pos d_model] activations", (_randn(gen, 2, 3, 5), 2 * unit))]
    check_function(fn, _project_out, cases, axes="... d_model", mistakes=[
        Mistake("you did not normalise the direction first",
                lambda a, d: a - (a @ d)[..., None] * d)],
        hint="with u = direction / |direction|, subtract (acts . u) u from every activation.")


# --- 03: sparse autoencoders ---------------------------------------------------------------
def _topk_forward(x, W_enc, b_enc, W_dec, b_dec, k, centre=True):
    latents = topk_activation((x - b_dec if centre else x) @ W_enc + b_enc, k)
    return latents, latents @ W_dec + b_dec


def check_topk_sae_forward(fn) -> None:
    """``fn(x, W_enc, b_enc, W_dec, b_dec, k)`` -> ``(latents, reconstruction)``."""
    gen = generator(13)

    def case(name, n, d_in, d_sae, k, shift=0.0):
        return Case(name, (_randn(gen, n, d_in), _randn(gen, d_in, d_sae), _randn(gen, d_sae) + shift,
                           _randn(gen, d_sae, d_in), _randn(gen, d_in), k))

    cases = [case("5 inputs, 12 latents, k 3", 5, 4, 12, 3), case("k = 1", 3, 4, 8, 1),
             case("k = d_sae (only the ReLU acts)", 3, 4, 6, 6),
             case("mostly negative pre-activations", 4, 4, 10, 5, shift=-3.0)]
    check_function(fn, _topk_forward, cases, axes=("n d_sae", "n d_in"), mistakes=[
        Mistake("you did not subtract b_dec from the input before encoding",
                lambda *a: _topk_forward(*a, centre=False)),
        Mistake("you kept the k largest *absolute* pre-activations",
                lambda x, We, be, Wd, bd, k: _topk_abs(x, We, be, Wd, bd, k)),
        Mistake("you forgot the ReLU (negative values among the top k must become 0)",
                lambda x, We, be, Wd, bd, k: _topk_no_relu(x, We, be, Wd, bd, k))],
        hint="pre = (x - b_dec) @ W_enc + b_enc; keep each row's k largest entries (topk + "
             "scatter into zeros), ReLU them; reconstruction = latents @ W_dec + b_dec.")


def _topk_abs(x, W_enc, b_enc, W_dec, b_dec, k):
    pre = (x - b_dec) @ W_enc + b_enc
    idx = pre.abs().topk(k, -1).indices
    latents = torch.zeros_like(pre).scatter(-1, idx, pre.gather(-1, idx).relu())
    return latents, latents @ W_dec + b_dec


def _topk_no_relu(x, W_enc, b_enc, W_dec, b_dec, k):
    pre = (x - b_dec) @ W_enc + b_enc
    top = pre.topk(k, -1)
    latents = torch.zeros_like(pre).scatter(-1, top.indices, top.values)
    return latents, latents @ W_dec + b_dec


def _sae_loss(x: Tensor, reconstruction: Tensor) -> tuple[float, float]:
    error = (x - reconstruction).pow(2).sum()
    return squared_error(reconstruction, x).item(), (error / (x - x.mean(0)).pow(2).sum()).item()


def check_sae_loss(fn) -> None:
    """``fn(x, reconstruction)``: ``[n d_in]`` twice -> ``(mse, fvu)`` as two floats."""
    gen = generator(14)
    x = _randn(gen, 16, 6) + 3.0
    cases = [Case("a noisy reconstruction", (x, x + 0.3 * _randn(gen, 16, 6))),
             Case("a perfect reconstruction", (x, x.clone())),
             Case("the mean of x (FVU 1)", (x, x.mean(0, keepdim=True).expand_as(x).clone()))]
    check_function(fn, _sae_loss, cases, mistakes=[
        Mistake("you averaged the squared error over d_in too (the loss sums over d_in)",
                lambda x, r: ((x - r).pow(2).mean().item(), _sae_loss(x, r)[1])),
        Mistake("you did not centre x in the FVU's denominator",
                lambda x, r: (_sae_loss(x, r)[0], ((x - r).pow(2).sum() / x.pow(2).sum()).item()))],
        hint="mse: squared error summed over d_in, averaged over inputs; fvu: total squared "
             "error / total squared deviation of x from its mean over the inputs.")


def _sparsity(latents: Tensor) -> tuple[float, float]:
    active = latents != 0
    return active.sum(-1).float().mean().item(), (~active.any(0)).float().mean().item()


def check_sparsity_stats(fn) -> None:
    """``fn(latents)``: ``[n d_sae]`` -> ``(l0, dead_fraction)`` as two floats."""
    gen = generator(15)
    sparse = torch.relu(_randn(gen, 20, 10) - 1.0)
    sparse[:, :3] = 0  # three dead latents
    cases = [Case("20 inputs, 3 dead latents", (sparse,)),
             Case("every latent dead", (torch.zeros(4, 6),)),
             Case("one input", (sparse[:1].clone(),))]
    check_function(fn, _sparsity, cases, mistakes=[
        Mistake("you summed the active latents over inputs instead of averaging",
                lambda a: ((a != 0).sum().item(), _sparsity(a)[1])),
        Mistake("a latent is dead when it never fires on *any* input, not on some input",
                lambda a: (_sparsity(a)[0], (a == 0).any(0).float().mean().item()))],
        hint="L0 = mean over inputs of the number of non-zero latents; dead fraction = "
             "fraction of latents that are zero on every input.")


# --- 04: dashboards ------------------------------------------------------------------------
def _top_activations(acts: Tensor, n: int) -> tuple[Tensor, Tensor]:
    top = acts.flatten().topk(n)
    where = torch.stack([top.indices // acts.shape[1], top.indices % acts.shape[1]], dim=1)
    return top.values, where


def check_top_activations(fn) -> None:
    """``fn(acts, n)``: ``[batch pos]`` -> ``(values [n], where [n, 2])``, largest first."""
    gen = generator(16)
    acts = _randn(gen, 6, 9)
    cases = [Case("6 prompts of 9 tokens, top 5", (acts, 5)),
             Case("every activation", (_randn(gen, 2, 3), 6)),
             Case("one prompt", (_randn(gen, 1, 7), 3))]
    check_function(fn, _top_activations, cases, axes=("n", "n batch_and_pos"), mistakes=[
        Mistake("you returned (pos, batch) instead of (batch, pos)",
                lambda a, n: (_top_activations(a, n)[0], _top_activations(a, n)[1].flip(1))),
        Mistake("you unravelled the flat index with the number of prompts instead of the "
                "number of positions", lambda a, n: (a.flatten().topk(n).values, torch.stack(
                    [a.flatten().topk(n).indices % a.shape[0],
                     a.flatten().topk(n).indices // a.shape[0]], 1)))],
        hint="flatten, topk, then flat index i is prompt i // n_pos at position i % n_pos.")


def _promoted(direction: Tensor, W_U: Tensor, n: int) -> tuple[Tensor, Tensor]:
    effects = direction @ W_U
    return effects.topk(n).indices, effects.topk(n, largest=False).indices


def check_promoted_tokens(fn) -> None:
    """``fn(direction, W_U, n)`` -> ``(top ids [n], bottom ids [n])`` of ``direction @ W_U``."""
    gen = generator(17)
    cases = [Case("d_model 6, 20 tokens, n 3", (_randn(gen, 6), _randn(gen, 6, 20), 3)),
             Case("a square unembedding", (_randn(gen, 5), _randn(gen, 5, 5), 2)),
             Case("n = 1", (_randn(gen, 4), _randn(gen, 4, 9), 1))]
    check_function(fn, _promoted, cases, axes=("n", "n"), mistakes=[
        Mistake("you multiplied by W_U transposed", lambda d, W, n: _promoted(d, W.T, n)),
        Mistake("you swapped the promoted and the suppressed tokens",
                lambda d, W, n: _promoted(d, W, n)[::-1]),
        Mistake("you ranked by absolute effect", lambda d, W, n: (
            (d @ W).abs().topk(n).indices, (d @ W).abs().topk(n, largest=False).indices))],
        hint="effects = direction @ W_U, one number per token; the n largest first, then "
             "the n smallest (most negative first).")


def check_activation_correlation(fn) -> None:
    """``fn(simulated, true)``: two ``[n]`` tensors -> Pearson correlation (0 if constant)."""
    gen = generator(18)
    true = torch.relu(_randn(gen, 30))
    cases = [Case("a noisy simulation", (true + 0.5 * _randn(gen, 30), true)),
             Case("a scaled, shifted copy (correlation 1)", (3 * true + 2, true)),
             Case("a constant simulation (0, not NaN)", (torch.full((30,), 0.5), true)),
             Case("the opposite (-1)", (-true, true))]
    check_function(fn, lambda s, t: pearson(s.tolist(), t.tolist()), cases, mistakes=[
        Mistake("you computed the cosine similarity (Pearson centres both sides first)",
                lambda s, t: (s @ t / (s.norm() * t.norm())).item())],
        hint="centre both, then dot / (norm * norm); return 0.0 when either side is constant.")
