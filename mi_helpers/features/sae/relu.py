"""The standard SAE: ReLU latents and an L1 penalty weighted by decoder norms.

``latents = ReLU((x - b_dec) @ W_enc + b_enc)``. The penalty is
``l1_coefficient * sum_i latents_i * ||W_dec[i]||`` (Anthropic's April 2024 update to
Bricken et al., 2023): weighting each latent by its decoder row's norm means shrinking a
latent while growing its decoder row gains nothing, so the decoder needs no unit-norm
constraint. The L1 penalty also shrinks active latents ("shrinkage"); TopK, JumpReLU and
gated SAEs avoid that.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from .base import SAE

__all__ = ["ReLUSAE"]


class ReLUSAE(SAE):
    """ReLU SAE with a decoder-norm-weighted L1 penalty (SAELens: ``"standard"``)."""

    architecture = "relu"
    unit_norm_decoder = False

    def encode_with_extras(self, x: Float[Tensor, "batch d_in"]
                           ) -> tuple[Float[Tensor, "batch d_sae"], dict[str, Tensor]]:
        return torch.relu(self.pre_activations(x)), {}

    def sparsity_losses(self, x, latents, extras, reconstruction, sparsity_scale):
        # latents >= 0, so |latents| @ norms is a matrix-vector product (no extra pass).
        weighted_l1 = (latents @ self.W_dec.norm(dim=1)).mean()
        return {"l1": sparsity_scale * self.cfg.l1_coefficient * weighted_l1}
