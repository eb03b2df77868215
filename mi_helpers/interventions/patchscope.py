"""Patchscope: decode a hidden state by patching it into another prompt.

The logit lens reads a hidden state ``h`` (layer ``l``, some position of a *source*
prompt) with the unembedding alone; the tuned lens first maps it with a learned affine
translator. A **Patchscope** (Ghandeharioun et al., 2024) instead lets the model itself
finish the computation: run a *target* prompt, overwrite its residual stream at a
target layer and position with ``h``, and read what the model then predicts there. The
target prompt chooses what is asked: an *identity*-style prompt ("cat cat ; dog dog ;
x") asks "what token is this?", a near-empty one asks "what comes next?".

* :func:`patchscope` patches one layer's hidden states (one per source prompt) into
  the target and returns the target's logits at the patched position;
* :func:`patchscope_logits` does it for every layer, shaped like
  :func:`mi_helpers.features.lens.lens_logits` (``[layer, batch, d_vocab]``), so the two
  can be compared directly, e.g. with :func:`top1_agreement`;
* :func:`identity_prompt` builds an identity-style target from a tokenizer's words.

The patch is an interchange intervention with the identity basis
(:func:`mi_helpers.interventions.subspaces.interchange`), so its hooks never leak.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..core.checks import check_layer, check_pos, check_positions, check_positive, check_tokens
from ..core.hooks import hook_name
from ..datasets.prompts import single_token_words
from .subspaces import interchange, source_activations

__all__ = ["patchscope", "patchscope_logits", "identity_prompt", "top1_agreement"]

LENS_SITES = ("resid_pre", "resid_mid", "resid_post")


def identity_prompt(model, words: Sequence[str], separator: str = ".") -> str:
    """``"w1 w1 . w2 w2 . w3 w3 ."``: each word repeated, a pattern the model can copy.

    Only words that are single tokens for the model are used; patch into the position
    after the prompt's last separator (append a placeholder word and patch there).

    Raises:
        ValueError: fewer than two of ``words`` are single tokens.
    """
    words = single_token_words(model, words)
    if len(words) < 2:
        raise ValueError("an identity prompt needs at least two single-token words")
    return " ".join(f"{w} {w} {separator}" for w in words)


def _target_batch(model, target: Int[Tensor, "pos"] | Int[Tensor, "batch pos"], n: int
                  ) -> Int[Tensor, "batch pos"]:
    target = check_tokens(model, target)
    if len(target) == 1:
        return target.expand(n, -1)
    if len(target) != n:
        raise ValueError(f"give one target prompt, or one per source prompt ({n}); got "
                         f"{len(target)}")
    return target


def patchscope(model, source: Int[Tensor, "batch pos"], source_layer: int,
               target: Int[Tensor, "target_batch pos"], target_layer: int | None = None,
               source_pos: int | Int[Tensor, "batch"] = -1, target_pos: int = -1,
               site: str = "resid_post", batch_size: int = 64
               ) -> Float[Tensor, "batch d_vocab"]:
    """The target's logits at ``target_pos`` with its ``site`` at ``target_layer``
    replaced by each source's hidden state at ``source_layer`` and ``source_pos``.

    Args:
        model: a TransformerLens model.
        source: ``[batch, pos]`` source prompts.
        source_layer: the layer whose hidden state is decoded.
        target: one target prompt (``[1, pos]`` or ``[pos]``) or one per source.
        target_layer: where to patch it in; default ``source_layer``.
        source_pos: the source position (an int or one per prompt).
        target_pos: the target position to overwrite and read.
        site: ``"resid_pre"``, ``"resid_mid"`` or ``"resid_post"``.
        batch_size: prompts per forward pass.

    Returns:
        One logit vector per source prompt.
    """
    if site not in LENS_SITES:
        raise ValueError(f"a Patchscope patches the residual stream: site must be one of "
                         f"{LENS_SITES}, not {site!r}")
    source = check_tokens(model, source)
    source_layer = check_layer(model, source_layer)
    target_layer = source_layer if target_layer is None else check_layer(model, target_layer)
    target = _target_batch(model, target, len(source))
    target_pos = check_pos(target_pos, target.shape[1])
    check_positive("batch_size", batch_size, integer=True)
    source_pos = check_positions(source_pos, *source.shape)
    read, write = hook_name(site, source_layer), hook_name(site, target_layer)
    eye = torch.eye(model.cfg.d_model)
    out = []
    for start in range(0, len(source), batch_size):
        rows = slice(start, start + batch_size)
        hidden = source_activations(model, source[rows], read, source_pos[rows], batch_size)
        with torch.no_grad(), interchange(model, write, eye, {write: hidden[read]}, target_pos):
            out.append(model(target[rows].to(model.cfg.device))[:, target_pos])
    return torch.cat(out)


def patchscope_logits(model, source: Int[Tensor, "batch pos"],
                      target: Int[Tensor, "target_batch pos"],
                      source_pos: int | Int[Tensor, "batch"] = -1, target_pos: int = -1,
                      site: str = "resid_post", batch_size: int = 64
                      ) -> Float[Tensor, "layer batch d_vocab"]:
    """:func:`patchscope` at every layer, each patched into the same layer of the target."""
    return torch.stack([patchscope(model, source, layer, target, layer, source_pos, target_pos,
                                   site, batch_size)
                        for layer in range(model.cfg.n_layers)])


def top1_agreement(logits: Float[Tensor, "layer batch d_vocab"],
                   reference: Float[Tensor, "batch d_vocab"]) -> Float[Tensor, "layer"]:
    """Per layer, the fraction of prompts whose top token matches the reference's
    (Patchscope's "precision@1" against the model's own final prediction)."""
    if logits.ndim != 3 or reference.ndim != 2 or logits.shape[1:] != reference.shape:
        raise ValueError(f"expected logits [layer, batch, d_vocab] and a reference "
                         f"[batch, d_vocab] of the same batch, got {tuple(logits.shape)} and "
                         f"{tuple(reference.shape)}")
    return (logits.argmax(-1) == reference.argmax(-1).to(logits.device)).float().mean(-1)
