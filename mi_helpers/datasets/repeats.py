"""Repeated random tokens: ``BOS + r + r``, the standard probe for induction.

A block ``r`` of ``rep_len`` random tokens, then the same block again. Nothing but
in-context copying can predict the second copy, so head scores
(:mod:`mi_helpers.circuits.head_scores`) and the induction-loss tests use it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..core.checks import check_positive

__all__ = ["repeat_block", "repeated_random_tokens", "induction_pair"]


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


def induction_pair(model, rep_len: int, n_seqs: int = 32, seed: int = 0
                   ) -> tuple[Int[Tensor, "batch pos"], Int[Tensor, "batch pos"], Callable]:
    """Clean ``BOS + r + r`` and corrupted ``BOS + r' + r`` prompts, and an induction metric.

    In the corrupted prompts the first copy is replaced by other random tokens, so only
    in the clean ones can the second copy be predicted by copying. The metric is the
    mean log-probability of each token of the second copy (after its first token),
    predicted at the position before it: high when induction works.

    Returns:
        ``(clean, corrupted, metric)``; ``metric`` maps logits ``[batch, pos, d_vocab]``
        to a scalar tensor.

    Raises:
        ValueError: ``rep_len`` below 2 (the metric would score no token) or too long.
    """
    check_positive("rep_len", rep_len, integer=True)
    if rep_len < 2:
        raise ValueError(f"rep_len must be at least 2, got {rep_len}: the metric scores the "
                         f"second copy from its second token")
    clean = repeated_random_tokens(model, rep_len, n_seqs, seed)
    corrupted = clean.clone()
    corrupted[:, 1:rep_len + 1] = repeated_random_tokens(model, rep_len, n_seqs, seed + 1)[
        :, 1:rep_len + 1]
    targets = clean[:, rep_len + 2:]  # the second copy, from its second token

    def metric(logits: Float[Tensor, "batch pos d_vocab"]) -> Float[Tensor, ""]:
        log_probs = logits[:, rep_len + 1:-1].log_softmax(-1)
        return log_probs.gather(-1, targets[..., None].to(logits.device)).mean()

    return clean, corrupted, metric
