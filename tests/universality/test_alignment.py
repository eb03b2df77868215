"""Matching and alignment numbers against second formulas: best matches by signed
correlation, least-squares maps on data with offsets (centring matters), R^2 by hand,
and where a unit fires in another model's space."""

import pytest
import torch

from mi_helpers.universality import (
    best_matches,
    fraction_above,
    latent_centroids,
    map_quality,
    mapped_direction_similarity,
    recurring_heads,
    residual_map,
)


def test_best_match_is_the_largest_signed_correlation():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(500, 2, generator=gen)
    b = torch.stack([-a[:, 0], 0.6 * a[:, 0] + 0.8 * torch.randn(500, generator=gen),
                     a[:, 1] * 2 + 3], dim=1)
    best, index = best_matches(a, b)
    assert index.tolist() == [1, 2]  # not unit 0, anti-correlated with a[:, 0]
    corr = torch.corrcoef(torch.cat([a, b], 1).T)[:2, 2:]
    assert torch.allclose(best, corr.max(dim=1).values, atol=1e-5)
    assert fraction_above(torch.tensor([0.5, 0.7, 0.9, 0.2]), 0.7) == 0.25  # strictly above


def test_constant_units_correlate_zero_on_either_side():
    from mi_helpers.universality import correlation_matrix
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(50, 2, generator=gen)
    corr = correlation_matrix(x, torch.cat([x, torch.full((50, 1), 3.0)], 1))
    assert torch.isfinite(corr).all() and (corr[:, 2] == 0).all()
    assert torch.allclose(corr[:, :2], torch.corrcoef(x.T), atol=1e-5)


def test_neuron_hooks_and_shared_activations(tiny_model):
    from mi_helpers.universality import neuron_hooks, shared_activations
    assert neuron_hooks(tiny_model) == ["blocks.0.mlp.hook_post", "blocks.1.mlp.hook_post"]
    assert neuron_hooks(tiny_model, [1]) == ["blocks.1.mlp.hook_post"]
    tokens = tiny_model.to_tokens(["Mary likes the cat", "John likes the dog"])
    hook = "blocks.1.hook_resid_post"
    a, b = shared_activations(tiny_model, tiny_model, tokens, hook, batch_size=1)
    assert a.shape == (2 * 4, 32) and torch.equal(a, b)
    with_bos, _ = shared_activations(tiny_model, tiny_model, tokens, hook, drop_bos=False)
    assert with_bos.shape == (2 * 5, 32)
    _, cache = tiny_model.run_with_cache(tokens)
    assert torch.allclose(a, cache[hook][:, 1:].reshape(-1, 32), atol=1e-5)


def test_tokenizer_mismatch_names_examples():
    from types import SimpleNamespace

    from mi_helpers.universality import check_same_tokenizer

    def model(vocab):
        return SimpleNamespace(tokenizer=SimpleNamespace(get_vocab=lambda: vocab))

    a = model({"a": 0, "b": 1, **{f"x{i}": 10 + i for i in range(7)}})
    b = model({"a": 0, "b": 2, "z": 3})
    with pytest.raises(ValueError) as info:
        check_same_tokenizer(a, b)
    message = str(info.value)
    assert "only in A: ['x0', 'x1', 'x2', 'x3', 'x4']" in message  # five examples
    assert "other ids: ['b']" in message
    c = model({"a": 0, "b": 1, **{f"x{i}": 30 + i for i in range(7)}})
    with pytest.raises(ValueError, match=r"other ids: \['x0', 'x1', 'x2', 'x3', 'x4'\]\)"):
        check_same_tokenizer(a, c)
    check_same_tokenizer(a, a)


def test_residual_map_recovers_a_map_despite_offsets():
    gen = torch.Generator().manual_seed(1)
    resid_a = torch.randn(1000, 6, generator=gen) + 10 * torch.randn(6, generator=gen)
    true_map = torch.randn(6, 4, generator=gen)
    resid_b = resid_a @ true_map + 7 * torch.randn(4, generator=gen)
    mapping = residual_map(resid_a, resid_b, method="lstsq")
    assert mapping.shape == (6, 4) and torch.allclose(mapping, true_map, atol=1e-3)
    assert map_quality(resid_a, resid_b, mapping) == pytest.approx(1.0, abs=1e-6)
    ridge = residual_map(resid_a, resid_b)  # the default: shrunk by its penalty, 1% here
    assert torch.allclose(ridge, true_map, rtol=0.03, atol=0.01)
    assert not torch.allclose(ridge, true_map, atol=1e-3)
    assert map_quality(resid_a, resid_b, ridge) > 0.999


