"""A shuffled stream of activations for SAE training.

:class:`ActivationBuffer` runs a TransformerLens model over a token tensor, keeps the
activations at one hook (dropping the BOS position by default: its huge, constant
residual would waste latents), fills a buffer of ``buffer_size`` activations, shuffles
it with a seeded generator and serves batches until it must refill. Consecutive tokens
are strongly correlated, which is why the buffer shuffles. It also serves a precomputed
tensor (:meth:`ActivationBuffer.from_tensor`).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ...core.activations import iter_activations, token_rows
from ...core.checks import check_device, check_tokens
from ...core.hooks import check_hook_names

__all__ = ["ActivationBuffer"]


class ActivationBuffer:
    """Endless shuffled batches of activations ``[acts_per_batch d_in]``.

    Build one with :meth:`from_model` or :meth:`from_tensor`; iterate it (or call
    ``next``) for batches. ``chunks`` is any iterator of ``[n d_in]`` activation blocks.

    Args:
        chunks: an endless iterator of activation blocks, shape ``[n d_in]``.
        acts_per_batch: activations (one per token) in each training batch.
        buffer_size: activations gathered (then shuffled) before batches are served.
        seed: seeds the shuffling.
    """

    def __init__(self, chunks: Iterator[Float[Tensor, "n d_in"]], acts_per_batch: int,
                 buffer_size: int, seed: int = 0):
        if not isinstance(acts_per_batch, int) or acts_per_batch < 1 or buffer_size < acts_per_batch:
            raise ValueError(f"need 1 <= acts_per_batch <= buffer_size, got acts_per_batch="
                             f"{acts_per_batch!r}, buffer_size={buffer_size!r}")
        self.acts_per_batch, self.buffer_size = acts_per_batch, buffer_size
        self._chunks = chunks
        self._generator = torch.Generator().manual_seed(seed)
        self._buffer: Tensor | None = None
        self._next_row = 0
        self.rows_served = 0

    @classmethod
    def from_model(cls, model, tokens: Int[Tensor, "batch pos"], hook_name: str,
                   acts_per_batch: int = 1024, buffer_size: int = 2**15, batch_size: int = 32,
                   drop_bos: bool = True, seed: int = 0,
                   device: str | torch.device | None = None) -> ActivationBuffer:
        """Activations at ``hook_name`` of ``model`` on ``tokens``, cycling over the rows.

        Args:
            model: a TransformerLens model.
            tokens: token ids, e.g. from :func:`mi_helpers.text.token_chunks`.
            hook_name: e.g. ``"blocks.0.hook_resid_post"``; axes after ``pos`` (such as
                ``head d_head``) are flattened.
            acts_per_batch: activations per training batch.
            buffer_size: activations gathered and shuffled at a time.
            batch_size: prompts per forward pass of the model.
            drop_bos: drop position 0 (BOS in the zoo's ``token_chunks``).
            seed: seeds the shuffling.
            device: where batches go (default: the model's device).

        Raises:
            KeyError: the model has no such hook (the message lists close names).
        """
        check_hook_names(model, [hook_name])
        device = check_device(device) or torch.device(model.cfg.device)
        chunks = _model_chunks(model, check_tokens(model, tokens), hook_name, batch_size,
                               drop_bos, device)
        return cls(chunks, acts_per_batch, buffer_size, seed)

    @classmethod
    def from_tensor(cls, acts: Float[Tensor, "... d_in"], acts_per_batch: int = 1024,
                    buffer_size: int | None = None, seed: int = 0) -> ActivationBuffer:
        """Batches from precomputed activations (leading axes are flattened), reshuffled
        each time the buffer refills; ``buffer_size`` defaults to all of them."""
        if not isinstance(acts, Tensor) or acts.ndim < 2 or not acts.dtype.is_floating_point:
            raise ValueError(f"acts must be a float tensor [..., d_in], got "
                             f"{getattr(acts, 'shape', type(acts).__name__)}")
        flat = acts.reshape(-1, acts.shape[-1])
        buffer_size = len(flat) if buffer_size is None else buffer_size
        if len(flat) < acts_per_batch:
            raise ValueError(f"{len(flat)} activations are fewer than one batch ({acts_per_batch})")
        return cls(_tensor_chunks(flat, buffer_size), acts_per_batch, buffer_size, seed)

    def __iter__(self) -> ActivationBuffer:
        return self

    def __next__(self) -> Float[Tensor, "batch d_in"]:
        if self._buffer is None or self._next_row + self.acts_per_batch > len(self._buffer):
            self._refill()
        batch = self._buffer[self._next_row:self._next_row + self.acts_per_batch]
        self._next_row += self.acts_per_batch
        self.rows_served += self.acts_per_batch
        return batch

    def _refill(self) -> None:
        """Keep the unserved rows, add new ones up to ``buffer_size``, shuffle."""
        parts = [] if self._buffer is None else [self._buffer[self._next_row:]]
        n_rows = sum(len(p) for p in parts)
        while n_rows < self.buffer_size:
            parts.append(next(self._chunks))
            n_rows += len(parts[-1])
        rows = torch.cat(parts)
        order = torch.randperm(len(rows), generator=self._generator)
        self._buffer = rows[order.to(rows.device)]
        self._next_row = 0


def _model_chunks(model, tokens, hook_name, batch_size, drop_bos, device) -> Iterator[Tensor]:
    """Activations of successive batches of token rows, forever (wrapping around)."""
    while True:
        for _, acts in iter_activations(model, tokens, [hook_name], batch_size=batch_size):
            yield token_rows(acts[hook_name], drop_bos).to(device)


def _tensor_chunks(flat: Tensor, size: int) -> Iterator[Tensor]:
    """Successive blocks of ``size`` rows of ``flat``, forever."""
    start = 0
    while True:
        block = flat[start:start + size]
        yield block
        start = start + size if start + size < len(flat) else 0
