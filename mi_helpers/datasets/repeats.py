"""Repeated random tokens: ``BOS + r + r``, the standard probe for induction.

A block ``r`` of ``rep_len`` random tokens, then the same block again. Nothing but
in-context copying can predict the second copy, so head scores
(:mod:`mi_helpers.circuits.head_scores`) and the induction-loss tests use it.
"""

from __future__ import annotations

import torch
from jaxtyping import Int
from torch import Tensor

from ..core.checks import check_positive

__all__ = ["repeat_block", "repeated_random_tokens"]


def repeat_block(allowed_ids: Int[Tensor, "n_allowed"], bos_id: int, rep_len: int,
                 n_seqs: int, seed: int) -> Int[Tensor, "batch pos"]:
    """``BOS + r + r`` with ``r`` drawn uniformly from ``allowed_ids`` (on the CPU)."""
    check_positive("rep_len", rep_len, integer=True)
    check_positive("n_seqs", n_seqs, integer=True)
    gen = torch.Generator().manual_seed(seed)
    block = allowed_ids[torch.randint(len(allowed_ids), (n_seqs, rep_len), generator=gen)]
    return torch.cat([torch.full((n_seqs, 1), bos_id), block, block], dim=1)


def repeated_random_tokens(model, rep_len: int, n_seqs: int = 64,
                           seed: int = 0) -> Int[Tensor, "batch pos"]:
    """``BOS + r + r`` with ``r`` drawn uniformly from the model's non-special tokens.

    Returns:
        Token ids of shape ``[n_seqs, 1 + 2 * rep_len]`` on the model's device.

    Raises:
        ValueError: the sequence would not fit in the model's context.
    """
    if 1 + 2 * rep_len > model.cfg.n_ctx:
        raise ValueError(f"rep_len={rep_len} needs {1 + 2 * rep_len} positions but the "
                         f"model's context is {model.cfg.n_ctx}")
    special = set(model.tokenizer.all_special_ids)
    allowed = torch.tensor([i for i in range(model.cfg.d_vocab) if i not in special])
    tokens = repeat_block(allowed, model.tokenizer.bos_token_id, rep_len, n_seqs, seed)
    return tokens.to(model.cfg.device)
