import pytest
import torch

from mi_helpers.universality import (best_matches, check_same_tokenizer, correlation_matrix,
                                     fraction_above, mapped_direction_similarity,
                                     recurring_heads, residual_map, shared_activations)


def test_planted_permuted_neurons_are_matched():
    """B holds a permuted, rescaled, noisy copy of 20 of A's 50 neurons plus 30 of its own."""
    gen = torch.Generator().manual_seed(0)
    acts_a = torch.randn(4000, 50, generator=gen).relu()
    perm = torch.randperm(50, generator=gen)
    shared = perm[:20]
    own = torch.randn(4000, 30, generator=gen).relu()
    copies = 3.0 * acts_a[:, shared] + 0.1 * torch.randn(4000, 20, generator=gen)
    layout = torch.randperm(50, generator=gen)  # where each of B's 50 columns goes
    acts_b = torch.cat([copies, own], dim=1)[:, layout.argsort()]
    best, index = best_matches(acts_a, acts_b)
    for k, neuron in enumerate(shared.tolist()):
        assert best[neuron] > 0.95
        assert layout.argsort()[index[neuron]].item() == k  # matched to its own copy
    unshared = perm[20:]
    assert best[unshared].max() < 0.2
    assert fraction_above(best, 0.9) == pytest.approx(20 / 50)


def test_correlation_matrix_edge_cases():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(100, 3, generator=gen)
    y = torch.cat([5 * x[:, [2]] + 1, -0.5 * x[:, [0]] + 0.3 * torch.randn(100, 1, generator=gen),
                   torch.randn(100, 2, generator=gen) + 4], dim=1)
    dead = torch.full((100, 1), 2.0)  # constant, not zero
    corr = correlation_matrix(torch.cat([x, dead], 1), y)
    expected = torch.corrcoef(torch.cat([x, y], 1).T)[:3, 3:]
    assert corr.shape == (4, 4) and torch.allclose(corr[:3], expected, atol=1e-5)
    assert corr[2, 0] == pytest.approx(1.0, abs=1e-5) and corr[0, 1] < -0.8
    assert (corr[3] == 0).all()
    with pytest.raises(ValueError, match="same tokens"):
        correlation_matrix(x, x[:50])


def test_mapped_directions_recover_a_rotation():
    gen = torch.Generator().manual_seed(1)
    resid_a = torch.randn(2000, 8, generator=gen)
    rotation, _ = torch.linalg.qr(torch.randn(8, 8, generator=gen))
    resid_b = resid_a @ rotation
    mapping = residual_map(resid_a, resid_b)
    dirs_a = torch.randn(5, 8, generator=gen)
    sims = mapped_direction_similarity(dirs_a, dirs_a @ rotation, mapping, torch.arange(5))
    assert torch.allclose(sims, torch.ones(5), atol=1e-4)


def test_recurring_heads():
    scores = {"a": torch.tensor([[0.1, 0.9], [0.95, 0.2]]), "b": torch.zeros(2, 2)}
    assert recurring_heads(scores, 0.8) == {"a": [(0, 1), (1, 0)], "b": []}


def test_tokenizers_must_match(tiny_model):
    from types import SimpleNamespace

    from mi_helpers.core.models import load_model
    zoo = load_model("zoo-2l", device="cpu")
    check_same_tokenizer(zoo, tiny_model)  # the tiny GPT-2 uses the zoo tokenizer
    other = SimpleNamespace(tokenizer=SimpleNamespace(get_vocab=lambda: {"a": 0, "b": 1}))
    with pytest.raises(ValueError, match="different tokenizers"):
        shared_activations(zoo, other, torch.zeros(1, 3, dtype=torch.long), "blocks.0.hook_resid_post")


def test_latent_centroids_and_map_quality():
    from mi_helpers.universality import latent_centroids, map_quality
    resid = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    latents = torch.tensor([[2.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    cent = latent_centroids(latents, resid)
    assert torch.allclose(cent[0], torch.tensor([1.0, 0.0])) and (cent[1] == 0).all()
    assert map_quality(resid, resid, torch.eye(2)) == pytest.approx(1.0)
    assert map_quality(resid, resid, torch.zeros(2, 2)) == pytest.approx(0.0)


def test_random_like_is_a_seeded_untrained_copy():
    from mi_helpers.core.models import load_model
    from mi_helpers.universality import random_like
    trained = load_model("zoo-2l", device="cpu")
    a, b = random_like(trained, seed=0), random_like(trained, seed=0)
    tokens = trained.to_tokens("When Mary and John went to the store")
    with torch.no_grad():
        assert torch.equal(a(tokens), b(tokens))
        assert a(tokens).shape == trained(tokens).shape
        assert not torch.allclose(a(tokens), trained(tokens))
    assert a.cfg.default_prepend_bos == trained.cfg.default_prepend_bos


def test_ridge_and_procrustes_recover_a_planted_rotation_where_least_squares_does_not():
    """B's stream is a rotation of A's; A has one direction of (almost) no variance, like
    a layer norm's output. Least squares is free to put anything along it and blows up;
    ridge and Procrustes recover the rotation."""
    from mi_helpers.universality import residual_map
    gen = torch.Generator().manual_seed(0)
    d = 8
    a = torch.randn(2000, d, generator=gen, dtype=torch.float64)
    a[:, -1] = 1e-9 * torch.randn(2000, generator=gen, dtype=torch.float64)  # ~no variance
    rotation, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    b = a @ rotation + 1e-3 * torch.randn(2000, d, generator=gen, dtype=torch.float64)
    # directions to carry across, as an SAE's decoder rows: mostly in the varying subspace,
    # with a small component along the empty direction
    directions = torch.randn(20, d, generator=gen, dtype=torch.float64)
    directions[:, -1] *= 0.05
    varying = directions.clone()
    varying[:, -1] = 0
    truth = varying @ rotation  # where the varying part goes

    def cosines(mapping):
        mapped = directions.float() @ mapping
        return torch.nn.functional.cosine_similarity(mapped, truth.float(), dim=-1)

    plain = residual_map(a, b, method="lstsq")
    assert plain.abs().max() > 1e3  # the near-empty direction got a huge weight
    assert cosines(plain).abs().mean() < 0.5  # ...which swamps every mapped direction
    for method in ("ridge", "procrustes"):
        assert cosines(residual_map(a, b, method=method)).min() > 0.99, method
    procrustes = residual_map(a, b, method="procrustes").double()
    assert torch.allclose(procrustes @ procrustes.T, torch.eye(d, dtype=torch.float64), atol=1e-5)
    with pytest.raises(ValueError, match="equal widths"):
        residual_map(a, b[:, :5], method="procrustes")
