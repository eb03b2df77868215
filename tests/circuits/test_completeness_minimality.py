"""Faithfulness, completeness and minimality on a stub evaluator whose F(S) is known.

The stub replaces the model runs by a set function ``F``, so every point can be checked
by hand: the greedy search of :func:`completeness` must take the *largest* gap at each
step, and :func:`minimality` the *largest* change over the subsets it tries.
"""

import itertools
import math
import random
from types import SimpleNamespace

import pytest

from mi_helpers.circuits.evaluation import (CircuitEvaluator, Faithfulness, _heads,
                                            completeness, faithfulness, minimality)
from mi_helpers.core.graph import Circuit, CircuitGraph
from mi_helpers.core.heads import Head, all_heads


class StubEvaluator(CircuitEvaluator):
    """A :class:`CircuitEvaluator` whose ``score(kept)`` is ``F(frozenset(kept))``."""

    def __init__(self, F, n_layers=2, n_heads=3):
        self.model = SimpleNamespace(cfg=SimpleNamespace(n_layers=n_layers, n_heads=n_heads),
                                     tokenizer=None, run_with_hooks=None)  # passes check_model
        self.F, self.calls = F, []
        self.all_heads = all_heads(self.model)
        self.full = self.score(self.all_heads)
        self.empty = self.score([])

    def score(self, kept):
        kept = frozenset(_heads(self.model, kept))  # heads or a Circuit, as the real one
        self.calls.append(kept)
        return self.F(kept)


def random_set_function(heads, seed=0):
    """A different, arbitrary value for every subset of ``heads`` (no ties)."""
    rng = random.Random(seed)
    table = {frozenset(s): rng.uniform(-3, 3) for r in range(len(heads) + 1)
             for s in itertools.combinations(heads, r)}
    return table.__getitem__


CIRCUIT = [Head(0, 0), Head(0, 2), Head(1, 1)]


def test_faithfulness_is_circuit_over_model():
    ev = StubEvaluator(lambda s: 1.0 + 2.0 * len(s))  # F(M) = 13, F(empty) = 1
    f = faithfulness(ev, CIRCUIT)
    assert (f.full, f.circuit, f.empty) == (13.0, 7.0, 1.0)
    assert f.ratio == pytest.approx(7 / 13) and f.normalised == pytest.approx(0.5)
    assert math.isnan(Faithfulness(0.0, 1.0, 0.0).ratio)
    assert math.isnan(Faithfulness(2.0, 1.0, 2.0).normalised)
    graph = CircuitGraph(2, 3)
    assert faithfulness(ev, Circuit.from_heads(graph, CIRCUIT)).circuit == 7.0


def test_completeness_points_and_greedy_takes_the_largest_gap():
    ev = StubEvaluator(random_set_function(all_heads(StubEvaluator(lambda s: 0.0).model)))
    everything, circuit = set(ev.all_heads), set(CIRCUIT)

    def gap(removed):
        return abs(ev.F(frozenset(circuit - removed)) - ev.F(frozenset(everything - removed)))

    ev.calls.clear()
    points = completeness(ev, CIRCUIT + CIRCUIT[:1], n_random=6, greedy_steps=3, seed=1)
    assert [p.kind for p in points] == ["empty"] + ["random"] * 6 + ["greedy"] * 3
    assert len(ev.calls) == 2 * (1 + 6 + 3 + 2 + 1)  # each point is two runs
    for p in points:
        removed = set(p.removed)
        assert removed <= circuit
        assert p.circuit == ev.F(frozenset(circuit - removed))
        assert p.full == ev.F(frozenset(everything - removed))
        assert p.gap == pytest.approx(gap(removed))
    assert points[0].removed == ()
    removed = set()
    for step, p in enumerate(points[-3:], start=1):  # greedy: the best head to add each time
        best = max((h for h in circuit - removed), key=lambda h: gap(removed | {h}))
        removed |= {best}
        assert set(p.removed) == removed and len(p.removed) == step
    gaps = {h: gap({h}) for h in circuit}
    assert min(gaps.values()) < max(gaps.values()) - 0.1  # the first step has a real choice


def test_random_subsets_hold_each_head_half_the_time():
    ev = StubEvaluator(lambda s: float(len(s)))
    points = completeness(ev, CIRCUIT, n_random=400, greedy_steps=0, seed=0)
    counts = [sum(h in p.removed for p in points[1:]) for h in CIRCUIT]
    assert all(160 < c < 240 for c in counts), counts