def test_ridge_map_is_penalised_least_squares_and_procrustes_recovers_a_rotation():
    """Ridge = least squares on A stacked with sqrt(penalty) x I against B stacked with zeros
    (a second formula), penalty = ridge x the mean of diag(A^T A); Procrustes recovers a
    planted rotation whatever the two streams' scales and offsets."""
    gen = torch.Generator().manual_seed(3)
    resid_a = torch.randn(60, 4, generator=gen) * torch.tensor([1.0, 2.0, 0.1, 3.0]) + 5
    resid_b = resid_a @ torch.randn(4, 3, generator=gen) + torch.randn(60, 3, generator=gen)
    a = (resid_a - resid_a.mean(0)).double()
    b = (resid_b - resid_b.mean(0)).double()
    penalty = 0.1 * (a ** 2).sum(0).mean()
    stacked = torch.linalg.lstsq(torch.cat([a, penalty.sqrt() * torch.eye(4, dtype=a.dtype)]),
                                 torch.cat([b, torch.zeros(4, 3, dtype=b.dtype)])).solution
    ridge = residual_map(resid_a, resid_b, ridge=0.1)
    assert torch.allclose(ridge, stacked.float(), atol=1e-5)
    assert not torch.allclose(ridge, residual_map(resid_a, resid_b, method="lstsq"), atol=1e-2)
    rotation = torch.linalg.qr(torch.randn(4, 4, generator=gen)).Q
    rotated = 3 * resid_a @ rotation - 2
    procrustes = residual_map(resid_a, rotated, method="procrustes")
    assert torch.allclose(procrustes, rotation, atol=1e-5)
    assert map_quality(resid_a, rotated, procrustes) == pytest.approx(1.0, abs=1e-6)


def test_map_quality_is_r_squared_on_centred_data():
    gen = torch.Generator().manual_seed(2)
    resid_a = torch.randn(400, 3, generator=gen) + 5
    resid_b = resid_a @ torch.randn(3, 2, generator=gen) + torch.randn(400, 2, generator=gen) - 2
    mapping = residual_map(resid_a, resid_b)
    a, b = resid_a - resid_a.mean(0), resid_b - resid_b.mean(0)
    r2 = 1 - ((a @ mapping - b) ** 2).sum() / (b ** 2).sum()
    assert map_quality(resid_a, resid_b, mapping) == pytest.approx(r2.item(), rel=1e-4)
    assert 0.3 < r2 < 0.95
    assert map_quality(resid_a, resid_b, 2 * mapping) < r2 - 0.05


def test_mapped_directions_follow_the_pairs():
    mapping = torch.tensor([[0.0, 1.0], [1.0, 0.0]])  # swaps the two axes
    dirs_a = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    dirs_b = torch.tensor([[3.0, 0.0], [0.0, 1.0], [1.0, -1.0]])
    sims = mapped_direction_similarity(dirs_a, dirs_b, mapping, torch.tensor([1, 2, 0]))
    assert sims.tolist() == pytest.approx([1.0, 0.0, 1.0], abs=1e-6)
    sims = mapped_direction_similarity(dirs_a, dirs_b, mapping, torch.tensor([2, 0, 1]))
    assert sims.tolist() == pytest.approx([-2 ** -0.5, 2 ** -0.5, 0.0], abs=1e-6)
    as_list = mapped_direction_similarity(dirs_a, dirs_b, mapping, [2, 0, 1])  # a list works
    assert torch.equal(as_list, sims)


def test_latent_centroids_by_hand():
    resid = torch.tensor([[3.0, 1.0], [1.0, 3.0], [1.0, 1.0], [3.0, 3.0]])  # mean (2, 2)
    latents = torch.tensor([[2.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    cent = latent_centroids(latents, resid)
    # unit 0: (2 (1, -1) + 1 (-1, 1)) / 3; unit 1 never fires; unit 2: the -1 is clamped to 0
    assert torch.allclose(cent, torch.tensor([[1 / 3, -1 / 3], [0.0, 0.0], [-1.0, -1.0]]))


def test_recurring_heads_are_strictly_above():
    scores = {"a": torch.tensor([[0.8, 0.9], [0.95, 0.2]])}
    assert recurring_heads(scores, 0.8) == {"a": [(0, 1), (1, 0)]}
