"""TopK SAE (Gao et al., 2024): keep the ``k`` largest pre-activations, zero the rest.

``latents = ReLU(TopK_k((x - b_dec) @ W_enc + b_enc))``: exactly (at most) ``k`` latents
fire on every input, so sparsity is set directly and there is no sparsity penalty to
tune, and no shrinkage. The decoder rows are kept at unit norm.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from .base import SAE

__all__ = ["TopKSAE", "topk_activation"]


def topk_activation(pre: Float[Tensor, "batch d_sae"], k: int) -> Float[Tensor, "batch d_sae"]:
    """``ReLU`` of the ``k`` largest entries of each row; zero elsewhere."""
    values, indices = pre.topk(k, dim=-1, sorted=False)
    return torch.zeros_like(pre).scatter_(-1, indices, torch.relu(values))


class TopKSAE(SAE):
    """TopK SAE: ``k`` latents per input, no sparsity loss (SAELens: ``"topk"``)."""

    architecture = "topk"

    def encode_with_extras(self, x: Float[Tensor, "batch d_in"]
                           ) -> tuple[Float[Tensor, "batch d_sae"], dict[str, Tensor]]:
        return topk_activation(self.pre_activations(x), self.cfg.k), {}
