"""Attention-pattern scores that name a head's job: previous-token, duplicate-token,
induction.

All three are measured on sequences ``BOS + r + r``: a block ``r`` of ``rep_len``
random tokens, then the same block again. For a destination position ``i`` in the
second copy, the token it holds first appeared at ``i - rep_len``.

* a **previous-token** head attends from ``i`` to ``i - 1`` (scored on every position
  after the first);
* a **duplicate-token** head attends from ``i`` to ``i - rep_len`` (the earlier copy of
  the current token);
* an **induction** head attends from ``i`` to ``i - rep_len + 1`` (the token that
  *followed* the earlier copy, which is what comes next).

A score is the mean attention weight on the named source position, so 1.0 is a head
that attends only there. Scores measured at one repeat length can reward a head that
attends a fixed distance back; measure at two lengths and take the minimum.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..core.activations import run_cached
from ..core.hooks import layer_hooks
from ..datasets.repeats import repeated_random_tokens

__all__ = ["head_scores", "attention_patterns", "offset_score"]


def attention_patterns(model, tokens: Int[Tensor, "batch pos"]
                       ) -> Float[Tensor, "layer batch head dest_pos src_pos"]:
    """Every layer's attention pattern, caching nothing else."""
    names = layer_hooks(model, "pattern")
    _, cache = run_cached(model, tokens, names, stop_early=True)
    return torch.stack([cache[name] for name in names])


def offset_score(patterns: Float[Tensor, "layer batch head dest_pos src_pos"],
                 dest: range, offset: int) -> Float[Tensor, "layer head"]:
    """Mean attention from each position ``i`` in ``dest`` to ``i - offset``.

    Raises:
        ValueError: ``dest`` reaches before position 0 or beyond the pattern.
    """
    if patterns.ndim != 5:
        raise ValueError(f"patterns must be [layer, batch, head, dest_pos, src_pos], got shape "
                         f"{tuple(patterns.shape)}")
    if len(dest) == 0 or min(dest) - offset < 0 or max(dest) >= patterns.shape[-1]:
        raise ValueError(f"positions {dest} with offset {offset} reach before position 0 or "
                         f"beyond the {patterns.shape[-1]} positions of the pattern")
    dest_idx = torch.tensor(list(dest), device=patterns.device)
    weights = patterns[..., dest_idx, dest_idx - offset]  # layer batch head len(dest)
    return weights.mean(dim=(1, 3))


def head_scores(model, rep_len: int = 20, n_seqs: int = 64,
                seed: int = 0) -> dict[str, Float[Tensor, "layer head"]]:
    """Previous-token, duplicate-token and induction scores of every head.

    Args:
        model: a TransformerLens model (or bridge in compatibility mode).
        rep_len: length of the repeated random block.
        n_seqs: number of random sequences to average over.
        seed: seed for the random blocks.

    Returns:
        ``{"previous_token": ..., "duplicate_token": ..., "induction": ...}``, each of
        shape ``[layer, head]`` with values in [0, 1].
    """
    patterns = attention_patterns(model, repeated_random_tokens(model, rep_len, n_seqs, seed))
    second_copy = range(rep_len + 1, 2 * rep_len + 1)
    return {
        "previous_token": offset_score(patterns, range(1, 2 * rep_len + 1), 1),
        "duplicate_token": offset_score(patterns, second_copy, rep_len),
        "induction": offset_score(patterns, second_copy, rep_len - 1),
    }
