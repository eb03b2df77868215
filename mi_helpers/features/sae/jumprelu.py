"""JumpReLU SAE (Rajamanoharan et al., 2024): a learned threshold per latent, L0 penalty.

``latents_i = pre_i * H(pre_i - threshold_i)``, ``H`` the Heaviside step: a latent is
either off or on at its full value (no shrinkage), and the loss penalises the number of
active latents, ``l0_coefficient * sum_i H(pre_i - threshold_i)``.

``H`` has zero gradient almost everywhere, so the threshold learns through a
*straight-through estimator*: in the backward pass ``dH(z)/dz`` is replaced by a
rectangle kernel ``K(z / eps) / eps`` (``K`` = 1 on ``(-1/2, 1/2)``), with bandwidth
``eps = jumprelu_bandwidth``. The pre-activations get the ordinary gradient of
``pre * H(...)`` (the jump itself passes no gradient to them). The threshold is kept
positive by clamping after each step.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor, nn

from .base import SAE

__all__ = ["JumpReLUSAE"]


def _in_window(pre: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
    """The rectangle kernel ``K((pre - threshold) / bandwidth)``: 1 within half a
    bandwidth of the threshold, else 0 (as ``pre``'s dtype)."""
    return ((pre - threshold).abs_() < bandwidth / 2).to(pre.dtype)


class _JumpReLU(torch.autograd.Function):
    """``pre * H(pre - threshold)`` with the pseudo-derivative for ``threshold``."""

    @staticmethod
    def forward(ctx, pre, threshold, bandwidth):
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return pre * (pre > threshold)

    @staticmethod
    def backward(ctx, grad):
        pre, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        grad_pre = grad * (pre > threshold)
        # d/dthreshold of pre * H(pre - threshold) ~ -(threshold / eps) K(...)
        near = (grad * _in_window(pre, threshold, eps)).sum(0)
        return grad_pre, -(threshold / eps) * near, None


class _Step(torch.autograd.Function):
    """``H(pre - threshold)`` with the pseudo-derivative for ``threshold`` only."""

    @staticmethod
    def forward(ctx, pre, threshold, bandwidth):
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return (pre > threshold).to(pre.dtype)

    @staticmethod
    def backward(ctx, grad):
        pre, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        # d/dthreshold of H(pre - threshold) ~ -(1 / eps) K(...)
        near = (grad * _in_window(pre, threshold, eps)).sum(0)
        return None, -near / eps, None


class JumpReLUSAE(SAE):
    """JumpReLU SAE with an L0 penalty (SAELens: ``"jumprelu"``, key ``threshold``)."""

    architecture = "jumprelu"

    def __init__(self, cfg):
        super().__init__(cfg)
        self.threshold = nn.Parameter(torch.full((cfg.d_sae,), cfg.jumprelu_init_threshold))

    def encode_with_extras(self, x: Float[Tensor, "batch d_in"]
                           ) -> tuple[Float[Tensor, "batch d_sae"], dict[str, Tensor]]:
        pre = self.pre_activations(x)
        return _JumpReLU.apply(pre, self.threshold, self.cfg.jumprelu_bandwidth), {"pre": pre}

    def sparsity_losses(self, x, latents, extras, reconstruction, sparsity_scale):
        l0 = _Step.apply(extras["pre"], self.threshold, self.cfg.jumprelu_bandwidth)
        return {"l0": sparsity_scale * self.cfg.l0_coefficient * l0.sum(-1).mean()}

    def latent_axes(self) -> dict[str, int]:
        return {**super().latent_axes(), "threshold": 0}

    @torch.no_grad()
    def reinit_latents(self, latents, dec_rows, enc_cols) -> None:
        super().reinit_latents(latents, dec_rows, enc_cols)
        self.threshold[latents] = self.cfg.jumprelu_init_threshold

    @torch.no_grad()
    def after_step(self) -> None:
        """Unit-norm decoder rows, and every threshold kept positive."""
        super().after_step()
        self.threshold.clamp_(min=1e-6)
