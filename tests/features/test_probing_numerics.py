"""Probing numbers by hand: undefined metrics, thresholds found by brute force, stratified split sizes, effect sizes from a second formula and the logistic fit
checked by its optimality condition."""

import math

import pytest
import torch
import torch.nn.functional as F

from mi_helpers.features.probing import (Probe, best_dims, binary_metrics, check_labels,
                                         fit_probe, probe_with_control, split_indices,
                                         tune_threshold)


def test_metrics_without_predicted_positives_are_zero_not_nan():
    none = binary_metrics(torch.zeros(4, dtype=torch.bool), torch.tensor([1, 0, 1, 0]))
    assert none == {"f1": 0.0, "precision": 0.0, "recall": 0.0, "accuracy": 0.5}


def threshold_of(scores, labels):
    probe = Probe(direction=torch.ones(1), bias=0.0)
    return tune_threshold(probe, torch.tensor(scores)[:, None], torch.tensor(labels)).threshold


def test_threshold_by_hand():
    # top 4 called positive: tp 3, fp 1, fn 0 -> F1 6/7, the best; cut between 0.5 and -1
    assert threshold_of([3.0, 2.0, 1.0, 0.5, -1.0, -2.0], [1, 0, 1, 1, 0, 0]) == -0.25
    # the best cut inside a tie (after the first 1.0) is not allowed: the next cut is best
    assert threshold_of([2.0, 1.0, 1.0, 0.0], [1, 1, 0, 0]) == 0.5
    # calling everything positive is best: the threshold is -inf
    assert threshold_of([3.0, 2.0, 1.0], [1, 0, 1]) == -math.inf
    assert Probe(torch.ones(1), 0.0, threshold=1.0).predict(torch.tensor([[1.0], [0.9]])).tolist() \
        == [True, False]


def test_tuned_threshold_maximises_f1_by_brute_force():
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        scores = torch.randint(-4, 5, (40,), generator=gen).float()  # many ties
        labels = (scores + 3 * torch.randn(40, generator=gen) > 0).long()
        probe = tune_threshold(Probe(torch.ones(1), 0.0), scores[:, None], labels)
        achieved = binary_metrics(probe.predict(scores[:, None]), labels)["f1"]
        cuts = torch.cat([scores.unique() - 0.5, torch.tensor([scores.max() + 1])])
        best = max(binary_metrics(scores >= c, labels)["f1"] for c in cuts)
        assert achieved == pytest.approx(best)
        if probe.threshold > -math.inf:  # halfway between the scores either side of the cut
            above, below = scores[scores >= probe.threshold], scores[scores < probe.threshold]
            assert probe.threshold == (above.min() + below.max()).item() / 2


def test_stratified_split_sizes_and_seeds():
    labels = torch.tensor([0] * 20 + [1] * 8)
    train, val, test = split_indices(labels, fractions=(0.5, 0.25, 0.25), seed=3)
    assert sorted(torch.cat([train, val, test]).tolist()) == list(range(28))
    assert [int(labels[s].sum()) for s in (train, val, test)] == [4, 2, 2]
    assert [len(s) for s in (train, val, test)] == [14, 7, 7]
    again = split_indices(labels, fractions=(0.5, 0.25, 0.25), seed=3)
    other = split_indices(labels, fractions=(0.5, 0.25, 0.25), seed=4)
    assert all(torch.equal(a, b) for a, b in zip(again, (train, val, test)))
    assert not torch.equal(other[0], train)
    tiny = split_indices(torch.tensor([0, 0, 0, 1, 1, 1]))  # 3 per class: one in each split
    assert [len(s) for s in tiny] == [2, 2, 2]
    with pytest.raises(ValueError, match="at least 3"):
        split_indices(torch.tensor([0, 0, 0, 1, 1]))


def test_best_dims_rank_by_effect_size_not_mean_difference():
    gen = torch.Generator().manual_seed(1)
    labels = torch.arange(300) % 2
    acts = torch.randn(300, 6, generator=gen)
    acts[:, 0] = acts[:, 0] * 10 + 4.0 * labels  # big difference, bigger spread
    acts[:, 1] += 1.5 * labels
    acts[:, 2] -= 0.8 * labels  # negative shifts count by their size
    acts[:, 3] = acts[:, 3] * 0.2 + 0.3 * labels  # small difference, tiny spread
    ones, zeros = acts[labels == 1], acts[labels == 0]
    pooled = ((ones.var(0) * (len(ones) - 1) + zeros.var(0) * (len(zeros) - 1))
              / (len(acts) - 2)).sqrt()
    effect = (ones.mean(0) - zeros.mean(0)).abs() / pooled
    order = effect.argsort(descending=True)
    assert best_dims(acts, labels, 6).tolist() == order.tolist()
    assert best_dims(acts, labels, 3).tolist() == order[:3].tolist()
    assert set(order[:2].tolist()) == {1, 3}  # not dim 0, the largest raw difference


def standardised_gradient(probe, acts, labels, l2):
    """Gradient of the fitted objective (mean BCE + l2/2 |w|^2 on standardised features)
    at the probe's weights, mapped back to the standardised space."""
    dims = torch.arange(acts.shape[1]) if probe.dims is None else probe.dims
    x = acts[:, dims]
    mean, std = x.mean(0), x.std(0)
    w = (probe.direction[dims] * std).requires_grad_()
    b = torch.tensor(probe.bias + (mean * probe.direction[dims]).sum().item(), requires_grad=True)
    logits = ((x - mean) / std) @ w + b
    assert torch.allclose(logits, probe.score(acts), atol=1e-4)  # the same affine map
    loss = F.binary_cross_entropy_with_logits(logits, labels.float()) + 0.5 * l2 * w.pow(2).sum()
    loss.backward()
    return torch.cat([w.grad, b.grad[None]])


@pytest.mark.parametrize("n_dims", [None, 2])
def test_fitted_probe_is_the_penalised_optimum(n_dims):
    gen = torch.Generator().manual_seed(2)
    labels = torch.randint(0, 2, (200,), generator=gen)
    acts = 2 * torch.randn(200, 5, generator=gen) + torch.tensor([1.0, -2.0, 0.0, 3.0, 0.5])
    acts[:, 1] += 1.2 * labels
    acts[:, 3] -= 0.7 * labels
    probe = fit_probe(acts, labels, n_dims=n_dims, l2=0.1)
    assert standardised_gradient(probe, acts, labels, 0.1).abs().max() < 1e-3
    if n_dims is not None:
        assert set(probe.dims.tolist()) == {1, 3}
        assert probe.direction[[0, 2, 4]].abs().max() == 0
    assert probe.direction[1] > 0 > probe.direction[3]


def test_selectivity_is_real_minus_control_and_labels_are_checked():
    gen = torch.Generator().manual_seed(3)
    labels = torch.randint(0, 2, (120,), generator=gen)
    acts = torch.randn(120, 4, generator=gen)
    acts[:, 0] += 3 * labels
    row = probe_with_control(acts, labels)
    for m in ("f1", "precision", "recall", "accuracy"):
        assert row[f"selectivity_{m}"] == pytest.approx(row[m] - row[f"control_{m}"])
    assert row["accuracy"] > 0.85 and row["control_accuracy"] < 0.75
    assert check_labels(torch.tensor([True, False]), 2).tolist() == [1, 0]
    assert check_labels(torch.tensor([1.0, 0.0]), 2).dtype == torch.long
    with pytest.raises(ValueError, match=r"exactly 0 or 1, got the values \[0.5\]"):
        check_labels(torch.tensor([0.0, 0.5, 1.0]), 3)
