"""Attention heads as values: ``Head(layer, head)``, labelled ``"L1H2"``.

A head is named by its layer and its index in that layer. :class:`Head` is a named
tuple, so ``scores[head]`` indexes a ``[layer, head]`` tensor directly and
``layer, h = head`` unpacks it; ``head.label`` is the ``"L{layer}H{head}"`` string every
figure and printout uses. :func:`top_heads` and :func:`heads_above` turn a
``[layer, head]`` score grid into heads, so no notebook has to ``divmod`` a flat index.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import torch
from jaxtyping import Float
from torch import Tensor

from .checks import _index, check_model

__all__ = ["Head", "all_heads", "check_heads", "top_heads", "heads_above"]


class _HeadFields(NamedTuple):
    layer: int
    head: int


class Head(_HeadFields):
    """One attention head: its layer and its index within the layer (both ints >= 0).

    Raises:
        TypeError: a layer or head that is not an int (e.g. ``1.5`` from a ``/`` that
            should be ``//``). ValueError: a negative index (use :func:`check_heads` to
            count from the end).
    """

    __slots__ = ()

    def __new__(cls, layer: int, head: int):
        layer, head = _index("layer", layer), _index("head", head)
        if layer < 0 or head < 0:
            raise ValueError(f"Head({layer}, {head}): layer and head are indices >= 0; to "
                             f"count from the end use check_heads(model, [({layer}, {head})])")
        return super().__new__(cls, layer, head)

    @property
    def label(self) -> str:
        """``"L{layer}H{head}"``, e.g. ``"L9H6"``."""
        return f"L{self.layer}H{self.head}"

    def __str__(self) -> str:
        return self.label


def all_heads(model) -> list[Head]:
    """Every head of the model, layer by layer."""
    check_model(model, needs=("cfg",))
    return [Head(layer, head) for layer in range(model.cfg.n_layers)
            for head in range(model.cfg.n_heads)]


def check_heads(model, heads: Iterable[Sequence[int]], what: str = "head") -> list[Head]:
    """``(layer, head)`` pairs as :class:`Head` values (negatives count back).

    Raises:
        ValueError: an entry is not a pair. IndexError: a layer or head out of range.
    """
    if isinstance(heads, tuple) and len(heads) == 2 and all(isinstance(i, int) for i in heads):
        raise ValueError(f"expected a list of {what}s, got the single pair {heads!r}; "
                         f"wrap it in a list: [{heads!r}]")
    out = []
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    for pair in heads:
        if not isinstance(pair, Sequence) or len(pair) != 2:
            raise ValueError(f"each {what} must be a (layer, head) pair, got {pair!r}")
        layer, head = (int(i) for i in pair)
        if not -n_layers <= layer < n_layers:
            raise IndexError(f"{what} layer {layer} is out of range: the model has "
                             f"{n_layers} layers")
        if not -n_heads <= head < n_heads:
            raise IndexError(f"{what} head {head} is out of range: each layer has "
                             f"{n_heads} heads")
        out.append(Head(layer % n_layers, head % n_heads))
    return out


def _check_grid(scores: Tensor) -> Tensor:
    scores = torch.as_tensor(scores).detach()
    if scores.ndim != 2:
        raise ValueError(f"expected a [layer, head] grid of scores, got shape "
                         f"{tuple(scores.shape)}")
    return scores.float().cpu()


def top_heads(scores: Float[Tensor, "layer head"], k: int, *, largest: bool = True,
              min_layer: int = 0) -> list[Head]:
    """The ``k`` heads with the largest (or smallest) scores, best first; NaN cells skipped.

    Args:
        scores: one score per head.
        k: how many heads (fewer if there are fewer finite scores).
        largest: ``False`` for the most negative scores (e.g. the largest drops).
        min_layer: only heads in this layer or later.
    """
    scores = _check_grid(scores)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    masked = scores.clone()
    masked[:min_layer] = float("nan")
    flat = masked.flatten()
    finite = flat.isfinite().nonzero().flatten()
    order = flat[finite].argsort(descending=largest)[:k]
    n_heads = scores.shape[1]
    return [Head(*divmod(int(finite[i]), n_heads)) for i in order]


def heads_above(scores: Float[Tensor, "layer head"], threshold: float) -> list[Head]:
    """Every head whose score exceeds ``threshold``, in layer order."""
    scores = _check_grid(scores)
    return [Head(int(layer), int(head)) for layer, head in (scores > threshold).nonzero()]
