"""Metrics on logits that several techniques share.

* :func:`per_token_loss`: next-token cross-entropy at every position;
* :func:`logit_difference`: ``logit(correct) - logit(wrong)`` per prompt, the standard
  metric of patching experiments (e.g. IOI's ``logit(IO) - logit(S)``);
* :func:`kl_divergence`: ``KL(reference || other)`` per position, e.g. a lens against
  the model's final distribution, or a pruned circuit against the full model.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import torch
from jaxtyping import Float, Int
from torch import Tensor

__all__ = ["per_token_loss", "logit_difference", "kl_divergence", "kl_from_log_probs",
           "PositionMetric", "metric_positions", "logits_at_positions", "PositionReader"]


def per_token_loss(logits: Float[Tensor, "batch pos d_vocab"], tokens: Int[Tensor, "batch pos"]
                   ) -> Float[Tensor, "batch pos_minus_1"]:
    """Cross-entropy of predicting ``tokens[:, 1:]``; position ``i`` predicts token ``i + 1``."""
    if logits.shape[:2] != tokens.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and tokens {tuple(tokens.shape)} must "
                         f"share [batch, pos]")
    log_probs = logits[:, :-1].log_softmax(-1)
    return -log_probs.gather(-1, tokens[:, 1:, None].to(logits.device)).squeeze(-1)


def logit_difference(final_logits: Float[Tensor, "batch d_vocab"],
                     correct_ids: Int[Tensor, "batch"], wrong_ids: Int[Tensor, "batch"]
                     ) -> Float[Tensor, "batch"]:
    """``logit(correct) - logit(wrong)`` for each prompt (logits at the answer position)."""
    if final_logits.ndim != 2:
        raise ValueError(f"expected one logit vector per prompt [batch, d_vocab], got shape "
                         f"{tuple(final_logits.shape)}; select the answer position first")
    rows = torch.arange(len(final_logits), device=final_logits.device)
    correct_ids, wrong_ids = correct_ids.to(final_logits.device), wrong_ids.to(final_logits.device)
    return final_logits[rows, correct_ids] - final_logits[rows, wrong_ids]


def kl_divergence(reference_logits: Float[Tensor, "... d_vocab"],
                  other_logits: Float[Tensor, "... d_vocab"]) -> Float[Tensor, "..."]:
    """``KL(reference || other)`` in nats at each position: the extra surprise of
    predicting with ``other`` when ``reference`` is the truth (not symmetric)."""
    return kl_from_log_probs(reference_logits.log_softmax(-1), other_logits.log_softmax(-1))


def kl_from_log_probs(reference: Float[Tensor, "... d_vocab"], other: Float[Tensor, "... d_vocab"]
                      ) -> Float[Tensor, "..."]:
    """``KL(reference || other)`` from two log-probability tensors (normalised already)."""
    return (reference.exp() * (reference - other)).sum(-1)


class PositionMetric:
    """A metric (logits -> scalar) that reads the logits at one position per prompt.

    Calling it calls ``fn``. ``positions`` (``[batch]``) tells a replayed patching sweep
    that only those logits are read, so it unembeds only there (on gpt2 the 50,257-token
    unembedding is most of a patched pass); the other positions' logits are then NaN, and
    a metric that reads them is refused.
    """

    def __init__(self, fn, positions: Int[Tensor, "batch"]):
        if not callable(fn):
            raise TypeError(f"fn must be a function of the logits, got {type(fn).__name__}")
        if (not isinstance(positions, Tensor) or positions.ndim != 1 or len(positions) == 0
                or positions.dtype.is_floating_point):
            raise ValueError("positions must be a non-empty 1-D integer tensor, one position "
                             f"per prompt; got {positions!r:.60}")
        self.fn, self.positions = fn, positions

    def __call__(self, logits: Float[Tensor, "batch pos d_vocab"]) -> Float[Tensor, ""]:
        return self.fn(logits)

    def __repr__(self) -> str:
        return f"PositionMetric({getattr(self.fn, '__qualname__', self.fn)!s})"



def metric_positions(metric, tokens: Int[Tensor, "batch pos"]) -> Int[Tensor, "batch"] | None:
    """The one position per prompt a :class:`PositionMetric` reads (``[batch]``, in
    ``0..pos-1``), or None for any other metric or positions that do not fit ``tokens``."""
    positions = metric.positions if isinstance(metric, PositionMetric) else None
    if positions is None or positions.shape != (len(tokens),):
        return None
    return positions % tokens.shape[1]


class PositionReader:
    """For forward passes rebuilt from the weights (replayed patching, the edge model):
    within :meth:`reading_positions`, passes unembed only at one position per prompt.

    On gpt2 the 50,257-token unembedding of every position is most of a patched pass;
    a :class:`PositionMetric` says which logits it reads, and the others are left NaN.
    """

    #: ``[batch]`` positions whose logits are read, or None for every position.
    read_positions: Tensor | None = None

    @contextmanager
    def reading_positions(self, positions: Int[Tensor, "batch"] | None):
        """Within the block, passes unembed only at ``positions`` (one per prompt; None:
        every position). The logits elsewhere are NaN."""
        before, self.read_positions = self.read_positions, positions
        try:
            yield self
        finally:
            self.read_positions = before

    def read_logits(self, x: Float[Tensor, "rows pos d_model"],
                    unembed: Callable[[Tensor], Tensor]) -> Float[Tensor, "rows pos d_vocab"]:
        """``unembed(x)`` (final norm and unembedding), at the read positions only when
        some are set; ``rows`` are copies of the batch, each prompt read at its position."""
        if self.read_positions is None:
            return unembed(x)
        return logits_at_positions(x, self.read_positions, unembed)


def logits_at_positions(x: Float[Tensor, "rows pos d_model"], positions: Int[Tensor, "batch"],
                        unembed: Callable[[Tensor], Tensor]) -> Float[Tensor, "rows pos d_vocab"]:
    """``unembed`` applied only at one position per prompt, NaN elsewhere; ``rows`` are
    copies of the batch of ``positions``.

    Raises:
        ValueError: ``rows`` is not a whole number of copies of the batch.
    """
    if len(x) % len(positions):
        raise ValueError(f"{len(x)} rows are not copies of a batch of {len(positions)} "
                         f"prompts (one read position each)")
    rows = torch.arange(len(x), device=x.device)
    where = positions.to(x.device).repeat(len(x) // len(positions))
    picked = unembed(x[rows, where])
    out = picked.new_full((*x.shape[:2], picked.shape[-1]), float("nan"))
    out[rows, where] = picked
    return out
