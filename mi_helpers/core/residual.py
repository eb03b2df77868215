"""The residual stream as a sum, and reading it through the unembedding.

A block adds its attention output and its MLP output to the residual stream:
``h_l = h_{l-1} + a_l + f_l``, starting from ``h_0 = token embedding (+ position
embedding)``. So the final residual is exactly the sum of the embeddings and every
attention and MLP output (:func:`residual_components`); the logits are the final layer
norm of that sum, times the unembedding (:func:`unembed`).

The final layer norm is not linear: it divides by the norm of the *whole* residual.
With that scale frozen at its value on the full residual (:func:`frozen_final_ln`),
it is linear, and the unembedded components add up to the logits: the basis of direct
logit attribution (:mod:`mi_helpers.features.attribution`).
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from .checks import check_positive
from .hooks import hook_name

__all__ = ["residual_components", "unembed", "frozen_final_ln"]


def residual_components(cache: dict[str, Tensor], n_layers: int
                        ) -> tuple[Float[Tensor, "component batch pos d_model"], list[str]]:
    """Everything ever added to the residual stream, in order, with a label each.

    Args:
        cache: a cache holding ``hook_embed``, every layer's ``attn_out`` and ``mlp_out``
            (and ``hook_pos_embed`` on models that have it).
        n_layers: the model's layers.

    Returns:
        The components (token embedding, position embedding if any, then each layer's
        attention and MLP output) and their labels. They sum to the last ``resid_post``.

    Raises:
        ValueError: ``n_layers`` is not a positive int, or the cache lacks a hook.
    """
    check_positive("n_layers", n_layers, integer=True)
    needed = [hook_name("embed")] + [hook_name(site, layer) for layer in range(n_layers)
                                     for site in ("attn_out", "mlp_out")]
    missing = [name for name in needed if name not in cache]
    if missing:
        raise ValueError(f"the cache lacks {missing[:4]}{' ...' if len(missing) > 4 else ''}; "
                         f"cache hook_embed (and hook_pos_embed), and every layer's attn_out "
                         f"and mlp_out, e.g. with run_cached(model, tokens, names)")
    if hook_name("attn_out", n_layers) in cache:
        raise ValueError(f"the cache holds layer {n_layers}'s outputs but n_layers={n_layers}: "
                         f"the components would not sum to the residual; pass model.cfg.n_layers")
    parts, labels = [cache[hook_name("embed")]], ["embed"]
    if hook_name("pos_embed") in cache:
        parts.append(cache[hook_name("pos_embed")])
        labels.append("pos_embed")
    for layer in range(n_layers):
        parts += [cache[hook_name("attn_out", layer)], cache[hook_name("mlp_out", layer)]]
        labels += [f"L{layer} attn", f"L{layer} mlp"]
    return torch.stack(parts), labels


def unembed(model, residual: Float[Tensor, "... pos d_model"]) -> Float[Tensor, "... pos d_vocab"]:
    """Logits from a residual stream: the final layer norm, then the unembedding."""
    if residual.shape[-1] != model.cfg.d_model:
        raise ValueError(f"a residual stream has width d_model={model.cfg.d_model}, got shape "
                         f"{tuple(residual.shape)}")
    return model.unembed(model.ln_final(residual))


def frozen_final_ln(model, x: Float[Tensor, "... batch pos d_model"],
                    scale: Float[Tensor, "batch pos 1"]) -> Float[Tensor, "... batch pos d_model"]:
    """The final layer norm as a *linear* map: centre ``x``, divide by a given scale.

    ``scale`` is ``ln_final.hook_scale`` of the full residual, so summing this over all
    components of the residual gives exactly ``ln_final`` of the residual (minus its
    bias). RMS-norm models are not centred.
    """
    ln = model.ln_final
    if not getattr(ln, "uses_rms_norm", False):
        x = x - x.mean(-1, keepdim=True)
    weight = getattr(ln, "weight", None)
    return x / scale * (1.0 if weight is None else weight)
