"""Matryoshka SAE (Bussmann et al., 2025; Nabeshima, 2024): nested dictionaries.

The latents are TopK latents, but the loss asks every *prefix* of the dictionary to
reconstruct on its own: for each width ``m`` in ``matryoshka_widths`` (increasing, the
last being ``d_sae``) the first ``m`` latents give ``x_hat_m = latents[:, :m] @
W_dec[:m] + b_dec``, and the loss sums the squared errors of all of them. Early latents
are thus pushed to capture general, frequent features and later ones to refine them,
which reduces *feature absorption* (a broad latent losing its cases to narrow ones).

At inference it is a plain TopK SAE (saved as ``"topk"`` for SAELens).
"""

from __future__ import annotations

from jaxtyping import Float
from torch import Tensor

from .base import squared_error
from .topk import TopKSAE

__all__ = ["MatryoshkaSAE"]


class MatryoshkaSAE(TopKSAE):
    """TopK latents, a squared-error term for every proper prefix (``"prefix_mse"``)."""

    architecture = "matryoshka"

    def sparsity_losses(self, x, latents, extras, reconstruction, sparsity_scale):
        widths = self.cfg.matryoshka_widths
        partial: Float[Tensor, "batch d_in"] = self.b_dec.expand_as(x)
        total = x.new_zeros(())
        start = 0
        for width in widths[:-1]:  # the full width is the "mse" term already
            partial = partial + latents[:, start:width] @ self.W_dec[start:width]
            total = total + squared_error(partial, x)
            start = width
        return {"prefix_mse": total}
