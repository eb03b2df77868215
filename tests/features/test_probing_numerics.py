"""Probing numbers by hand: undefined metrics, thresholds found by brute force, stratified split sizes, effect sizes from a second formula and the logistic fit
checked by its optimality condition."""

import math

import pytest
import torch
import torch.nn.functional as F

from mi_helpers.features.probing import (Probe, best_dims, binary_metrics, check_labels,
                                         fit_probe, probe_with_control, split_indices,
                                         train_probe, tune_threshold)


def test_metrics_without_predicted_positives_are_zero_not_nan():
    none = binary_metrics(torch.zeros(4, dtype=torch.bool), torch.tensor([1, 0, 1, 0]))
    assert none == {"f1": 0.0, "precision": 0.0, "recall": 0.0, "accuracy": 0.5}
    empty = binary_metrics(torch.zeros(3, dtype=torch.bool), torch.zeros(3, dtype=torch.long))
    assert empty == {"f1": 0.0, "precision": 0.0, "recall": 0.0, "accuracy": 1.0}
    one = binary_metrics(torch.tensor([True, False]), torch.tensor([1, 1]))
    assert one["precision"] == 1.0 and one["recall"] == 0.5
    one = binary_metrics(torch.tensor([True, True]), torch.tensor([1, 0]))
    assert one["precision"] == 0.5 and one["recall"] == 1.0


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


@pytest.mark.parametrize("sizes, fractions, expected", [
    ((4,), (0.6, 0.2, 0.2), (2, 1, 1)),
    ((3,), (0.1, 0.45, 0.45), (1, 1, 1)),  # every split gets one, however small its share
    ((5,), (0.2, 0.7, 0.1), (1, 3, 1)),  # the test split keeps one
    ((5,), (0.6, 0.0, 0.4), (3, 1, 1)),
])
def test_split_sizes_per_class_by_hand(sizes, fractions, expected):
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(sizes)] + [torch.full((9,), 9)])
    parts = split_indices(labels, fractions)
    assert tuple(int((labels[p] == 0).sum()) for p in parts) == expected


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
    with pytest.raises(ValueError, match="at least 3"):  # any class, not only binary labels
        split_indices(torch.tensor([0] * 5 + [1] * 5 + [2] * 2))


def test_best_dims_rank_by_effect_size_not_mean_difference():
    """Unequal classes with unequal spreads, offsets and a constant dimension: a raw mean
    difference, an uncentred or one-class spread, or per-class means of squares all give
    another order than the pooled effect size."""
    gen = torch.Generator().manual_seed(1)
    labels = torch.cat([torch.ones(100), torch.zeros(200)]).long()
    z, one = torch.randn(300, 6, generator=gen), labels == 1
    acts = torch.stack([
        10 * z[:, 0] + 50 + 4.0 * labels,  # far from zero; the largest raw difference
        z[:, 1] + 1.5 * labels,
        torch.where(one, 3 * z[:, 2] + 1.0, 0.5 * z[:, 2]),  # spread mostly in class 1
        torch.where(one, 0.5 * z[:, 3] + 0.6, 3 * z[:, 3]),  # spread mostly in class 0
        torch.full((300,), 7.0),  # never varies: effect 0, never chosen first
        z[:, 5] - 0.82 * labels,  # negative shifts count by their size
    ], dim=1)
    ones, zeros = acts[one], acts[~one]
    pooled = ((ones.var(0) * (len(ones) - 1) + zeros.var(0) * (len(zeros) - 1))
              / (len(acts) - 2)).sqrt()
    effect = (ones.mean(0) - zeros.mean(0)).abs() / pooled.clamp_min(1e-8)
    assert effect.argsort(descending=True).tolist() == [1, 2, 5, 0, 3, 4]
    assert best_dims(acts, labels, 6).tolist() == [1, 2, 5, 0, 3, 4]
    assert best_dims(acts, labels, 2).tolist() == [1, 2]
    assert best_dims(acts, labels.bool(), 1).tolist() == [1]


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


