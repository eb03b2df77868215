"""Basis families on constructed activations, where the right basis is known."""

import pytest
import torch

from mi_helpers.features.sae import build_sae
from mi_helpers.interventions.bases import (diffmean_basis, fixed_bases, neuron_basis, pca_basis,
                                            probe_basis, random_basis, sae_latent_basis,
                                            top_neuron_basis, top_sae_latents)
from mi_helpers.interventions.subspaces import principal_angles

WIDTH = 8


@pytest.fixture
def labelled():
    """Class 1 is shifted along a known direction; unit 5 carries most of the shift."""
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(400) % 2
    direction = torch.zeros(WIDTH)
    direction[5], direction[2] = 3.0, 1.0
    acts = torch.randn(400, WIDTH, generator=gen) + labels[:, None] * direction
    return acts, labels, direction / direction.norm()


def test_diffmean_and_probe_point_along_the_shift(labelled):
    acts, labels, direction = labelled
    diff = acts[labels == 1].mean(0) - acts[labels == 0].mean(0)
    assert torch.allclose(diffmean_basis(acts, labels)[:, 0], diff / diff.norm(), atol=1e-6)
    assert diffmean_basis(acts, labels)[:, 0] @ direction > 0.98
    assert probe_basis(acts, labels)[:, 0] @ direction > 0.9  # fitted on a 60% split


def test_pca_finds_the_largest_variance():
    gen = torch.Generator().manual_seed(1)
    acts = torch.randn(500, WIDTH, generator=gen)
    acts[:, 3] *= 10.0
    acts[:, 6] *= 5.0
    basis = pca_basis(acts, 2)
    assert principal_angles(basis, neuron_basis(WIDTH, torch.tensor([3, 6]))).max() < 5
    assert basis[3, 0].abs() > 0.99  # largest first


def test_neurons_and_random(labelled):
    acts, labels, _ = labelled
    basis = top_neuron_basis(acts, labels, 2)
    assert basis[:, 0].argmax() == 5 and basis[:, 1].argmax() == 2
    assert torch.equal(neuron_basis(4, torch.tensor([2])), torch.tensor([[0.0], [0.0], [1.0], [0.0]]))
    with pytest.raises(ValueError, match="repeat"):
        neuron_basis(4, torch.tensor([1, 1]))
    with pytest.raises(ValueError, match="0..3"):
        neuron_basis(4, torch.tensor([4]))
    a, b = random_basis(WIDTH, 3, seed=2), random_basis(WIDTH, 3, seed=2)
    assert torch.equal(a, b) and torch.allclose(a.T @ a, torch.eye(3), atol=1e-5)
    with pytest.raises(ValueError, match="n_dims=9"):
        random_basis(WIDTH, 9)


def test_sae_latents_are_chosen_by_how_well_they_separate(labelled):
    acts, labels, direction = labelled
    sae = build_sae(d_in=WIDTH, d_sae=6, architecture="relu")
    with torch.no_grad():  # latent 4 reads the shift, latent 1 reads its opposite, others noise
        sae.W_enc.zero_()
        sae.b_enc.zero_()
        sae.b_dec.zero_()
        sae.W_enc[:, 4] = direction
        sae.W_enc[:, 1] = -direction
        sae.W_enc[0, 0] = 1.0
        sae.W_dec.copy_(torch.eye(6, WIDTH))
        sae.W_dec[4] = direction
    assert set(top_sae_latents(sae, acts, labels, 2).tolist()) == {1, 4}
    assert top_sae_latents(sae, acts, labels, 1, positive=True).tolist() == [4]
    basis = sae_latent_basis(sae, acts, labels, 2)  # decoder rows 4 (the shift) and 1 (e_1)
    assert principal_angles(direction[:, None], basis).item() < 0.1
    assert principal_angles(torch.eye(WIDTH)[:, 1:2], basis).item() < 0.1
    with pytest.raises(ValueError, match="width 8"):
        top_sae_latents(build_sae(d_in=4, d_sae=6, architecture="relu"), acts, labels, 1)


def test_fixed_bases_families(labelled):
    acts, labels, _ = labelled
    assert set(fixed_bases(acts, labels, 1)) == {"diffmean", "probe", "pca", "neurons", "random"}
    bases = fixed_bases(acts, labels, 3)
    assert set(bases) == {"pca", "neurons", "random"}
    assert all(b.shape == (WIDTH, 3) for b in bases.values())
    sae = build_sae(d_in=WIDTH, d_sae=16, architecture="relu")
    assert "sae mine" in fixed_bases(acts, labels, 2, saes={"mine": sae})
    with pytest.raises(ValueError, match="both classes|0 or 1"):
        diffmean_basis(acts, torch.zeros(400).long())