def test_minimality_takes_the_largest_change_over_subsets():
    a, b, c, d = CIRCUIT + [Head(1, 2)]
    circuit = [a, b, c, d]

    def F(kept):
        # a and b back each other up (either is enough); c adds 0.3; d does nothing
        return 1.0 * (a in kept or b in kept) + 0.3 * (c in kept)

    ev = StubEvaluator(F)
    mins = minimality(ev, circuit, n_random=20, seed=0)
    # removing a alone changes nothing (b takes over), but with b removed it costs 1:
    # the largest change over the subsets tried is 1, the smallest would be 0
    assert mins == pytest.approx({a: 1.0, b: 1.0, c: 0.3, d: 0.0})
    assert set(mins) == set(circuit)
    assert frozenset(circuit) in ev.calls and frozenset([b, c, d]) in ev.calls  # K empty
    assert len(ev.calls) == 2 + 4 * 2 * (1 + 20)  # full and empty, then 2 F per K per head


def test_minimality_needs_random_subsets_with_some_heads_in_and_some_out():
    """v matters only while u runs and w does not: neither K empty nor K = every other
    head shows it, only random subsets that hold w but not u."""
    v, u, w = CIRCUIT
    ev = StubEvaluator(lambda kept: float(v in kept and u in kept and w not in kept))
    assert minimality(ev, [w, u, v, u], n_random=20, seed=1)[v] == 1.0  # duplicates, any order
    graph = CircuitGraph(2, 3)
    assert minimality(ev, Circuit.from_heads(graph, CIRCUIT), n_random=20, seed=1)[v] == 1.0
    points = completeness(ev, Circuit.from_heads(graph, CIRCUIT), n_random=2, greedy_steps=1)
    assert [p.kind for p in points] == ["empty", "random", "random", "greedy"]


def test_a_circuit_runs_with_every_other_head_mean_ablated(tiny_model):
    """F(S) on a real model: heads outside S (and circuit heads outside their positions)
    get their mean ``z``; checked against plain hooks."""
    import torch

    from mi_helpers.circuits.ablation import head_means

    tokens = tiny_model.to_tokens(["Mary likes the cat", "John sees a dog"])
    reference = tiny_model.to_tokens(["Anna likes a bird", "Bob sees the cat"])
    means = head_means(tiny_model, reference)
    def metric(logits):
        return logits[:, -1, :50].std(-1).mean()

    last = torch.tensor([tokens.shape[1] - 1, 2])
    ev = CircuitEvaluator(tiny_model, tokens, metric, means, positions={(1, 2): last})
    kept = {0: [1], 1: [2, 3]}

    def by_hand(z, hook, layer):
        out = means[hook.name].expand_as(z).clone()
        for head in kept[layer]:
            if (layer, head) == (1, 2):
                rows = torch.arange(2)
                out[rows, last, head] = z[rows, last, head]
            else:
                out[:, :, head] = z[:, :, head]
        return out

    from functools import partial
    hooks = [(f"blocks.{layer}.attn.hook_z", partial(by_hand, layer=layer)) for layer in (0, 1)]
    with torch.no_grad():
        expected = metric(tiny_model.run_with_hooks(tokens, fwd_hooks=hooks)).item()
        plain = metric(tiny_model(tokens)).item()
    assert ev.score([(0, 1), (1, 2), (1, 3)]) == pytest.approx(expected, abs=1e-6)
    assert abs(expected - plain) > 1e-4 and abs(expected - ev.empty) > 1e-4  # small model
    assert ev.without([(0, 1), (1, 2), (1, 3), (0, 0)], [(0, 0)]) == pytest.approx(expected,
                                                                                abs=1e-6)


def test_random_head_sets_sample_the_listed_sets_or_draw_them_directly():
    from mi_helpers.circuits.evaluation import random_head_sets

    heads = [Head(layer, head) for layer in range(2) for head in range(8)]
    listed = random_head_sets(heads, 3, 60, seed=4)
    assert listed == random.Random(4).sample(list(itertools.combinations(heads, 3)), 60)
    assert random_head_sets(heads[:4], 3, 60) and len(random_head_sets(heads[:4], 3, 60)) == 4
    many = [Head(layer, head) for layer in range(12) for head in range(12)]  # gpt2's 144
    assert math.comb(144, 8) > 10**12
    drawn = random_head_sets(many, 8, 60, seed=0)
    assert len(drawn) == len(set(drawn)) == 60
    assert all(len(set(s)) == 8 and list(s) == sorted(s) for s in drawn)
    assert drawn == random_head_sets(many, 8, 60, seed=0) != random_head_sets(many, 8, 60, seed=1)
    assert {h.layer for s in drawn for h in s} == set(range(12))  # spread over the model
    with pytest.raises(ValueError, match="size"):
        random_head_sets(heads, 17, 5)
    with pytest.raises(ValueError):
        random_head_sets(heads, 2, 0)