def test_probe_on_doubles_and_a_constant_dimension():
    gen = torch.Generator().manual_seed(4)
    labels = torch.randint(0, 2, (80,), generator=gen)
    acts = torch.randn(80, 3, generator=gen, dtype=torch.float64)
    acts[:, 0] += 2 * labels
    acts[:, 2] = 5.0  # never varies
    probe = fit_probe(acts, labels)
    # the probe follows its activations' dtype (a float64 model gets float64 probes)
    assert probe.direction.dtype == torch.float64 and torch.isfinite(probe.direction).all()
    assert probe.direction[2] == 0 and probe.direction[0] > 0


def test_train_probe_fits_on_train_tunes_on_validation_scores_on_test():
    gen = torch.Generator().manual_seed(5)
    labels = (torch.rand(300, generator=gen) < 0.25).long()  # few positives: threshold != 0
    acts = torch.randn(300, 4, generator=gen)
    acts[:, 1] += 1.2 * labels
    splits = split_indices(labels, seed=2)
    train, val, test = splits
    probe, metrics = train_probe(acts, labels, splits, n_dims=2)
    expected = tune_threshold(fit_probe(acts[train], labels[train], n_dims=2), acts[val],
                              labels[val])
    assert probe.threshold == pytest.approx(expected.threshold) and expected.threshold != 0
    assert torch.allclose(probe.direction, expected.direction)
    assert metrics == pytest.approx(binary_metrics(expected.predict(acts[test]), labels[test]))
    assert metrics["precision"] != pytest.approx(metrics["recall"])
    assert train_probe(acts, labels, seed=2)[1] == pytest.approx(
        train_probe(acts, labels, splits)[1])  # the default split is split_indices(seed)


def test_control_is_the_same_probe_on_shuffled_labels():
    gen = torch.Generator().manual_seed(6)
    labels = torch.randint(0, 2, (150,), generator=gen)
    acts = torch.randn(150, 5, generator=gen)
    acts[:, 3] += 2 * labels
    row = probe_with_control(acts, labels, n_dims=1, seed=4)
    assert len(row["probe"].dims) == 1
    splits = split_indices(labels, seed=4)
    shuffled = labels[torch.randperm(150, generator=torch.Generator().manual_seed(5))]
    _, control = train_probe(acts, shuffled, splits, n_dims=1)
    assert {m: row[f"control_{m}"] for m in control} == pytest.approx(control)
    _, dense = train_probe(acts, shuffled, splits)
    assert dense != pytest.approx(control)  # so the control's n_dims shows


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
    assert check_labels([1, 0, 1], 3).tolist() == [1, 0, 1]  # a list is fine
    assert check_labels(torch.tensor([1.0, 0.0]), 2).dtype == torch.long
    with pytest.raises(ValueError, match=r"exactly 0 or 1, got the values \[0.5\]"):
        check_labels(torch.tensor([0.0, 0.5, 1.0]), 3)


def test_group_splits_hold_out_whole_groups():
    """The held-out groups' rows are exactly the test split; the other 30 rows (15 per
    class) split per class 9 / 3 + 3 for val_fraction 0.4: 18 train and 12 validation."""
    from mi_helpers.features.probing import group_splits
    groups = ["a", "b", "c", "d"] * 10
    labels = (torch.arange(40) // 4) % 2  # both classes in every group
    train, val, test = group_splits(groups, labels, {"b"}, val_fraction=0.4, seed=0)
    rest = [i for i, g in enumerate(groups) if g != "b"]
    assert test.tolist() == [i for i, g in enumerate(groups) if g == "b"]
    assert sorted(train.tolist() + val.tolist()) == rest
    assert train.tolist() == sorted(train.tolist()) and val.tolist() == sorted(val.tolist())
    assert (len(train), len(val)) == (18, 12)
    assert int(labels[train].sum()) == 9 and int(labels[val].sum()) == 6


def test_half_precision_activations_are_fitted_in_float32():
    """A float16 model's activations give the probe fitted on their float32 values."""
    from mi_helpers.features.probing import fit_probe
    gen = torch.Generator().manual_seed(5)
    acts = torch.randn(80, 3, generator=gen).half()
    labels = (acts[:, 0].float() + 0.5 * acts[:, 1].float() > 0).long()
    half, single = fit_probe(acts, labels), fit_probe(acts.float(), labels)
    assert half.direction.dtype == torch.float32
    assert torch.allclose(half.direction, single.direction, atol=1e-5)
    assert half.bias == pytest.approx(single.bias, abs=1e-5)
