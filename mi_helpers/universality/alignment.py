"""Aligning two models' residual streams, and comparing directions across them.

Two models trained from different seeds use different bases for their residual
streams, so a direction in one (an SAE decoder row, a probe) cannot be compared with a
direction in the other as it is. Either map one stream onto the other (a linear map fit
on the same tokens) or compare each direction with where its unit fires in the other
model's space (:func:`latent_centroids`).
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

__all__ = ["residual_map", "map_quality", "mapped_direction_similarity", "latent_centroids"]


def _same_rows(a: Tensor, b: Tensor) -> None:
    if a.ndim != 2 or b.ndim != 2 or len(a) != len(b):
        raise ValueError(f"expected [n, width] activations of both models on the same tokens, "
                         f"got shapes {tuple(a.shape)} and {tuple(b.shape)}; collect both on the "
                         f"same tokens")


def residual_map(resid_a: Float[Tensor, "n d_model_a"], resid_b: Float[Tensor, "n d_model_b"]
                 ) -> Float[Tensor, "d_model_a d_model_b"]:
    """Least-squares linear map ``M`` with ``resid_a @ M ~ resid_b`` (on centred activations)."""
    _same_rows(resid_a, resid_b)
    a = resid_a.double() - resid_a.double().mean(0)
    b = resid_b.double() - resid_b.double().mean(0)
    return torch.linalg.lstsq(a, b).solution.float()


def map_quality(resid_a: Float[Tensor, "n d_model_a"], resid_b: Float[Tensor, "n d_model_b"],
                mapping: Float[Tensor, "d_model_a d_model_b"]) -> float:
    """R^2 of predicting B's centred residual from A's with ``mapping``."""
    _same_rows(resid_a, resid_b)
    a = resid_a.double() - resid_a.double().mean(0)
    b = resid_b.double() - resid_b.double().mean(0)
    return (1 - ((a @ mapping.double() - b) ** 2).sum() / (b ** 2).sum()).item()


def mapped_direction_similarity(dirs_a: Float[Tensor, "unit d_model_a"],
                                dirs_b: Float[Tensor, "unit d_model_b"],
                                mapping: Float[Tensor, "d_model_a d_model_b"],
                                pairs: Int[Tensor, "unit"]) -> Float[Tensor, "unit"]:
    """Cosine between A's direction ``i`` mapped into B's space and B's direction ``pairs[i]``."""
    mapped = dirs_a @ mapping
    return torch.nn.functional.cosine_similarity(mapped, dirs_b[pairs], dim=-1)


def latent_centroids(latents_a: Float[Tensor, "n unit"], resid_b: Float[Tensor, "n d_model_b"]
                     ) -> Float[Tensor, "unit d_model_b"]:
    """Where each unit of A fires in B's residual space: B's centred residual, weighted by
    the unit's activation, averaged over tokens (zero for a unit that never fires).

    Compare it with B's matched decoder direction: unlike a linear map between the two
    residual streams, it needs no global alignment, only the shared tokens.
    """
    _same_rows(latents_a, resid_b)
    centred = resid_b.double() - resid_b.double().mean(0)
    weights = latents_a.double().clamp_min(0)
    return ((weights.T @ centred) / weights.sum(0).clamp_min(1e-12)[:, None]).float()
