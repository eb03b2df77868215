"""Causal tracing (Meng et al., 2022): corrupt a prompt with noise, then restore.

Instead of a second, corrupted prompt, corrupt the clean prompt itself: add Gaussian
noise of std ``noise_scale`` x the token-embedding std to ``hook_embed`` at chosen
positions (e.g. the subject's tokens), which erases what those tokens say. Then restore
clean activations one at a time, exactly as denoising activation patching does
(:func:`~mi_helpers.circuits.patching.activation_patching`). Where restoring brings the
answer back, the information flows through.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
from jaxtyping import Int
from torch import Tensor

from ..core.activations import FwdHook
from ..core.checks import as_tokens, check_positive, checked_indices
from ..core.hooks import hook_name
from ..core.results import SweepResult
from .patching import Metric, PatchTarget, activation_patching

__all__ = ["causal_tracing", "embedding_noise_hook"]


def embedding_noise_hook(model, tokens: Int[Tensor, "batch pos"], positions: Sequence[int],
                         noise_scale: float = 3.0, seed: int = 0) -> FwdHook:
    """A ``hook_embed`` hook adding fixed Gaussian noise at ``positions``.

    The noise has std ``noise_scale`` times the std of the token-embedding matrix ``W_E``
    (Meng et al. use 3); it is drawn once, so every run sees the same corruption, and
    each prompt in the batch gets its own draw. It broadcasts over repeated copies of
    the batch (as patching sweeps run it).

    Returns:
        ``("hook_embed", hook_fn)``, for ``corruption_hooks=`` or ``model.run_with_hooks``.
    """
    positions = checked_indices("pos", positions, tokens.shape[1])
    check_positive("noise_scale", noise_scale)
    std = noise_scale * model.W_E.detach().float().std().item()
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(len(tokens), len(positions), model.cfg.d_model, generator=gen) * std
    return hook_name("embed"), partial(_add_noise, noise=noise.to(model.cfg.device),
                                       positions=positions)


def _add_noise(act: Tensor, hook, *, noise: Tensor, positions: list[int]) -> Tensor:
    """Add ``noise`` ``[batch, len(positions), d_model]`` to every copy of the batch."""
    act = act.clone()
    copies = act.unflatten(0, (-1, noise.shape[0]))  # copy batch pos d_model
    copies[:, :, positions] += noise.to(act.device, act.dtype)
    return act


def causal_tracing(model, prompts: str | Sequence[str] | Int[Tensor, "batch pos"],
                   metric: Metric, noise_positions: Sequence[int],
                   target: str | PatchTarget = "resid_pre", *, noise_scale: float = 3.0,
                   seed: int = 0, per_position: bool = True, **kwargs) -> SweepResult:
    """Corrupt ``noise_positions`` with embedding noise, then restore clean activations.

    Args:
        model, metric, target, per_position: as in
            :func:`~mi_helpers.circuits.patching.activation_patching`.
        prompts: the clean prompts (e.g. "The Eiffel Tower is in").
        noise_positions: positions to corrupt (e.g. the subject's tokens).
        noise_scale, seed: noise std (times the embedding std) and seed.
        **kwargs: passed on to ``activation_patching`` (``layers``, ``positions``, ...).

    Returns:
        A :class:`~mi_helpers.core.results.SweepResult` (clean = no noise, corrupted =
        noise, nothing restored).
    """
    tokens = as_tokens(model, prompts)
    noise = embedding_noise_hook(model, tokens, noise_positions, noise_scale, seed)
    result = activation_patching(model, tokens, None, metric, target, mode="denoise",
                                 per_position=per_position, corruption_hooks=[noise], **kwargs)
    result.method = "causal tracing"
    return result
