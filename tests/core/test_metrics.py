"""Metrics on logits, sweep normalisations and head selection, on inputs whose right
answer is known by hand or from ``torch.nn.functional``, chosen so that the usual wrong
answers (reversed KL, a sum for a mean, swapped anchors, ``>=`` for ``>``) differ."""

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from mi_helpers.core import Head, SweepResult, heads_above, top_heads
from mi_helpers.core.heads import all_heads, check_heads
from mi_helpers.core.metrics import (kl_divergence, kl_from_log_probs, logit_difference,
                                     per_token_loss)
from mi_helpers.core.results import normalised_score

P = [0.8, 0.15, 0.05]  # asymmetric: KL(P || Q) != KL(Q || P)
Q = [0.2, 0.3, 0.5]


def kl_by_hand(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p, q))


def test_kl_divergence_is_reference_first_in_nats():
    p, q = torch.tensor(P).log(), torch.tensor(Q).log()
    forward, backward = kl_by_hand(P, Q), kl_by_hand(Q, P)
    assert abs(forward - backward) > 0.1  # the two directions differ here
    assert kl_divergence(p + 3.0, q - 1.0).item() == pytest.approx(forward, rel=1e-5)  # logits
    assert kl_from_log_probs(p, q).item() == pytest.approx(forward, rel=1e-5)
    assert kl_divergence(p, p).item() == pytest.approx(0.0, abs=1e-7)


def test_kl_divergence_per_position_agrees_with_torch():
    gen = torch.Generator().manual_seed(0)
    reference, other = torch.randn(2, 3, 4, 11, generator=gen).unbind()
    ours = kl_divergence(reference, other)
    theirs = F.kl_div(other.log_softmax(-1), reference.log_softmax(-1), log_target=True,
                      reduction="none").sum(-1)
    assert ours.shape == (3, 4) and torch.allclose(ours, theirs, atol=1e-6)


def test_per_token_loss_is_next_token_cross_entropy():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 5, 7, generator=gen)
    tokens = torch.randint(0, 7, (2, 5), generator=gen)
    expected = F.cross_entropy(logits[:, :-1].reshape(-1, 7), tokens[:, 1:].reshape(-1),
                               reduction="none").reshape(2, 4)
    assert torch.allclose(per_token_loss(logits, tokens), expected, atol=1e-6)
    with pytest.raises(ValueError, match="share"):
        per_token_loss(logits, tokens[:, :-1])


def test_logit_difference_by_hand():
    logits = torch.tensor([[1.0, 5.0, 2.0], [0.0, -1.0, 3.0]])
    diff = logit_difference(logits, torch.tensor([1, 2]), torch.tensor([2, 1]))
    assert diff.tolist() == [3.0, 4.0]
    with pytest.raises(ValueError, match="answer position"):
        logit_difference(logits[None], torch.tensor([1, 2]), torch.tensor([2, 1]))


# ---- sweep results ----------------------------------------------------------------------

def result():
    values = torch.tensor([[1.0, 3.0, float("nan")], [5.0, 7.0, 2.0]])
    return SweepResult(values, ("layer", "head"), {"layer": [2, 3], "head": [0, 1, 2]},
                       clean=5.0, corrupted=1.0)


def test_score_relative_and_drop_by_hand():
    r = result()
    assert normalised_score(torch.tensor([1.0, 3.0, 5.0, 7.0]), 5.0, 1.0).tolist() == \
        [0.0, 0.5, 1.0, 1.5]
    assert r.score[1].tolist() == [1.0, 1.5, 0.25]
    assert r.relative[1].tolist() == pytest.approx([0.0, 0.4, -0.6])
    assert r.drop[0, :2].tolist() == pytest.approx([0.8, 0.4])
    assert r.head_grid("score")[0, 1].item() == 0.5
    with pytest.raises(ValueError, match="clean metric is 0"):
        _ = SweepResult(r.values, r.axes, r.coords, clean=0.0, corrupted=1.0).relative


def test_top_cells_select_and_heads():
    r = result()
    assert r.top(2) == [{"layer": 3, "head": 1, "value": 7.0}, {"layer": 3, "head": 0, "value": 5.0}]
    assert r.top(2, largest=False) == [{"layer": 2, "head": 0, "value": 1.0},
                                       {"layer": 3, "head": 2, "value": 2.0}]
    assert len(r.top(10)) == 5  # the NaN cell is skipped
    assert r.select(layer=3, head=2).item() == 2.0
    assert r.select(head=1).tolist() == [3.0, 7.0]
    assert r.top_heads(2) == [Head(0, 0), Head(1, 2)]  # largest drop = smallest value
    with pytest.raises(KeyError, match="unknown axes"):
        r.select(pos=1)
    line = SweepResult(torch.zeros(3), ("layer",), {"layer": [0, 1, 2]}, 1.0, 0.0)
    with pytest.raises(ValueError, match="not \\('layer', 'head'\\)"):
        line.top_heads(1)


# ---- heads ------------------------------------------------------------------------------

def test_heads_above_is_strict_and_takes_lists():
    grid = [[0.5, 0.2], [0.9, 0.5]]
    assert heads_above(grid, 0.5) == [Head(1, 0)]  # equal to the threshold: not above
    assert heads_above(torch.tensor(grid), 0.4) == [Head(0, 0), Head(1, 0), Head(1, 1)]
    assert top_heads(grid, 1) == [Head(1, 0)]


def test_all_heads_and_check_heads_count_back():
    model = SimpleNamespace(cfg=SimpleNamespace(n_layers=3, n_heads=2), tokenizer=None,
                            run_with_hooks=None)  # passes check_model
    assert all_heads(model) == [Head(0, 0), Head(0, 1), Head(1, 0), Head(1, 1), Head(2, 0),
                                Head(2, 1)]
    assert check_heads(model, [(-1, -2), (0, 1)]) == [Head(2, 0), Head(0, 1)]
    with pytest.raises(IndexError, match="layer 3 is out of range"):
        check_heads(model, [(3, 0)])
    with pytest.raises(IndexError, match="head -3 is out of range"):
        check_heads(model, [(0, -3)])
    with pytest.raises(ValueError, match="single pair"):
        check_heads(model, (0, 1))


def test_logits_at_positions_unembeds_one_position_per_prompt_of_every_copy():
    from mi_helpers.core.metrics import logits_at_positions

    x = torch.randn(6, 5, 4)  # two copies of a batch of 3
    unembed = torch.nn.Linear(4, 7)
    positions = torch.tensor([4, 0, 2])
    with torch.no_grad():
        out = logits_at_positions(x, positions, unembed)
        full = unembed(x)
    rows, where = torch.arange(6), positions.repeat(2)
    assert torch.allclose(out[rows, where], full[rows, where])
    assert out.isnan().sum() == out.numel() - 6 * 7
    with pytest.raises(ValueError, match="not copies of a batch of 4"):
        logits_at_positions(x, torch.tensor([0, 1, 2, 3]), unembed)
