"""Gated SAE (Rajamanoharan et al., 2024): one path decides *which* latents fire, another
*how much*.

With ``x_c = x - b_dec``::

    pi_gate = x_c @ W_enc + b_gate                      # which latents: pi_gate > 0
    pi_mag  = x_c @ (W_enc * exp(r_mag)) + b_mag        # how much: ReLU(pi_mag)
    latents = 1[pi_gate > 0] * ReLU(pi_mag)

The two paths share ``W_enc`` up to a per-latent scale ``exp(r_mag)``. The L1 penalty
acts on ``ReLU(pi_gate)`` only, so it does not shrink the magnitudes. The step
``1[...]`` passes no gradient, so an *auxiliary* loss trains the gate path: reconstruct
``x`` from ``ReLU(pi_gate)`` through a frozen (detached) decoder. Decoder rows are kept
at unit norm.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor, nn

from .base import SAE, squared_error

__all__ = ["GatedSAE"]


class GatedSAE(SAE):
    """Gated SAE with the L1 and auxiliary losses (SAELens: ``"gated"``).

    Extra parameters: ``b_gate``, ``r_mag``, ``b_mag`` (each ``[d_sae]``); no ``b_enc``.
    """

    architecture = "gated"
    has_b_enc = False
    latent_biases = ("b_gate", "r_mag", "b_mag")

    def __init__(self, cfg):
        super().__init__(cfg)
        self.b_gate = nn.Parameter(torch.zeros(cfg.d_sae))
        self.r_mag = nn.Parameter(torch.zeros(cfg.d_sae))
        self.b_mag = nn.Parameter(torch.zeros(cfg.d_sae))

    def encode_with_extras(self, x: Float[Tensor, "batch d_in"]
                           ) -> tuple[Float[Tensor, "batch d_sae"], dict[str, Tensor]]:
        centred = self.centred(x)
        pi_gate = torch.addmm(self.b_gate, centred, self.W_enc)
        pi_mag = torch.addmm(self.b_mag, centred, self.W_enc * self.r_mag.exp())
        latents = (pi_gate > 0).to(x.dtype) * torch.relu(pi_mag)
        return latents, {"pi_gate": pi_gate}

    def sparsity_losses(self, x, latents, extras, reconstruction, sparsity_scale):
        gate = torch.relu(extras["pi_gate"])
        l1 = (gate @ self.W_dec.norm(dim=1)).mean()
        via_gate = gate @ self.W_dec.detach() + self.b_dec.detach()
        return {"l1": sparsity_scale * self.cfg.l1_coefficient * l1,
                "aux": squared_error(via_gate, x)}
