"""Explanation scores by hand: Pearson against torch, simulation over top *and* random
contexts, detection as a balanced accuracy with unequal rates, and the quiet-context cut."""

import math

import pytest
import torch

from mi_helpers.features.autointerp import (ActivationContext, Explanation, TokenSimulator,
                                            detection_score, score_explanation,
                                            simulation_score)
from mi_helpers.features.autointerp.scoring import pearson

NAMED = Explanation('fires on "Mary"', [" Mary"], "tokens")


def ctx(tokens, acts):
    return ActivationContext(tokens.split("|"), acts)


def test_pearson_agrees_with_torch():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(30, generator=gen, dtype=torch.float64)
    y = -2 * x + torch.randn(30, generator=gen, dtype=torch.float64) + 5
    expected = torch.corrcoef(torch.stack([x, y]))[0, 1].item()
    assert pearson(x.tolist(), y.tolist()) == pytest.approx(expected, rel=1e-9)
    assert expected < -0.5
    assert pearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) == 0.0
    assert pearson([1.0, 2.0], [1.0, 1.0]) == 0.0 and pearson([1.0], [2.0]) == 0.0
    assert pearson([1.0, 2.0], [3.0, 1.0]) == pytest.approx(-1.0)  # two points: a line
    with pytest.raises(ValueError, match="3 values with 2"):
        pearson([1.0, 2.0, 3.0], [1.0, 2.0])


def test_simulation_correlates_over_every_token_of_every_context():
    top = [ctx(" Mary| went| home", [3.0, 0.0, 0.5]), ctx(" the| Mary", [0.2, 4.0])]
    rand = [ctx(" a| dog", [0.0, 1.0]), ctx(" Mary| ran", [0.0, 0.0])]
    predicted = [1, 0, 0, 0, 1, 0, 0, 1, 0]
    true = [3.0, 0.0, 0.5, 0.2, 4.0, 0.0, 1.0, 0.0, 0.0]
    expected = pearson(predicted, true)
    assert simulation_score(NAMED, top + rand) == pytest.approx(expected)
    assert simulation_score(NAMED, top) == pytest.approx(pearson([1, 0, 0, 0, 1], true[:5]))
    scores = score_explanation(NAMED, top, rand)
    assert scores["simulation"] == pytest.approx(expected)  # top and random together
    assert abs(expected - simulation_score(NAMED, top)) > 0.1


def test_detection_is_a_balanced_accuracy():
    activating = [ctx(" Mary| a", [2.0, 0.0]), ctx(" b| Mary", [0.0, 1.0]), ctx(" c", [1.0]),
                  ctx(" Mary", [1.0])]  # 3 of 4 hits
    quiet = [ctx(" Mary", [0.0])] + [ctx(" d| e", [0.0, 0.0]) for _ in range(4)]  # 1 of 5 alarms
    assert detection_score(NAMED, activating, quiet) == pytest.approx(0.5 * (3 / 4 + 4 / 5))


def test_quiet_contexts_are_at_most_a_share_of_the_top():
    top = [ctx(" Mary| x", [10.0, 0.0]), ctx(" y| Mary", [0.0, 8.0])]
    rand = [ctx(" Mary", [1.0]),  # exactly 0.1 x 10: quiet, and a false alarm
            ctx(" Mary", [1.5]),  # above the cut: not a negative
            ctx(" z", [0.5])]  # quiet, correctly rejected
    scores = score_explanation(NAMED, top, rand, inactive_fraction=0.1)
    assert scores["detection"] == pytest.approx(0.5 * (1 + 1 / 2))
    only_loud = score_explanation(NAMED, top, rand[1:2])
    assert math.isnan(only_loud["detection"])
    negative = [ctx(" Mary", [-2.0]), ctx(" w", [-1.0])]  # a unit that never exceeds 0
    rand = [ctx(" w", [0.5]), ctx(" Mary", [0.0])]
    assert score_explanation(NAMED, negative, rand)["detection"] == \
        pytest.approx(0.5 * (1 / 2 + 0))  # the cut is 0: only the 0.0 context is quiet


def test_simulator_bigrams_need_the_previous_token():
    bigram = Explanation('" York" after " New"', [" York"], "tokens", previous={" York": " New"})
    tokens = [" York", " New", " York", " old", " York", " New"]  # nothing before the first
    assert TokenSimulator().predict(bigram, tokens) == [0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    both = Explanation("x", [" York", " York"], "tokens", previous={" York": " New"})
    assert TokenSimulator().predict(both, tokens) == [0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    assert TokenSimulator().predict(bigram, [" New", " York"]) == [0.0, 1.0]
