"""Caching activations and reading the residual stream as a sum.

A GPT-2 block adds its attention output and its MLP output to the residual stream:
``h_l = h_{l-1} + a_l + f_l``, starting from ``h_0 = token embedding + position
embedding``. So the final residual is exactly the sum of the embeddings and every
attention and MLP output (:func:`residual_components`); the logits are the final
layer norm of that sum, times the unembedding (:func:`unembed`).

:func:`run_with_hooks_cached` caches only the hooks you name, and fails with the
names that do exist when one does not.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import ActivationCache


def check_hook_names(model, names: Iterable[str]) -> list[str]:
    """Return ``names`` as a list, or raise ``KeyError`` naming similar hooks that exist."""
    names = list(names)
    known = set(model.hook_dict)
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=5, cutoff=0.5)
            raise KeyError(f"no hook named {name!r} in this model. Did you mean one of "
                           f"{close}? All hooks: model.hook_dict.keys()")
    return names


def run_with_hooks_cached(model, tokens: Int[Tensor, "batch pos"], names: Iterable[str],
                          fwd_hooks: Sequence[tuple[str, Callable]] = ()
                          ) -> tuple[Float[Tensor, "batch pos d_vocab"], ActivationCache]:
    """Run the model once, caching only the named hooks (no gradients).

    Args:
        model: a TransformerLens model.
        tokens: input token ids.
        names: hook names, e.g. ``["blocks.0.attn.hook_pattern"]``.
        fwd_hooks: ``(name, hook_fn)`` pairs applied during the run (e.g. a corruption);
            removed afterwards.

    Returns:
        The logits and a cache holding just those activations.
    """
    wanted = set(check_hook_names(model, names))
    with torch.no_grad(), model.hooks(fwd_hooks=list(fwd_hooks)):
        return model.run_with_cache(tokens, names_filter=lambda n: n in wanted)


def residual_components(cache: ActivationCache, n_layers: int
                        ) -> tuple[Float[Tensor, "component batch pos d_model"], list[str]]:
    """Everything ever added to the residual stream, in order, with a label each.

    The components are the token embedding, the position embedding (when the model
    has one; rotary models do not), then each layer's attention and MLP output.
    Their sum is the final residual stream ``blocks.{n_layers-1}.hook_resid_post``.
    """
    parts, labels = [cache["hook_embed"]], ["embed"]
    if "hook_pos_embed" in cache:
        parts.append(cache["hook_pos_embed"])
        labels.append("pos_embed")
    for layer in range(n_layers):
        parts += [cache[f"blocks.{layer}.hook_attn_out"], cache[f"blocks.{layer}.hook_mlp_out"]]
        labels += [f"L{layer} attn", f"L{layer} mlp"]
    return torch.stack(parts), labels


def unembed(model, residual: Float[Tensor, "... pos d_model"]
            ) -> Float[Tensor, "... pos d_vocab"]:
    """Logits from a residual stream: final layer norm, then the unembedding."""
    return model.unembed(model.ln_final(residual))
