"""Reading activations: one forward pass per batch, caching only the hooks asked for.

Every technique in the package reads activations through this module:

* :func:`run_cached` runs the model once (no gradients), optionally with intervention
  hooks, and keeps only the named hooks;
* :func:`iter_activations` does that batch by batch over a token tensor, ``batch_size``
  prompts per forward pass (the meaning of ``batch_size`` everywhere in the package);
* :func:`collect_activations` gathers one vector per example (at a position) or per
  token (every position, optionally without BOS) onto a device, e.g. the CPU;
* :func:`token_rows` flattens a ``[batch, pos, ...]`` activation to one row per token.

``drop_bos=True`` leaves out position 0, where the BOS token sits in every prompt made
with ``prepend_bos`` (the zoo's default): its activations are outliers in most models.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from transformer_lens.model_bridge.exceptions import StopAtLayerException

from .checks import check_device, check_positions, check_positive, check_tokens
from .hooks import blocks_needed, check_hook_names

__all__ = ["FwdHook", "run_cached", "iter_activations", "collect_activations", "token_rows"]

#: The hook on the final norm's input: a pass stopped there skips the unembedding.
FINAL_NORM_INPUT = "ln_final.hook_in"
#: A TransformerLens forward hook: a hook name and ``fn(activation, hook) -> activation``.
FwdHook = tuple[str, Callable]


def run_cached(model, tokens: Int[Tensor, "batch pos"], hooks: Sequence[str],
               fwd_hooks: Sequence[FwdHook] = (), stop_early: bool = False
               ) -> tuple[Float[Tensor, "batch pos d_vocab"] | None, dict[str, Tensor]]:
    """Run once (no gradients) with ``fwd_hooks`` applied, caching only ``hooks``.

    Args:
        model: a TransformerLens model (or bridge in compatibility mode).
        tokens: ``[batch, pos]`` token ids.
        hooks: hook names to keep, e.g. ``[hook_name("z", 0)]``.
        fwd_hooks: ``(name, fn)`` pairs applied during the run; removed afterwards.
        stop_early: the logits are not needed: stop after the last block that a hook in
            ``hooks`` needs (:func:`~.hooks.blocks_needed`), skipping the later blocks
            and the unembedding (on gpt2, a 50,257-token matrix multiply per token).

    Returns:
        The logits (``None`` when the pass stopped early) and ``{hook: activation}`` for
        the named hooks that ran.

    Raises:
        KeyError: a hook name does not exist (the message suggests close ones).
    """
    wanted = dict.fromkeys(check_hook_names(model, hooks))  # ordered, no duplicates
    tokens = check_tokens(model, tokens).to(model.cfg.device)
    fwd_hooks = list(fwd_hooks)
    stop = blocks_needed(model, [*wanted, *(name for name, _ in fwd_hooks)]) if stop_early else None
    stopped = stop is not None
    if stop == model.cfg.n_layers:  # every block: stop at the final norm, before the unembedding
        stop = None
        stopped = FINAL_NORM_INPUT in model.hook_dict
        if stopped:
            fwd_hooks.append((FINAL_NORM_INPUT, _stop_pass))
    with torch.no_grad(), model.hooks(fwd_hooks=fwd_hooks):
        logits, cache = model.run_with_cache(tokens, names_filter=lambda n: n in wanted,
                                             **({} if stop is None else {"stop_at_layer": stop}))
    return (None if stopped else logits), _by_requested_name(cache, wanted)


def _stop_pass(act: Tensor, hook) -> Tensor:
    """Ends a pass the way the bridge's own ``stop_at_layer`` does (it catches this)."""
    raise StopAtLayerException(act)


def _by_requested_name(cache, wanted) -> dict[str, Tensor]:
    """``{name: activation}`` keyed by the names asked for (the cache may use aliases);
    a hook that exists but did not run (e.g. ``hook_pos_embed`` in a rotary model) is left
    out."""
    out = {}
    for name in wanted:
        try:
            out[name] = cache[name]
        except KeyError:
            continue
    return out


def iter_activations(model, tokens: Int[Tensor, "batch pos"], hooks: Sequence[str], *,
                     batch_size: int = 32, fwd_hooks: Sequence[FwdHook] = (),
                     progress: bool = False, desc: str = "activations"
                     ) -> Iterator[tuple[slice, dict[str, Tensor]]]:
    """Yield ``(rows, {hook: activation})`` for successive batches of ``batch_size`` prompts.

    ``rows`` is the slice of ``tokens`` the batch covers; activations stay on the
    model's device.
    """
    hooks = check_hook_names(model, hooks)
    tokens = check_tokens(model, tokens)
    check_positive("batch_size", batch_size, integer=True)
    starts = range(0, len(tokens), batch_size)
    for start in tqdm(starts, desc=desc, disable=not progress):
        rows = slice(start, start + batch_size)
        yield rows, run_cached(model, tokens[rows], hooks, fwd_hooks, stop_early=True)[1]


def token_rows(act: Float[Tensor, "batch pos ..."], drop_bos: bool = False
               ) -> Float[Tensor, "n unit"]:
    """One row per token: ``[batch, pos, ...]`` -> ``[batch * pos, prod(...)]``.

    With ``drop_bos`` the rows of position 0 are left out.
    """
    if act.ndim < 2:
        raise ValueError(f"expected an activation [batch, pos, ...], got shape {tuple(act.shape)}")
    if drop_bos:
        act = act[:, 1:]
    return act.reshape(act.shape[0] * act.shape[1], -1)


def collect_activations(model, tokens: Int[Tensor, "batch pos"], hooks: Sequence[str], *,
                        positions: int | Int[Tensor, "batch"] | None = None,
                        drop_bos: bool = False, batch_size: int = 64,
                        device: str | torch.device | None = "cpu", progress: bool = False
                        ) -> dict[str, Float[Tensor, "n unit"]]:
    """Activations at ``hooks``, one row per example or per token, gathered on ``device``.

    Args:
        model: a TransformerLens model.
        tokens: ``[batch, pos]`` token ids (pad on the right: causal attention keeps
            padding from changing earlier positions).
        hooks: hook names; axes after ``pos`` (e.g. ``head d_head``) are flattened.
        positions: ``None`` for every token (``[batch * pos, unit]`` rows, BOS dropped if
            ``drop_bos``); an int or one position per example for ``[batch, unit]``.
        drop_bos: leave out position 0 (only with ``positions=None``).
        batch_size: prompts per forward pass.
        device: where the result goes (``None``: the model's device).
        progress: show a tqdm bar.

    Returns:
        ``{hook: activations}``.
    """
    tokens = check_tokens(model, tokens)
    device = check_device(device) or torch.device(model.cfg.device)
    if positions is not None and drop_bos:
        raise ValueError("drop_bos applies to every-token collection; with positions= give "
                         "positions that are not 0 instead")
    where = None if positions is None else check_positions(positions, *tokens.shape)
    parts: dict[str, list[Tensor]] = {name: [] for name in hooks}
    for rows, acts in iter_activations(model, tokens, hooks, batch_size=batch_size,
                                       progress=progress):
        for name, act in acts.items():
            if where is None:
                parts[name].append(token_rows(act, drop_bos).to(device))
            else:
                index = torch.arange(len(act), device=act.device)
                parts[name].append(act[index, where[rows].to(act.device)].flatten(1).to(device))
    return {name: torch.cat(chunks) for name, chunks in parts.items()}
