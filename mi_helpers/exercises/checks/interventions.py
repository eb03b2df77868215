"""Checks for subspaces and steering (notebook 10): an interchange intervention on a
subspace, the interchange-intervention accuracy, and a steering hook.

Each ``check_<skill>(fn)`` compares the learner's ``fn`` with a reference on fresh
inputs (see :mod:`mi_helpers.exercises.checking`). The steering check also takes the
notebook's ``model``, to run the learner's hook inside it.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor

from ...core.hooks import hook_name
from ...interventions.subspaces import orthonormal_basis
from ..checking import Case, Mistake, check_function, generator

__all__ = ["check_interchange_subspace", "check_interchange_accuracy", "check_steering_hook"]


def _randn(gen: torch.Generator, *shape: int) -> Tensor:
    return torch.randn(*shape, generator=gen)


# --- 10: an interchange intervention on a subspace ---------------------------------------------
def _interchange(base: Tensor, source: Tensor, basis: Tensor) -> Tensor:
    return base + (source - base) @ basis @ basis.T


def check_interchange_subspace(fn) -> None:
    """``fn(base, source, basis)``: ``[batch d_model]`` twice and an orthonormal
    ``[d_model n_dims]`` basis -> the base with its subspace coordinates from the source."""
    gen = generator(50)
    d_model = 6
    basis = orthonormal_basis(_randn(gen, d_model, 3))
    base = _randn(gen, 5, d_model)
    cases = [Case("a 1-D subspace (one direction)", (base, _randn(gen, 5, d_model), basis[:, :1].clone())),
             Case("a 3-D subspace", (base, _randn(gen, 5, d_model), basis)),
             Case("every direction (the whole activation: ordinary patching)",
                  (base, _randn(gen, 5, d_model), torch.eye(d_model))),
             Case("source = base (nothing changes)", (base, base.clone(), basis))]
    check_function(fn, _interchange, cases, axes="batch d_model", mistakes=[
        Mistake("you added the source's coordinates without removing the base's own",
                lambda b, s, B: b + s @ B @ B.T),
        Mistake("you only projected the subspace out of the base (nothing patched in)",
                lambda b, s, B: b - b @ B @ B.T),
        Mistake("you swapped base and source: this keeps the *source* outside the subspace",
                lambda b, s, B: _interchange(s, b, B))],
        hint="the component of x in the subspace is (x @ basis) @ basis.T; replace the base's "
             "component by the source's: base + (source - base) @ basis @ basis.T.")


# --- 10: interchange-intervention accuracy -------------------------------------------------------
def _iia(logits: Tensor, answer_pos: Tensor, class_words: list[list[int]], targets: Tensor,
         *, pos: Tensor | None = None, pool=torch.logsumexp) -> float:
    rows = torch.arange(len(logits))
    log_probs = logits[rows, answer_pos if pos is None else pos].log_softmax(-1)
    scores = torch.stack([pool(log_probs[:, words], -1) for words in class_words], -1)
    return (scores.argmax(-1) == targets).float().mean().item()


def _best_word(x: Tensor, dim: int) -> Tensor:
    return x.max(dim).values


def _sum_log_probs(x: Tensor, dim: int) -> Tensor:
    return x.sum(dim)


def _iia_case(gen: torch.Generator, name: str, batch: int, n_pos: int, d_vocab: int,
              class_words: list[list[int]]) -> Case:
    logits = 2 * _randn(gen, batch, n_pos, d_vocab)
    answer_pos = torch.randint(0, n_pos, (batch,), generator=gen)
    targets = torch.randint(0, len(class_words), (batch,), generator=gen)
    return Case(name, (logits, answer_pos, class_words, targets))


def check_interchange_accuracy(fn) -> None:
    """``fn(logits, answer_pos, class_words, targets)`` -> the fraction of pairs whose
    output class (the class with the most probability at ``answer_pos``) is ``targets``."""
    gen = generator(51)
    two = [[1, 2, 3], [4, 5, 6, 7, 8, 9]]
    cases = [_iia_case(gen, "64 pairs, two classes of 3 and 6 words", 64, 5, 12, two),
             _iia_case(gen, "three classes, one word each", 40, 4, 9, [[0], [3], [7]]),
             _iia_case(gen, "answers at different positions", 64, 8, 12, two),
             _iia_case(gen, "one pair", 1, 3, 12, two)]
    check_function(fn, _iia, cases, mistakes=[
        Mistake("you read every pair's last position instead of its answer_pos",
                lambda lg, p, w, t: _iia(lg, p, w, t, pos=torch.full_like(p, lg.shape[1] - 1))),
        Mistake("you scored a class by its single most likely word; a class's probability is "
                "the sum over its words (logsumexp of their log-probabilities)",
                lambda lg, p, w, t: _iia(lg, p, w, t, pool=_best_word)),
        Mistake("you summed the words' log-probabilities (a product of probabilities)",
                lambda lg, p, w, t: _iia(lg, p, w, t, pool=_sum_log_probs))],
        hint="for pair b take logits[b, answer_pos[b]].log_softmax(-1); each class's score is "
             "the logsumexp of its words' log-probabilities; IIA is how often the best class "
             "equals targets[b].")


# --- 10: a steering hook -------------------------------------------------------------------------
def _steer(resid: Tensor, hook, direction: Tensor, scale: float) -> Tensor:
    return resid + scale * direction / direction.norm()


def _steered_logits(hook_fn, model, tokens: Tensor, direction: Tensor, scale: float) -> Tensor:
    with torch.no_grad():
        return model.run_with_hooks(tokens, fwd_hooks=[
            (hook_name("resid_post", 0), partial(hook_fn, direction=direction, scale=scale))])


def check_steering_hook(fn, model=None) -> None:
    """``fn(resid, hook, direction, scale)`` -> ``resid`` plus ``scale`` times the unit
    direction at every position.

    Tensors alone first; with ``model``, the hook also runs inside the model and its logits
    must match the reference's.
    """
    gen = generator(52)
    direction = _randn(gen, 6)
    cases = [Case("a direction of norm != 1, scale 4", (_randn(gen, 2, 5, 6), None, direction, 4.0)),
             Case("a unit direction, scale 1", (_randn(gen, 2, 5, 6), None,
                                                direction / direction.norm(), 1.0)),
             Case("a negative scale (steer away)", (_randn(gen, 3, 2, 6), None, direction, -2.5)),
             Case("scale 0 (nothing changes)", (_randn(gen, 1, 4, 6), None, direction, 0.0))]
    check_function(fn, _steer, cases, axes="batch pos d_model", mistakes=[
        Mistake("you did not normalise the direction: scale should be in activation units "
                "along a *unit* direction", lambda r, h, d, s: r + s * d),
        Mistake("you steered only the last position",
                lambda r, h, d, s: torch.cat([r[:, :-1], _steer(r, h, d, s)[:, -1:]], 1)),
        Mistake("you replaced the activation by the direction instead of adding to it",
                lambda r, h, d, s: (s * d / d.norm()).expand_as(r))],
        hint="return resid + scale * direction / direction.norm(): broadcasting adds it at "
             "every prompt and position.")
    if model is None:
        return
    tokens = torch.randint(0, model.cfg.d_vocab, (2, 6), generator=gen)
    direction = _randn(gen, model.cfg.d_model)
    cases = [Case(f"inside the model at resid_post 0, scale {s}", (model, tokens, direction, s))
             for s in (3.0, -1.0)]
    check_function(partial(_steered_logits, fn), partial(_steered_logits, _steer), cases,
                   name=f"{getattr(fn, '__name__', 'your hook')} (inside the model)",
                   axes="batch pos d_vocab", atol=1e-3,
                   hint="the hook must *return* the steered activation: TransformerLens uses "
                        "what the hook returns.")
