"""Composition scores: how much a later head reads what an earlier head writes (weights only).

Heads communicate through the residual stream. An earlier head writes ``x W_OV`` (its
OV circuit, ``W_V W_O``); a later head reads the residual through its query (``W_Q``),
key (``W_K``) or value (``W_V``) map. **Composition scores** (Elhage et al., 2021)
measure the overlap of the earlier head's output space with what the later head reads:
``|W_OV M|_F / (|W_OV|_F |M|_F)`` with ``M`` the later head's ``W_QK = W_Q W_K^T`` (Q),
``W_QK^T`` (K) or ``W_OV`` (V). A score is 0 when the later head ignores the earlier one's
output subspace, and at most 1. Random low-rank maps do not score 0, so read scores
against :func:`composition_baseline`. An induction head's *keys* read a previous-token
head (K-composition).

Layer norms and, for rotary models, the position rotation between the two heads are
ignored.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from ..core.checks import check_positive

__all__ = ["composition_scores", "composition_baseline", "KINDS"]

KINDS = ("Q", "K", "V")


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be 'Q', 'K' or 'V', not {kind!r}")


def _ov(model) -> Float[Tensor, "layer head d_model d_model"]:
    """``W_V @ W_O`` per head: what a head writes, as a map from the residual it reads."""
    return model.W_V.detach() @ model.W_O.detach()


def _qk(model) -> Float[Tensor, "layer head d_model d_model"]:
    """``W_Q @ W_K^T`` per head: the bilinear form of its attention scores."""
    return model.W_Q.detach() @ model.W_K.detach().transpose(-1, -2)


def composition_scores(model, kind: str = "K") -> Float[Tensor, "layer head layer head"]:
    """How strongly each later head reads (through ``kind``) what each earlier head writes.

    For an earlier head's ``W_OV`` and a later head's matrix ``M`` (``W_QK`` for Q,
    ``W_QK^T`` for K, ``W_OV`` for V), the score is ``|W_OV M|_F / (|W_OV|_F |M|_F)``
    (Elhage et al., 2021): 0 if the later head ignores the earlier one's output subspace.
    Layer norms and, for rotary models, the position rotation between the two heads are
    ignored, so compare scores with :func:`composition_baseline`, not with 0.

    Returns:
        ``[layer, head, layer, head]``: ``out[l1, h1, l2, h2]`` for ``l1 < l2``, NaN elsewhere.
    """
    _check_kind(kind)
    ov = _ov(model)
    reader = {"Q": _qk(model), "K": _qk(model).transpose(-1, -2), "V": ov}[kind]
    return _scores(ov, reader)


def _scores(ov: Tensor, reader: Tensor) -> Tensor:
    """``|OV_i R_j|_F / (|OV_i|_F |R_j|_F)`` for every earlier/later pair of heads."""
    n_layers, n_heads = ov.shape[:2]
    out = torch.full((n_layers, n_heads, n_layers, n_heads), float("nan"), dtype=ov.dtype,
                     device=ov.device)
    ov_norm = ov.flatten(-2).norm(dim=-1)  # layer head
    reader_norm = reader.flatten(-2).norm(dim=-1)
    for l1 in range(n_layers):
        for l2 in range(l1 + 1, n_layers):
            product = torch.einsum("hab,gbc->hgac", ov[l1], reader[l2])  # head head d d
            out[l1, :, l2] = (product.flatten(-2).norm(dim=-1)
                              / (ov_norm[l1][:, None] * reader_norm[l2][None, :]))
    return out


def composition_baseline(model, kind: str = "K", n_samples: int = 20, seed: int = 0) -> float:
    """Mean composition score of random Gaussian heads with this model's shapes.

    The scale a real score should clearly beat: random low-rank (``d_head``) maps in
    ``d_model`` dimensions do not score 0, and how far above 0 depends on the two sizes.
    """
    _check_kind(kind)
    check_positive("n_samples", n_samples, integer=True)
    gen = torch.Generator().manual_seed(seed)
    d_model, d_head = model.cfg.d_model, model.cfg.d_head

    def rand(*shape):
        return torch.randn(*shape, generator=gen)

    ov = rand(n_samples, d_model, d_head) @ rand(n_samples, d_head, d_model)  # sample d d
    reader = rand(n_samples, d_model, d_head) @ rand(n_samples, d_head, d_model)
    values = (ov @ reader).flatten(-2).norm(dim=-1) / (ov.flatten(-2).norm(dim=-1)
                                                        * reader.flatten(-2).norm(dim=-1))
    return values.mean().item()
