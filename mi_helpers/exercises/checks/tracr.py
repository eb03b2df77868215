"""Checks for ground truth (notebook 11): a compiled model against its program, removing
one edge by hand, and scoring a discovered circuit against the true one.

Each ``check_<skill>(fn)`` compares the learner's ``fn`` with a reference on fresh
inputs (see :mod:`mi_helpers.exercises.checking`); the scoring references are the
package's own (:mod:`mi_helpers.tracr.recovery`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...tracr.recovery import auroc, score_recovery
from ..checking import Case, Mistake, check_function, generator

__all__ = ["check_sequence_agreement", "check_remove_edge", "check_precision_recall",
           "check_auroc"]


# --- 11.1: does the compiled model compute the program? ------------------------------------------
def _sequence_agreement(logits: Tensor, expected: Tensor) -> float:
    return (logits[:, 1:].argmax(-1) == expected).all(-1).float().mean().item()


def check_sequence_agreement(fn) -> None:
    """``fn(logits, expected)``: ``[batch pos d_vocab]`` with BOS at 0 and ``[batch pos-1]``
    output ids -> the share of inputs whose *every* output matches."""
    gen = generator(110)
    logits = torch.randn(6, 5, 3, generator=gen)
    right = logits[:, 1:].argmax(-1)
    one_wrong = right.clone()
    one_wrong[:3, 2] = (one_wrong[:3, 2] + 1) % 3  # three inputs wrong at one position each
    cases = [Case("every output right", (logits, right)),
             Case("three of six inputs wrong at one position", (logits, one_wrong)),
             Case("one input, one position", (logits[:1, :2], right[:1, :1])),
             Case("everything wrong", (logits, (right + 1) % 3))]
    check_function(fn, _sequence_agreement, cases, mistakes=[
        Mistake("you counted matching *positions*, not inputs whose every position matches",
                lambda lg, ex: (lg[:, 1:].argmax(-1) == ex).float().mean().item()),
        Mistake("you compared position p's output with the expected output of p + 1 (the "
                "outputs start after BOS: drop position 0, not the last)",
                lambda lg, ex: (lg[:, :-1].argmax(-1) == ex).all(-1).float().mean().item())],
        hint="predictions = logits[:, 1:].argmax(-1); an input agrees when (predictions == "
             "expected).all(-1); return the mean over inputs as a float.")


# --- 11.2: remove one edge into a query, by hand --------------------------------------------------
def _remove_edge(q: Tensor, sender_out: Tensor, W_Q: Tensor, head: int) -> Tensor:
    q = q.clone()
    q[:, :, head] -= sender_out @ W_Q[head]
    return q


def check_remove_edge(fn) -> None:
    """``fn(q, sender_out, W_Q, head)``: one layer's queries ``[batch pos head d_head]``,
    a sender's output ``[batch pos d_model]``, ``W_Q`` ``[head d_model d_head]`` -> the
    queries with that sender's edge into ``head`` removed (zero ablation)."""
    gen = generator(111)

    def case(name, batch, n_pos, n_heads, d_model, d_head, head):
        return Case(name, (torch.randn(batch, n_pos, n_heads, d_head, generator=gen),
                           torch.randn(batch, n_pos, d_model, generator=gen),
                           torch.randn(n_heads, d_model, d_head, generator=gen), head))

    cases = [case("3 heads, remove the edge into head 1", 2, 5, 3, 8, 4, 1),
             case("head 0, d_model = d_head", 2, 4, 2, 6, 6, 0),
             case("one head, one position", 1, 1, 1, 5, 3, 0)]
    check_function(fn, _remove_edge, cases, axes="batch pos head d_head", mistakes=[
        Mistake("you added the sender's contribution instead of removing it",
                lambda q, s, W, h: _remove_edge(q, -s, W, h)),
        Mistake("you removed the sender from every head's query, not only from the receiver's",
                lambda q, s, W, h: q - torch.einsum("bpd,hde->bphe", s, W))],
        hint="without LayerNorm, q[:, :, head] = resid @ W_Q[head] + b_Q[head] and the residual "
             "is a sum of the senders' outputs: subtract sender_out @ W_Q[head] from that "
             "head's query (and leave the other heads alone).")


# --- 11.3: precision and recall of a discovered edge set -----------------------------------------
def _precision_recall(found: Tensor, truth: Tensor) -> tuple[float, float]:
    recovery = score_recovery("found", dict(enumerate(found.float().tolist())),
                              set(truth.nonzero().flatten().tolist()), "edge", threshold=0.5)
    return recovery.precision, recovery.recall


def check_precision_recall(fn) -> None:
    """``fn(found, truth)``: two boolean ``[edge]`` masks -> ``(precision, recall)`` floats."""
    gen = generator(112)
    truth = torch.rand(40, generator=gen) < 0.3
    found = truth.clone()
    found[:10] = ~found[:10]  # some found edges are false, some true edges are missed
    cases = [Case("some right, some wrong", (found, truth)),
             Case("found exactly the truth", (truth, truth)),
             Case("found every edge", (torch.ones(40, dtype=torch.bool), truth)),
             Case("found only false edges", (~truth, truth))]
    check_function(fn, _precision_recall, cases, axes=(None, None), mistakes=[
        Mistake("you swapped precision and recall",
                lambda f, t: _precision_recall(f, t)[::-1]),
        Mistake("you divided the hits by the number of edges in the graph",
                lambda f, t: ((f & t).sum().item() / len(t),) * 2)],
        hint="hits = (found & truth).sum(); precision = hits / found.sum() (of what was "
             "found, how much is true); recall = hits / truth.sum() (of the truth, how much "
             "was found).")


# --- 11.4: AUROC of edge scores against the truth ------------------------------------------------
def _auroc(scores: Tensor, truth: Tensor) -> float:
    return auroc(dict(enumerate(scores.tolist())), set(truth.nonzero().flatten().tolist()))


def check_auroc(fn) -> None:
    """``fn(scores, truth)``: ``[edge]`` scores and a boolean ``[edge]`` mask -> the chance
    that a random true edge outscores a random false one (ties count half)."""
    gen = generator(113)
    truth = torch.zeros(30, dtype=torch.bool)
    truth[torch.randperm(30, generator=gen)[:8]] = True
    noisy = truth.float() + 0.8 * torch.randn(30, generator=gen)
    tied = torch.where(truth, 1.0, 0.0)
    tied[:4] = 1.0  # some false edges tie with the true ones
    cases = [Case("noisy scores", (noisy, truth)),
             Case("ties between true and false edges", (tied, truth)),
             Case("a perfect ranking", (truth.float() * 2 + 1, truth)),
             Case("an inverted ranking", (-truth.float(), truth)),
             Case("every score tied", (torch.zeros(30), truth))]
    check_function(fn, _auroc, cases, mistakes=[
        Mistake("you counted ties as losses (a tie between a true and a false edge counts half)",
                lambda s, t: (s[t][:, None] > s[~t][None]).float().mean().item()),
        Mistake("you counted ties as wins (a tie counts half)",
                lambda s, t: (s[t][:, None] >= s[~t][None]).float().mean().item())],
        hint="compare every true edge's score with every false edge's: (s[truth][:, None] > "
             "s[~truth][None]) is [true, false]; add half of the ties (==), and average.")
