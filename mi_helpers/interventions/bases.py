"""Bases to intervene on: the baselines a learned subspace has to beat.

Each function returns an orthonormal ``[width, n_dims]`` basis for
:func:`~mi_helpers.interventions.subspaces.interchange`. All but the random basis are
fitted on activations ``acts`` (one row per example, at the intervention site) with the
variable's value ``labels`` (0/1) as supervision, or none:

==================  ===================================================================
family              basis
==================  ===================================================================
``diffmean``        the difference of class means (AxBench's strong, cheap baseline)
``probe``           a logistic-regression probe's direction (:mod:`~mi_helpers.features.probing`)
``pca``             the top principal components of the activations (unsupervised)
``sae <name>``      decoder directions of the SAE latents that best separate the classes
``neurons``         the activation's own coordinates that best separate the classes
``random``          a random subspace: what "no alignment" scores
==================  ===================================================================

``diffmean`` and ``probe`` are one direction each; the others take ``n_dims``. "Best
separate" ranks units by effect size, ``|mean_1 - mean_0| / pooled std``
(:func:`~mi_helpers.features.probing.best_dims`), for neurons and SAE latents alike.
DAS, the learned basis, is in :mod:`.das`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..core.checks import check_activations, check_labels
from ..features.probing import best_dims, train_probe
from .subspaces import orthonormal_basis

__all__ = ["random_basis", "diffmean_basis", "probe_basis", "pca_basis", "neuron_basis",
           "top_neuron_basis", "top_sae_latents", "sae_latent_basis", "fixed_bases",
           "FAMILIES"]

FAMILIES = ("diffmean", "probe", "pca", "sae", "neurons", "random")


def _check_n_dims(n_dims: int, width: int) -> int:
    if isinstance(n_dims, bool) or not isinstance(n_dims, int) or not 1 <= n_dims <= width:
        raise ValueError(f"n_dims={n_dims!r} must be an int between 1 and the activation "
                         f"width {width}")
    return n_dims


def random_basis(width: int, n_dims: int, seed: int = 0) -> Float[Tensor, "d_model n_dims"]:
    """A random ``n_dims``-dimensional subspace (Gaussian vectors, orthonormalised)."""
    _check_n_dims(n_dims, width)
    gen = torch.Generator().manual_seed(seed)
    return orthonormal_basis(torch.randn(width, n_dims, generator=gen))


def diffmean_basis(acts: Float[Tensor, "batch d_model"], labels: Int[Tensor, "batch"]
                   ) -> Float[Tensor, "d_model 1"]:
    """The unit difference of class means, ``mean(acts | 1) - mean(acts | 0)``."""
    acts = check_activations(acts, min_rows=2).float()
    labels = check_labels(labels, len(acts)).to(acts.device)
    diff = acts[labels == 1].mean(0) - acts[labels == 0].mean(0)
    return orthonormal_basis(diff[:, None])


def probe_basis(acts: Float[Tensor, "batch d_model"], labels: Int[Tensor, "batch"],
                seed: int = 0) -> Float[Tensor, "d_model 1"]:
    """The unit direction of a dense logistic-regression probe (trained on a split)."""
    acts = check_activations(acts, min_rows=2).float()
    probe, _ = train_probe(acts, labels, seed=seed)
    return orthonormal_basis(probe.direction[:, None])


def pca_basis(acts: Float[Tensor, "batch d_model"], n_dims: int) -> Float[Tensor, "d_model n_dims"]:
    """The ``n_dims`` directions of largest variance (centred SVD), largest first."""
    acts = check_activations(acts, min_rows=2).float()
    _check_n_dims(n_dims, acts.shape[1])
    _, _, vh = torch.linalg.svd(acts.double() - acts.double().mean(0), full_matrices=False)
    return orthonormal_basis(vh[:n_dims].T)


def neuron_basis(width: int, units: Int[Tensor, "n_dims"]) -> Float[Tensor, "d_model n_dims"]:
    """The coordinate basis of the chosen units (an interchange sets exactly those).

    Raises:
        ValueError: no unit, a unit out of range or repeated.
    """
    units = torch.as_tensor(units).long().flatten().cpu()
    if len(units) == 0 or ((units < 0) | (units >= width)).any():
        raise ValueError(f"units must be indices in 0..{width - 1}, got {units.tolist()}")
    if len(units.unique()) != len(units):
        raise ValueError(f"units must not repeat, got {units.tolist()}")
    basis = torch.zeros(width, len(units))
    basis[units, torch.arange(len(units))] = 1.0
    return basis


def top_neuron_basis(acts: Float[Tensor, "batch d_model"], labels: Int[Tensor, "batch"],
                     n_dims: int) -> Float[Tensor, "d_model n_dims"]:
    """The coordinate basis of the ``n_dims`` units that best separate the classes."""
    acts = check_activations(acts, min_rows=2).float()
    _check_n_dims(n_dims, acts.shape[1])
    return neuron_basis(acts.shape[1], best_dims(acts, labels, n_dims))


def top_sae_latents(sae, acts: Float[Tensor, "batch d_model"], labels: Int[Tensor, "batch"],
                    n: int, positive: bool = False) -> Int[Tensor, "n"]:
    """The ``n`` SAE latents whose activations best separate the classes, best first.

    With ``positive``, only latents more active on class 1 than on class 0 (to steer
    *towards* class 1 along their decoder directions).
    """
    acts = check_activations(acts, min_rows=2).float()
    if acts.shape[1] != sae.cfg.d_in:
        raise ValueError(f"the SAE reads width {sae.cfg.d_in} ({sae.cfg.hook_name}) but the "
                         f"activations have width {acts.shape[1]}")
    labels = check_labels(labels, len(acts)).cpu()
    with torch.no_grad():
        latents = sae.encode(acts.to(sae.W_enc.device)).float().cpu()
    if not positive:
        return best_dims(latents, labels, n)
    ranked = best_dims(latents, labels, latents.shape[1])
    higher = latents[labels == 1].mean(0) > latents[labels == 0].mean(0)
    chosen = ranked[higher[ranked]][:n]
    if len(chosen) < n:
        raise ValueError(f"only {len(chosen)} latents are more active on class 1; asked for {n}")
    return chosen


def sae_latent_basis(sae, acts: Float[Tensor, "batch d_model"], labels: Int[Tensor, "batch"],
                     n_dims: int) -> Float[Tensor, "d_model n_dims"]:
    """The span of the decoder directions of the :func:`top_sae_latents`."""
    _check_n_dims(n_dims, sae.cfg.d_in)
    latents = top_sae_latents(sae, acts, labels, n_dims)
    return orthonormal_basis(sae.W_dec.detach()[latents].float().cpu().T)


def fixed_bases(acts: Float[Tensor, "batch d_model"], labels: Int[Tensor, "batch"], n_dims: int,
                saes: Mapping | None = None, seed: int = 0
                ) -> dict[str, Float[Tensor, "d_model n_dims"]]:
    """Every fixed family's basis, ``{family: basis}`` (see the table above).

    ``diffmean`` and ``probe`` are included only for ``n_dims == 1``; each SAE of
    ``saes`` (``{name: sae}``, SAEs reading this site) gives a family ``"sae <name>"``.
    ``seed`` seeds the random basis and the probe's split.
    """
    acts = check_activations(acts, min_rows=2).float()
    width = acts.shape[1]
    _check_n_dims(n_dims, width)
    bases = {}
    if n_dims == 1:
        bases["diffmean"] = diffmean_basis(acts, labels)
        bases["probe"] = probe_basis(acts, labels, seed)
    bases["pca"] = pca_basis(acts, n_dims)
    for name, sae in (saes or {}).items():
        bases[f"sae {name}"] = sae_latent_basis(sae, acts, labels, n_dims)
    bases["neurons"] = top_neuron_basis(acts, labels, n_dims)
    bases["random"] = random_basis(width, n_dims, seed)
    return bases
