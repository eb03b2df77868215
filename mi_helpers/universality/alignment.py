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


def _check_mapping(mapping: Tensor, width_a: int, width_b: int) -> None:
    if mapping.ndim != 2 or tuple(mapping.shape) != (width_a, width_b):
        raise ValueError(f"mapping must be [d_model_a, d_model_b] = [{width_a}, {width_b}] "
                         f"(from residual_map(resid_a, resid_b)), got shape "
                         f"{tuple(mapping.shape)}")


def _centred(x: Tensor) -> Tensor:
    x = x.double()
    return x - x.mean(0)


def residual_map(resid_a: Float[Tensor, "n d_model_a"], resid_b: Float[Tensor, "n d_model_b"],
                 method: str = "ridge", ridge: float = 1e-2) -> Float[Tensor, "d_model_a d_model_b"]:
    """A linear map ``M`` with ``resid_a @ M ~ resid_b`` (on centred activations).

    Args:
        resid_a, resid_b: both models' residual streams on the same tokens.
        method: ``"ridge"`` (least squares with a penalty ``ridge x`` the mean variance of
            A's directions: well defined when A's stream has directions of almost no variance,
            as a layer norm's output does), ``"procrustes"`` (the best *orthogonal* map after
            scaling both streams to unit total variance: it cannot stretch a direction,
            only rotate; needs equal widths) or ``"lstsq"`` (plain least squares: blows up
            along directions of near-zero variance).
        ridge: the relative strength of the ridge penalty.
    """
    _same_rows(resid_a, resid_b)
    a, b = _centred(resid_a), _centred(resid_b)
    if method == "lstsq":
        return torch.linalg.lstsq(a, b).solution.float()
    if method == "ridge":
        gram = a.T @ a
        penalty = ridge * gram.diagonal().mean()
        return torch.linalg.solve(gram + penalty * torch.eye(len(gram), dtype=gram.dtype),
                                  a.T @ b).float()
    if method == "procrustes":
        if a.shape[1] != b.shape[1]:
            raise ValueError(f"an orthogonal map needs equal widths, got {a.shape[1]} and "
                             f"{b.shape[1]}; use method='ridge'")
        a, b = a / a.norm(), b / b.norm()
        u, _, vh = torch.linalg.svd(a.T @ b)
        return (u @ vh).float()
    raise ValueError(f"method must be 'ridge', 'procrustes' or 'lstsq', not {method!r}")


def map_quality(resid_a: Float[Tensor, "n d_model_a"], resid_b: Float[Tensor, "n d_model_b"],
                mapping: Float[Tensor, "d_model_a d_model_b"]) -> float:
    """R^2 of predicting B's centred residual from A's with ``mapping`` (fit the map on
    other tokens than these for an honest figure). For a Procrustes map, which works on
    unit-variance streams, the streams are scaled the same way first."""
    _same_rows(resid_a, resid_b)
    _check_mapping(mapping, resid_a.shape[1], resid_b.shape[1])
    a, b = _centred(resid_a), _centred(resid_b)
    prediction = a @ mapping.double()
    if torch.allclose(mapping.double() @ mapping.double().T, torch.eye(len(mapping),
                                                                      dtype=torch.float64),
                      atol=1e-4):  # orthogonal: compare on the unit-variance scale
        prediction, b = (a / a.norm()) @ mapping.double(), b / b.norm()
    return (1 - ((prediction - b) ** 2).sum() / (b ** 2).sum()).item()


def mapped_direction_similarity(dirs_a: Float[Tensor, "unit d_model_a"],
                                dirs_b: Float[Tensor, "unit d_model_b"],
                                mapping: Float[Tensor, "d_model_a d_model_b"],
                                pairs: Int[Tensor, "unit"]) -> Float[Tensor, "unit"]:
    """Cosine between A's direction ``i`` mapped into B's space and B's direction ``pairs[i]``.

    Raises:
        ValueError: shapes that do not fit, or not one integer index into B per A direction.
        IndexError: an index beyond B's directions.
    """
    if dirs_a.ndim != 2 or dirs_b.ndim != 2:
        raise ValueError(f"directions must be [unit, d_model], got shapes {tuple(dirs_a.shape)} "
                         f"and {tuple(dirs_b.shape)}")
    _check_mapping(mapping, dirs_a.shape[1], dirs_b.shape[1])
    pairs = torch.as_tensor(pairs)
    if pairs.dtype.is_floating_point or pairs.shape != (len(dirs_a),):
        raise ValueError(f"pairs must hold one integer index into dirs_b per direction of A "
                         f"({len(dirs_a)}), got dtype {pairs.dtype}, shape {tuple(pairs.shape)}")
    if len(pairs) and not (-len(dirs_b) <= int(pairs.min()) and int(pairs.max()) < len(dirs_b)):
        raise IndexError(f"pairs index B's directions up to {int(pairs.max())}, but there are "
                         f"{len(dirs_b)}")
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
    centred = _centred(resid_b)
    weights = latents_a.double().clamp_min(0)
    return ((weights.T @ centred) / weights.sum(0).clamp_min(1e-12)[:, None]).float()
