"""Direct logit attribution: what each head and MLP writes straight into the logits.

The final residual stream is a sum of components (embeddings, every head's output
``z_h @ W_O[h]``, every MLP's output, and bias terms; :mod:`mi_helpers.core.residual`).
The logits are ``unembed(ln_final(sum))``. The layer norm divides by the norm of the
*whole* residual, so with that scale frozen at its value on the full residual
(``ln_final.hook_scale``, cached from the same run), the map from a component to the
logits is linear, and the components' logits add up to the model's logits exactly:
the biases (``b_O``, ``b_U``) and the embeddings, which belong to no head or MLP, make
up the rest. This is the survey's "residual stream, head and FF" projection.

What it measures is the **direct** path only: a head whose output is read by later
heads or MLPs (an indirect effect) can matter a great deal and still have a small direct
attribution. Patching (:mod:`mi_helpers.circuits`) measures total effects.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..core.activations import run_cached
from ..core.hooks import hook_name, layer_hooks
from ..core.residual import frozen_final_ln

__all__ = ["head_logits", "mlp_logits", "direction_logits"]


def head_logits(model, tokens: Int[Tensor, "batch pos"]
                ) -> Float[Tensor, "layer head batch pos d_vocab"]:
    """Each head's output ``z_h @ W_O[h]``, read through the frozen final LN and ``W_U``.

    ``b_O`` belongs to no head and ``b_U`` to no component, so neither is included.
    """
    names = layer_hooks(model, "z")
    _, cache = run_cached(model, tokens, names + [hook_name("ln_scale")])
    z = torch.stack([cache[name] for name in names])  # layer batch pos head d_head
    with torch.no_grad():
        out = torch.einsum("lbphd,lhdm->lhbpm", z, model.W_O)  # layer head batch pos d_model
        return frozen_final_ln(model, out, cache[hook_name("ln_scale")]) @ model.W_U


def mlp_logits(model, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "layer batch pos d_vocab"]:
    """Each MLP's output (site ``mlp_out``) read through the frozen final LN and ``W_U``; no
    ``b_U``."""
    names = layer_hooks(model, "mlp_out")
    _, cache = run_cached(model, tokens, names + [hook_name("ln_scale")])
    out = torch.stack([cache[name] for name in names])  # layer batch pos d_model
    with torch.no_grad():
        return frozen_final_ln(model, out, cache[hook_name("ln_scale")]) @ model.W_U


def direction_logits(model, directions: Float[Tensor, "unit d_model"]
                     ) -> Float[Tensor, "unit d_vocab"]:
    """What a direction added to the final residual does to each logit: ``directions @ W_U``.

    The final layer norm's scale is left out (it depends on the rest of the residual),
    so compare values within a direction rather than across models.
    """
    if directions.shape[-1] != model.cfg.d_model:
        raise ValueError(f"directions must have width d_model={model.cfg.d_model}, got shape "
                         f"{tuple(directions.shape)}")
    return directions.to(model.W_U.device, model.W_U.dtype) @ model.W_U.detach()
