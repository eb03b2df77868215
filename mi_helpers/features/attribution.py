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
from ..core.checks import check_positions, check_token_ids, check_tokens
from ..core.hooks import hook_name, layer_hooks
from ..core.residual import frozen_final_ln

__all__ = ["head_logits", "mlp_logits", "direction_logits", "logit_difference_attribution"]


def _select(model, tokens, out: Tensor, scale: Tensor, positions, vocab) -> Tensor:
    """Read the component outputs ``[... batch pos d_model]`` through the frozen final LN and
    ``W_U``, only at ``positions`` (one per prompt) and only for the ``vocab`` token ids."""
    if positions is not None:
        where = check_positions(positions, *tokens.shape).to(out.device)
        rows = torch.arange(tokens.shape[0], device=out.device)
        out, scale = out[..., rows, where, :], scale[rows, where]
    unembed_cols = model.W_U if vocab is None else model.W_U[:, _vocab(model, vocab)]
    with torch.no_grad():
        return frozen_final_ln(model, out, scale) @ unembed_cols


def _vocab(model, vocab) -> Tensor:
    vocab = torch.as_tensor(vocab).long().flatten()
    if len(vocab) == 0 or vocab.min() < 0 or vocab.max() >= model.cfg.d_vocab:
        raise ValueError(f"vocab must hold token ids in 0..{model.cfg.d_vocab - 1}, got "
                         f"{vocab.tolist()[:10]}")
    return vocab.to(model.W_U.device)


def head_logits(model, tokens: Int[Tensor, "batch pos"],
                positions: int | Int[Tensor, "batch"] | None = None,
                vocab: Int[Tensor, "n_vocab"] | None = None
                ) -> Float[Tensor, "layer head batch *pos n_vocab"]:
    """Each head's output ``z_h @ W_O[h]``, read through the frozen final LN and ``W_U``.

    ``b_O`` belongs to no head and ``b_U`` to no component, so neither is included. The
    output has ``layer x head x batch x pos x d_vocab`` numbers (12 x 12 x 100 x 17 x 50,257
    floats, 49 GB, for 100 IOI prompts on gpt2): choose the positions and the tokens.

    Args:
        model: a TransformerLens model.
        tokens: ``[batch, pos]`` token ids.
        positions: ``None`` for every position; an int or one per prompt (e.g. the last).
        vocab: the token ids to read (default: the whole vocabulary), e.g. the answer names.
    """
    tokens = check_tokens(model, tokens)
    names = layer_hooks(model, "z")
    _, cache = run_cached(model, tokens, names + [hook_name("ln_scale")])
    z = torch.stack([cache[name] for name in names])  # layer batch pos head d_head
    with torch.no_grad():
        out = torch.einsum("lbphd,lhdm->lhbpm", z, model.W_O)  # layer head batch pos d_model
    return _select(model, tokens, out, cache[hook_name("ln_scale")], positions, vocab)


def mlp_logits(model, tokens: Int[Tensor, "batch pos"],
               positions: int | Int[Tensor, "batch"] | None = None,
               vocab: Int[Tensor, "n_vocab"] | None = None
               ) -> Float[Tensor, "layer batch *pos n_vocab"]:
    """Each MLP's output (site ``mlp_out``) read through the frozen final LN and ``W_U``; no
    ``b_U``. ``positions`` and ``vocab`` as in :func:`head_logits`."""
    tokens = check_tokens(model, tokens)
    names = layer_hooks(model, "mlp_out")
    _, cache = run_cached(model, tokens, names + [hook_name("ln_scale")])
    out = torch.stack([cache[name] for name in names])  # layer batch pos d_model
    return _select(model, tokens, out, cache[hook_name("ln_scale")], positions, vocab)


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


def logit_difference_attribution(model, tokens: Int[Tensor, "batch pos"],
                                 correct_ids: Int[Tensor, "batch"],
                                 wrong_ids: Int[Tensor, "batch"],
                                 positions: int | Int[Tensor, "batch"] = -1
                                 ) -> tuple[Float[Tensor, "component batch"], list[str]]:
    """Every term of ``logit(correct) - logit(wrong)``: an exact decomposition.

    With the final layer norm's scale frozen at its value on the full residual, the logit
    difference at a position is a sum over everything written into the residual stream:
    the token (and position) embeddings, each head's output, each layer's attention bias
    ``b_O``, each MLP's output, and the unembedding bias ``b_U``. The terms add up to the
    model's own logit difference (to float precision), so nothing is left unexplained;
    what this cannot show is how much of a term is caused by earlier components (indirect
    effects): that is what patching measures.

    Returns:
        The terms ``[component, batch]`` and their labels (``"embed"``, ``"L0H3"``,
        ``"L0 b_O"``, ``"MLP0"``, ``"b_U"``, ...).
    """
    tokens = check_tokens(model, tokens)
    where = check_positions(positions, *tokens.shape)
    correct_ids = check_token_ids(model, correct_ids, len(tokens), "correct_ids")
    wrong_ids = check_token_ids(model, wrong_ids, len(tokens), "wrong_ids")
    rows = torch.arange(len(tokens))
    direction = model.W_U[:, correct_ids.to(model.W_U.device)] - model.W_U[:, wrong_ids.to(
        model.W_U.device)]  # d_model batch
    names = [hook_name("embed"), hook_name("pos_embed"), hook_name("ln_scale"),
             *layer_hooks(model, "z"), *layer_hooks(model, "mlp_out")]
    _, cache = run_cached(model, tokens, [n for n in names if n in model.hook_dict],
                          stop_early=True)
    scale = cache[hook_name("ln_scale")][rows, where]  # batch 1

    def read(x: Tensor) -> Tensor:  # [... batch d_model] at the positions -> [... batch]
        return (frozen_final_ln(model, x, scale) * direction.T).sum(-1)

    terms, labels = [read(cache[hook_name("embed")][rows, where])], ["embed"]
    if hook_name("pos_embed") in cache:
        terms.append(read(cache[hook_name("pos_embed")][rows, where]))
        labels.append("pos_embed")
    for layer in range(model.cfg.n_layers):
        z = cache[hook_name("z", layer)][rows, where]  # batch head d_head
        heads = torch.einsum("bhd,hdm->hbm", z, model.W_O[layer])
        terms += list(read(heads)) + [read(model.b_O[layer].expand_as(heads[0]))]
        labels += [f"L{layer}H{h}" for h in range(model.cfg.n_heads)] + [f"L{layer} b_O"]
        terms.append(read(cache[hook_name("mlp_out", layer)][rows, where]))
        labels.append(f"MLP{layer}")
    bias = model.b_U[correct_ids.to(model.b_U.device)] - model.b_U[wrong_ids.to(model.b_U.device)]
    return torch.stack(terms + [bias]).detach(), labels + ["b_U"]
