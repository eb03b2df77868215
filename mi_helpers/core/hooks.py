"""Hook names: where an activation can be read or changed, written once for the package.

TransformerLens gives every intermediate activation a *hook point* with a name, e.g.
``blocks.3.attn.hook_z`` is layer 3's per-head attention output before ``W_O``. Every
module of ``mi_helpers`` names hooks through :func:`hook_name` and the table
:data:`SITES` (a *site* is the layer-independent part, e.g. ``"z"``), so there is one
place to read what each name means. The names agree with TransformerLens'
``get_act_name`` (tested).

=============  ==========================================  ================================
site           hook                                         axes of the activation
=============  ==========================================  ================================
``embed``      ``hook_embed``                               ``batch pos d_model``
``pos_embed``  ``hook_pos_embed`` (absent on rotary models)  ``batch pos d_model``
``resid_pre``  ``blocks.{layer}.hook_resid_pre``             ``batch pos d_model``
``resid_mid``  ``blocks.{layer}.hook_resid_mid``             ``batch pos d_model``
``resid_post`` ``blocks.{layer}.hook_resid_post``            ``batch pos d_model``
``attn_out``   ``blocks.{layer}.hook_attn_out``              ``batch pos d_model``
``mlp_out``    ``blocks.{layer}.hook_mlp_out``               ``batch pos d_model``
``q k v z``    ``blocks.{layer}.attn.hook_{site}``           ``batch pos head d_head``
``pattern``    ``blocks.{layer}.attn.hook_pattern``          ``batch head dest_pos src_pos``
``mlp_pre``    ``blocks.{layer}.mlp.hook_pre``               ``batch pos d_mlp``
``mlp_post``   ``blocks.{layer}.mlp.hook_post`` (neurons)    ``batch pos d_mlp``
``ln_scale``   ``ln_final.hook_scale``                       ``batch pos 1``
=============  ==========================================  ================================
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["SITES", "hook_name", "layer_hooks", "check_hook_names", "check_writable_hooks",
           "blocks_needed"]

SITES: dict[str, str] = {
    "embed": "hook_embed",
    "pos_embed": "hook_pos_embed",
    "resid_pre": "blocks.{layer}.hook_resid_pre",
    "resid_mid": "blocks.{layer}.hook_resid_mid",
    "resid_post": "blocks.{layer}.hook_resid_post",
    "attn_out": "blocks.{layer}.hook_attn_out",
    "mlp_out": "blocks.{layer}.hook_mlp_out",
    "q": "blocks.{layer}.attn.hook_q",
    "k": "blocks.{layer}.attn.hook_k",
    "v": "blocks.{layer}.attn.hook_v",
    "z": "blocks.{layer}.attn.hook_z",
    "pattern": "blocks.{layer}.attn.hook_pattern",
    "mlp_pre": "blocks.{layer}.mlp.hook_pre",
    "mlp_post": "blocks.{layer}.mlp.hook_post",
    "ln_scale": "ln_final.hook_scale",
}


def hook_name(site: str, layer: int | None = None) -> str:
    """The hook name of ``site`` at ``layer``, e.g. ``hook_name("z", 3)``.

    Raises:
        ValueError: an unknown site (the message lists them), a layer missing for a
            per-layer site, or a layer given for a model-wide one.
    """
    if site not in SITES:
        raise ValueError(f"unknown site {site!r}; choose one of {sorted(SITES)}")
    template = SITES[site]
    per_layer = "{layer}" in template
    if per_layer and layer is None:
        raise ValueError(f"site {site!r} is per layer: pass a layer, e.g. hook_name({site!r}, 0)")
    if not per_layer and layer is not None:
        raise ValueError(f"site {site!r} is not per layer ({template}); pass no layer")
    return template.format(layer=int(layer)) if per_layer else template


def layer_hooks(model, site: str) -> list[str]:
    """``site``'s hook at every layer of ``model``, checked to exist."""
    return check_hook_names(model, [hook_name(site, layer) for layer in range(model.cfg.n_layers)])


def check_hook_names(model, hooks: Iterable[str]) -> list[str]:
    """``hooks`` as a list, or ``KeyError`` naming close hooks that do exist."""
    hooks = [hooks] if isinstance(hooks, str) else list(hooks)
    known = model.hook_dict
    for name in hooks:
        if not isinstance(name, str):
            raise TypeError(f"hook names are strings, got {type(name).__name__} {name!r}")
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=5, cutoff=0.5)
            raise KeyError(f"no hook named {name!r} in this model. Did you mean one of "
                           f"{close}? All hooks: model.hook_dict.keys()")
    return hooks


#: Hooks that can be read but whose edits do not reach the rest of the model: in
#: transformer-lens 4.3's TransformerBridge, a change at ``hook_resid_mid`` reaches only the
#: MLP's input, not the residual stream after the block (measured: the block's output moves
#: by the MLP's change alone). Editing there would be a silent wrong answer.
READ_ONLY = {"resid_mid": "edits at hook_resid_mid reach only the MLP's input in "
                          "transformer-lens 4.3's TransformerBridge, not the residual stream; "
                          "patch 'attn_out' (the same layer) or 'resid_pre' (the next) instead"}


def check_writable_hooks(model, hooks: Iterable[str]) -> list[str]:
    """``hooks`` checked to exist *and* to pass an edit on to the rest of the model.

    Raises:
        KeyError: a hook does not exist. ValueError: a hook is read-only (see ``READ_ONLY``).
    """
    hooks = check_hook_names(model, hooks)
    for name in hooks:
        for site, why in READ_ONLY.items():
            if name.endswith(SITES[site].split("}")[-1]) and "blocks." in name:
                raise ValueError(f"cannot change {name}: {why}")
    return hooks


def blocks_needed(model, hooks: Iterable[str]) -> int | None:
    """How many blocks a forward pass must run for every hook in ``hooks`` to fire.

    ``None`` when one of them lies after the last block (e.g. ``ln_final.hook_scale``):
    then only a whole pass will do. Otherwise the pass may stop after that many blocks
    (all of them at most), skipping the later blocks and the unembedding.
    """
    deepest = -1
    for name in hooks:
        if not isinstance(name, str):  # a hook filter: it may match any hook
            return None
        parts = name.split(".")
        if parts[0] == "blocks" and len(parts) > 2 and parts[1].isdigit():
            deepest = max(deepest, int(parts[1]))
        elif not name.startswith(("hook_embed", "hook_pos_embed")):
            return None
    return max(1, deepest + 1)
